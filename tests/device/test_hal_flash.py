# hal.flash.Area: a window of a flash device with the same interface, offsets relative to its
# start, every access kept inside it (over the strict NOR flash of hal.sim.nor).
import sys

from agent.errors import FLASH_ALIGN, FLASH_RANGE, FLASH_NOT_ERASED
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


def test_area_over_nor_calls_the_flash_s_window():
    # one call per operation: the area's read, write and erase are the flash's, bound to
    # the window, with the area's checks (above) and the flash's rules
    f = NorFlash(4 * 256, 256, 4)
    a = Area(f, 256, 512)
    calls = []
    f.read = f.write = f.erase = lambda o, b: calls.append(o)
    a.write(4, b"abcd")
    raises(FLASH_NOT_ERASED, a.write, 0, b"wxyzabcd")
    eq(read(a, 0, 12), b"\xff" * 4 + b"abcd" + b"\xff" * 4, "a refused write changes nothing")
    eq((f.ops, f.writes, f.bytes_written), (1, 1, 4))
    a.erase(0, 256)
    eq((f.ops, f.erases, list(f.sector_erases)), (2, 1, [0, 1, 0, 0]))
    eq(calls, [], "not through the flash's own methods")


class _Subclass(Area):
    def write(self, offset, data):
        self.seen = offset
        Area.write(self, offset, data)


def test_a_subclass_keeps_its_own_methods():
    f = NorFlash(4 * 256, 256, 1)
    a = _Subclass(f, 256, 512)
    a.write(3, b"q")
    eq((a.seen, read(f, 259, 1)), (3, b"q"))
    raises(FLASH_RANGE, a.write, 512, b"q")


def test_read_write_erase_allocate_nothing():
    if sys.implementation.name != "micropython":
        return
    import micropython
    from hal.sim import mem
    viper = mem.program is not mem.PLAIN[3]
    # without the viper loops a read allocates nothing only from a mirrored flash
    f = NorFlash(8 * 1024, 1024, 4, 0xFF, not viper)
    a = Area(f, 1024, 4096)
    buf = bytearray(256)
    view = memoryview(buf)
    f.read(0, buf)  # the flash's own window is made at its first access
    buf[0] = 0x5A
    micropython.heap_lock()
    try:
        if viper:
            a.write(0, view)
            a.erase(1024, 1024)
            f.write(1024 + 2048, buf)
        a.read(256, buf)
        a.read(0, view)
        f.read(1024, view)
    finally:
        micropython.heap_unlock()
    eq(buf[0], 0x5A if viper else 0xFF, "read back")
