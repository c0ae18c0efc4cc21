# Faults: bad journal, bad slots, failing flash. Each is detected and reported, and the
# device keeps booting its confirmed image.
from agent.activation import ACT_FAILURE, ACT_NO_IMAGE, ACT_SUCCESS
from agent.alerts import ALERT_BOOT_VERIFY_FAIL, ALERT_VERIFY_FAIL
from agent.store import state as S
from agent.store import check as verify
from agent.errors import OtaError, FLASH_IO, SLOT_EMPTY, PAYLOAD_CRC, BAD_SIGNATURE, \
    NO_FALLBACK
from devkit import Rig
from tutil import raises, eq, Image, same_as_file
import tutil

V2 = Image("core_v2.ota")


def _journal_garbage(r, seed):
    lay = r.layout
    junk = tutil.noise(lay.journal_size, seed)
    r.flash.erase(lay.journal_off, lay.journal_size)
    r.flash.write(lay.journal_off, junk)


def test_journal_full_of_garbage():
    r = Rig()
    r.provision()
    _journal_garbage(r, 7)
    d = r.reboot()
    eq(r.running(), 0, "confirmed image boots")
    eq(d.st.phase, S.IDLE, "fresh state")
    eq(d.journal.bad > 0, True, "garbage noticed")
    # and the device can still be updated
    r.download(V2)
    eq(d.schedule(0), ACT_SUCCESS, "activation")
    r.reboot().confirm()


def test_torn_newest_journal_record_uses_older():
    r = Rig()
    r.provision()
    r.download(V2, limit=120)
    seq = r.dev.journal.seq
    nxt = r.dev.st.next
    # damage the newest record: the previous checkpoint is used
    j = r.dev.journal
    rs = j.record_size
    off = r.layout.journal_off + j._sector * r.layout.sector_size + (j._slot - 1) * rs
    r.flash.flip_bits(off + rs // 2, 0x10)
    d = r.reboot()
    eq(d.journal.seq, seq - 1, "older record")
    eq(d.st.phase, S.DOWNLOADING, "still downloading")
    assert d.st.next in (nxt - 1, nxt), "previous checkpoint"
    r.download(V2)
    eq(d.st.phase, S.HELD, "completed")


def test_journal_from_a_different_image():
    r = Rig()
    r.provision()
    r.download(Image("core_v2z.ota"), limit=150)  # part of another image
    eq(r.dev.st.phase, S.DOWNLOADING, "phase")
    d = r.reboot()
    r.download(V2)  # a different image: its identity differs, so it starts afresh
    eq(d.st.phase, S.HELD, "held")
    eq(d.schedule(0), ACT_SUCCESS, "activation")
    r.reboot().confirm()
    same_as_file("core_v2.bin", r.board.slots[1].area.read, "installed bytes")


def test_slot_never_written():
    r = Rig()
    r.provision()
    raises(SLOT_EMPTY, verify.check, r.board.slots[1])
    eq(r.dev.activate(bytes(32)), ACT_NO_IMAGE, "nothing to activate")


def test_running_slot_erased_halfway_falls_back():
    r = Rig()
    r.provision()
    for img, slot in ((V2, 1), (Image("core_v2z.ota"), 0)):  # both seq 2
        d = r.dev
        r.download(img)
        d.schedule(0)
        r.reboot().confirm()
        d = r.reboot()
        eq(r.running(), slot, "updated")
    # slot 0 erased halfway (sector 2 of 6): slot 1 still holds v2, signed, intact, and at
    # the rollback floor (seq 2)
    r.flash.erase(r.layout.slot_off[0] + 2 * 4096, 4096)
    codes_before = len(r.alerts.got)
    d = r.reboot()
    assert d.reset_needed, "fall back needs a reset"
    got = r.alerts.got[codes_before:]
    eq(got[0][0], ALERT_BOOT_VERIFY_FAIL, "alert")
    eq(got[0][1], PAYLOAD_CRC, "reason")
    d = r.reboot()
    eq(r.running(), 1, "fell back to the other valid image")
    eq(d.st.run_version, 2, "version")


def test_running_slot_bad_and_no_alternative_keeps_running():
    r = Rig()
    r.provision()
    r.flash.erase(r.layout.slot_off[0] + r.layout.slot_size - r.layout.meta_size, 4096)
    d = r.reboot()
    eq(r.alerts.got[-2][:2], (ALERT_BOOT_VERIFY_FAIL, SLOT_EMPTY), "alert")
    eq(r.alerts.got[-1][:2], (ALERT_BOOT_VERIFY_FAIL, NO_FALLBACK), "nothing to fall to")
    assert not d.reset_needed


def test_flash_fails_a_write():
    r = Rig()
    r.provision()
    d = r.dev
    off = d.begin()
    fed = 0
    try:
        while True:
            if fed == 200:
                r.flash.fail_writes(1)
            off = d.feed(off, V2[off:off + 48])
            fed += 1
    except OtaError as e:
        eq(e.reason, FLASH_IO, "reason")
    eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, FLASH_IO), "alert")
    d = r.reboot()
    eq(r.running(), 0, "confirmed image boots")
    r.download(V2)  # and an update works afterwards
    eq(d.st.phase, S.HELD, "held")


def test_activation_when_held_slot_rots():
    r = Rig()
    r.provision()
    d = r.dev
    r.download(V2)
    r.flash.flip_bits(r.layout.slot_off[1] + 5000, 0x04)
    eq(d.activate(d.st.mi_hash), ACT_FAILURE, "refused")
    eq(r.alerts.got[-1][0], ALERT_VERIFY_FAIL, "alert")
    d = r.reboot()
    eq(r.running(), 0, "confirmed image boots")


def test_health_check_decides():
    for healthy, slot in ((True, 1), (False, 0)):
        r = Rig()
        r.provision()
        r.download(V2)
        r.dev.schedule(0)
        r.cfg.health = lambda: healthy
        d = r.reboot()
        d.run_health()
        if d.reset_needed:
            d = r.reboot()
        eq(r.running(), slot, "slot after health %s" % healthy)
        r.cfg.health = None


def test_full_check_of_running_slot_on_demand():
    r = Rig()
    r.provision()
    info = r.dev.check_running(True)
    eq(info.manifest.version, 1, "version")
    assert info.mi_hash is not None
    # a signature that no longer verifies is caught only by the full check
    meta = r.layout.slot_off[0] + r.layout.slot_size - r.layout.meta_size
    b = bytearray(12)
    r.flash.read(meta, b)
    cose_len = b[6] | b[7] << 8
    r.flash.flip_bits(meta + 85 + cose_len - 20, 0x01)
    eq(r.dev.check_running(False).manifest.version, 1, "fast check passes")
    raises(BAD_SIGNATURE, r.dev.check_running, True)
