# Delta updates on an emulated device: core_v2d.ota is a delta against core_v1's payload
# whose sectors are made each way (copy, delta, raw, deflate, and a short last copy).
# The running slot is only read; a download resumes from its checkpoint; a bad chunk is
# fetched again; a delta made against another image is refused before its payload, and so
# is one whose old bytes are not what the running slot holds. The power-cut campaign runs
# it at every flash operation, torn writes included.
from agent import errors as E
from agent.alerts import ALERT_VERIFY_FAIL
from agent.image import fmt
from agent.store import state as S
from hal.sim import powercut
from devkit import Rig, updated, rejected, download, resumed
from tutil import read_data, Image, eq


def _slot_bytes(rig, k, n):
    b = bytearray(n)
    rig.board.slots[k].area.read(0, b)
    return bytes(b)


def _payload_offset(img):
    h = fmt.parse_header(img[:fmt.HDR_MAX]).length
    cose = img[h + 2] | img[h + 3] << 8
    t = h + 6 + cose
    table = img[t + 2] | img[t + 3] << 8
    return t + 6 + table + 6


def test_delta_update_and_the_running_slot_only_read():
    r = Rig()
    r.provision()
    old = r.running()
    v1 = read_data("core_v1.bin")
    before = _slot_bytes(r, old, len(v1))
    writes = r.flash.stats["writes"] if hasattr(r.flash, "stats") else None
    with Image("core_v2d.ota") as img:
        d = updated(r, img)
    eq(d.trial, True, "trial boot of the new image")
    eq(r.running(), 1 - old, "the new slot runs")
    eq(_slot_bytes(r, old, len(v1)), before, "old slot unchanged")
    d.confirm()
    d = r.reboot()
    want = read_data("core_v2d.bin")
    eq(_slot_bytes(r, r.running(), len(want)), want, "payload made from the delta")
    eq(d.st.run_version, 2, "version")
    del writes


def test_resume_after_a_reset_at_each_sector():
    want = read_data("core_v2d.bin")
    with Image("core_v2d.ota") as img:
        start = _payload_offset(img)
        for limit in (20, 24, 40, 60, 80):
            r = Rig()
            r.provision()
            download(r.dev, img, 48, limit)
            done = r.dev.st.next
            d = r.reboot()
            eq(d.st.phase, S.DOWNLOADING, "downloading after the reset")
            jumps = resumed(d, img)
            if done:
                assert jumps and jumps[0] > start, "resumed at %r, not from zero" % jumps
            eq(d.st.phase, S.HELD, "held")
            k = d.st.slot
            eq(_slot_bytes(r, k, len(want)), want, "payload after a reset at block %d" % limit)


def test_bad_chunk_is_fetched_again():
    r = Rig()
    r.provision()
    with Image("core_v2d.ota") as whole:
        img = bytearray(whole[0:len(whole)])
    # a byte of the payload element's second chunk (sector 1, the delta sector) flipped
    # in the first copy sent; the device asks for the chunk again and gets it right
    start = _payload_offset(img)
    bad = bytearray(img)
    bad[start + 30] ^= 0x40
    sent = [bad]
    d = r.dev
    off = d.begin()
    fetched = 0
    while not d.done():
        src = sent[0]
        if off > start + 40:
            src = img
        nxt = d.feed(off, src[off:off + 48])
        if nxt < off:
            fetched += 1
            sent[0] = img
        off = nxt
        if off >= len(img) and not d.done():
            d.end()
    eq(fetched, 1, "the bad chunk fetched again once")
    eq(d.st.phase, S.HELD, "held")
    want = read_data("core_v2d.bin")
    eq(_slot_bytes(r, d.st.slot, len(want)), want, "payload")


def test_delta_against_another_image_is_refused():
    r = Rig()
    r.provision()
    with Image("core_v3d.ota") as img:
        rejected(r, img, E.BASE_MISMATCH)


def test_old_bytes_that_differ_are_refused():
    # the running slot passes its checks by its signed manifest, but the bytes a sector
    # copies are not the old image's: the download stops with BASE_MISMATCH, nothing of
    # the running slot is written, and the device runs on
    r = Rig()
    r.provision()
    run = r.running()
    r.flash.flip_bits(r.layout.slot_off[run] + 4096 + 100, 0x01)  # in core_v2d's sector 0
    before = _slot_bytes(r, run, 12 * 1024)
    with Image("core_v2d.ota") as img:
        try:
            download(r.dev, img)
        except E.OtaError as e:
            eq(e.reason, E.BASE_MISMATCH, "reason")
        else:
            raise AssertionError("accepted")
    eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, E.BASE_MISMATCH), "alert")
    eq(_slot_bytes(r, run, 12 * 1024), before, "running slot not written")
    eq(r.dev.st.phase, S.IDLE, "idle")


def test_every_cut_and_tear_of_a_delta_download():
    res = powercut.run(read_data("core_v2d.ota"), read_data("core_v1.ota"),
                       [read_data("core_pub.bin")], ("download", "verify"), True, (1, 16),
                       (0xFF,))
    assert res["cut_points"] > 40 and res["torn_points"] > 40, res
    for k in ("bricked", "lost_confirmed_image", "resumed_from_zero", "resumed_behind",
              "extra_erases"):
        eq(res[k], 0, k)
    eq(res["failures"], [], "failures")


def test_tables_that_break_the_delta_rules_are_refused():
    # core_v2d signed over a forged table (tests/datagen/gen_core.py FORGED): a mode past
    # DELTA, a copy past the old payload, a copy that carries a chunk, a RAW chunk shorter
    # than its sector; or signed with a manifest that bounds a chunk (M_CHUNK_MAX) one byte
    # below its longest (short). Each is refused with BAD_TABLE when its entry is reached,
    # before the sector is written; the running image and the device's state are kept
    for fault in ("mode", "copy_past", "copy_chunk", "raw_short", "short"):
        r = Rig()
        r.provision()
        run = r.running()
        before = _slot_bytes(r, run, 12 * 1024)
        with Image("core_v2d_%s.ota" % fault) as img:
            try:
                download(r.dev, img)
            except E.OtaError as e:
                eq(e.reason, E.BAD_TABLE, fault)
            else:
                raise AssertionError("%s: accepted" % fault)
        eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, E.BAD_TABLE), "%s: alert" % fault)
        eq(r.dev.st.phase, S.IDLE, "%s: idle" % fault)
        d = r.reboot()
        eq(r.running(), run, "%s: running slot kept" % fault)
        eq(_slot_bytes(r, run, 12 * 1024), before, "%s: running slot unchanged" % fault)
        eq(d.st.run_version, 1, "%s: version" % fault)


def test_a_delta_is_not_a_factory_image():
    # provisioning installs into the running slot: a delta would read its old image from
    # the slot it writes, so it is refused before any payload
    r = Rig()
    with Image("core_v2d.ota") as img:
        try:
            r.dev.provision(lambda off, n: img[off:off + n], len(img), 256)
        except E.OtaError as e:
            eq(e.reason, E.BASE_MISMATCH, "reason")
            assert "old slot" in e.detail, e.detail
        else:
            raise AssertionError("provisioned")
