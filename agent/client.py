# ZigBee OTA Upgrade cluster client (the device's side of ZCL cluster 0x0019).
#
# One session: Query Next Image, then Image Block Requests from the offset the agent wants
# (0, or its checkpoint after a reboot; the manifest is fetched and checked first, so a
# wrong image is refused before any payload block), honouring WAIT_FOR_DATA and ABORT, with
# retries and back-off; then Upgrade End (SUCCESS, or INVALID_IMAGE with the alert), and
# activation as the Upgrade End Response says: now, at a time, or on an Activate Image
# command naming the image's hash. Alerts travel as manufacturer-specific commands and stay
# queued (in the journal) until the server acknowledges them.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent import zcl
from agent import fmt
from agent import state as S
from agent.errors import OtaError, TIMEOUT

NO_UPDATE = const(0)   # the server has nothing for us
HELD = const(1)        # image received and verified; activation pending
ACTIVATE = const(2)    # activation done: the device must reset now
REJECTED = const(3)    # the image was refused (alert sent)
ABORTED = const(4)     # the server aborted; the checkpoint is kept
STALLED = const(5)     # no answer; the checkpoint is kept
OUTCOMES = ("no update", "held", "activate", "rejected", "aborted", "stalled")

_HASHED = (fmt.ALERT_VERIFY_OK, fmt.ALERT_VERIFY_FAIL, fmt.ALERT_VERSION_CHANGED,
           fmt.ALERT_FUTURE_ACTIONED)


