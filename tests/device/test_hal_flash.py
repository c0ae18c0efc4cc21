# hal.flash.Area: a window of a flash device with the same interface, offsets relative to its
# start, every access kept inside it (over the strict NOR flash of hal.sim.nor).
from agent.errors import FLASH_ALIGN, FLASH_RANGE
from hal.flash import Area
from hal.sim.nor import NorFlash
from tutil import raises, eq


def read(f, offset, n):
    b = bytearray(n)
    f.read(offset, b)
    return bytes(b)


def test_area_over_nor():
    f = NorFlash(4096, 1024, 4)
    a = Area(f, 1024, 2048)
    a.write(0, b"abcd")
    eq(read(f, 1024, 4), b"abcd")
    raises(FLASH_RANGE, a.write, 2048, b"abcd")
    raises(FLASH_ALIGN, a.write, 2, b"abcd")
    a.erase(0, 1024)
    eq(read(f, 1024, 4), b"\xff" * 4)


def test_geometry_is_the_flash_s():
    for ws, erased in ((1, 0xFF), (16, 0x00)):
        f = NorFlash(8 * 256, 256, ws, erased)
        a = Area(f, 512, 1024)
        eq((a.base, a.size, a.sector_size, a.write_size, a.erased), (512, 1024, 256, ws, erased))
        eq(read(a, 0, 4), bytes((erased,)) * 4, "erased area")


def test_bounds_must_be_whole_sectors_inside_the_flash():
    f = NorFlash(4096, 1024, 1)
    for base, size in ((512, 1024), (0, 1000), (0, 0), (0, -1024), (1024, 4096), (4096, 1024)):
        raises(FLASH_ALIGN, Area, f, base, size)
    eq(Area(f, 0, 4096).size, 4096, "the whole flash")
    eq(Area(f, 3072, 1024).base, 3072, "the last sector")


def test_offsets_are_relative_and_checked():
    f = NorFlash(4 * 256, 256, 1)
    a = Area(f, 256, 512)
    a.write(511, b"z")
    eq(read(f, 767, 1), b"z", "last byte of the area")
    eq(read(a, 511, 1), b"z", "read back through the area")
    raises(FLASH_RANGE, a.write, 512, b"y")
    raises(FLASH_RANGE, a.write, 511, b"yy")
    raises(FLASH_RANGE, a.write, -1, b"y")
    raises(FLASH_RANGE, a.read, 510, bytearray(3))
    raises(FLASH_RANGE, a.read, -1, bytearray(1))
    raises(FLASH_RANGE, a.erase, 256, 512)
    raises(FLASH_RANGE, a.erase, 0, -256)
    eq(read(f, 768, 1), b"\xff", "the next sector untouched by refused writes")
    eq(f.ops, 1, "a refused call never reaches the flash")
    a.erase(256, 256)
    eq(read(f, 767, 1), b"\xff", "erase of the area's second sector")
    eq(read(f, 256, 256), b"\xff" * 256, "its first sector stays erased")


def test_areas_side_by_side_do_not_overlap():
    f = NorFlash(4 * 256, 256, 1)
    a = Area(f, 0, 512)
    b = Area(f, 512, 512)
    a.write(0, b"a" * 512)
    b.write(0, b"b" * 512)
    eq(read(a, 511, 1) + read(b, 0, 1), b"ab")
    b.erase(0, 512)
    eq(read(a, 0, 512), b"a" * 512, "erasing one leaves the other")
