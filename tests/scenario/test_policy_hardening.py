# What a network peer can offer and what the device refuses, and at what cost: refusals
# before a signature verified write nothing to flash; layouts that would erase the meta
# area, images for another device and high-s signatures are refused from the manifest; an
# image that failed its trial is not taken again.
from agent.image import fmt
from agent.activation import ACT_SUCCESS
from agent.alerts import ALERT_VERIFY_FAIL
from agent.store import state as S
from agent.alerts import QUIET_S
from agent.errors import OtaError, UNKNOWN_KEY, BAD_SIGNATURE, WRONG_DESTINATION, HIGH_S, \
    LAYOUT_NO_FIT, REVERTED_IMAGE
from devkit import Rig, refuse
from tutil import eq, Image

KEYS = ("core_pub.bin", "core_other_pub.bin", "hard_pub.bin")
IEEE = bytes((0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88))  # gen_hardening.HARD_IEEE


def _rig(**kw):
    r = Rig(keys=KEYS, **kw)
    r.provision()
    return r


def _refuse(r, img, reason):
    refuse(r.dev, img, reason)


def _header_only(img):
    """The OTA header and manifest of img: what a rogue node sends before being refused."""
    hl = fmt.parse_header(img[:256]).length
    return bytes(img[:hl + 6 + (img[hl + 2] | img[hl + 3] << 8)])


def _bad_sig(img):
    b = bytearray(img)
    b[40] ^= 0x01  # the header string: covered by the signature
    return bytes(b)


# -- 5: refusals before the signature do not wear the journal --------------------------------

def test_rejected_headers_write_nothing():
    r = _rig()
    d = r.dev
    foreign = _header_only(Image("img_other_key.ota"))
    forged = _bad_sig(_header_only(Image("core_v2.ota")))  # the flip is in the header
    records, erases, writes = d.journal.records, r.flash.erases, r.flash.writes
    n = len(r.alerts.got)
    for i in range(1000):
        _refuse(r, forged if i & 1 else foreign, BAD_SIGNATURE if i & 1 else UNKNOWN_KEY)
    eq(d.journal.records - records, 0, "journal writes per 1000 rejected headers")
    eq(r.flash.erases - erases, 0, "flash erases")
    eq(r.flash.writes - writes, 0, "flash writes")
    got = r.alerts.got[n:]
    eq(len(got), 1, "alerts within a minute (rate-limited in RAM)")
    eq(got[0][:2], (ALERT_VERIFY_FAIL, UNKNOWN_KEY), "the first refusal is reported")
    r.board.clock.advance(QUIET_S)
    _refuse(r, forged, BAD_SIGNATURE)
    eq(r.alerts.got[-1], (ALERT_VERIFY_FAIL, BAD_SIGNATURE, 1000), "count since the last")
    eq(d.journal.records - records, 0, "still no journal write")
    d = r.reboot()
    eq((r.running(), d.st.phase), (0, S.IDLE), "state untouched")


def test_refusal_during_a_download_keeps_its_checkpoint():
    r = _rig()
    v2 = Image("core_v2.ota")
    r.download(v2, limit=200)
    d = r.dev
    nxt = d.st.next
    assert nxt > 0
    records = d.journal.records
    _refuse(r, _header_only(Image("img_other_key.ota")), UNKNOWN_KEY)
    eq(d.journal.records, records, "no write")
    d = r.reboot()
    eq((d.st.phase, d.st.next), (S.DOWNLOADING, nxt), "checkpoint kept")
    r.download(v2)
    eq(d.st.phase, S.HELD, "completed")


# -- 8: a layout that cannot fit is refused from the manifest ------------------------------

def test_image_sectors_never_erase_the_meta_area():
    r = _rig(slot_payload=60 * 1024)
    eq(r.board.slots[1].capacity, 60 * 1024, "payload area")
    meta_sector = (r.layout.slot_off[1] + r.board.slots[1].capacity) // 4096
    _refuse(r, Image("hard_8k_z.ota"), LAYOUT_NO_FIT)
    eq(r.flash.sector_erases[meta_sector], 0, "meta area of slot 1 never erased")
    eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, LAYOUT_NO_FIT), "alert")
    # the same firmware, raw, in the same 8 KiB image sectors fits and is taken
    r.download(Image("hard_8k_raw.ota"))
    eq(r.dev.st.phase, S.HELD, "raw image held")
    eq(r.dev.schedule(0), ACT_SUCCESS, "activation")
    r.reboot().confirm()
    eq(r.reboot().st.run_version, 3, "version")