class Client:
    def __init__(self, device, link, clock, block=48, timeout_ms=1000, retries=8,
                 stall_s=300, log=None, min_timeout_ms=20):
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
        self.stall_s = stall_s
        self.log = log
        self.mfr = device.cfg.manufacturer
        self._tx = bytearray(zcl.FRAME_MAX)
        self._rx = bytearray(zcl.FRAME_MAX + 8)
        self._f = zcl.Frame()
        self._seq = 0
        self.offer = None      # (manufacturer, image type, file version, size) offered
        self.notified = False
        self.bytes = 0         # payload bytes received in this session
        device.sink = self

    # -- link ------------------------------------------------------------------

    def _next_seq(self):
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _say(self, what):
        if self.log:
            self.log(what)

    def _recv(self, timeout_ms):
        """One frame for us, or None. Frames not for the running request are handled."""
        n = self.link.recv(self._rx, timeout_ms)
        if not n:
            return None
        try:
            return zcl.decode(self._rx, n, self._f, self.mfr)
        except OtaError:
            return None  # malformed: as if lost

    def _request(self, n, cmd):
        """Send tx[:n] and wait for the answer `cmd` with the same sequence number,
        retrying with back-off. None when every retry timed out."""
        seq = self._tx[3] if self._tx[0] & zcl.FC_MFR else self._tx[1]
        clk = self.clock
        wait = self._rto()
        for attempt in range(self.retries + 1):
            self.link.send(memoryview(self._tx)[:n])
            t0 = clk.ticks_ms()
            while True:
                left = wait - clk.ticks_diff(clk.ticks_ms(), t0)
                if left <= 0:
                    break
                f = self._recv(left)
                if f is None:
                    continue
                if f.cluster and f.to_client and f.command == cmd and f.seq == seq \
                        and f.mfr_code is None:
                    if not attempt:  # Karn: time only answers to a single transmission
                        self._sample(clk.ticks_diff(clk.ticks_ms(), t0))
                    return f
                self._unsolicited(f)
            self.retransmits += 1
            wait = wait * 2 if wait < 4000 else 8000
        return None

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
                self._activate_cmd(f)
        elif c == zcl.CMD_IMAGE_NOTIFY:
            self.notified = True
        elif c == zcl.CMD_UPGRADE_END_RSP:
            self._scheduled(f)

    # -- alerts ----------------------------------------------------------------

    def alert(self, code, reason, aid, value):
        """The agent's alert sink: send at once; the journal keeps it until acked."""
        self._say("alert 0x%04X reason %d" % (code, reason))
        self._send_alert(code, reason, aid, value)

    def _send_alert(self, code, reason, aid, value):
        digest = self.dev.st.mi_hash if code in _HASHED else None
        n = zcl.encode_alert(self._tx, self._next_seq(), self.mfr, aid, code, reason, digest,
                             value)
        self.link.send(memoryview(self._tx)[:n])

    def resend_alerts(self):
        for a in self.dev.unacked():
            self._send_alert(a[0], a[1], a[2], a[3])

    # -- activation ------------------------------------------------------------

    def _activate_cmd(self, f):
        h = bytes(memoryview(self._rx)[f.hash_off:f.hash_off + zcl.HASH_SIZE])
        d = self.dev
        if f.activation_time and f.activation_time > self.clock.now():
            if d.st.phase != S.HELD:
                out = fmt.ACT_NO_IMAGE
            elif h != d.st.mi_hash:
                out = fmt.ACT_HASH_MISMATCH
            else:
                d.schedule(f.activation_time)
                out = fmt.ACT_SUCCESS
        else:
            out = d.activate(h)
        self._say("activate command: outcome %d" % out)
        n = zcl.encode_activate_response(self._tx, f.seq, self.mfr, out, h)
        self.link.send(memoryview(self._tx)[:n])

    def _scheduled(self, f):
        d = self.dev
        if d.st.phase != S.HELD:
            return
        t = f.upgrade_time
        if t == zcl.UPGRADE_WAIT:
            d.schedule(S.WAIT_COMMAND)
            self._say("activation: waiting for a command")
            return
        delay = t if f.current_time == 0 else t - f.current_time
        when = self.clock.now() + delay if delay > 0 else 0
        self._say("activation in %d s" % (delay if delay > 0 else 0))
        d.schedule(when)

    # -- a session -------------------------------------------------------------

    def query(self):
        """Query Next Image: (manufacturer, type, version, size) offered, or None."""
        c = self.dev.cfg
        n = zcl.encode_query_next(self._tx, self._next_seq(), c.manufacturer, c.image_type,
                                  self.dev.st.run_version, c.hw_version)
        f = self._request(n, zcl.CMD_QUERY_NEXT_RSP)
        if f is None:
            raise OtaError(TIMEOUT, "query next image")
        if f.status != zcl.S_SUCCESS:
            return None
        self.offer = (f.manufacturer, f.image_type, f.file_version, f.image_size)
        return self.offer

    def session(self):
        """Query, download, end, activate. Returns one of the outcomes above."""
        d = self.dev
        self.notified = False
        self.resend_alerts()
        try:
            if self.query() is None:
                return NO_UPDATE
        except OtaError:
            return STALLED
        man, itype, ver, size = self.offer
        if not (d.st.phase == S.HELD and d.st.held_version == ver):
            r = self._download(man, itype, ver, size)
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
        last = clk.ticks_ms()
        period = 0
        self.bytes = 0
        self._say("download version 0x%08X, %d bytes" % (ver, size))
        while not d.done():
            if clk.ticks_diff(clk.ticks_ms(), last) > self.stall_s * 1000:
                return STALLED
            want = size - off
            if want <= 0:
                return self._reject(d.end, man, itype, ver)
            n = zcl.encode_block_request(self._tx, self._next_seq(), man, itype, ver, off,
                                         want if want < self.block else self.block)
            f = self._request(n, zcl.CMD_BLOCK_RSP)
            if f is None:
                return STALLED
            st = f.status
            if st == zcl.S_SUCCESS:
                if f.offset != off or f.file_version != ver or f.data_len == 0:
                    continue
                mv = memoryview(self._rx)[f.data_off:f.data_off + f.data_len]
                try:
                    nxt = d.feed(off, mv)
                except OtaError as e:
                    self._say("rejected: %s" % e)
                    self._upgrade_end(zcl.S_INVALID_IMAGE, man, itype, ver)
                    return REJECTED
                if nxt != off:
                    last = clk.ticks_ms()
                    self.bytes += f.data_len
                off = nxt
                if period:
                    self._idle(period)
            elif st == zcl.S_WAIT_FOR_DATA:
                delay = f.request_time if f.current_time == 0 else \
                    f.request_time - f.current_time
                period = f.min_period or 0
                self._say("server: wait %d s" % (delay if delay > 0 else 0))
                self._idle((delay if delay > 0 else 0) * 1000 + period)
                last = clk.ticks_ms()
            else:
                self._say("server: status 0x%02X" % st)
                return ABORTED if st != zcl.S_NO_IMAGE_AVAILABLE else NO_UPDATE
        return HELD

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
        return self._request(n, zcl.CMD_UPGRADE_END_RSP)

    def _end(self, status, man, itype, ver):
        f = self._upgrade_end(status, man, itype, ver)
        if f is None:
            return HELD  # no answer: the image stays held, the next session asks again
        self._scheduled(f)
        self.dev.tick()
        return ACTIVATE if self.dev.reset_needed else HELD

    def _idle(self, ms):
        """Wait ms while handling frames from the server (alert acks, activation)."""
        clk = self.clock
        t0 = clk.ticks_ms()
        while True:
            left = ms - clk.ticks_diff(clk.ticks_ms(), t0)
            if left <= 0:
                return
            f = self._recv(left)
            if f is not None:
                self._unsolicited(f)
            if self.dev.reset_needed:
                return

    def idle(self, ms):
        """Between sessions: serve activation commands and scheduled activations."""
        self._idle(ms)
        if not self.dev.reset_needed:
            self.dev.tick()
        return self.dev.reset_needed
