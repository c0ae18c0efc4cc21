# The page requests in flight, for agent.zcl.pager.Pager (whose base this class is, and
# whose attributes it uses: the window's slots, the clock, the client).
#
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
# that the device sends one request at a time, once the one before has ended. A server that
# never answers a page request (SILENT in a row), or refuses one, gets block requests.
# _frame sorts the frames that are no SUCCESS block: a refusal of our page request, a block
# response of ours with another status (for the client), anything else (the client's).
#
# The ring: _qa, _qe, _qf, _qs (next offset due, end, flags, sequence number) from _h, _n of
# them, _fly bytes still due; the window's slots a request asked for carry its tag in ask
# (sequence number % 255 + 1). Like the pager's, these functions keep their frames within
# MicroPython's 11 words, so that calling them takes no heap.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.zcl import frames as zcl

SILENT = const(6)         # page requests unanswered in a row, none ever answered: fall back
PIPE_SILENT = const(3)    # rounds that gave up a request sent while the server answered the
#                           one before, none such ever answered: one request at a time
_GAPS = const(16)         # requests in flight at most
_LOW = const(3)           # blocks still due when the next requests go out
_MARGIN = const(5)        # ms of a wait beyond the blocks' time, at least
_SLOTS = const(128)       # the window's slots at most (ask has this many bytes)
_FC_BLOCK = const(0x09)   # cluster-specific, to the client, no manufacturer code
_ROUTE = const(0x0F)      # the frame control bits that say so
_SEQ = const(1)           # a block response's sequence number,
_HEAD = const(2)          # its command and status,
_DATA = const(17)         # and its data
_PIPED = const(1)         # a request in flight: sent while another was
_HEARD = const(2)         # ... a block of it came
_FIRST = const(4)         # ... sent while none was (its first block times the round trip)


class Inflight:
    """The request ring of agent.zcl.pager.Pager (no state of its own)."""

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
