# A session against a faulty or hostile server ends with an outcome, always: WAIT_FOR_DATA
# is capped and the stall timeout still applies; a sector that changes in flash before the
# final check refuses the image (0x8F1C, Upgrade End INVALID_IMAGE) and the next session
# fetches it whole; random faults never make an exception leave Client.session().
from agent.zcl import client as C
from agent.activation import HORIZON
from agent.alerts import ALERT_VERIFY_FAIL
from agent.zcl import frames as zcl, server as zcl_server
from agent.store import state as S
from agent.errors import SECTOR_CHANGED
from agent.store.journal import Journal
from hal.sim.clock import FakeClock
from devkit import Rig, MAN, TYPE
from hubkit import Hub, TooLong
from tutil import eq, Image

V1 = Image("core_v1.ota")
V2 = Image("core_v2.ota")
V2Z = Image("core_v2z.ota")
V3 = Image("core_v3.ota")
T0 = 800000000
DAY = 86400


def _client(r, clk, link, **kw):
    r.board.clock = clk
    return C.Client(r.dev, link, clk, 48, **kw)


def _session(r, clk, hub, **kw):
    try:
        return C.OUTCOMES[_client(r, clk, hub, **kw).session()]
    except TooLong:
        raise AssertionError("the session did not end")


def _provisioned():
    r = Rig()
    r.provision()
    clk = FakeClock(T0)
    return r, clk, Hub(clk, V2, 2, limit_s=DAY)


def _wait_at(hub, first, last, cur, req, period=0):
    # block requests first..last (counted from 1) are answered WAIT_FOR_DATA
    def hook(h, f):
        if first <= h.blocks <= last:
            h.wait(f.seq, cur, req, period)
            return False
    hub.hook = hook


def test_wait_for_data_of_2_to_the_32_seconds_is_capped():
    r, clk, hub = _provisioned()
    _wait_at(hub, 5, 5, 0, 0xFFFFFFFF)
    t0 = clk.ticks_ms()
    eq(_session(r, clk, hub), "held", "outcome")
    gap = hub.times[5] - hub.times[4]  # from the WAIT_FOR_DATA answer to the next request
    assert 0 < gap <= 300 * 1000 + 100, gap  # at most the default stall timeout
    assert clk.ticks_ms() - t0 < 400 * 1000


def test_wait_for_data_cap_is_configurable():
    r, clk, hub = _provisioned()
    _wait_at(hub, 5, 5, T0, T0 + 100, 250)  # absolute: 100 s from now, 250 ms between blocks
    eq(_session(r, clk, hub, wait_cap_s=30), "held", "outcome")
    gap = hub.times[5] - hub.times[4]
    assert 30250 <= gap <= 30250 + 10, gap


def test_wait_for_data_again_and_again_ends_by_the_stall_timeout():
    r, clk, hub = _provisioned()
    _wait_at(hub, 100, 1 << 30, 0, 10)
    t0 = clk.ticks_ms()
    eq(_session(r, clk, hub, stall_s=120), "stalled", "outcome")
    waited = clk.ticks_ms() - hub.times[98]  # from the last block with data
    assert 120000 <= waited <= 121000, waited
    assert r.dev.st.next > 0, "the checkpoint is kept"
    # the device asks again in the next session and completes
    hub.hook = None
    eq(_session(r, clk, hub), "held", "next session")
    assert clk.ticks_ms() - t0 < DAY * 1000


def test_a_sector_that_changes_before_the_final_check_refuses_the_image():
    r, clk, hub = _provisioned()
    bad = r.layout.slot_off[1] + 100  # payload sector 0, written and checked long before

    def hook(h, f):
        if f.offset + f.max_size >= len(h.img) and h.hook is not None:
            r.flash.flip_bits(bad, 0x01)
            h.hook = None
    hub.hook = hook
    eq(_session(r, clk, hub), "rejected", "outcome")
    ends = hub.sent(zcl.CMD_UPGRADE_END)
    eq([e.status for e in ends], [zcl.S_INVALID_IMAGE], "upgrade end")
    alerts = [(a.alert_code, a.reason) for a in hub.sent(zcl.CMD_ALERT)]
    eq(alerts[-1], (ALERT_VERIFY_FAIL, SECTOR_CHANGED), "alert")
    eq(r.dev.st.phase, S.IDLE, "phase")
    # the next session fetches the image again, whole, and holds it
    eq(_session(r, clk, hub), "held", "next session")
    eq(r.dev.st.held_version, 2, "held")
    d = r.reboot()
    eq(d.st.phase, S.HELD, "phase after reset")


# -- random faults -----------------------------------------------------------------------

