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
#
# Every block of a download without loss takes one path, _stream: a whole slot's block at the
# device's offset, the next one of the oldest request in flight. It is _one's way for that
# block, written out in one function without a call but to the link and the device (and to
# the helpers of the events that come once a request: its first block, its end); where the
# port has the native emitter, the same loop compiled by it (agent.zcl.streamn) stands in its
# place. Every other frame goes through _one. Pager.fast False sends every frame through _one
# and Pager._go None keeps the plain loop (the tests compare the three ways).
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.zcl import device as zcl

PAGE = const(2048)        # bytes of new data asked for by one page request
_WINDOW = const(4096)     # bytes from the device's offset that may be asked for and held,
_CHUNK = const(1024)      # in buffers of this size (a fragmented heap has room for them),
_SLOTS = const(128)       # in slots of a block, this many at most
_SPACING = const(0)       # response spacing asked for, ms (the link's own pace suffices)
SILENT = const(6)         # page requests unanswered in a row, none ever answered: fall back
_GAPS = const(16)         # requests in flight at most
_LOW = const(3)           # blocks still due when the next requests go out
_MARGIN = const(5)        # ms of a wait beyond the blocks' time, at least
_MARGIN_MAX = const(2000)  # ... at most
PIPE_SILENT = const(3)    # rounds that gave up a request sent while the server answered the
#                           one before, none such ever answered: one request at a time
_REQ = const(21)          # a page request without the IEEE address: 3-byte header + 18
_FC_BLOCK = const(0x09)   # cluster-specific, to the client, no manufacturer code
_ROUTE = const(0x0F)      # the frame control bits that say so
_SEQ = const(1)           # a block response's sequence number,
_HEAD = const(2)          # its command, status, manufacturer, type, version (10 bytes),
_OFF = const(12)          # file offset,
_LEN = const(16)          # data size
_DATA = const(17)         # and data
_PIPED = const(1)         # a request in flight: sent while another was
_HEARD = const(2)         # ... a block of it came
_FIRST = const(4)         # ... sent while none was (its first block times the round trip)
REJECT = object()         # fetch(): the image was refused (the device raised its alert)


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


try:  # Pager._stream compiled by the native emitter (imported with this module: the heap
    from agent.zcl.streamn import run as _native  # is least fragmented then)
except Exception:  # ImportError (CPython, a build that leaves it out) or SyntaxError (a
    _native = None  # port without the emitter): the plain loop


