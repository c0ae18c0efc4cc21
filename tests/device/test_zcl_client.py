# The OTA client against an in-memory Hub on a fake clock: losses never end a session by
# themselves; only the stall timeout (no progress for stall_s) does.
from agent.zcl import client as C
from agent.zcl import frames as zcl, server as zcl_server
from hal.clock import FakeClock
from devkit import Rig, MAN, TYPE
from tutil import eq, Image

V2 = Image("core_v2.ota")


class Hub:
    """Answers Query Next Image, Image Block and Upgrade End; loses block requests on cue."""

    def __init__(self, img, clock, lose=0, lose_after=0, dead_after=None):
        self.img = img
        self.clock = clock
        self.lose = lose              # block requests to lose in a row ...
        self.lose_after = lose_after  # ... once this many have been answered
        self.dead_after = dead_after  # stop answering blocks after this many
        self.blocks = 0
        self.lost = 0
        self.out = None
        self.f = zcl.Frame()

    def send(self, data):
        f = zcl.decode(data, len(data), self.f)
        b = bytearray(zcl.FRAME_MAX)
        n = 0
        if f.command == zcl.CMD_QUERY_NEXT:
            n = zcl_server.encode_query_next_response(b, f.seq, zcl.S_SUCCESS, MAN, TYPE, 2,
                                                      len(self.img))
        elif f.command == zcl.CMD_BLOCK_REQ:
            if self.dead_after is not None and self.blocks >= self.dead_after:
                return
            if self.blocks >= self.lose_after and self.lost < self.lose:
                self.lost += 1
                return
            self.blocks += 1
            n = zcl_server.encode_block_response(b, f.seq, MAN, TYPE, 2, f.offset,
                                                 self.img[f.offset:f.offset + f.max_size])
        elif f.command == zcl.CMD_UPGRADE_END:
            now = self.clock.now()
            n = zcl_server.encode_upgrade_end_response(b, f.seq, MAN, TYPE, 2, now, now)
        self.out = bytes(b[:n]) if n else None

    def recv(self, buf, timeout_ms):
        if self.out is None:
            self.clock.sleep_ms(timeout_ms)  # nothing comes: the time passes
            return 0
        n = len(self.out)
        buf[0:n] = self.out
        self.out = None
        self.clock.sleep_ms(2)
        return n


def _client(rig, hub, stall_s=300):
    rig.board.clock = hub.clock
    return C.Client(rig.dev, hub, hub.clock, 48, retries=8, stall_s=stall_s)


def test_twenty_losses_in_a_row_do_not_end_the_session():
    r = Rig()
    r.provision()
    clk = FakeClock(1000)
    hub = Hub(V2, clk, lose=20, lose_after=50)
    out = _client(r, hub).session()
    eq(hub.lost, 20, "lost")
    eq(C.OUTCOMES[out], "activate", "outcome")
    assert r.reboot().trial


def test_a_dead_server_ends_the_session_after_the_stall_timeout():
    r = Rig()
    r.provision()
    clk = FakeClock(1000)
    hub = Hub(V2, clk, dead_after=150)
    t0 = clk.ticks_ms()
    out = _client(r, hub, stall_s=120).session()
    eq(C.OUTCOMES[out], "stalled", "outcome")
    waited = clk.ticks_ms() - t0
    assert 120000 <= waited <= 140000, waited
    # the checkpoint is kept: a later session continues the download
    assert r.dev.st.next > 0
