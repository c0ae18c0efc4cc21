# The agent's core scenarios through boards/qemu (its flash driver over the board's PSRAM on
# the Cortex-M tier, over a bytearray elsewhere; the emulated bootloader), and the driver's
# own rules: those of hal/flash.py, refused with their reason codes and nothing changed.
from binascii import crc32

import boardkit
from agent.errors import BAD_LAYOUT, FLASH_ALIGN, FLASH_RANGE, FLASH_NOT_ERASED
from tutil import eq, raises

K = "qemu"


def test_core_scenarios():
    boardkit.core(K)


def test_state_survives_a_restart():
    # the PSRAM outlives the emulator: a board made again over the same bytes boots the
    # trial slot and still counts its trial
    r = boardkit.BoardRig(K)
    r.provision()
    r.update()
    from boards.qemu.board import make_board
    b = make_board(r.layout, False, r.clock, mem=r.mem)
    eq(b.power_on(), 1, "trial slot booted again")
    assert b.boot.in_trial()


def _flash(size=4 * 4096, erase=True):
    from boards.qemu.board import RamFlash
    m = boardkit.qemu_mem(size)
    return RamFlash(size, 4096, 4, 0xFF, erase, mem=m), m


def test_driver_erases_and_programs():
    f, m = _flash()
    eq(m.count(b"\xff"), len(m), "erased at start")
    f.write(8, b"\x01\x02\x03\x04")
    buf = bytearray(8)
    f.read(6, buf)
    eq(bytes(buf), b"\xff\xff\x01\x02\x03\x04\xff\xff", "read back")
    f.erase(0, 4096)
    eq(m.count(b"\xff", 0, 4096), 4096, "sector erased")
    f.write(4096 * 3 + 4092, b"\x00" * 4)  # the last unit
    eq(bytes(m[-4:]), bytes(4), "last unit")


def test_driver_refuses_without_change():
    f, m = _flash()
    f.write(0, b"\x55" * 4)
    before = crc32(m)  # (no copy of the flash: the tier's heap is small)
    raises(FLASH_NOT_ERASED, f.write, 0, b"\x00" * 4)   # programmed already
    raises(FLASH_ALIGN, f.write, 2, b"\x00" * 4)        # not on a write unit
    raises(FLASH_ALIGN, f.write, 8, b"\x00" * 3)        # not whole units
    raises(FLASH_RANGE, f.write, 4 * 4096, b"\x00" * 4)  # past the end
    raises(FLASH_RANGE, f.read, 4 * 4096 - 2, bytearray(4))
    raises(FLASH_RANGE, f.read, -4, bytearray(4))
    raises(FLASH_ALIGN, f.erase, 100, 4096)
    raises(FLASH_ALIGN, f.erase, 0, 100)
    raises(FLASH_RANGE, f.erase, 4096, 4 * 4096)
    eq(crc32(m), before, "nothing changed")
    eq(bytes(m[:8]), b"\x55" * 4 + b"\xff" * 4, "the programmed unit as it was")


def test_driver_areas_are_windows():
    # an area's offsets start at its base, and its checks are the area's bounds
    from hal.flash import Area
    f, m = _flash()
    a = Area(f, 4096, 2 * 4096)
    a.write(0, b"\xaa" * 4)
    eq(bytes(m[4096:4100]), b"\xaa" * 4, "at the area's base")
    raises(FLASH_RANGE, a.write, 2 * 4096, b"\x00" * 4)
    raises(FLASH_RANGE, a.erase, 4096, 2 * 4096)
    a.erase(0, 4096)
    eq(m.count(b"\xff"), len(m), "the area's sector erased")


def test_driver_bad_geometry():
    from boards.qemu.board import RamFlash
    for size, ss, ws in ((0, 4096, 4), (4096 + 1, 4096, 4), (8192, 3000, 4),
                         (8192, 4096, 3), (8192, 2, 4)):
        raises(BAD_LAYOUT, RamFlash, size, ss, ws, 0xFF, False, 0, bytearray(16))


def test_heap_collected_before_a_download():
    boardkit.collects(K)
