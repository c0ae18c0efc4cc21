# ZigBee OTA Upgrade cluster client (the device's side of ZCL cluster 0x0019).
#
# One session: Query Next Image, then Image Block Requests from the offset the agent wants
# (0, or its checkpoint after a reboot; the manifest is fetched and checked first, so a
# wrong image is refused before any payload block), honouring WAIT_FOR_DATA and ABORT, with
# retries and back-off; then Upgrade End (SUCCESS, or INVALID_IMAGE with the alert), and
# activation as the Upgrade End Response says: now, at a time, or on an Activate Image
# command naming the image's hash. Alerts travel as manufacturer-specific commands and stay
# queued (in the journal) until the server acknowledges them.
# What a server's activation commands, times and waits may do is agent.activation's; no
# exception leaves session() or idle().
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.zcl import frames as zcl
from agent.zcl import pager as P
from agent import alerts
from agent.store import state as S
from agent import activation as A
from agent.errors import OtaError, TIMEOUT

NO_UPDATE = const(0)   # the server has nothing for us
HELD = const(1)        # image received and verified; activation pending
ACTIVATE = const(2)    # activation done: the device must reset now
REJECTED = const(3)    # the image was refused (alert sent)
ABORTED = const(4)     # the server aborted; the checkpoint is kept
STALLED = const(5)     # no answer; the checkpoint is kept
FAULT = const(6)       # an unexpected error; the device is back at its journal's state
OUTCOMES = ("no update", "held", "activate", "rejected", "aborted", "stalled", "fault")
_STALL_MAX_S = const(86400)  # the stall timeout is measured with ticks_ms: at most a day

# An Image Block Response to one of our requests, as the client checks it on arrival: the
# ZCL header without a manufacturer code (3 bytes), then zcl.BLOCK_RSP_FMT, whose fields
# after the status sit at the same offsets as in the Image Block Request (zcl.BLOCK_REQ_FMT).
_FC_MASK = const(0x0F)   # frame type, manufacturer-specific and direction bits
_FC_BLOCK = const(0x09)  # cluster-specific, to the client, no manufacturer code
_ECHO = const(4)         # manufacturer, image type, file version, offset: 12 bytes from here
_LEN = const(16)         # data size
_DATA = const(17)        # data
_REQ = const(17)         # length of an Image Block Request without options
_BLOCK = object()        # _recv's answer for such a response: its data is in rx[_DATA:]

