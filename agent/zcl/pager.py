# Image Page Requests for agent.zcl.client.Client, and the Image Notify rule.
#
# A page request asks the server for `page` bytes from an offset; the server answers with
# Image Block Responses back to back (zigbee-herdsman echoes the request's sequence number
# in each, so the number is not checked: a block counts when its manufacturer code, image
# type, file version and offset belong to the page). Blocks that arrive in order go straight
# to the device; a block that arrives after a gap is kept in the page buffer (its start and
# length noted), and is handed on once the gap is filled. Only what was lost is asked for
# again: when a page's blocks stop, one request per gap (up to the first block held after
# it), sent back to back; the block that ends the last request ends the round.
# A page never runs past the image's end (zigbee-herdsman would loop on an empty block).
# A server that answers a page request with Default Response UNSUP_CLUSTER_COMMAND, or
# never answers one, gets block requests from then on (Pager.on False).
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.zcl import device as zcl
from agent.errors import OtaError

PAGE = const(2048)       # bytes asked for by one page request (the page buffer's size)
SPACING = const(0)       # response spacing asked for, ms (the link's own pace suffices)
SILENT = const(2)         # unanswered page requests, none ever answered: fall back
GAPS = const(16)         # gap requests sent back to back in one round
_REQ = const(21)         # a page request without the IEEE address: 3-byte header + 18
_FC_BLOCK = const(0x09)  # cluster-specific, to the client, no manufacturer code
_LEN = const(16)         # a block response's data size byte
_DATA = const(17)        # its data
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


