# agent.activation. The device: activation now, at a time or on a command naming the
# image, the trial boot and its confirm or revert, the bootloader giving up on a trial.
# Against a network peer: an Activate Image or an Upgrade End Response acts only on the held
# image it names and never during a download; a slot pending boot is never written;
# activation times beyond the horizon are refused with an alert; long waits are measured
# with the clock, not with ticks that wrap.
from agent.zcl import client as C
from agent.activation import ACT_FAILURE, ACT_HASH_MISMATCH, ACT_NO_IMAGE, ACT_SUCCESS, \
    HORIZON
from agent.alerts import ALERT_FUTURE_NOT_ACTIONED, ALERT_FUTURE_ACTIONED, ALERT_VERIFY_OK, \
    ALERT_VERIFY_FAIL, ALERT_VERSION_CHANGED, ALERT_BOOT_VERIFY_FAIL
from agent.zcl import frames as zcl
from agent.store import state as S
from agent.errors import TIME_RANGE, NOT_IN_TRIAL, NO_IMAGE, REVERTED_IMAGE, ACTIVATION_FAILED
from hal.sim.clock import FakeClock
from devkit import Rig, MAN, TYPE, updated, rejected
from hubkit import Hub, TooLong
from tutil import eq, raises, Image, same_as_file

V2 = Image("core_v2.ota")
V3 = Image("core_v3.ota")
T0 = 800000000  # device time at the start, seconds since 2000
DAY = 86400
_snap = []      # flash of a device running v1 and holding v2, made once


# -- the device ------------------------------------------------------------------------

def test_update_activate_confirm():
    r = Rig()
    r.provision()
    d = updated(r, V2)
    assert d.trial
    eq(r.running(), 1, "trial slot")
    eq(d.st.seq, 1, "seq not raised before confirm")
    d.confirm()
    eq(d.st.seq, 2, "seq raised on confirm")
    d = r.reboot()
    assert not d.trial
    eq(r.running(), 1, "confirmed slot")
    eq(d.st.run_version, 2, "version")
    codes = r.alerts.codes()
    assert ALERT_VERIFY_OK in codes and codes[-1] == ALERT_VERSION_CHANGED
    # and the running image is exactly the firmware signed
    same_as_file("core_v2.bin", r.board.slots[1].area.read, "installed bytes")


def test_revert_on_unhealthy_trial():
    r = Rig()
    r.provision()
    d = updated(r, V2)
    d.revert()
    assert d.reset_needed
    d = r.reboot()
    eq(r.running(), 0, "back on the old slot")
    eq(d.st.seq, 1, "seq unchanged")
    eq(d.st.run_version, 1, "version")
    eq(r.alerts.got[-1][:2], (ALERT_BOOT_VERIFY_FAIL, ACTIVATION_FAILED), "alert")
    raises(NOT_IN_TRIAL, d.confirm)
    raises(NOT_IN_TRIAL, d.revert)


def test_health_check_decides_the_trial():
    for healthy in (True, False):
        r = Rig()
        r.provision()
        d = updated(r, V2)
        eq(d.run_health(), None, "no health check configured")
        d.cfg.health = lambda: healthy
        eq(d.run_health(), healthy, "health")
        d = r.reboot()
        eq(r.running(), 1 if healthy else 0, "running slot")
        eq(d.run_health(), None, "not on trial")


def test_trials_exhausted_reverts():
    r = Rig(trials=2)
    r.provision()
    updated(r, V2)       # trial boot 1
    r.reboot()           # trial boot 2, never confirmed
    d = r.reboot()       # the bootloader gives up
    eq(r.running(), 0, "reverted")
    assert not d.trial
    eq(d.st.phase, S.IDLE, "phase")
    assert r.alerts.got[-1][0] == ALERT_BOOT_VERIFY_FAIL
    # the image that failed its trials is refused from its manifest; another one is taken
    rejected(r, V2, REVERTED_IMAGE)
    d = updated(r, V3)
    d.confirm()
    eq(r.reboot().st.run_version, 3, "version")


def test_scheduled_activation_future():
    r = Rig()
    r.provision()
    r.download(V2)
    d = r.dev
    now = r.board.clock.now()
    eq(d.schedule(now + 3600), None, "not yet")
    r.board.clock.advance(3599)
    eq(d.tick(), None, "not yet")
    # the schedule survives a reboot
    d = r.reboot()
    r.board.clock.advance(3600)
    eq(d.tick(), ACT_SUCCESS, "actioned")
    assert ALERT_FUTURE_ACTIONED in r.alerts.codes()
    d = r.reboot()
    assert d.trial


