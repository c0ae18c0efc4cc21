# Image Page Requests for agent.zcl.client.Client, and the Image Notify rule.
#
# A page request asks the server for a run of bytes; it answers with Image Block Responses
# back to back. A block counts when its manufacturer code, image type, file version and
# offset fit: in order it goes straight to the device, after a gap it is held in the window
# (WINDOW bytes from the device's offset, in slots of one block) until the gap is filled.
# The requests in flight are kept in the order sent, the order the server answers them: a
# block of one request shows that the ones before it, and its own blocks before it, have
# ended, so what they did not bring was lost and is asked for again, one request per run of
# lost slots. (Blocks name their request by the sequence number where the server echoes it,
# as zigbee-herdsman and otatool serve do; else by offset.) The next requests, those gaps and
# then new data as far as the window reaches, go out while the last LOW blocks are still
# due, so the server has them when its page ends; when a gap is filled they go out before
# the blocks held behind it are handed on. A request no block came for is given up when its
# blocks were due: a spacing each, its round trip behind the one before, and a margin that
# doubles when an answer to a request given up comes after all (the server was slower) and
# shrinks again with each request given up. A server that drops requests coming while it
# sends a page (zigbee-herdsman) never answers such a one: after PIPE_SILENT rounds like
# that the device sends one request at a time, once the one before has ended.
# Until the manifest is checked, a request ends with the part the parser is reading (header,
# element head, manifest), so a wrong image costs no payload airtime; a page never runs past
# the image's end (zigbee-herdsman would loop on an empty block). A server that answers a
# page request with Default Response UNSUP_CLUSTER_COMMAND, or never answers one, gets block
# requests from then on (Pager.on False).
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.zcl import device as zcl

PAGE = const(2048)       # bytes of new data asked for by one page request
WINDOW = const(4096)     # bytes from the device's offset that may be asked for and held,
CHUNK = const(1024)      # in buffers of this size (a fragmented heap has room for them),
SLOTS = const(128)       # in slots of a block, this many at most
SPACING = const(0)       # response spacing asked for, ms (the link's own pace suffices)
SILENT = const(6)        # page requests unanswered in a row, none ever answered: fall back
GAPS = const(16)         # requests in flight at most
LOW = const(3)           # blocks still due when the next requests go out
MARGIN = const(5)        # ms of a wait beyond the blocks' time, at least
MARGIN_MAX = const(2000)  # ... at most
PIPE_SILENT = const(3)   # rounds that gave up a request sent while the server answered the
#                          one before, none such ever answered: one request at a time
_REQ = const(21)         # a page request without the IEEE address: 3-byte header + 18
_FC_BLOCK = const(0x09)  # cluster-specific, to the client, no manufacturer code
_LEN = const(16)         # a block response's data size byte
_DATA = const(17)        # its data
_PIPED = const(1)        # a request in flight: sent while another was
_HEARD = const(2)        # ... a block of it came
_FIRST = const(4)        # ... sent while none was (its first block times the round trip)
REJECT = object()        # fetch(): the image was refused (the device raised its alert)


def _draw():
    import os
    return os.urandom(1)[0]


def notify_selects(f, dev, rnd=_draw):
    """True when an Image Notify asks this device to query now (ZCL 11.13.3.4): the
    manufacturer code and image type, when carried, are ours or the wildcard 0xFFFF; a
    carried file version differs from the running one; and a draw in 1..100 is within the
    query jitter (a unicast notify carries jitter 100, so it always selects). rnd(): 0..255."""
    c = dev.cfg
    t = f.payload_type
    if t >= 1 and f.manufacturer != 0xFFFF and f.manufacturer != c.manufacturer:
        return False
    if t >= 2 and f.image_type != 0xFFFF and f.image_type != c.image_type:
        return False
    if t == 3 and f.file_version == dev.st.run_version:
        return False
    j = f.jitter
    return j >= 100 or (j > 0 and rnd() % 100 < j)


def _tag(seq):
    return seq % 255 + 1  # a request's mark in Pager.ask (0: none)


