# The device core: download, verify from flash, activation, trial boot, confirm, revert.
from agent.image import fmt
from agent.store import state as S
from agent.errors import OtaError, WRONG_HARDWARE, WRONG_MANUFACTURER, ROLLBACK, \
    UNKNOWN_KEY, NOT_IN_TRIAL, NO_IMAGE, SUPPLIER_SIG_REQUIRED, BUSY, REVERTED_IMAGE
from devkit import Rig
from tutil import read_data, raises, eq, Image, same_as_file

V1 = Image("core_v1.ota")
V2 = Image("core_v2.ota")


def _updated(rig, img=V2, block=48):
    rig.download(img, block)
    d = rig.dev
    eq(d.st.phase, S.HELD, "phase")
    eq(d.schedule(0), fmt.ACT_SUCCESS, "outcome")
    rig.reboot()
    return rig.dev


def test_factory_provision():
    r = Rig()
    eq(r.alerts.codes(), [], "a blank device reports nothing")
    d = r.provision()
    eq(r.running(), 0, "slot")
    eq(d.st.run_version, 1, "version")
    eq(d.st.seq, 1, "seq")
    raises(BUSY, d.provision, None, 0)  # never over a valid running image


def test_update_activate_confirm():
    r = Rig()
    r.provision()
    d = _updated(r)
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
    assert fmt.ALERT_VERIFY_OK in codes and codes[-1] == fmt.ALERT_VERSION_CHANGED
    # and the running image is exactly the firmware signed
    same_as_file("core_v2.bin", r.board.slots[1].area.read, "installed bytes")


def test_deflate_update_installs_same_bytes():
    r = Rig()
    r.provision()
    d = _updated(r, Image("core_v2z.ota"), 63)
    d.confirm()
    same_as_file("core_v2.bin", r.board.slots[1].area.read, "installed bytes")


def test_mi_hash_same_for_raw_and_deflate_paths():
    # the hash the device reports is SHA-256 over the Manufacturer Image bytes of the file
    for name in ("core_v2.ota", "core_v2z.ota"):
        r = Rig()
        r.provision()
        img = Image(name)
        r.download(img, 50)
        hl = fmt.parse_header(img[:256]).length
        eq(r.dev.st.mi_hash, img.sha256(hl), name)


def test_revert_on_unhealthy_trial():
    r = Rig()
    r.provision()
    d = _updated(r)
    d.revert()
    assert d.reset_needed
    d = r.reboot()
    eq(r.running(), 0, "back on the old slot")
    eq(d.st.seq, 1, "seq unchanged")
    eq(d.st.run_version, 1, "version")
    assert r.alerts.codes()[-1] == fmt.ALERT_BOOT_VERIFY_FAIL
    raises(NOT_IN_TRIAL, d.confirm)


def test_trials_exhausted_reverts():
    r = Rig(trials=2)
    r.provision()
    _updated(r)          # trial boot 1
    r.reboot()           # trial boot 2, never confirmed
    d = r.reboot()       # the bootloader gives up
    eq(r.running(), 0, "reverted")
    assert not d.trial
    eq(d.st.phase, S.IDLE, "phase")
    assert r.alerts.got[-1][0] == fmt.ALERT_BOOT_VERIFY_FAIL
    # the image that failed its trials is refused from its manifest; another one is taken
    _rejected_before_payload("core_v2.ota", REVERTED_IMAGE, r)
    d = _updated(r, Image("core_v3.ota"))
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
    eq(d.tick(), fmt.ACT_SUCCESS, "actioned")
    assert fmt.ALERT_FUTURE_ACTIONED in r.alerts.codes()
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
    eq(d.tick(), fmt.ACT_FAILURE, "outcome")
    codes = r.alerts.codes()
    assert fmt.ALERT_FUTURE_NOT_ACTIONED in codes and fmt.ALERT_VERIFY_FAIL in codes
    d = r.reboot()
    eq(r.running(), 0, "still on the confirmed image")