def test_scheduled_activation_not_actioned_when_image_damaged():
    r = Rig()
    r.provision()
    r.download(V2)
    d = r.dev
    d.schedule(r.board.clock.now() + 10)
    r.flash.flip_bits(r.layout.slot_off[1] + 100, 0x01)  # flash decays while it waits
    r.board.clock.advance(20)
    eq(d.tick(), ACT_FAILURE, "outcome")
    codes = r.alerts.codes()
    assert ALERT_FUTURE_NOT_ACTIONED in codes and ALERT_VERIFY_FAIL in codes
    d = r.reboot()
    eq(r.running(), 0, "still on the confirmed image")


def test_activation_command_outcomes():
    r = Rig()
    r.provision()
    d = r.dev
    eq(d.activate(bytes(32)), ACT_NO_IMAGE, "no image")
    raises(NO_IMAGE, d.schedule, 0)
    r.download(V2)
    eq(d.schedule(S.WAIT_COMMAND), None, "waits for the command")
    eq(d.activate(b"\x01" * 32), ACT_HASH_MISMATCH, "wrong hash")
    eq(d.activate(d.st.mi_hash), ACT_SUCCESS, "right hash")
    assert r.reboot().trial


def test_schedule_refuses_times_out_of_range():
    r = _held_v2()
    d = r.dev
    now = r.board.clock.now()
    for when in (-1, now + HORIZON + 1, S.WAIT_COMMAND - 1):
        raises(TIME_RANGE, d.schedule, when)
    eq(d.st.act_time, S.WAIT_COMMAND, "nothing scheduled")
    eq(d.schedule(now + HORIZON), None, "the horizon itself")
    eq(d.st.act_time, now + HORIZON, "scheduled")


# -- the server ------------------------------------------------------------------------

def _client(r, clk, link, **kw):
    r.board.clock = clk
    return C.Client(r.dev, link, clk, 48, **kw)


def _held_v2():
    """A device running v1 that holds v2, verified, waiting for an Activate Image."""
    r = Rig()
    if _snap:
        r.flash.restore(_snap[0])
        r.reboot()
    else:
        r.provision()
        clk = FakeClock(T0)
        eq(C.OUTCOMES[_client(r, clk, Hub(clk, V2, 2)).session()], "held", "v2 session")
        _snap.append(r.flash.snapshot())
    eq(r.dev.st.phase, S.HELD, "phase")
    eq(r.dev.st.held_version, 2, "held")
    eq(r.dev.st.act_time, S.WAIT_COMMAND, "waits for a command")
    return r


def _v3_with(r, inject):
    """A session that offers v3 to the device holding v2; inject(hub, v2 hash) runs at the
    first block request, before its answer."""
    clk = FakeClock(T0)
    hub = Hub(clk, V3, 3)
    v2 = r.dev.st.mi_hash

    def hook(h, f):
        if h.blocks == 1:
            inject(h, v2)
    hub.hook = hook
    out = _client(r, clk, hub).session()
    return clk, hub, out, v2


def _only_v3_named(r, clk, hub, out):
    # nothing named v3: it is held, no slot is pending, and after a reset v1 still runs
    eq(C.OUTCOMES[out], "held", "outcome")
    eq(r.dev.st.held_version, 3, "held")
    eq(r.board.boot.pending(), None, "pending slot")
    d = r.reboot()
    assert not d.trial, "v3 booted though nothing named it"
    eq(r.running(), 0, "running slot")
    eq(d.st.phase, S.HELD, "phase")
    return d


def test_activate_image_for_the_held_image_during_a_download_is_refused():
    r = _held_v2()
    clk, hub, out, v2 = _v3_with(r, lambda h, v2: h.activate(v2, 0))
    rsp = hub.sent(zcl.CMD_ACTIVATE_RSP)
    eq(len(rsp), 1, "activate responses")
    eq(rsp[0].outcome, ACT_FAILURE, "outcome during the download")
    d = _only_v3_named(r, clk, hub, out)
    r.board.clock = clk
    eq(d.activate(v2), ACT_HASH_MISMATCH, "v2's hash names nothing now")
    eq(d.activate(d.st.mi_hash), ACT_SUCCESS, "v3's hash")
    d = r.reboot()
    assert d.trial
    eq(d.st.held_version, 3, "on trial")


def test_upgrade_end_response_during_a_download_does_nothing():
    r = _held_v2()
    clk, hub, out, v2 = _v3_with(r, lambda h, v2: h.end_response(h.seq(), 2, 0, 0))
    _only_v3_named(r, clk, hub, out)


def test_a_download_never_writes_a_slot_pending_boot():
    r = _held_v2()
    r.board.boot.set_pending(1, 3)  # behind the journal's back (lost, or a foreign tool)
    clk, hub, out, v2 = _v3_with(r, lambda h, v2: None)
    _only_v3_named(r, clk, hub, out)