class Pager:
    def __init__(self, cl, page=PAGE, window=WINDOW):
        self.cl = cl
        self.size = page
        n = (window if window > page else page) // CHUNK
        self._bufs = [bytearray(CHUNK) for _ in range(n)]  # the window's slots
        self._bvs = [memoryview(b) for b in self._bufs]
        self._spc = 1                 # slots a buffer
        self.held = bytearray(SLOTS)  # per slot: the length of the block held (0: none)
        self.ask = bytearray(SLOTS)   # per slot: the tag of the request in flight for it
        self._qa = [0] * GAPS         # the requests in flight, a ring from _h: the next
        self._qe = [0] * GAPS         # offset due, the end, flags (_PIPED ...) and the
        self._qf = bytearray(GAPS)    # sequence number
        self._qs = bytearray(GAPS)
        self._h = self._n = 0
        self._fly = 0                 # bytes still due from them
        self.req = bytearray(_REQ)
        self.on = True                # the server answers page requests
        self.heard = False            # it has answered one
        self.pipe = True              # it takes requests sent while it answers one
        self._pok = False             # such a request was answered
        self._ph = 0                  # the request before the oldest in flight was answered
        self._miss = False            # this round gave up such a request
        self._prun = 0                # rounds that did
        self._echo = 0                # > 0: blocks carry their request's sequence number,
        self._ev = self._em = 0       # as (_em of _ev) the first 8 blocks told
        self.silent = 0
        self.pos = self.hw = self.end = self.top = 0  # the device's offset, new data from,
        self._s = self._ns = 1        # image end, window end; slot size and count; slots
        self._r = 0                   # start at offsets r mod s
        self._fresh = True
        self._dry = False             # nothing to ask for until a block comes
        self._got = False
        self._p0 = self._t0 = self._tn = self._ts = self._bt = 0
        self._bo = self._bs = 0
        self._wait = 0
        self._mg = MARGIN             # the wait's margin
        self._gave = False            # a request was given up since the last late block
        self._junk = 0                # blocks in a row that brought nothing
        self._ia = 80  # block spacing x 8, ms (10 ms until measured)
        self._rk = memoryview(cl._rx)[4:12]  # the block's manufacturer, type, version
        self._tk = memoryview(self.req)[4:12]
        self._w = bytearray(8)
        self._g = bytearray(8)

    def start(self, man, itype, ver):
        zcl.encode_page_request(self.req, 0, man, itype, ver, 0, 0, 0, SPACING)
        self._w[:] = self._tk
        self._s = self.cl.block
        self._fresh = True
        self.silent = 0

    def fetch(self, off, want):
        """Blocks from off (want: bytes left in the image; after start() or refused(), else
        it goes on from self.pos) until some came and the next requests are due, or none is
        in flight any more. Returns None (progress or not: the offset wanted next is
        self.pos), REJECT, or a decoded Frame: an Image Block Response with another status
        (WAIT_FOR_DATA, ABORT, NO_IMAGE_AVAILABLE) for the caller to act on. The device's
        OtaError for a block passes out: the caller gives it to refused()."""
        if self._fresh:
            self._reset(off)
        self.end = off + want
        self._p0 = self.pos
        self._got = False
        return self._run()

    def refused(self, e):
        """After fetch() passed on the device's OtaError e: REJECT, or None when the device
        fetches a sector again (from self.pos)."""
        d = self.cl.dev
        if not d.refetch(e):
            return REJECT
        self.pos = d.parser.pos
        self._fresh = True  # the window is void: start again from the device's offset
        return None

    def _reset(self, off):
        # the window empty from off, nothing in flight (what still comes is used if it fits)
        self._clear()
        self.pos = self.hw = off
        self._grid(off)
        self._fresh = False
        self._dry = False

    def _grid(self, off):
        # slots of s bytes from off, none held; those of the requests in flight asked for
        s = self._s
        self._spc = CHUNK // s
        n = self._spc * len(self._bufs)
        self._ns = n if n < SLOTS else SLOTS
        self._r = off % s
        self.top = off + self._ns * s
        for i in range(SLOTS):
            self.held[i] = 0
            self.ask[i] = 0
        i = self._h
        for _ in range(self._n):
            self._mark(self._qa[i], self._qe[i], _tag(self._qs[i]))
            i = (i + 1) % GAPS

    # The functions a block passes through keep their frames within MicroPython's 11 words
    # (locals, stack, and no try block), so that calling them takes no heap.

    def _slot(self, o):
        return (o - self._r) // self._s % self._ns

    def _next_slot(self, o):
        return o - (o - self._r) % self._s + self._s

    def _mark(self, a, e, t):
        # the window's slots from a to e: asked for by the request tagged t
        p = self.pos - (self.pos - self._r) % self._s
        if a < p:
            a = p
        if e > self.top:
            e = self.top
        while a < e:
            self.ask[self._slot(a)] = t
            a = self._next_slot(a)

    def _unmark(self, a, e, t):
        # the slots from a to e that the request tagged t asked for: asked for no more
        c = self._ns
        while a < e and c:
            if self.ask[self._slot(a)] == t:
                self.ask[self._slot(a)] = 0
            a = self._next_slot(a)
            c -= 1

    def _run(self):
        cl = self.cl
        while self.pos < self.end:
            if self._due():
                if self.pos != self._p0:
                    return None  # progress: the caller's stall clock first
                self._issue()
            w = self._wait - cl._since(self._t0)
            if w <= 0:
                if self._lapse():
                    return None
                continue
            w = cl.link.recv(cl._rx, w)
            if w:
                w = self._one(w)
                if w is not None:
                    self._clear()
                    return w
        return None

    def _due(self):
        # requests to send: none in flight, or (pipelining) only the last blocks still due
        if not self._n:
            return True
        return self.pipe and not self._dry and self._n < GAPS and self._fly <= LOW * self._s

    def _issue(self):
        # the gaps known lost, then new data (one request only, unless pipelining)
        n = self._n
        if self.hw > self.pos:
            self._regaps()
        if self._n < GAPS and (self.pipe or not self._n):
            self._page()
        if self._n == n:
            self._dry = True
        elif not n:  # the server was idle: its first block is a round trip away
            self._qf[self._h] |= _FIRST
            self._ts = self._t0 = self.cl.clock.ticks_ms()
            self._wait = self._next()

    def _regaps(self):
        # one request per run of the window's slots from pos to hw neither held nor asked for
        i = self.pos
        while i < self.hw and i < self.top and self._n < GAPS:
            if self._free(i):
                j = self._run_end(i)
                self._send(i, j - i)
                if not self.pipe:
                    return
                i = j
            else:
                i = self._next_slot(i)

    def _free(self, o):
        j = self._slot(o)
        return not self.held[j] and not self.ask[j]

    def _run_end(self, i):
        e = self.hw if self.hw < self.top else self.top
        while i < e and self._free(i):
            i = self._next_slot(i)
        return i if i < e else e

    def _page(self):
        # new data from hw: a page, within the window, the image, and (until the manifest
        # is checked) the part the parser is reading
        a = self.hw
        e = self.top if self.top < self.end else self.end
        ps = self.cl.dev.parser
        if ps is not None and ps.manifest is None:
            n = self.pos + (ps._need + self._s - 1) // self._s * self._s
            if n < e:
                e = n if n > self.pos else self.pos + self._s
        if a < e:
            n = self.size - self.size % self._s
            if e - a < n:
                n = e - a
            self._send(a, n)
            self.hw = a + n

    def _send(self, a, n):
        self._put(a, n)
        self.cl.link.send(self.req)
        i = (self._h + self._n) % GAPS
        self._qa[i] = a
        self._qe[i] = a + n
        self._qs[i] = self.req[1]
        self._qf[i] = _PIPED if self._n else 0
        self._n += 1
        self._fly += n
        self._mark(a, a + n, _tag(self.req[1]))

    def _put(self, off, n):
        # PAGE_REQ_FMT's sequence number, file offset, maximum data size and page size
        q = self.req
        q[1] = self.cl._next_seq()
        q[12] = off & 0xFF
        q[13] = (off >> 8) & 0xFF
        q[14] = (off >> 16) & 0xFF
        q[15] = (off >> 24) & 0xFF
        q[16] = self._s
        q[17] = n & 0xFF
        q[18] = n >> 8

    def _drop(self):
        # the oldest request in flight has ended: what it did not bring is lost
        i = self._h
        self._ph = self._qf[i] & _HEARD
        self._fly -= self._qe[i] - self._qa[i]
        self._unmark(self._qa[i], self._qe[i], _tag(self._qs[i]))
        self._h = (i + 1) % GAPS
        self._n -= 1

    def _clear(self):
        # nothing in flight any more
        while self._n:
            self._drop()
        self._fly = 0
        for i in range(SLOTS):
            self.ask[i] = 0

    def _lapse(self):
        # no block for the wait: the oldest request in flight is given up, and the wait runs
        # on by the next one's time (the margin counted once). True when none is left
        if not self._n:
            return True
        if self._qf[self._h] == _PIPED and self._ph:
            self._miss = True
        self._drop()
        self._gave = True
        if self._mg > MARGIN:
            self._mg -= self._mg >> 3
        if self._n:
            self._wait += self._next() - self._mg
            return False
        self._clear()
        if self._miss:
            self._miss = False
            self._prun += 1
            if self.pipe and not self._pok and self._prun >= PIPE_SILENT:
                self.pipe = False
                self.cl._say("server: no answer to requests sent during a page, "
                             "one request at a time")
        if self._got:
            return True
        self.cl.retransmits += 1
        self.silent += 1
        if not self.heard and self.silent >= SILENT:
            self.on = False
            self.cl._say("server: no answer to page requests, using block requests")
        return True

    def _timeout(self):
        # losses alone do not back off; a server silent five times in a row does
        s = self.silent
        if s < 5:
            return self.cl._rto()
        return self.cl._rto() << (s - 4) if s < 9 else 8000

    def _next(self):
        # the wait for a block of the oldest request in flight: a spacing for each of its
        # blocks still due, or two (its round trip behind the one before) when none came
        # yet, and the margin; sent to an idle server, the retransmission timeout
        if not self._n:
            return 0
        i = self._h
        if self._qf[i] & _HEARD:
            i = (self._qe[i] - self._qa[i] + self._s - 1) // self._s
        elif self._qf[i] & _FIRST:
            return self._timeout()
        else:
            i = 2
        return i * self._ia // 8 + self._mg

    def _one(self, k):
        if not self._is_block(k):
            return self._frame(k)
        self._tn = self.cl.clock.ticks_ms()
        if self._take(k):
            self._tick()
        elif self._n:
            self._late()
        return None

    def _tick(self):
        # a block that brought something: the wait for the next runs from now (after the
        # device took it: its own time does not count against the server)
        self._got = True
        self.heard = True
        self.silent = 0
        self._dry = False
        self._junk = 0
        self._t0 = self.cl.clock.ticks_ms()
        self._wait = self._next()

    def _late(self):
        # a block that brought nothing (a duplicate, or the answer to a request given up):
        # the server is still busy with older requests, so the wait restarts, and a
        # request given up since had deserved a longer one (but a run of them, as many as
        # the window's slots, holds the wait no longer)
        self._junk += 1
        if self._junk > self._ns:
            return
        if self._gave:
            self._gave = False
            self._mg = self._mg * 2 if self._mg < MARGIN_MAX // 2 else MARGIN_MAX
        self._t0 = self._tn
        self._wait = self._next()

    def _take(self, k):
        # the block in rx: to the device, or held. True when it brought something
        rx = self.cl._rx
        o = rx[12] | rx[13] << 8 | rx[14] << 16 | rx[15] << 24
        k = rx[_LEN]
        a = self._n and self._ack(o, k)
        if o == self.pos:
            self._deliver(o, k)
            return True
        if o > self.pos and self._hold(o, k):
            return True
        return a

    def _ack(self, o, k):
        # the request in flight that the block at o answers: those sent before it have ended
        i = self._which(self.cl._rx[1], o)
        if i < 0:
            return False  # a duplicate, a late block, or not asked for
        while self._h != i:
            self._drop()
        self._heard(i, o)
        o += k
        self._fly -= o - self._qa[i]
        self._unmark(self._qa[i], o, self._qs[i] % 255 + 1)
        self._qa[i] = o
        if o >= self._qe[i]:
            self._drop()
        return True

    def _which(self, seq, o):
        # the request in flight with the block's sequence number whose next offsets hold o;
        # from a server that does not echo the number, the oldest whose offsets hold o
        i = self._h
        c = self._n
        x = -1
        while c:
            if self._qa[i] <= o < self._qe[i]:
                if self._qs[i] == seq:
                    self._vote(1)
                    return i
                if x < 0:
                    x = i
            i = (i + 1) % GAPS
            c -= 1
        if x >= 0:
            self._vote(0)
        return -1 if self._echo > 0 else x

    def _vote(self, m):
        # the first 8 blocks asked for tell whether the server echoes the request's sequence
        # number (then a block with another number is late, from a request given up)
        if self._ev < 8:
            self._ev += 1
            self._em += m
            if self._ev == 8:
                self._echo = 1 if self._em >= 6 else -1

    def _heard(self, i, o):
        # a block at o of request i. Timed when it came while the device waited (one read
        # from the link's queue came earlier): the round trip when it is the first of one
        # sent to an idle server and waited for since, the spacing over 8 blocks or more
        f = self._qf[i]
        if f & _PIPED and not f & _HEARD and self._ph:
            self._pok = True  # answered although the server was answering the one before
        if self._tn <= self._t0:
            self._bs = -1
            self._qf[i] = f | _HEARD
            return
        if not f & _HEARD:
            self._qf[i] = f | _HEARD
            if f & _FIRST and o == self._qa[i] and self._t0 == self._ts and \
                    (self._echo > 0 or not self.silent):
                self._rtt()
        elif self._bs != self._qs[i]:
            self._bs = self._qs[i]
            self._bt = self._tn
            self._bo = o
        elif o - self._bo >= 8 * self._s:
            self._pace(self.cl.clock.ticks_diff(self._tn, self._bt), (o - self._bo) // self._s)

    def _rtt(self):
        cl = self.cl
        cl._sample(cl.clock.ticks_diff(self._tn, self._ts))

    def _pace(self, ms, n):
        # the blocks' spacing, smoothed (x 8)
        self._ia += ((ms << 3) // n - self._ia) >> 3

    def _deliver(self, o, k):
        p = self.cl.dev.take(o, self.cl._data(k))
        if p != o + k:  # the device wants another offset (it resumes at its checkpoint
            self._reset(p)  # once the manifest is checked): the window starts there
        elif (p - self._r) % self._s:
            self._regrid(k)
        else:
            self._at(p)
            if self.held[self._slot(p)]:
                self._ahead()
                self._drain()

    def _at(self, p):
        # the device is at p: the window ends further on
        self.pos = p
        self.top = p + self._ns * self._s
        if p > self.hw:
            self.hw = p

    def _ahead(self):
        # a gap filled: before the blocks held after it are handed on (a while, on a device
        # that writes flash), the requests that will then be due go out, so the server has
        # them while the device is busy (their answers are read after it)
        q = self.pos
        c = self._ns
        while c and self.held[self._slot(q)]:
            q += self._s
            c -= 1
        self.top = q + self._ns * self._s
        self._dry = False
        if self._due():
            self._issue()

    def _drain(self):
        # hand on the blocks held from pos on
        while True:
            j = self._slot(self.pos)
            k = self.held[j]
            if not k:
                return
            self.held[j] = 0
            p = self.cl.dev.take(self.pos, self._view(j, k))
            if p != self.pos + k:
                self._reset(p)
                return
            self._at(p)

    def _hold(self, o, k):
        s = self._s
        if (o - self._r) % s or (k != s and o + k != self.end) or o + k > self.top:
            return False  # not a whole slot of the window
        j = self._slot(o)
        if self.held[j]:
            return False
        self.held[j] = k
        c = j // self._spc
        j = (j - c * self._spc) * s
        self._bufs[c][j:j + k] = self.cl._data(k)
        return True

    def _view(self, j, k):
        # the k bytes held in slot j
        c = j // self._spc
        j = (j - c * self._spc) * self._s
        return self._bvs[c][j:j + k]

    def _regrid(self, k):
        # a block taken in order ended off the slots: the server sends blocks of k bytes,
        # less than asked for; the slots become k bytes from here, and what was held goes
        if k < self._s:
            self._s = k
        self._at(self.pos + k)
        self._grid(self.pos)

    def _ours(self, seq):
        # seq is that of a request in flight, or of the last one sent
        if seq == self.req[1]:
            return True
        i = self._h
        for _ in range(self._n):
            if self._qs[i] == seq:
                return True
            i = (i + 1) % GAPS
        return False

    def _frame(self, k):
        # a frame that is not a SUCCESS block: handled here (None) or returned
        rx = self.cl._rx
        if k > _DATA and rx[0] & 0x0F == _FC_BLOCK and rx[2] == zcl.CMD_BLOCK_RSP \
                and rx[3] == zcl.S_SUCCESS:
            return None
        f = self.cl._decode(k)
        if f is None or not f.known:
            return None
        if not f.cluster:
            if f.rsp_command == zcl.CMD_PAGE_REQ and f.status != zcl.S_SUCCESS \
                    and self._ours(f.seq):
                self.on = False
                self.cl._say("server: no page requests (status 0x%02X), using block "
                             "requests" % f.status)
                return f
            return None
        if f.to_client and f.command == zcl.CMD_BLOCK_RSP and f.mfr_code is None \
                and self._ours(f.seq):
            return f
        self.cl._unsolicited(f)
        return None

    def _is_block(self, k):
        rx = self.cl._rx
        if k <= _DATA or rx[0] & 0x0F != _FC_BLOCK or rx[2] != zcl.CMD_BLOCK_RSP \
                or rx[3] != zcl.S_SUCCESS or rx[_LEN] != k - _DATA:
            return False
        self._g[:] = self._rk
        return self._g == self._w
