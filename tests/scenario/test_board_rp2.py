# The agent's core scenarios through boards/rp2 over fake_rp2 (rp2.Flash, 256-byte page
# programming), the boot selector, and the application bundle mounted from a slot.
import sys

import boardkit
import fake_rp2
from agent.image import fmt
from agent.errors import OtaError, NOT_APP_IMAGE, BAD_LAYOUT
from boards.rp2 import layout as L
from boards.rp2.bundle import Bundle, BundleFS, pack
from boards.bdev import BlockFlash
from hal.flash import Area
from tutil import eq, raises, read_data, skip

K = "rp2"


def test_provision():
    boardkit.provision(K)


def test_update_confirm():
    r = boardkit.update_confirm(K)
    assert r.dev_flash.programs > 0, "wrote through page programs"


def test_update_confirm_deflate():
    boardkit.update_confirm(K, "board_rp2_v2z.ota", 63)


def test_revert():
    boardkit.revert(K)


def test_trial_runs_out():
    boardkit.trial_runs_out(K)      # three trial boots (layout.TRIALS), then back


def test_rejections():
    boardkit.rejections(K)


def test_rollback():
    boardkit.rollback(K)


def test_resume():
    boardkit.resume(K)


def test_damaged_before_activation():
    boardkit.damaged_before_activation(K)


def test_not_a_bundle_rejected_after_one_sector():
    r = boardkit.BoardRig(K)
    r.provision()
    boardkit.rejected(r, "board_rp2_raw.ota", NOT_APP_IMAGE, before_payload=False)


def test_layout_of_a_pico():
    fs, boot, j, s = L.regions(1408 * 1024)
    eq(fs, 1408 * 1024 - 2 * L.SLOT_SIZE - L.BOOT_SIZE - L.JOURNAL_SIZE, "filesystem")
    eq((boot, j, s[0], s[1]), (fs, fs + 8192, fs + 16384, fs + 16384 + L.SLOT_SIZE), "regions")
    eq(s[1] + L.SLOT_SIZE, 1408 * 1024, "slots end the storage region")
    raises(BAD_LAYOUT, L.regions, 512 * 1024)


def test_paged_writes_keep_neighbours():
    dev = fake_rp2.Flash(64 * 1024)
    f = BlockFlash(dev, 4, 0xFF, 256)
    f.erase(4096, 4096)
    f.write(4096 + 8, b"\x01\x02\x03\x04")
    f.write(4096 + 12, b"\x05\x06\x07\x08" * 70)    # crosses into the next page
    f.write(4096 + 4, b"\x00\x00\x00\x00")          # an earlier unit of the same page
    b = bytearray(300)
    f.read(4096, b)
    eq(bytes(b[:12]), b"\xff" * 4 + b"\x00" * 4 + b"\x01\x02\x03\x04", "head")
    eq(bytes(b[12:292]), b"\x05\x06\x07\x08" * 70, "body")
    eq(bytes(b[292:]), b"\xff" * 8, "tail erased")
    raises(82, f.write, 4096 + 8, b"\x00\x00\x00\x00")  # programmed bytes stay programmed
    raises(80, f.write, 4096 + 2, b"\x00\x00")


def _bundle_area(data):
    dev = fake_rp2.Flash(64 * 1024)
    f = BlockFlash(dev, 4, 0xFF, 256)
    f.erase(0, 64 * 1024)
    n = (len(data) + 3) // 4 * 4
    f.write(0, data + b"\xff" * (n - len(data)))
    return Area(f, 0, 64 * 1024)


def test_bundle_reads_from_flash():
    data = read_data("board_rp2_v2.bin")
    b = Bundle(_bundle_area(data), len(data))
    eq([x[0] for x in b.files], ["app.py", "lib/helper.py", "data/notes.txt", "data/blob.bin"],
       "names")
    fs = BundleFS(b)
    eq(fs.stat("/app.py")[0], 0x8000, "file")
    eq(fs.stat("/lib")[0], 0x4000, "directory")
    eq(sorted(x[0] for x in fs.ilistdir("/")), ["app.py", "data", "lib"], "root")
    with fs.open("/data/notes.txt", "r") as f:
        eq(f.readline(), "line one\n", "line")
        eq(f.read(), "line two\n", "rest")
    with fs.open("/app.py", "rb") as f:
        assert f.read(11) == b"VERSION = 2"
    try:
        fs.open("/app.py", "w")
        raise AssertionError("written")
    except OSError as e:
        eq(e.args[0], 30, "read-only")
    try:
        fs.stat("/nothing.py")
        raise AssertionError("found")
    except OSError as e:
        eq(e.args[0], 2, "missing")
    raises(NOT_APP_IMAGE, Bundle, _bundle_area(b"XXXX" + data[4:]), len(data))
    raises(NOT_APP_IMAGE, Bundle, _bundle_area(data), 100)   # claims more than it holds
    eq(pack([("a", b"x")])[:4], b"OTAB", "magic")


def test_selector_mounts_the_running_bundle():
    from boards.rp2 import select
    r = boardkit.BoardRig(K)
    r.provision()
    r.update()
    if sys.implementation.name != "micropython":
        fs = BundleFS(Bundle(r.board.slots[1].area))
        with fs.open("/app.py", "r") as f:
            assert "VERSION = 2" in f.read()
        skip("mounting the bundle and importing from it needs MicroPython's vfs")
    # what main.py does: the boot decision, the bundle at /app, the app imported from flash
    slot, fs = select.run(r.board, "/ota_test_app")
    try:
        eq(slot, 1, "trial slot chosen")
        assert fs is not None
        for m in ("app", "lib.helper", "lib"):
            sys.modules.pop(m, None)
        import app
        from lib import helper
        eq((app.main(), helper.DOUBLE), (2, 4), "imported from the bundle")
    finally:
        import vfs
        vfs.umount("/ota_test_app")
        sys.path.remove("/ota_test_app")
        for m in ("app", "lib.helper", "lib"):
            sys.modules.pop(m, None)


def test_heap_collected_before_a_download():
    boardkit.collects(K)