def test_upgrade_end_response_acts_only_on_the_held_image():
    r = _held_v2()
    clk = FakeClock(T0)
    hub = Hub(clk, V2, 2)
    cl = _client(r, clk, hub)
    d = r.dev
    for man, itype, ver in ((MAN, TYPE, 1),                          # late, older image
                            (MAN, TYPE, 3),                          # another image
                            (0xFFFF, 0xFFFF, 0xFFFFFFFF),            # wildcards
                            (MAN + 1, TYPE, 2), (MAN, TYPE + 1, 2)):  # other products
        hub.end_response(hub.seq(), ver, 0, 0, man, itype)
        eq(cl.idle(1000), False, "activation by 0x%X" % ver)
        eq(d.st.act_time, S.WAIT_COMMAND, "act_time")
        eq(d.st.phase, S.HELD, "phase")
    hub.end_response(hub.seq(), 2, 0, 0)  # the held image: now
    eq(cl.idle(1000), True, "activation of the held image")
    assert r.reboot().trial


def test_activation_times_beyond_the_horizon_are_refused():
    r = _held_v2()
    clk = FakeClock(T0)
    d = r.dev
    # Upgrade End Response answering ours: upgrade time 0xFFFFFFFE, current time 0
    hub = Hub(clk, V2, 2, up=0xFFFFFFFE, cur=0)
    cl = _client(r, clk, hub)
    eq(C.OUTCOMES[cl.session()], "held", "outcome")
    # an Activate Image naming v2 too far ahead, and at 0xFFFFFFFF
    hub.activate(d.st.mi_hash, T0 + HORIZON + 2)
    hub.activate(d.st.mi_hash, 0xFFFFFFFF)
    hub.end_response(hub.seq(), 2, T0, T0 + HORIZON + 1)  # absolute, a second too far
    cl.idle(1000)
    outs = [f.outcome for f in hub.sent(zcl.CMD_ACTIVATE_RSP)]
    eq(outs, [ACT_FAILURE, ACT_FAILURE], "activate responses")
    refused = [(a.alert_code, a.reason) for a in hub.sent(zcl.CMD_ALERT)
               if a.alert_code == ALERT_FUTURE_NOT_ACTIONED]
    eq(refused, [(ALERT_FUTURE_NOT_ACTIONED, TIME_RANGE)] * 4, "alerts")
    eq(d.st.act_time, S.WAIT_COMMAND, "nothing scheduled")
    # the journal still saves and loads; nothing activates, however long the device waits
    d = r.reboot()
    r.board.clock = clk
    eq(d.st.act_time, S.WAIT_COMMAND, "act_time after reset")
    clk.advance(400 * DAY)
    eq(d.tick(), None, "tick")
    d = r.reboot()
    assert not d.trial
    # at the horizon exactly, the schedule holds and runs when its time comes
    r.board.clock = clk
    cl = _client(r, clk, hub)
    now = clk.now()
    hub.end_response(hub.seq(), 2, 0, HORIZON)
    eq(cl.idle(1000), False, "not yet")
    eq(d.st.act_time, now + HORIZON, "scheduled")
    clk.advance(HORIZON)
    eq(d.tick(), ACT_SUCCESS, "actioned")
    assert r.reboot().trial


def test_an_activation_time_that_would_not_fit_its_field_is_refused():
    # a device clock near the end of the u32 range: now + a delay within the horizon
    r = _held_v2()
    clk = FakeClock(0xFFFFFFFF - 100)
    hub = Hub(clk, V2, 2)
    cl = _client(r, clk, hub)
    hub.end_response(hub.seq(), 2, 0, 1000)
    hub.activate(r.dev.st.mi_hash, 0xFFFFFFFF)  # 99 s ahead, but no time: refused
    eq(cl.idle(1000), False, "activated")
    eq([f.outcome for f in hub.sent(zcl.CMD_ACTIVATE_RSP)], [ACT_FAILURE], "outcome")
    eq(len([a for a in hub.sent(zcl.CMD_ALERT) if a.reason == TIME_RANGE]), 2, "alerts")
    eq(r.dev.st.act_time, S.WAIT_COMMAND, "nothing scheduled")
    eq(r.reboot().st.act_time, S.WAIT_COMMAND, "journal")


class WrapClock(FakeClock):
    """ticks_ms as on a 32-bit port: 30 bits, so a difference spans about 6 days."""

    def ticks_ms(self):
        return self.t_ms & 0x3FFFFFFF

    def ticks_diff(self, a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


def test_a_wait_of_days_is_measured_with_the_clock():
    r = Rig()
    clk = WrapClock(T0)
    hub = Hub(clk, V2, 2, limit_s=30 * DAY)
    cl = _client(r, clk, hub)
    for days in (1, 7, 13):
        t0 = clk.t_ms
        try:
            cl.idle(days * DAY * 1000)
        except TooLong:
            raise AssertionError("a wait of %d days did not end" % days)
        waited = clk.t_ms - t0
        assert days * DAY * 1000 <= waited <= days * DAY * 1000 + 3600000, (days, waited)
        hub.limit += days * DAY
