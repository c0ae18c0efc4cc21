# ZigBee OTA Upgrade cluster client (the device's side of ZCL cluster 0x0019).
#
# One session: Query Next Image, then Image Block Requests from the offset the agent wants
# (0, or its checkpoint after a reboot; the manifest is fetched and checked first, so a
# wrong image is refused before any payload block), or Image Page Requests (agent.zcl.pager),
# honouring WAIT_FOR_DATA and ABORT; then Upgrade End (SUCCESS, or INVALID_IMAGE with the
# alert), and activation as the Upgrade End Response says: now, at a time, or on an Activate
# Image command naming the image's hash. Alerts travel as manufacturer-specific commands and
# stay queued (in the journal) until the server acknowledges them.
# Each request and its answer, with retransmission, is agent.zcl.session's; what a server's
# activation commands, times and waits may do is agent.zcl.commands'. No exception leaves
# session() or idle().
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.zcl import frames as zcl
from agent.zcl import pager as P
from agent.zcl.frames import BLOCK_LEN
from agent.zcl.session import Session, BLOCK, request, recv, next_seq, block_data
from agent import alerts
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


def _commands():
    # agent.zcl.commands (the server's activation commands and waits), imported when a
    # session first needs it: a download's last block, whose signature check from flash is
    # the update's peak of heap, comes before any of them
    from agent.zcl import commands
    return commands


def _error(fn):
    # the OtaError fn() raises, or None
    try:
        fn()
    except OtaError as e:
        return e
    return None


