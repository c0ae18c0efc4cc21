# The agent's core scenarios through boards/esp32 over fake_esp32 (esp32.Partition and the
# ESP-IDF bootloader's rollback rules), and the board's own behaviour.
import struct

import boardkit
import fake_esp32
from agent.activation import ACT_SUCCESS
from agent.errors import NOT_APP_IMAGE, ACTIVATION_FAILED, NOT_IN_TRIAL, FLASH_NOT_ERASED
from boards.esp32 import image, bootctl as eboot
from hal.sim.boot import Reboot
from tutil import eq, raises, read_data, Image

K = "esp32"


def test_provision():
    boardkit.provision(K)


def test_update_confirm():
    r = boardkit.update_confirm(K)
    # ESP-IDF's view: the newest otadata entry selects ota_1 and is VALID
    top = max(r.chip.entries(), key=lambda e: e[1])
    eq(((top[1] - 1) % 2, top[2]), (1, eboot.ST_VALID), "otadata")


def test_update_confirm_deflate():
    boardkit.update_confirm(K, "board_esp_v2z.ota", 63)


def test_revert():
    boardkit.revert(K)


def test_unconfirmed_trial_rolled_back_at_next_reset():
    boardkit.trial_runs_out(K)


def test_rejections():
    boardkit.rejections(K)


def test_rollback():
    boardkit.rollback(K)


def test_resume():
    boardkit.resume(K)
    boardkit.resume(K, "board_esp_v2z.ota")


def test_damaged_before_activation():
    boardkit.damaged_before_activation(K)


def test_merged_and_foreign_images_rejected_after_one_sector():
    r = boardkit.BoardRig(K)
    r.provision()
    for name in ("board_esp_merged.ota", "board_esp_boot0.ota", "board_esp_s3.ota"):
        boardkit.rejected(r, name, NOT_APP_IMAGE, before_payload=False)
        eq(r.dev.st.next, 0, "no checkpoint past sector 0")
        assert r.board.boot.pending() is None


def test_image_check_reasons():
    app = read_data("board_esp_v2.bin")
    image.check_app(app[:64])
    image.check_app(app)
    bad = (
        (b"\xff" * 64, "erased padding"),
        (b"\x00" + app[1:64], "magic"),
        (app[:1] + b"\x00" + app[2:64], "segments"),
        (app[:12] + b"\x09\x00" + app[14:64], "chip id 9"),
        (app[:32] + b"\x50\x00\x00\x00" + app[36:64], "application descriptor"),
        (app[:20], "payload of 20"),
    )
    for buf, needle in bad:
        e = raises(NOT_APP_IMAGE, image.check_app, buf)
        assert needle in e.detail, (needle, e.detail)
    m = bytearray(app[:64]) + bytearray(0x8000)
    m[0x8000:0x8002] = b"\xaa\x50"
    raises(NOT_APP_IMAGE, image.check_app, m)
    eq(struct.calcsize(image.HDR_FMT), image.HDR_SIZE, "header size")
    eq(struct.calcsize(eboot.ENTRY_FMT), eboot.ENTRY_SIZE, "otadata entry size")


def test_otadata_crc_is_esp_idf_s():
    # esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4): seq 1 stores 0x4743989A
    eq(eboot.entry_crc(1), 0x4743989A, "crc of seq 1")


def test_set_boot_refuses_a_slot_without_an_app():
    r = boardkit.BoardRig(K)
    r.provision()
    before = r.chip.entries()
    e = raises(ACTIVATION_FAILED, r.board.boot.set_pending, 1, 1)
    assert "set_boot" in e.detail
    eq(r.chip.entries(), before, "otadata unchanged")
    assert r.board.boot.pending() is None


def test_fake_bootloader_rolls_back_an_unconfirmed_app():
    c = fake_esp32.Chip()
    app = read_data("board_esp_v2.bin")
    c.flash_app(0, app)
    c.flash_app(1, app)
    eq(c.reset(), 0, "empty otadata boots ota_0")
    P = c.module.Partition
    P(P.RUNNING).get_next_update().set_boot()
    eq(P(P.BOOT).info()[4], "ota_1", "boot partition")
    eq(c.reset(), 1, "new app on trial")
    eq(sorted(e[2] for e in c.entries()), [eboot.ST_PENDING], "pending verify")
    eq(c.reset(), 0, "rolled back")
    eq(sorted(e[2] for e in c.entries()), [eboot.ST_ABORTED], "aborted")
    P(P.RUNNING).get_next_update().set_boot()
    eq(c.reset(), 1, "trial again")
    P.mark_app_valid_cancel_rollback()
    eq(c.reset(), 1, "confirmed app stays")
    try:
        c.machine.reset()
        raise AssertionError("machine.reset returned")
    except Reboot:
        pass


def test_partition_block_protocol():
    c = fake_esp32.Chip()
    P = c.module.Partition
    p = P.find(P.TYPE_DATA, label="ota_journal")[0]
    eq((p.ioctl(4, 0), p.ioctl(5, 0)), (4, 4096), "blocks")
    p.writeblocks(1, b"\x12\x34" * 2048)          # erases, then programs
    b = bytearray(4)
    p.readblocks(1, b, 2)
    eq(bytes(b), b"\x12\x34\x12\x34", "offset read")
    raises(FLASH_NOT_ERASED, p.writeblocks, 1, b"\x00\x00", 0)   # no erase with an offset
    eq(p.ioctl(6, 1), 0, "erase")
    p.writeblocks(1, b"\x00\x00", 0)
    try:
        p.readblocks(4, b, 0)
        raise AssertionError("read past the partition")
    except OSError:
        pass


def test_revert_of_a_pending_slot_keeps_the_confirmed_image():
    r = boardkit.BoardRig(K)
    r.provision()
    r.download(Image(r.images[1]))
    eq(r.dev.schedule(0), ACT_SUCCESS, "activated")
    eq(r.board.boot.pending(), 1, "pending")
    assert r.board.boot.revert()
    assert r.board.boot.pending() is None
    eq(r.board.boot.confirmed(), 0, "confirmed")
    r.reboot()          # ESP-IDF boots ota_0 as NEW -> PENDING_VERIFY; the board marks it valid
    eq(r.running(), 0, "confirmed slot runs")
    assert not r.board.boot.in_trial()
    r.reboot()
    eq(r.running(), 0, "and is not rolled back")


def test_confirm_outside_trial():
    r = boardkit.BoardRig(K)
    r.provision()
    raises(NOT_IN_TRIAL, r.board.boot.confirm)


def test_heap_collected_before_a_download():
    boardkit.collects(K)
