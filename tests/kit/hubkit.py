# A scripted update server in memory, for client tests on a fake clock (CPython and
# MicroPython): answers Query Next Image, Image Block and Upgrade End from one image file
# (and, with ack, alerts with Alert Ack), keeps every frame the device sent, and lets a test
# queue frames or faults at any block request, or lose any request on its way in. Image
# Page Requests go unanswered, so a client falls back to block requests.
from agent.zcl import frames as zcl, server as zcl_server
from devkit import MAN, TYPE


class TooLong(BaseException):
    """The fake clock passed the test's limit: the device waits without end."""


class Hub:
    def __init__(self, clock, img, ver, up=zcl.UPGRADE_WAIT, cur=None, limit_s=None,
                 ack=False, rtt_ms=2):
        self.clock = clock
        self.img = img
        self.ver = ver
        self.up = up            # Upgrade End Response: upgrade time ...
        self.cur = cur          # ... and current time (None: the clock's)
        self.ack = ack          # answer each alert with an Alert Ack
        self.rtt_ms = rtt_ms    # how long a frame to the device takes
        self.limit = None if limit_s is None else clock.now() + limit_s
        self.q = []             # frames to the device, in order
        self.hook = None        # hook(hub, request) at each block request; False: no answer
        self.lose = None        # lose(hub, request): True loses it before the server sees it
        self.got = []           # frames from the device, decoded
        self.lost = []          # (clock ms, frame) of each request lost on its way in
        self.times = []         # clock ms of each block request
        self.blocks = 0
        self._seq = 200

    def seq(self):
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def put(self, encoder, *args):
        self.q.append(zcl_server.build(encoder, *args))

    def activate(self, digest, when=0, mfr=MAN):
        self.put(zcl_server.encode_activate, self.seq(), mfr, digest, when)

    def end_response(self, seq, ver, cur, up, man=MAN, itype=TYPE):
        self.put(zcl_server.encode_upgrade_end_response, seq, man, itype, ver, cur, up)

    def wait(self, seq, cur, req, period=0):
        self.put(zcl_server.encode_block_wait, seq, cur, req, period)

    def block(self, f, data=None):
        if data is None:
            data = self.img[f.offset:f.offset + f.max_size]
        self.put(zcl_server.encode_block_response, f.seq, MAN, TYPE, self.ver, f.offset, data)

    def sent(self, command):
        return [f for f in self.got if f.command == command]

    # -- the link ----------------------------------------------------------------------

    def send(self, data):
        f = zcl_server.parse(bytes(data))
        if self.lose is not None and self.lose(self, f):
            self.lost.append((self.clock.ticks_ms(), f))
            return
        self.got.append(f)
        c = f.command
        if c == zcl.CMD_QUERY_NEXT:
            self.put(zcl_server.encode_query_next_response, f.seq, zcl.S_SUCCESS, MAN, TYPE,
                     self.ver, len(self.img))
        elif c == zcl.CMD_BLOCK_REQ:
            self.blocks += 1
            self.times.append(self.clock.ticks_ms())
            if self.hook is None or self.hook(self, f) is not False:
                self.block(f)
        elif c == zcl.CMD_UPGRADE_END and f.status == zcl.S_SUCCESS:
            cur = self.clock.now() if self.cur is None else self.cur
            self.end_response(f.seq, self.ver, cur, self.up)
        elif c == zcl.CMD_ALERT and self.ack:
            self.put(zcl_server.encode_alert_ack, f.seq, f.mfr_code, f.alert_seq)

    def recv(self, buf, timeout_ms):
        if self.limit is not None and self.clock.now() > self.limit:
            raise TooLong()
        if not self.q:
            self.clock.sleep_ms(timeout_ms)  # nothing comes: the time passes
            return 0
        b = self.q.pop(0)
        n = len(b)
        buf[0:n] = b
        self.clock.sleep_ms(self.rtt_ms)
        return n