class Client(Session):
    def __init__(self, device, link, clock, block=48, timeout_ms=1000, retries=8,
                 stall_s=300, log=None, min_timeout_ms=20, wait_cap_s=600):
        Session.__init__(self, link, clock, device.cfg.manufacturer, timeout_ms, retries,
                         stall_s, min_timeout_ms)
        self.dev = device
        self.block = block if block < 255 else 255
        self.wait_cap_s = wait_cap_s  # longest WAIT_FOR_DATA honoured (agent.activation)
        self.log = log
        self.offer = None      # (manufacturer, image type, file version, size) offered
        self.notified = False  # an Image Notify selected us: query at once
        self.page = P.PAGE     # page request size (0: Image Block Requests only)
        self.pager = None
        self.bytes = 0         # payload bytes received in this session
        device.sink = self

    def _say(self, what):
        if self.log:
            self.log(what)

    # -- frames from the server --------------------------------------------------

    def _unsolicited(self, f):
        if not f.known or not f.to_client:
            return
        c = f.command
        if f.mfr_code is not None:
            if c == zcl.CMD_ALERT_ACK:
                self.dev.ack(f.alert_seq & 0xFF)
            elif c == zcl.CMD_ACTIVATE:
                _commands().command(self, f)
        elif c == zcl.CMD_IMAGE_NOTIFY:
            if notify_selects(f, self.dev):
                self.notified = True
        elif c == zcl.CMD_UPGRADE_END_RSP:
            _commands().end_response(self, f)

    # -- alerts ----------------------------------------------------------------

    def alert(self, code, reason, aid, value):
        """The agent's alert sink: send at once; the journal keeps it until acked."""
        self._say("alert 0x%04X reason %d" % (code, reason))
        self._send_alert(code, reason, aid, value)

    def _send_alert(self, code, reason, aid, value):
        digest = alerts.digest(code, self.dev.st)
        n = zcl.encode_alert(self._tx, next_seq(self), self.mfr, aid, code, reason, digest,
                             value)
        self.link.send(memoryview(self._tx)[:n])

    def resend_alerts(self):
        for a in self.dev.unacked():
            self._send_alert(a[0], a[1], a[2], a[3])

    # -- a session -------------------------------------------------------------

    def query(self):
        """Query Next Image: (manufacturer, type, version, size) offered, or None."""
        c = self.dev.cfg
        n = zcl.encode_query_next(self._tx, next_seq(self), c.manufacturer, c.image_type,
                                  self.dev.st.run_version, c.hw_version)
        f = request(self, memoryview(self._tx)[:n], zcl.CMD_QUERY_NEXT_RSP)
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
        """The image (manufacturer, image type, file version, size) from the offset the
        device wants: HELD, or how the download ended."""
        try:
            off = self.dev.begin()
        except OtaError:
            return ABORTED
        self.bytes = 0
        self._say("download version 0x%08X, %d bytes" % (ver, size))
        zcl.encode_block_request(self._bq, 0, man, itype, ver, 0, 0)
        return self._fetch(self._pages(man, itype, ver), off, man, itype, ver, size)

    def _fetch(self, pg, off, man, itype, ver, size):
        # the blocks from off on, by page requests while pg takes them, else block requests
        d = self.dev
        clk = self.clock
        last = self._now = clk.ticks_ms()
        period = 0
        while not d.done():
            if clk.ticks_diff(self._now, last) > self.stall_s * 1000:  # answers, no progress
                return STALLED
            want = size - off
            if want <= 0:
                return self._reject(_error(d.end), man, itype, ver)
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
                    return self._reject(None, man, itype, ver)
                if not f.cluster:
                    continue  # page requests refused: block requests from now on
            else:
                zcl.set_block_request(self._bq, next_seq(self), off,
                                      want if want < self.block else self.block)
                f = request(self, self._bq, zcl.CMD_BLOCK_RSP)
            if f is None:  # this request's retries ran out: only the stall timeout ends it
                continue
            st = zcl.S_SUCCESS if f is BLOCK else f.status
            if st == zcl.S_SUCCESS:
                if f is BLOCK:
                    k = self._rx[BLOCK_LEN]
                elif f.offset != off or f.file_version != ver or f.data_len == 0:
                    continue
                else:
                    k = f.data_len
                try:
                    nxt = d.take(off, block_data(self, k))
                except OtaError as e:
                    if not d.refetch(e):
                        return self._reject(e, man, itype, ver)
                    nxt = d.parser.pos
                if nxt != off:
                    last = self._now
                    self.bytes += k
                off = nxt
                if period:
                    self._idle(period)
            elif st == zcl.S_WAIT_FOR_DATA:  # capped; no progress: the stall timeout runs on
                period = f.min_period or 0
                K = _commands()
                K.wait(self, K.wait_ms(self, f, clk.ticks_diff(clk.ticks_ms(), last)))
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

    def _reject(self, e, man, itype, ver):
        # the image is refused (e: the device's OtaError, or None: its alert said why):
        # Upgrade End INVALID_IMAGE
        if e is not None:
            self._say("rejected: %s" % e)
        self._upgrade_end(zcl.S_INVALID_IMAGE, man, itype, ver)
        return REJECTED

    def _upgrade_end(self, status, man, itype, ver):
        n = zcl.encode_upgrade_end(self._tx, next_seq(self), status, man, itype, ver)
        if status != zcl.S_SUCCESS:  # the server may answer with a Default Response
            self.link.send(memoryview(self._tx)[:n])
            return None
        return request(self, memoryview(self._tx)[:n], zcl.CMD_UPGRADE_END_RSP)

    def _end(self, status, man, itype, ver):
        f = self._upgrade_end(status, man, itype, ver)
        if f is None:
            return HELD  # no answer: the image stays held, the next session asks again
        _commands().end_response(self, f)
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
            f = recv(self, left)
            if f is not None and f is not BLOCK:
                self._unsolicited(f)
            if self.dev.reset_needed or (wake and self.notified):
                return

    def idle(self, ms):
        """Between sessions: serve activation commands and scheduled activations. Returns
        early when an Image Notify selects us (notified: start a session now). Never
        raises: a fault is logged and the device goes back to its journal's state."""
        try:
            _commands().wait(self, ms, True)
            if not self.dev.reset_needed:
                self.dev.tick()
        except Exception as e:  # the device's loop goes on
            self._fault(e)
        return self.dev.reset_needed