def test_slot_writer_refuses_an_overrunning_layout_itself():
    # the writer checks too, whatever policy let the manifest through
    from agent.store.writer import SlotWriter
    from agent.image.parser import Parser
    r = _rig(slot_payload=60 * 1024)
    w = SlotWriter()
    w.start(r.board.slots[1])
    p = Parser(r.dev.policy(), r.dev)
    p.policy.max_size = 0xFFFFFFFF
    img = Image("hard_8k_z.ota")
    r.dev.on_manifest = w.on_manifest  # the writer alone as the manifest's sink
    try:
        p.feed(_header_only(img))
        raise AssertionError("accepted")
    except OtaError as e:
        eq(e.reason, LAYOUT_NO_FIT, "reason")


# -- 9: the Upgrade File Destination ------------------------------------------------------

def test_image_for_another_device_refused():
    r = _rig()
    r.cfg.ieee = IEEE
    _refuse(r, Image("hard_to_other.ota"), WRONG_DESTINATION)
    eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, WRONG_DESTINATION), "alert")
    r.download(Image("hard_to_me.ota"))  # addressed to this device: taken
    eq(r.dev.st.phase, S.HELD, "held")


def test_addressed_image_refused_by_a_device_without_an_address():
    r = _rig()
    _refuse(r, Image("hard_to_me.ota"), WRONG_DESTINATION)


def test_device_address_from_the_board():
    r = _rig()
    r.board.ieee = IEEE
    r.download(Image("hard_to_me.ota"))
    eq(r.dev.st.phase, S.HELD, "held")


def test_unix_device_program_takes_the_address():
    from boards.unix.run import ieee_bytes, board_for
    from tutil import ROOT
    eq(ieee_bytes("88:77:66:55:44:33:22:11"), IEEE, "written MSB first, sent LSB first")
    for bad in ("8877", "88:77:66:55:44:33:22:11:00"):
        try:
            ieee_bytes(bad)
            raise AssertionError("accepted " + bad)
        except ValueError:
            pass
    path = ROOT + "/build/ieee_test.flash"
    b = board_for({"flash": path, "sector": 4096, "slot-size": 64 * 1024, "ieee": IEEE})
    try:
        eq(b.ieee, IEEE, "board address")
    finally:
        b.flash.close()
        import os
        os.remove(path)


# -- 10: image identity is not malleable --------------------------------------------------

def test_high_s_signature_refused():
    r = _rig()
    img = Image("hard_highs.ota")
    _refuse(r, img, HIGH_S)
    eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, HIGH_S), "alert")
    # the low-s original, whose s the generator made low, is accepted
    r.download(Image("core_v2.ota"))
    eq(r.dev.st.phase, S.HELD, "held")


def test_generated_images_are_low_s():
    from agent.crypto import cose
    for name in ("core_v1.ota", "core_v2.ota", "core_v2z.ota", "hard_v1.ota", "img_raw.ota"):
        img = Image(name)
        off, n = fmt.find_manifest(img[:fmt.MANIFEST_END_MAX])
        cose.check_low_s(cose.parse_sign1(bytes(img[off:off + n])))


# -- issue 9: a reverted image is not taken again -----------------------------------------

def _trial(r, img):
    r.download(img)
    eq(r.dev.schedule(0), ACT_SUCCESS, "activation")
    d = r.reboot()
    assert d.trial
    return d


def test_reverted_image_refused_until_another_is_offered():
    r = _rig()
    v2 = Image("core_v2.ota")
    d = _trial(r, v2)
    d.revert()  # unhealthy
    d = r.reboot()
    eq(r.running(), 0, "reverted")
    erases = r.flash.erases
    _refuse(r, v2, REVERTED_IMAGE)
    eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, REVERTED_IMAGE), "alert")
    eq(r.flash.erases, erases, "nothing erased: no payload fetched")
    records = d.journal.records
    for _ in range(5):  # offered again and again: refused, no more journal writes
        _refuse(r, v2, REVERTED_IMAGE)
    eq(d.journal.records, records, "refusals after the first saved nothing")
    d = r.reboot()  # remembered across resets
    _refuse(r, v2, REVERTED_IMAGE)
    # a different image is taken; after it, the first one would be taken again
    d = _trial(r, Image("core_v3.ota"))
    d.confirm()
    eq(r.reboot().st.run_version, 3, "version")


def test_image_that_used_up_its_trials_is_refused():
    r = _rig(trials=2)
    v2 = Image("core_v2.ota")
    _trial(r, v2)
    r.reboot()      # second trial boot, never confirmed
    d = r.reboot()  # the bootloader reverts
    eq((r.running(), d.trial), (0, False), "reverted")
    _refuse(r, v2, REVERTED_IMAGE)