def test_activation_command_outcomes():
    r = Rig()
    r.provision()
    d = r.dev
    eq(d.activate(bytes(32)), fmt.ACT_NO_IMAGE, "no image")
    raises(NO_IMAGE, d.schedule, 0)
    r.download(V2)
    eq(d.schedule(S.WAIT_COMMAND), None, "waits for the command")
    eq(d.activate(b"\x01" * 32), fmt.ACT_HASH_MISMATCH, "wrong hash")
    eq(d.activate(d.st.mi_hash), fmt.ACT_SUCCESS, "right hash")
    assert r.reboot().trial


def _rejected_before_payload(name, reason, rig=None):
    r = rig or Rig()
    if rig is None:
        r.provision()
    slot = r.running()
    img = Image(name)
    d = r.dev
    off = d.begin()
    top = 0
    try:
        while True:
            off = d.feed(off, img[off:off + 48])
            top = max(top, off)
    except OtaError as e:
        eq(e.reason, reason, name)
    hl = fmt.parse_header(img[:256]).length
    cose_len = img[hl + 2] | img[hl + 3] << 8
    assert top <= hl + 6 + cose_len, "fetched past the manifest"
    eq(r.alerts.got[-1][:2], (fmt.ALERT_VERIFY_FAIL, reason), "alert")
    d = r.reboot()
    eq(r.running(), slot, "running image kept")
    eq(d.st.phase, S.IDLE, "phase")
    return r


def test_rejections_before_payload():
    _rejected_before_payload("core_other_hw.ota", WRONG_HARDWARE)
    _rejected_before_payload("core_other_man.ota", WRONG_MANUFACTURER)
    _rejected_before_payload("img_other_key.ota", UNKNOWN_KEY)


def test_rollback_rejected_after_confirm():
    r = Rig()
    r.provision()
    _updated(r).confirm()
    r.reboot()
    _rejected_before_payload("core_old.ota", ROLLBACK, r)
    eq(r.running(), 1, "still running v2")
    eq(r.dev.st.seq, 2, "seq")


def test_resume_after_reboot():
    for name in ("core_v2.ota", "core_v2z.ota"):
        r = Rig()
        r.provision()
        img = Image(name)
        r.download(img, 48, limit=200)
        done = r.dev.st.next
        assert done > 0, "some sectors written"
        erases = r.flash.erases
        d = r.reboot()
        eq(d.st.phase, S.DOWNLOADING, "phase")
        off = d.begin()
        seen = []
        while not d.done():
            nxt = d.feed(off, img[off:off + 48])
            if nxt != off + 48 and nxt < len(img):
                seen.append(nxt)
            off = nxt
        assert seen, "the device jumped to its checkpoint"
        if name == "core_v2.ota":
            p_off = len(img) - len(Image("core_v2.bin"))
            assert seen[0] == p_off + done * 4096, (seen, done)
        # sectors already written were not erased again
        extra = r.flash.erases - erases
        sectors = (len(Image("core_v2.bin")) + 4095) // 4096
        assert extra <= sectors - done + 2, (extra, sectors, done)


def test_corrupt_block_refetches_only_its_sector():
    r = Rig()
    r.provision()
    d = r.dev
    off = d.begin()
    hit = False
    fetched = 0
    while not d.done():
        blk = bytearray(V2[off:off + 48])
        if not hit and off > 9000:
            blk[5] ^= 0xFF  # corrupted in transit
            hit = True
        fetched += len(blk)
        off = d.feed(off, blk)
    assert fetched < len(V2) + 4096 + 48, "only one sector again"
    eq(d.st.phase, S.HELD, "held")


def test_supplier_signature_required():
    sup = read_data("supplier_pub.bin")
    r = Rig(supplier_key=sup[1:], keys=("dev_pub.bin",))
    # a device without an image accepts a factory image only with a valid trailer
    first = r.layout.slot_off[0] // r.layout.sector_size
    raises(SUPPLIER_SIG_REQUIRED, r.provision, "img_raw.ota")
    eq(sum(r.flash.sector_erases[first:]), 0, "rejected before anything was written")
    r.provision("img_supplier.ota")
    eq(r.dev.st.run_version, 2, "version")