class Pager:
    def __init__(self, cl, page=PAGE):
        self.cl = cl
        self.size = page
        self.buf = bytearray(page)   # blocks that arrived after a gap
        self.at = bytearray(page)    # at[i]: length of the block held at buf[i] (0: none)
        self.req = bytearray(_REQ)
        self.on = True               # the server answers page requests
        self.heard = False           # it has answered one
        self.silent = 0
        self.base = self.end = self.pos = 0
        self._ia = 80  # block spacing x 8, ms (10 ms until measured)
        self._bv = memoryview(self.buf)
        self._rk = memoryview(cl._rx)[4:12]  # the block's manufacturer, type, version
        self._tk = memoryview(self.req)[4:12]
        self._w = bytearray(8)
        self._g = bytearray(8)

    def start(self, man, itype, ver):
        zcl.encode_page_request(self.req, 0, man, itype, ver, 0, 0, 0, SPACING)
        self._w[:] = self._tk
        self.base = self.end = self.pos = 0
        self.silent = 0

    def _new(self, off, want):
        # a new page from off
        p = self._limit(self.size - self.size % self.cl.block)  # whole blocks
        self.base = off
        self.end = off + (want if want < p else p)
        at = self.at
        for i in range(len(at)):
            at[i] = 0
        return self.end - off

    def _limit(self, p):
        # until the manifest is checked, a page ends with the part the parser is reading
        # (header, element head, manifest), so a wrong image costs no payload airtime
        ps = self.cl.dev.parser
        if ps is None or ps.manifest is not None:
            return p
        b = self.cl.block
        n = (ps._need + b - 1) // b * b
        return n if n < p else p

    def fetch(self, off, want):
        """One page request from off (want: bytes left in the image) and its answers.
        Returns None (progress or not: the offset wanted next is self.pos), REJECT, or a
        decoded Frame: an Image Block Response with another status (WAIT_FOR_DATA, ABORT,
        NO_IMAGE_AVAILABLE) for the caller to act on.
        The device's OtaError for a block passes out: the caller gives it to refused()."""
        self._ask(off, want)
        r = self._collect()
        if r is None:
            self._settle()
        return r

    # The functions a page and a block pass through keep their frames within MicroPython's
    # 11 words (locals, stack, and no try block), so that calling them takes no heap.

    def _ask(self, off, want):
        self._last = -1
        self._single = True
        if self.base <= off < self.end:
            self._gaps(off)
        else:
            n = self._new(off, want)
            self._put(off, n)
            self._stop = off + n
            self.cl.link.send(self.req)
        self.pos = off
        self._got = False
        self._t0 = self.cl.clock.ticks_ms()
        self._wait = self._timeout()

    def _gaps(self, off):
        # one request per gap of the page from off (at most GAPS), sent back to back: the
        # server answers them in order, so the last one's last block ends the round
        i = off - self.base
        n = self.end - self.base
        k = 0
        while i < n and k < GAPS:
            j = i
            while j < n and not self.at[j]:
                j += 1
            self._put(i + self.base, j - i)
            self.cl.link.send(self.req)
            self._stop = j + self.base
            k += 1
            while j < n and self.at[j]:
                j += self.at[j]
            i = j
        self._single = k == 1

    def _put(self, off, n):
        # PAGE_REQ_FMT's sequence number, file offset, maximum data size and page size
        q = self.req
        q[1] = self.cl._next_seq()
        q[12] = off & 0xFF
        q[13] = (off >> 8) & 0xFF
        q[14] = (off >> 16) & 0xFF
        q[15] = (off >> 24) & 0xFF
        q[16] = self.cl.block
        q[17] = n & 0xFF
        q[18] = n >> 8

    def _timeout(self):
        # losses alone do not back off; a server silent three times in a row does
        s = self.silent
        if s < 3:
            return self.cl._rto()
        return self.cl._rto() << (s - 2) if s < 7 else 8000

    def _collect(self):
        cl = self.cl
        left = self._wait
        while left > 0 and self.pos < self._stop and self._last != self._stop:
            k = cl.link.recv(cl._rx, left)
            if k:
                k = self._one(k)
                if k is not None:
                    return k
            left = self._wait - cl._since(self._t0)
        return None

    def _one(self, k):
        if not self._is_block(k):
            return self._frame(k)
        cl = self.cl
        if not self._got and self._single and self.silent == 0:  # one request's round trip
            cl._sample(cl.clock.ticks_diff(cl.clock.ticks_ms(), self._t0))
        elif self._got:
            self._pace(cl.clock.ticks_diff(cl.clock.ticks_ms(), self._t0))
        self._got = True
        self._take(k)
        self._t0 = cl.clock.ticks_ms()
        self._wait = self._next()
        return None

    def _pace(self, ms):
        # the blocks' spacing, smoothed (x 8)
        self._ia += ms - (self._ia >> 3)

    def _next(self):
        # the wait for the next block of a run: four spacings and 10 ms, at most the RTO
        w = (self._ia >> 1) + 10
        r = self.cl._rto()
        return w if w < r else r

    def _take(self, k):
        # the block in rx: to the device, or held
        rx = self.cl._rx
        o = rx[12] | rx[13] << 8 | rx[14] << 16 | rx[15] << 24
        k = rx[_LEN]
        self._last = o + k  # the round ends with the block that ends its last request
        if o < self.pos or o + k > self.end:
            return  # a duplicate, or not ours
        if o > self.pos:
            self._hold(o - self.base, k)
            return
        k = self.cl.dev.take(o, self.cl._data(k))
        if self.base <= k < self.end and self.at[k - self.base]:
            k = self._drain(k)
        self.pos = k

    def _hold(self, i, k):
        self.buf[i:i + k] = self.cl._data(k)
        self.at[i] = k

    def _drain(self, nxt):
        # hand on the blocks held from nxt on
        at = self.at
        while self.base <= nxt < self.end and at[nxt - self.base]:
            i = nxt - self.base
            k = at[i]
            at[i] = 0
            nxt = self.cl.dev.take(nxt, self._bv[i:i + k])
        return nxt

    def refused(self, e):
        """After fetch() passed on the device's OtaError e: REJECT, or None when the device
        fetches a sector again (from self.pos)."""
        d = self.cl.dev
        if not d.refetch(e):
            return REJECT
        self.pos = d.parser.pos
        self.end = self.base  # the page is void: start again from the device's offset
        return None

    def _settle(self):
        if self._got:
            self.heard = True
            self.silent = 0
            return
        self.cl.retransmits += 1
        self.silent += 1
        if not self.heard and self.silent >= SILENT:
            self.on = False
            self.cl._say("server: no answer to page requests, using block requests")

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
                    and f.seq == self.req[1]:
                self.on = False
                self.cl._say("server: no page requests (status 0x%02X), using block "
                             "requests" % f.status)
                return f
            return None
        if f.to_client and f.command == zcl.CMD_BLOCK_RSP and f.mfr_code is None \
                and f.seq == self.req[1]:
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