class Pager:
    def __init__(self, cl, page=PAGE, window=_WINDOW):
        self.cl = cl
        self.size = page
        n = (window if window > page else page) // _CHUNK
        self._bufs = [None] * n        # the window's slots, each buffer made when a block
        self._spc = 1                  # is first held in it; slots a buffer
        self.held = bytearray(_SLOTS)  # per slot: the length of the block held (0: none)
        self.ask = bytearray(_SLOTS)   # per slot: the tag of the request in flight for it
        self._qa = [0] * _GAPS         # the requests in flight, a ring from _h: the next
        self._qe = [0] * _GAPS         # offset due, the end, flags (_PIPED ...) and the
        self._qf = bytearray(_GAPS)    # sequence number (its tag in ask: seq % 255 + 1)
        self._qs = bytearray(_GAPS)
        self._h = self._n = 0
        self._fly = 0                  # bytes still due from them
        self.req = bytearray(_REQ)
        self.on = True                 # the server answers page requests
        self.heard = False             # it has answered one
        self.pipe = True               # it takes requests sent while it answers one
        self._pok = False              # such a request was answered
        self._ph = 0                   # the request before the oldest in flight was answered
        self._miss = False             # this round gave up such a request
        self._prun = 0                 # rounds that did
        self._echo = 0                 # > 0: blocks carry their request's sequence number,
        self._ev = self._em = 0        # as (_em of _ev) the first 8 blocks told
        self.silent = 0
        self.pos = self.hw = self.end = self.top = 0  # the device's offset, new data from,
        self._s = self._ns = 1         # image end, window end; slot size and count; slots
        self._r = 0                    # start at offsets r mod s
        self._fresh = True
        self._dry = False              # nothing to ask for until a block comes
        self._got = False
        self._p0 = self._t0 = self._tn = self._ts = self._bt = 0
        self._bo = self._bs = 0
        self._wait = 0
        self._mg = _MARGIN             # the wait's margin
        self._gave = False             # a request was given up since the last late block
        self._junk = 0                 # blocks in a row that brought nothing
        self._ia = 80  # block spacing x 8, ms (10 ms until measured)
        self.fast = True               # in-order blocks take _stream (set before fetch())
        self._go = _native             # ... agent.zcl.streamn's where the port has it (None:
        #                                the plain one; the tests set it so)
        rx = self._rx = cl._rx
        self._rh = memoryview(rx)[_HEAD:_OFF]  # a block's head, and what it must be
        self._w = bytearray(_OFF - _HEAD)
        self._k = 0                    # the length of a whole slot's block frame (0: no _stream)
        self._bv = None                # and a view of its data

    def start(self, man, itype, ver):
        q = self.req
        zcl.encode_page_request(q, 0, man, itype, ver, 0, 0, 0, _SPACING)
        w = self._w
        w[0] = zcl.CMD_BLOCK_RSP
        w[1] = zcl.S_SUCCESS
        w[2:] = q[4:12]  # the manufacturer, type and version asked for
        cl = self.cl
        self._dev = cl.dev
        self._recv = cl.link.recv  # (as _ms: a bound method made once)
        self._clk = cl.clock
        self._ms = cl.clock.ticks_ms  # (made once here: the per-block path calls it twice)
        self._s = cl.block
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
        d = self._dev
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
        self._spc = _CHUNK // s
        n = self._spc * len(self._bufs)
        n = self._ns = n if n < _SLOTS else _SLOTS
        self._r = off % s
        self.top = off + n * s
        self._k = s + _DATA if self.fast and self._ev >= 8 else 0
        self._bv = self.cl._data(s)
        n = _SLOTS
        while n:
            n -= 1
            self.held[n] = self.ask[n] = 0
        i = self._h
        n = self._n
        while n:
            self._mark(i)
            i = (i + 1) % _GAPS
            n -= 1

    # The functions a block passes through keep their frames within MicroPython's 11 words
    # (locals, stack, and no try block), so that calling them takes no heap. A slot is
    # (o - r) // s % ns for an offset o on the grid; the next one on it is o - (o - r) % s + s.

    def _mark(self, i):
        # the window's slots from request i's next offset to its end: asked for by it
        s = self._s
        t = self._qs[i] % 255 + 1
        a = self._qa[i]
        e = self._qe[i]
        i = self.pos - (self.pos - self._r) % s
        if a < i:
            a = i
        if e > self.top:
            e = self.top
        if a < e:  # the slots of a, of e - 1 and those between (at most _ns)
            i = (a - self._r) // s
            e = (e - 1 - self._r) // s - i + 1
            i %= self._ns
            a = i + e - self._ns
            s = self.ask
            if a > 0:  # this many past the last slot: from the first on
                e -= a
                while a:
                    a -= 1
                    s[a] = t
            e += i
            while i < e:
                s[i] = t
                i += 1

    def _unmark(self, a, e, t):
        # the slots from a to e that the request tagged t asked for: asked for no more
        c = self._ns
        q = self.ask
        while a < e and c:
            j = (a - self._r) // self._s % self._ns
            if q[j] == t:
                q[j] = 0
            a += self._s - (a - self._r) % self._s
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
            w = self._recv(self._rx, w)
            if w:
                w = self._stream(w) if self._go is None else self._go(self, w)
            if w:
                w = self._one(w)
                if w is not None:
                    self._clear()
                    return w
        return None

    def _stream(self, k):
        # The blocks of length k in rx and after it, while each is a whole slot's at the
        # device's offset and the next of the oldest request in flight (those before the
        # one it names have ended) or of none: as _one takes them. Returns the length of
        # the first frame that is not such a block, for _one; or 0 when none came within the
        # wait, or when the image is done or the next requests may be due (for _run).
        # agent.zcl.streamn is this loop for the native emitter: a change here goes there too.
        rx = self._rx
        s = self._s  # (the slot size: only _one changes it)
        j = _SLOTS   # the slot at pos, once known: j - _SLOTS until the flags a block sets
        #              (got, heard, silent, junk, dry) are set in this call
        i = -1
        while k == self._k and rx[_LEN] == s and rx[0] & _ROUTE == _FC_BLOCK \
                and self._rh == self._w:
            o = rx[_OFF] | rx[_OFF + 1] << 8 | rx[_OFF + 2] << 16 | rx[_OFF + 3] << 24
            if o != self.pos:
                return k
            self._tn = self._ms()
            if j == _SLOTS or i < 0 or self._qs[i] != rx[_SEQ]:
                # (else the block before, in order, was of the oldest request i, still in
                # flight, and heard)
                i = self._request(o)
                if i == -2:
                    return k
                if i >= _GAPS:  # its first block
                    i -= _GAPS
                    k = 0
            if j == _SLOTS:  # (ask and held have _SLOTS bytes: ask[j - _SLOTS] is ask[j])
                j = (o - self._r) // s % self._ns - _SLOTS
            if i >= 0:  # as _take acks it (i is the oldest request now)
                if not k:
                    pass
                elif self._tn <= self._t0:
                    self._bs = -1
                elif self._bs != self._qs[i]:
                    self._heard(i, o)
                elif o - self._bo >= 8 * s:
                    k = self._clk.ticks_diff(self._tn, self._bt) << 3
                    k //= (o - self._bo) // s
                    self._ia += (k - self._ia) >> 3
                if self.ask[j] == self._qs[i] % 255 + 1:
                    self.ask[j] = 0
                self._fly -= s
                k = self._qa[i] = o + s
                if k >= self._qe[i]:
                    self._drop()
                    i = -1
            k = self._dev.take(o, self._bv)  # as _take hands it on
            if j < 0:  # the flags; the blocks after it in this call find them so
                j += _SLOTS
                self._got = self.heard = True
                self.silent = self._junk = 0
                self._dry = False
            if k != o + s:
                self._reset(k)
                i = -1
                j = _SLOTS
            else:
                self.pos = k
                self.top = k + self._ns * s
                if k > self.hw:
                    self.hw = k
                j += 1
                if j == self._ns:
                    j = 0
                if self.held[j]:
                    self._ahead()
                    self._drain()
                    self._dry = False
                    k = self.pos
                    i = -1
                    j = _SLOTS
            self._t0 = self._ms()
            if i >= 0:  # the oldest request is still i, its next offset o + s, and it was heard
                self._wait = (self._qe[i] - o - 1) // s * self._ia // 8 + self._mg
            else:
                self._wait = self._next()
            if k >= self.end or self._fly <= _LOW * s:  # (k: pos)
                return 0  # (_run sees whether requests are due)
            k = self._recv(rx, self._wait)
        return k

    def _request(self, o):
        # for _stream's loops: the request in flight that a block at o (in rx) is the next of,
        # the oldest or the one its sequence number names (those before it have ended:
        # dropped); -1 for none, -2 when o is not that request's next offset (the block is
        # _one's). Plus _GAPS when it is the request's first block (heard now).
        i = self._h
        if not self._n:
            return -1
        rx = self._rx
        if self._qs[i] != rx[_SEQ] or self._qa[i] != o:
            i = self._which(rx[_SEQ], o)  # (no vote: _k is 0 until the 8 are in)
            if i < 0:
                return -1
            if self._qa[i] != o:
                return -2
            while self._h != i:
                self._drop()
        if self._qf[i] & _HEARD:
            return i
        self._heard(i, o)
        return i + _GAPS

    def _due(self):
        # requests to send: none in flight, or (pipelining) only the last blocks still due
        if not self._n:
            return True
        return self.pipe and not self._dry and self._n < _GAPS and self._fly <= _LOW * self._s

    def _issue(self):
        # the gaps known lost, then new data (one request only, unless pipelining)
        n = self._n
        if self.hw > self.pos:
            self._regaps()
        if self._n < _GAPS and (self.pipe or not self._n):
            self._page()
        if self._n == n:
            self._dry = True
        elif not n:  # the server was idle: its first block is a round trip away
            self._qf[self._h] |= _FIRST
            self._ts = self._t0 = self._clk.ticks_ms()
            self._wait = self._next()

    def _regaps(self):
        # one request per run of the window's slots from pos to hw neither held nor asked for
        a = self.pos
        e = self.hw if self.hw < self.top else self.top
        while a < e and self._n < _GAPS:
            i = a
            while i < e:
                j = (i - self._r) // self._s % self._ns
                if self.held[j] or self.ask[j]:
                    break
                i += self._s - (i - self._r) % self._s
            if i > e:
                i = e
            if i > a:
                self._send(a, i - a)
                if not self.pipe:
                    return
                a = i
            else:
                a += self._s - (a - self._r) % self._s

    def _page(self):
        # new data from hw: a page, within the window, the image, and (until the manifest
        # is checked) the part the parser is reading
        a = self.hw
        e = self.top if self.top < self.end else self.end
        ps = self._dev.parser
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
        # PAGE_REQ_FMT's sequence number, file offset, maximum data size and page size
        q = self.req
        q[1] = self.cl._next_seq()
        q[12] = a & 0xFF
        q[13] = (a >> 8) & 0xFF
        q[14] = (a >> 16) & 0xFF
        q[15] = (a >> 24) & 0xFF
        q[16] = self._s
        q[17] = n & 0xFF
        q[18] = n >> 8
        self.cl.link.send(q)
        i = (self._h + self._n) % _GAPS
        self._qa[i] = a
        self._qe[i] = a + n
        self._qs[i] = q[1]
        self._qf[i] = _PIPED if self._n else 0
        self._n += 1
        self._fly += n
        self._mark(i)

    def _drop(self):
        # the oldest request in flight has ended: what it did not bring is lost
        i = self._h
        self._ph = self._qf[i] & _HEARD
        self._fly -= self._qe[i] - self._qa[i]
        self._unmark(self._qa[i], self._qe[i], self._qs[i] % 255 + 1)
        self._h = (i + 1) % _GAPS
        self._n -= 1

    def _clear(self):
        # nothing in flight any more
        while self._n:
            self._drop()
        self._fly = 0
        i = _SLOTS
        while i:
            i -= 1
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
        if self._mg > _MARGIN:
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

    def _next(self):
        # the wait for a block of the oldest request in flight: a spacing for each of its
        # blocks still due, or two (its round trip behind the one before) when none came
        # yet, and the margin; sent to an idle server, the retransmission timeout (losses
        # alone do not back off; a server silent five times in a row does)
        if not self._n:
            return 0
        i = self._h
        if self._qf[i] & _HEARD:
            i = (self._qe[i] - self._qa[i] + self._s - 1) // self._s
        elif self._qf[i] & _FIRST:
            i = self.silent
            if i < 5:
                return self.cl._rto()
            return self.cl._rto() << (i - 4) if i < 9 else 8000
        else:
            i = 2
        return i * self._ia // 8 + self._mg

    def _one(self, k):
        # the frame of length k in rx, any: None, or a Frame for the caller
        rx = self._rx
        if k <= _DATA or rx[0] & _ROUTE != _FC_BLOCK or rx[_LEN] != k - _DATA \
                or self._rh != self._w:
            return self._frame(k)
        self._tn = self._clk.ticks_ms()
        if self._take(k):
            # a block that brought something: the wait for the next runs from now (after
            # the device took it: its own time does not count against the server)
            self._got = self.heard = True
            self.silent = self._junk = 0
            self._dry = False
            self._t0 = self._clk.ticks_ms()
            self._wait = self._next()
        elif self._n:
            # a block that brought nothing (a duplicate, or the answer to a request given
            # up): the server is still busy with older requests, so the wait restarts, and a
            # request given up since had deserved a longer one (but a run of them, as many
            # as the window's slots, holds the wait no longer)
            self._junk += 1
            if self._junk <= self._ns:
                if self._gave:
                    self._gave = False
                    self._mg = self._mg * 2 if self._mg < _MARGIN_MAX // 2 else _MARGIN_MAX
                self._t0 = self._tn
                self._wait = self._next()
        return None

    def _take(self, k):
        # the block in rx: to the device, or held. True when it brought something
        a = self._rx
        o = a[_OFF] | a[_OFF + 1] << 8 | a[_OFF + 2] << 16 | a[_OFF + 3] << 24
        k = a[_LEN]
        a = self._which(a[_SEQ], o) if self._n else -1  # the request in flight it answers
        if a < 0:
            a = False  # none: a duplicate, a late block, or not asked for
        else:  # those sent before it have ended
            while self._h != a:
                self._drop()
            self._heard(a, o)
            self._fly -= o + k - self._qa[a]
            self._unmark(self._qa[a], o + k, self._qs[a] % 255 + 1)
            self._qa[a] = o + k
            if o + k >= self._qe[a]:
                self._drop()
            a = True
        if o != self.pos:
            return o > self.pos and self._hold(o, k) or a
        a = self._dev.take(o, self.cl._data(k))  # (a: the offset the device wants next)
        if a != o + k:  # it wants another (it resumes at its checkpoint once the manifest
            self._reset(a)  # is checked): the window starts there
            return True
        self._at(a)
        if (a - self._r) % self._s:
            # a block taken in order ended off the slots: the server sends blocks of k
            # bytes, less than asked for; the slots become k bytes from here, and what was
            # held goes
            if k < self._s:
                self._s = k
            self._grid(a)
        elif self.held[(a - self._r) // self._s % self._ns]:
            self._ahead()
            self._drain()
        return True

    def _which(self, seq, o):
        # the request in flight with the block's sequence number whose next offsets hold o;
        # from a server that does not echo the number, the oldest whose offsets hold o. The
        # first 8 blocks asked for tell whether the server echoes it (then a block with
        # another number is late, from a request given up)
        i = self._h
        c = self._n
        x = -1
        while c:
            if self._qa[i] <= o < self._qe[i]:
                if self._qs[i] == seq:
                    x = -2 - i
                    break
                if x < 0:
                    x = i
            i = (i + 1) % _GAPS
            c -= 1
        if x != -1 and self._ev < 8:
            self._ev += 1
            self._em += x < -1
            if self._ev == 8:
                self._echo = 1 if self._em >= 6 else -1
                self._k = self._s + _DATA if self.fast else 0
        if x < -1:
            return -2 - x
        return -1 if self._echo > 0 else x

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
                self.cl._sample(self._clk.ticks_diff(self._tn, self._ts))
        elif self._bs != self._qs[i]:
            self._bs = self._qs[i]
            self._bt = self._tn
            self._bo = o
        elif o - self._bo >= 8 * self._s:
            f = self._clk.ticks_diff(self._tn, self._bt)
            self._ia += ((f << 3) // ((o - self._bo) // self._s) - self._ia) >> 3

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
        while c and self.held[(q - self._r) // self._s % self._ns]:
            q += self._s
            c -= 1
        self.top = q + self._ns * self._s
        self._dry = False
        if self._due():
            self._issue()

    def _drain(self):
        # hand on the blocks held from pos on
        while True:
            j = (self.pos - self._r) // self._s % self._ns
            k = self.held[j]
            if not k:
                return
            self.held[j] = 0
            c = j // self._spc
            j = (j - c * self._spc) * self._s
            j = self._dev.take(self.pos, self._bufs[c][j:j + k])
            if j != self.pos + k:
                self._reset(j)
                return
            self._at(j)

    def _hold(self, o, k):
        s = self._s
        if (o - self._r) % s or (k != s and o + k != self.end) or o + k > self.top:
            return False  # not a whole slot of the window
        j = (o - self._r) // s % self._ns
        if self.held[j]:
            return False
        self.held[j] = k
        c = j // self._spc
        o = self._bufs[c]
        if o is None:  # (a download without loss never takes the window's memory)
            o = self._bufs[c] = memoryview(bytearray(_CHUNK))
        j = (j - c * self._spc) * s
        o[j:j + k] = self.cl._data(k)
        return True

    def _ours(self, seq):
        # seq is that of a request in flight, or of the last one sent
        if seq == self.req[1]:
            return True
        i = self._h
        c = self._n
        while c:
            if self._qs[i] == seq:
                return True
            i = (i + 1) % _GAPS
            c -= 1
        return False

    def _frame(self, k):
        # a frame that is not a SUCCESS block for us: handled here (None) or returned
        rx = self._rx
        if k > _DATA and rx[0] & _ROUTE == _FC_BLOCK and rx[_HEAD] == zcl.CMD_BLOCK_RSP \
                and rx[_HEAD + 1] == zcl.S_SUCCESS:
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
