# Image Page Requests for agent.zcl.client.Client.
#
# A page request asks the server for a run of bytes; it answers with Image Block Responses
# back to back. A block counts when its manufacturer code, image type, file version and
# offset fit: in order it goes straight to the device, after a gap it is held in the window
# (WINDOW bytes from the device's offset, in slots of one block) until the gap is filled.
# The requests in flight, what a block tells of them, which are asked for next and when one
# is given up are agent.zcl.inflight's (Inflight, this class's base). Until the manifest is
# checked, a request ends with the part the parser is reading (header, element head,
# manifest), so a wrong image costs no payload airtime; a page never runs past the image's
# end (zigbee-herdsman would loop on an empty block). A server that answers a page request
# with Default Response UNSUP_CLUSTER_COMMAND, or never answers one, gets block requests
# from then on (Pager.on False).
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

from agent.zcl import frames as zcl
from agent.zcl.inflight import Inflight, SILENT, PIPE_SILENT  # noqa: F401

PAGE = const(2048)        # bytes of new data asked for by one page request
_WINDOW = const(4096)     # bytes from the device's offset that may be asked for and held,
_CHUNK = const(1024)      # in buffers of this size (a fragmented heap has room for them),
_SLOTS = const(128)       # in slots of a block, this many at most
_SPACING = const(0)       # response spacing asked for, ms (the link's own pace suffices)
_MARGIN_MAX = const(2000)  # ms of a wait's margin at most
_REQ = const(21)          # a page request without the IEEE address: 3-byte header + 18
# (each also declared, the same, in agent.zcl.inflight or agent.zcl.streamn where used)
_GAPS = const(16)         # requests in flight at most
_LOW = const(3)           # blocks still due when the next requests go out
_MARGIN = const(5)        # ms of a wait beyond the blocks' time, at least
_FC_BLOCK = const(0x09)   # cluster-specific, to the client, no manufacturer code
_ROUTE = const(0x0F)      # the frame control bits that say so
_SEQ = const(1)           # a block response's sequence number,
_HEAD = const(2)          # its command, status, manufacturer, type, version (10 bytes),
_OFF = const(12)          # file offset,
_LEN = const(16)          # data size
_DATA = const(17)         # and data
REJECT = object()         # fetch(): the image was refused (the device raised its alert)


try:  # Pager._stream compiled by the native emitter (imported with this module: the heap
    from agent.zcl.streamn import run as _native  # is least fragmented then)
except Exception:  # ImportError (CPython, a build that leaves it out) or SyntaxError (a
    _native = None  # port without the emitter): the plain loop


class Pager(Inflight):
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