class Rand:
    """xorshift32: the same numbers under CPython and MicroPython."""

    def __init__(self, seed):
        self.x = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def u32(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x

    def below(self, n):
        return self.u32() % n

    def chance(self, per_mille):
        return self.below(1000) < per_mille

    def pick(self, seq):
        return seq[self.below(len(seq))]


class LinkDown(OSError):
    pass


class FaultyHub(Hub):
    """Hub whose every answer may be lost, repeated, damaged or replaced, with unsolicited
    commands (activation, Upgrade End Response, notify) and flash decay between them."""

    def __init__(self, clock, rnd, rig, img, ver):
        Hub.__init__(self, clock, img, ver, limit_s=30 * DAY)
        self.rnd = rnd
        self.rig = rig
        self.hook = FaultyHub._fault
        rate = rnd.pick((5, 20, 60))  # per mille: a quiet, a noisy, a hostile server
        self.rate = rate
        self.up = rnd.pick((zcl.UPGRADE_WAIT, 0, 0xFFFFFFFE, rnd.u32(), HORIZON + 1))
        self.cur = rnd.pick((0, None, rnd.u32()))

    def _time(self):
        rnd = self.rnd
        now = self.clock.now()
        return rnd.pick((0, now + rnd.below(100), now + HORIZON + 1 + rnd.below(1000),
                         0xFFFFFFFF, 0xFFFFFFFE, rnd.u32()))

    def _unsolicited(self):
        rnd = self.rnd
        d = self.rig.dev
        k = rnd.below(4)
        if k == 0:
            self.activate(d.st.mi_hash if rnd.chance(700) else bytes(32), self._time())
        elif k == 1:
            ver = rnd.pick((d.st.held_version, self.ver, 1, 0xFFFFFFFF))
            self.end_response(self.seq(), ver, rnd.pick((0, self.clock.now())), self._time(),
                              rnd.pick((MAN, 0xFFFF)), TYPE)
        elif k == 2:
            self.q.append(bytes((0x19, self.seq(), zcl.CMD_IMAGE_NOTIFY, 0, 10)))
        else:
            self.q.append(bytes(rnd.below(8)))  # garbage

    def _fault(self, f):
        rnd = self.rnd
        r = self.rate
        if rnd.chance(r):
            self._unsolicited()
        if rnd.chance(r // 5):  # flash decay in the slot being written (or held)
            off = self.rig.layout.slot_off[1] + rnd.below(16 * 1024)
            self.rig.flash.flip_bits(off, 1 << rnd.below(8))
        if rnd.chance(r // 10):
            raise LinkDown(5, "link down")
        if rnd.chance(r):
            return False  # lost
        if rnd.chance(r):
            self.wait(f.seq, rnd.pick((0, self.clock.now(), rnd.u32())), self._time(),
                      rnd.below(0x10000))
            return False
        if rnd.chance(r // 10):
            self.put(zcl_server.encode_block_status, f.seq,
                     rnd.pick((zcl.S_ABORT, zcl.S_NO_IMAGE_AVAILABLE, 0x80)))
            return False
        if rnd.chance(r):
            data = bytearray(self.img[f.offset:f.offset + f.max_size])
            if data:
                data[rnd.below(len(data))] ^= 1 << rnd.below(8)
            self.block(f, data)
            return False
        if rnd.chance(r):
            self.block(f)  # answered twice
        return None


def _check_journal(r):
    raw = Journal(r.board.journal_area, S.STATE_SIZE).load()
    assert raw is not None, "journal empty"
    st = S.State().unpack(raw)
    assert st.phase in (S.IDLE, S.DOWNLOADING, S.HELD, S.ACTIVATING), st.phase


def _random_run(seed, sessions):
    rnd = Rand(seed)
    r = Rig()
    r.provision()
    clk = FakeClock(T0)
    for i in range(sessions):
        img, ver = rnd.pick(((V2, 2), (V2Z, 2), (V3, 3), (V1, 1)))
        hub = FaultyHub(clk, rnd, r, img, ver)
        cl = _client(r, clk, hub, stall_s=rnd.pick((30, 300)), wait_cap_s=rnd.pick((5, 600)))
        try:
            out = cl.session()
            cl.idle(rnd.below(5000))
        except TooLong:
            raise AssertionError("seed %d session %d did not end" % (seed, i))
        assert 0 <= out < len(C.OUTCOMES), (seed, i, out)
        _check_journal(r)
        if r.dev.reset_needed or rnd.chance(200):
            d = r.reboot()
            if d.trial:
                d.confirm() if rnd.chance(500) else d.revert()
                r.reboot()
    return r


def test_random_faults_never_escape_a_session():
    import sys
    n = 10 if sys.implementation.name == "micropython" else 30
    for seed in range(1, n + 1):
        _random_run(seed, 5)
