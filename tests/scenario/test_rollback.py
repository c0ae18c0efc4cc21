# Anti-rollback without the journal: the floor is at least the signed sequence number of the
# image in the confirmed slot, read from its meta area; fallback never goes below it, and
# with nothing acceptable to fall back to the device stays on what it runs and says so.
from agent.activation import ACT_SUCCESS
from agent.alerts import ALERT_BOOT_VERIFY_FAIL
from agent.store import state as S
from agent.errors import ROLLBACK, NO_FALLBACK, PAYLOAD_DIGEST, PAYLOAD_CRC
from devkit import Rig, refuse
from tutil import eq, Image

V1 = Image("core_v1.ota")    # seq 1
V2 = Image("core_v2.ota")    # seq 2
OLD = Image("core_old.ota")  # seq 0


def _on_v2():
    """A device that ran v1 (slot 0), then took, activated and confirmed v2 (slot 1)."""
    r = Rig()
    r.provision()
    r.download(V2)
    eq(r.dev.schedule(0), ACT_SUCCESS, "activation")
    r.reboot().confirm()
    d = r.reboot()
    eq((r.running(), d.st.seq), (1, 2), "running slot, seq")
    return r


def _lose_journal(r):
    r.flash.erase(r.layout.journal_off, r.layout.journal_size)


def _refused(r, img, reason):
    refuse(r.dev, img, reason)
    eq(r.dev.st.phase, S.IDLE, "nothing held")


def test_floor_survives_the_loss_of_the_journal():
    r = _on_v2()
    _lose_journal(r)
    d = r.reboot()
    eq(d.journal.seq > 0, True, "the floor was written back")
    eq(d.st.seq, 2, "seq from the running image's signed manifest")
    eq(d.policy().seq, 2, "floor")
    _refused(r, V1, ROLLBACK)   # seq 1 below the running seq 2
    _refused(r, OLD, ROLLBACK)  # seq 0
    d = r.reboot()
    eq((r.running(), d.st.run_version), (1, 2), "still on v2")


def test_floor_read_from_flash_even_before_it_is_saved():
    r = _on_v2()
    _lose_journal(r)
    d = r.reboot()
    d.st.seq = 0  # as a device whose journal cannot be written
    eq(d.policy().seq, 2, "floor from the confirmed slot's meta area")


def test_fallback_refuses_an_image_below_the_floor():
    r = _on_v2()
    # the running image (seq 2) is damaged; slot 0 holds v1 (seq 1), signed and intact
    r.flash.erase(r.layout.slot_off[1] + 4096, 4096)
    n = len(r.alerts.got)
    d = r.reboot()
    got = r.alerts.got[n:]
    eq(got[0][:2], (ALERT_BOOT_VERIFY_FAIL, PAYLOAD_CRC), "the damage is reported")
    eq(got[-1][:2], (ALERT_BOOT_VERIFY_FAIL, NO_FALLBACK), "no fallback, said so")
    assert not d.reset_needed, "no fallback below the floor"
    eq(d.stuck, PAYLOAD_CRC, "the device knows it runs a damaged image")
    for _ in range(3):  # and it stays so: the confirmed slot is never changed to v1
        d = r.reboot()
        eq(r.running(), 1, "still on the damaged v2, not v1")
        eq(r.board.boot.confirmed(), 1, "confirmed slot")
        eq(d.st.seq, 2, "seq")


def test_fallback_obeys_the_floor_without_the_journal():
    r = _on_v2()
    _lose_journal(r)
    r.flash.erase(r.layout.slot_off[1] + 4096, 4096)
    d = r.reboot()
    assert not d.reset_needed, "no fallback to seq 1"
    eq(r.alerts.got[-1][:2], (ALERT_BOOT_VERIFY_FAIL, NO_FALLBACK), "said so")
    d = r.reboot()
    eq(r.running(), 1, "still slot 1")


def test_tampered_running_image_does_not_fall_back_below_the_floor():
    r = _on_v2()
    r.flash.flip_bits(r.layout.slot_off[1] + 100, 0x01)
    d = r.reboot()
    codes = [a[:2] for a in r.alerts.got[-2:]]
    assert codes[0][1] in (PAYLOAD_CRC, PAYLOAD_DIGEST), codes
    eq(codes[1], (ALERT_BOOT_VERIFY_FAIL, NO_FALLBACK), "said so")
    assert not d.reset_needed


def test_fallback_at_the_floor_still_works():
    # the other slot's image has the running image's seq: the fallback is taken
    r = _on_v2()
    r.download(Image("core_v2z.ota"))  # seq 2, into slot 0
    eq(r.dev.schedule(0), ACT_SUCCESS, "activation")
    r.reboot().confirm()
    d = r.reboot()
    eq(r.running(), 0, "on v2 (deflate) in slot 0")
    r.flash.erase(r.layout.slot_off[0] + 4096, 4096)
    d = r.reboot()
    assert d.reset_needed, "falls back"
    d = r.reboot()
    eq((r.running(), d.st.run_version, d.stuck), (1, 2, 0), "on the other v2")