class Client:
    def __init__(self, device, link, clock, block=48, timeout_ms=1000, retries=8,
                 stall_s=300, log=None, min_timeout_ms=20, wait_cap_s=600):
        self.dev = device
        self.link = link
        self.clock = clock
        self.block = block if block < 255 else 255
        self.timeout_ms = timeout_ms      # first retransmission timeout, before any RTT
        self.min_timeout_ms = min_timeout_ms
        self._srtt = 0                    # smoothed round trip, ms x 8 (0: no sample yet)
        self._rttvar = 0                  # its mean deviation, ms x 4
        self.retransmits = 0
        self.retries = retries
        self.stall_s = stall_s if stall_s < _STALL_MAX_S else _STALL_MAX_S
        self.wait_cap_s = wait_cap_s  # longest WAIT_FOR_DATA honoured (agent.activation)
        self.log = log
        self.mfr = device.cfg.manufacturer
        self._tx = bytearray(zcl.FRAME_MAX)
        self._rx = bytearray(zcl.FRAME_MAX + 8)
        # the block requests of a download (encoded once, then updated per block), and
        # views and buffers made once, so that a block round trip allocates nothing
        self._bq = bytearray(_REQ)
        self._bqv = memoryview(self._bq)
        self._rk = memoryview(self._rx)[_ECHO:_LEN]
        self._tk = memoryview(self._bq)[_ECHO:_LEN]
        self._want = bytearray(_LEN - _ECHO)
        self._got = bytearray(_LEN - _ECHO)
        self._dv = None
        self._cmd = 0     # the answer awaited (0: none)
        self._blk = False  # it is an Image Block Response
        self._seqw = 0    # its sequence number
        self._now = 0     # ticks_ms when the last answer arrived
        self._f = zcl.Frame()
        self._seq = 0
        self.offer = None      # (manufacturer, image type, file version, size) offered
        self.notified = False  # an Image Notify selected us: query at once
        self.page = P.PAGE     # page request size (0: Image Block Requests only)
        self.pager = None
        self.bytes = 0         # payload bytes received in this session
        device.sink = self

    # -- link ------------------------------------------------------------------

    def _next_seq(self):
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _say(self, what):
        if self.log:
            self.log(what)

    # The functions a block passes through keep their frames small (locals and stack
    # within MicroPython's 11 words), so that calling them takes no heap.

    def _data(self, n):
        """The n data bytes of the block response in rx, as a view made again only when n
        changes."""
        v = self._dv
        if v is None or len(v) != n:
            v = self._dv = memoryview(self._rx)[_DATA:_DATA + n]
        return v

    def _is_block(self, n):
        # rx[:n] is the SUCCESS Image Block Response, with data, to the request in _bq
        rx = self._rx
        if n <= _DATA or rx[0] & _FC_MASK != _FC_BLOCK or rx[1] != self._seqw \
                or rx[2] != zcl.CMD_BLOCK_RSP or rx[3] != zcl.S_SUCCESS or rx[_LEN] != n - _DATA:
            return False
        self._got[:] = self._rk
        return self._got == self._want

    def _recv(self, timeout_ms):
        """One frame for us, or None; _BLOCK for the answer to the block request awaited.
        Frames not for the running request are handled."""
        n = self.link.recv(self._rx, timeout_ms)
        if not n:
            return None
        if self._blk and self._is_block(n):
            return _BLOCK
        return self._decode(n)

    def _decode(self, n):
        try:
            return zcl.decode(self._rx, n, self._f, self.mfr)
        except OtaError:
            return None  # malformed: as if lost

    def _request(self, v, cmd):
        """Send the request frame v (a view) and wait for the answer `cmd` with the same
        sequence number, retrying with back-off. None when every retry timed out."""
        self._cmd = cmd
        self._blk = cmd == zcl.CMD_BLOCK_RSP
        self._seqw = v[3] if v[0] & zcl.FC_MFR else v[1]
        if self._blk:
            self._want[:] = self._tk
        wait = self._rto()
        tries = self.retries + 1
        while tries:
            self.link.send(v)
            f = self._await(wait, tries > self.retries)
            if f is not None:
                break
            self.retransmits += 1
            wait = wait * 2 if wait < 4000 else 8000
            tries -= 1
        self._cmd = 0
        self._blk = False
        return f

    def _await(self, wait, first):
        # the answer to the request just sent, within wait ms
        t0 = self.clock.ticks_ms()
        left = wait
        while left > 0:
            f = self._recv(left)
            left = wait - self._since(t0)  # also sets _now
            if f is not None:
                if f is _BLOCK or self._answers(f):
                    if first:  # Karn: time only answers to a single transmission
                        self._sample(wait - left)
                    return f
                self._unsolicited(f)
        return None

    def _answers(self, f):
        return f.cluster and f.to_client and f.command == self._cmd and f.seq == self._seqw \
            and f.mfr_code is None

    def _since(self, t0):
        c = self.clock
        self._now = c.ticks_ms()
        return c.ticks_diff(self._now, t0)

    def _rto(self):
        """Retransmission timeout from the measured round trips (RFC 6298's estimator)."""
        if not self._srtt:
            return self.timeout_ms
        rto = (self._srtt >> 3) + self._rttvar
        return rto if rto > self.min_timeout_ms else self.min_timeout_ms

    def _sample(self, ms):
        if not self._srtt:
            self._srtt = ms << 3
            self._rttvar = ms << 1
            return
        err = ms - (self._srtt >> 3)
        self._srtt += err
        if err < 0:
            err = -err
        self._rttvar += err - (self._rttvar >> 2)

    def _unsolicited(self, f):
        if not f.known or not f.to_client:
            return
        c = f.command
        if f.mfr_code is not None:
            if c == zcl.CMD_ALERT_ACK:
                self.dev.ack(f.alert_seq & 0xFF)
            elif c == zcl.CMD_ACTIVATE:
                A.command(self, f)
        elif c == zcl.CMD_IMAGE_NOTIFY:
            if P.notify_selects(f, self.dev):
                self.notified = True
        elif c == zcl.CMD_UPGRADE_END_RSP:
            A.end_response(self, f)

    # -- alerts ----------------------------------------------------------------

    def alert(self, code, reason, aid, value):
        """The agent's alert sink: send at once; the journal keeps it until acked."""
        self._say("alert 0x%04X reason %d" % (code, reason))
        self._send_alert(code, reason, aid, value)

    def _send_alert(self, code, reason, aid, value):
        digest = alerts.digest(code, self.dev.st)
        n = zcl.encode_alert(self._tx, self._next_seq(), self.mfr, aid, code, reason, digest,
                             value)
        self.link.send(memoryview(self._tx)[:n])

    def resend_alerts(self):
        for a in self.dev.unacked():
            self._send_alert(a[0], a[1], a[2], a[3])

    # -- activation ------------------------------------------------------------

    # -- a session -------------------------------------------------------------

    def query(self):
        """Query Next Image: (manufacturer, type, version, size) offered, or None."""
        c = self.dev.cfg
        n = zcl.encode_query_next(self._tx, self._next_seq(), c.manufacturer, c.image_type,
                                  self.dev.st.run_version, c.hw_version)
        f = self._request(memoryview(self._tx)[:n], zcl.CMD_QUERY_NEXT_RSP)
        if f is None:
            raise OtaError(TIMEOUT, "query next image")
        if f.status != zcl.S_SUCCESS:
            return None
        self.offer = (f.manufacturer, f.image_type, f.file_version, f.image_size)
        return self.offer

    def session(self):
        """Query, download, end, activate. Returns one of the outcomes above and never
        raises: a fault no check foresaw ends the session as FAULT, with the device back at
        the state its journal holds."""
        try:
            return self._session()
        except Exception as e:  # a session ends with an outcome, whatever happened
            return self._fault(e)

    def _fault(self, e):
        try:
            self._say("session fault: %r" % (e,))
            self.dev.recover()
        except Exception:
            self.dev.loading = False
        return FAULT

    def _session(self):
        d = self.dev
        self.notified = False
        self.resend_alerts()
        try:
            if self.query() is None:
                return NO_UPDATE
        except OtaError:
            return STALLED
        man, itype, ver, size = self.offer
        if not A.names_held(d, man, itype, ver):
            r = self._download(man, itype, ver, size)
            d.close()
            if r != HELD:
                return r
        return self._end(zcl.S_SUCCESS, man, itype, ver)

    def _download(self, man, itype, ver, size):
        d = self.dev
        try:
            off = d.begin()
        except OtaError:
            return ABORTED
        clk = self.clock
        last = self._now = clk.ticks_ms()
        period = 0
        self.bytes = 0
        self._say("download version 0x%08X, %d bytes" % (ver, size))
        zcl.encode_block_request(self._bq, 0, man, itype, ver, 0, 0)
        pg = self._pages(man, itype, ver)
        while not d.done():
            if clk.ticks_diff(self._now, last) > self.stall_s * 1000:  # answers, no progress
                return STALLED
            want = size - off
            if want <= 0:
                return self._reject(d.end, man, itype, ver)
            if pg is not None and pg.on:
                try:
                    f = pg.fetch(off, want)
                except OtaError as e:
                    f = pg.refused(e)
                if f is None:
                    if pg.pos != off:
                        last = self._now
                        self.bytes += pg.pos - off if pg.pos > off else 0
                    off = pg.pos
                    continue
                if f is P.REJECT:
                    self._upgrade_end(zcl.S_INVALID_IMAGE, man, itype, ver)
                    return REJECTED
                if not f.cluster:
                    continue  # page requests refused: block requests from now on
            else:
                zcl.set_block_request(self._bq, self._next_seq(), off,
                                      want if want < self.block else self.block)
                f = self._request(self._bqv, zcl.CMD_BLOCK_RSP)
            if f is None:  # this request's retries ran out: only the stall timeout ends it
                continue
            st = zcl.S_SUCCESS if f is _BLOCK else f.status
            if st == zcl.S_SUCCESS:
                if f is _BLOCK:
                    k = self._rx[_LEN]
                elif f.offset != off or f.file_version != ver or f.data_len == 0:
                    continue
                else:
                    k = f.data_len
                try:
                    nxt = d.take(off, self._data(k))
                except OtaError as e:
                    if not d.refetch(e):
                        self._say("rejected: %s" % e)
                        self._upgrade_end(zcl.S_INVALID_IMAGE, man, itype, ver)
                        return REJECTED
                    nxt = d.parser.pos
                if nxt != off:
                    last = self._now
                    self.bytes += k
                off = nxt
                if period:
                    self._idle(period)
            elif st == zcl.S_WAIT_FOR_DATA:  # capped; no progress: the stall timeout runs on
                period = f.min_period or 0
                A.wait(self, A.wait_ms(self, f, clk.ticks_diff(clk.ticks_ms(), last)))
            else:
                self._say("server: status 0x%02X" % st)
                return ABORTED if st != zcl.S_NO_IMAGE_AVAILABLE else NO_UPDATE
        return HELD

    def _pages(self, man, itype, ver):
        # the page requests of this download, or None (block requests)
        if not self.page:
            return None
        pg = self.pager
        if pg is None or pg.size != self.page:
            pg = self.pager = P.Pager(self, self.page)
        pg.start(man, itype, ver)
        return pg

    def _reject(self, fn, man, itype, ver):
        try:
            fn()
        except OtaError as e:
            self._say("rejected: %s" % e)
        self._upgrade_end(zcl.S_INVALID_IMAGE, man, itype, ver)
        return REJECTED

    def _upgrade_end(self, status, man, itype, ver):
        n = zcl.encode_upgrade_end(self._tx, self._next_seq(), status, man, itype, ver)
        if status != zcl.S_SUCCESS:  # the server may answer with a Default Response
            self.link.send(memoryview(self._tx)[:n])
            return None
        return self._request(memoryview(self._tx)[:n], zcl.CMD_UPGRADE_END_RSP)

    def _end(self, status, man, itype, ver):
        f = self._upgrade_end(status, man, itype, ver)
        if f is None:
            return HELD  # no answer: the image stays held, the next session asks again
        A.end_response(self, f)
        self.dev.tick()
        return ACTIVATE if self.dev.reset_needed else HELD

    def _idle(self, ms, wake=False):
        """Wait ms while handling frames from the server (alert acks, activation); with
        wake, only until an Image Notify selects us."""
        clk = self.clock
        t0 = clk.ticks_ms()
        while True:
            left = ms - clk.ticks_diff(clk.ticks_ms(), t0)
            if left <= 0:
                return
            f = self._recv(left)
            if f is not None and f is not _BLOCK:
                self._unsolicited(f)
            if self.dev.reset_needed or (wake and self.notified):
                return

    def idle(self, ms):
        """Between sessions: serve activation commands and scheduled activations. Returns
        early when an Image Notify selects us (notified: start a session now). Never
        raises: a fault is logged and the device goes back to its journal's state."""
        try:
            A.wait(self, ms, True)
            if not self.dev.reset_needed:
                self.dev.tick()
        except Exception as e:  # the device's loop goes on
            self._fault(e)
        return self.dev.reset_needed
