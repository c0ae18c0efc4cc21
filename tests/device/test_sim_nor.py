import os

from agent.errors import OtaError, BAD_LAYOUT, FLASH_ALIGN, FLASH_RANGE, FLASH_NOT_ERASED, \
    FLASH_IO
from hal.sim.nor import NorFlash, FileFlash, PowerCut
from tutil import raises, eq, ROOT

GEOMETRIES = ((1, 0xFF), (4, 0xFF), (8, 0xFF), (16, 0xFF),
              (1, 0x00), (4, 0x00), (8, 0x00), (16, 0x00))
TMP = ROOT + "/build/tmp_nor_test.bin"


def read(f, offset, n):
    b = bytearray(n)
    f.read(offset, b)
    return bytes(b)


def cut(fn, *args):
    """fn(*args) must raise PowerCut."""
    try:
        fn(*args)
    except PowerCut:
        return
    raise AssertionError("expected PowerCut")


def pattern(n, start=1):
    return bytes((start + i * 7) & 0xFF or 0x5A for i in range(n))


def test_power_cut_is_not_an_exception():
    caught = None
    try:
        try:
            raise PowerCut()
        except Exception:
            caught = "Exception"
    except BaseException as e:
        caught = type(e).__name__
    eq(caught, "PowerCut")
    eq(issubclass(PowerCut, OtaError), False)


def test_geometry_checked():
    raises(BAD_LAYOUT, NorFlash, 4096 * 2 + 1)
    raises(BAD_LAYOUT, NorFlash, 0)
    raises(BAD_LAYOUT, NorFlash, 3000 * 2, 3000)
    raises(BAD_LAYOUT, NorFlash, 8192, 4096, 3)
    raises(BAD_LAYOUT, NorFlash, 8192, 4096, 0)
    raises(BAD_LAYOUT, NorFlash, 512, 256, 512)
    raises(BAD_LAYOUT, NorFlash, 8192, 4096, 1, 0x55)
    f = NorFlash(8192, 4096, 16, 0x00)
    eq((f.size, f.sector_size, f.write_size, f.erased), (8192, 4096, 16, 0))


def test_fresh_flash_is_erased():
    for ws, e in GEOMETRIES:
        f = NorFlash(2048, 512, ws, e)
        eq(read(f, 0, 2048), bytes((e,)) * 2048, "erased %d" % e)


def test_read_range():
    f = NorFlash(1024, 256)
    eq(read(f, 1020, 4), b"\xff" * 4)
    raises(FLASH_RANGE, read, f, 1021, 4)
    raises(FLASH_RANGE, read, f, -1, 1)
    mv = memoryview(bytearray(8))
    f.read(8, mv[2:6])
    eq(bytes(mv), b"\x00\x00\xff\xff\xff\xff\x00\x00")


def test_write_alignment_and_range():
    f = NorFlash(1024, 256, 4)
    raises(FLASH_ALIGN, f.write, 2, b"abcd")
    raises(FLASH_ALIGN, f.write, 4, b"abc")
    raises(FLASH_RANGE, f.write, 1024, b"abcd")
    raises(FLASH_RANGE, f.write, 1020, b"abcdefgh")
    raises(FLASH_RANGE, f.write, -4, b"abcd")
    eq(f.ops, 0)
    eq(read(f, 1016, 8), b"\xff" * 8)
    f.write(1020, b"wxyz")
    eq(read(f, 1020, 4), b"wxyz")
    g = NorFlash(1024, 256, 1)
    g.write(3, b"q")
    eq(read(g, 2, 3), b"\xffq\xff")


def test_write_only_erased_bytes():
    for e in (0xFF, 0x00):
        f = NorFlash(1024, 256, 1, e)
        f.write(10, b"\x12\x34")
        raises(FLASH_NOT_ERASED, f.write, 10, b"\x12\x34")
        raises(FLASH_NOT_ERASED, f.write, 11, b"\x34")
        # overlapping an erased and a programmed byte: nothing changes
        raises(FLASH_NOT_ERASED, f.write, 8, b"\x01\x02\x03")
        eq(read(f, 8, 4), bytes((e, e, 0x12, 0x34)))
        # even a write that would only move bits towards programmed is refused
        raises(FLASH_NOT_ERASED, f.write, 10, b"\x00" if e else b"\xff")
        # writing the erased value leaves the byte erased and writable
        f.write(20, bytes((e,)))
        f.write(20, b"\x77")
        eq(read(f, 20, 1), b"\x77")
        eq(f.writes, 3)


def test_empty_write_is_a_no_op():
    f = NorFlash(1024, 256, 4)
    f.write(8, b"")
    f.erase(0, 0)
    eq((f.ops, f.writes, f.erases, f.bytes_written), (0, 0, 0, 0))
    raises(FLASH_ALIGN, f.write, 2, b"")


def test_erase_rules():
    f = NorFlash(2048, 512, 1)
    raises(FLASH_ALIGN, f.erase, 100, 512)
    raises(FLASH_ALIGN, f.erase, 0, 100)
    raises(FLASH_RANGE, f.erase, 1536, 1024)
    raises(FLASH_RANGE, f.erase, -512, 512)
    f.write(0, b"a" * 1024)
    f.erase(0, 512)
    eq(read(f, 0, 512), b"\xff" * 512)
    eq(read(f, 512, 512), b"a" * 512)
    f.write(0, b"b")
    eq(read(f, 0, 2), b"b\xff")


def test_geometries_round_trip():
    for ws, e in GEOMETRIES:
        f = NorFlash(4096, 1024, ws, e)
        data = pattern(ws * 10)
        f.write(ws * 3, data)
        eq(read(f, ws * 3, len(data)), data, "ws %d" % ws)
        eq(read(f, 0, ws * 3), bytes((e,)) * (ws * 3))
        raises(FLASH_NOT_ERASED, f.write, ws * 12, pattern(ws))
        if ws > 1:
            raises(FLASH_ALIGN, f.write, ws // 2, pattern(ws))
            raises(FLASH_ALIGN, f.write, ws * 20, pattern(ws + 1))
        f.erase(0, 1024)
        eq(read(f, 0, 1024), bytes((e,)) * 1024)


def test_counters():
    f = NorFlash(4096, 1024, 4)
    f.write(0, b"abcd")
    f.write(8, memoryview(b"12345678"))
    f.write(16, bytearray(b"wxyz"))
    f.erase(1024, 2048)
    f.erase(1024, 1024)
    read(f, 0, 100)
    raises(FLASH_NOT_ERASED, f.write, 0, b"abcd")
    eq((f.ops, f.writes, f.erases, f.bytes_written), (5, 3, 3, 16))
    eq(list(f.sector_erases), [0, 2, 1, 0])


def test_cut_after_operation():
    f = NorFlash(2048, 512, 1)
    f.fail_at(3)
    f.write(0, b"1")
    f.erase(512, 512)
    cut(f.write, 1, b"23")
    eq(f.cut, True)
    # every access fails until power_on
    cut(read, f, 0, 1)
    cut(f.write, 100, b"x")
    cut(f.erase, 0, 512)
    cut(f.write, 0, b"")
    eq(f.ops, 3)
    f.power_on()
    eq(read(f, 0, 4), b"123\xff")
    # the cut fired once: it is disarmed now
    f.write(10, b"z")
    f.erase(0, 512)
    eq(f.ops, 5)


def test_cut_counts_only_operations():
    f = NorFlash(2048, 512, 4)
    f.fail_after_ops(2)
    read(f, 0, 16)
    raises(FLASH_ALIGN, f.write, 1, b"abcd")
    f.write(0, b"")
    f.write(0, b"abcd")
    raises(FLASH_NOT_ERASED, f.write, 0, b"abcd")
    cut(f.erase, 512, 512)
    f.power_on()
    eq(f.erases, 1)


def test_cut_now_and_disarm():
    f = NorFlash(1024, 256)
    f.fail_at(0)
    cut(f.write, 0, b"a")
    f.power_on()
    eq(read(f, 0, 1), b"\xff")
    eq(f.ops, 0)
    f.fail_at(1)
    f.fail_at(None)
    for i in range(5):
        f.write(i, b"x")
    eq(f.cut, False)


def test_tear_write_seed_zero():
    for ws in (1, 4, 8, 16):
        for e in (0xFF, 0x00):
            f = NorFlash(1024, 256, ws, e)
            data = pattern(ws * 8)
            f.fail_at(1, True)
            cut(f.write, 0, data)
            f.power_on()
            done = 4 * ws + ws // 2
            eq(read(f, 0, done), data[:done], "ws %d prefix" % ws)
            eq(read(f, done, len(data) - done), bytes((e,)) * (len(data) - done))
            eq(f.ops, 1)
    f = NorFlash(1024, 256, 1)
    f.fail_at(1, True)
    cut(f.write, 0, b"abcdefgh")
    f.power_on()
    eq(read(f, 0, 8), b"abcd\xff\xff\xff\xff")


def test_tear_write_seeds():
    for ws, e in GEOMETRIES:
        shapes = {}
        for seed in range(1, 40):
            f = NorFlash(1024, 256, ws, e)
            data = pattern(ws * 6, seed)
            f.fail_at(1, True, seed)
            cut(f.write, 64, data)
            f.power_on()
            got = read(f, 64, len(data))
            eq(read(f, 0, 64), bytes((e,)) * 64)
            # a prefix is programmed, then one byte holding a mix of old and new bits,
            # then erased bytes
            k = 0
            while k < len(data) and got[k] == data[k]:
                k += 1
            eq(got[k + 1:], bytes((e,)) * (len(data) - k - 1), "seed %d" % seed)
            if k < len(data):
                mixed = got[k] ^ e
                eq(mixed & (data[k] ^ e), mixed, "bits of byte %d" % k)
            # same seed, same result
            g = NorFlash(1024, 256, ws, e)
            g.fail_at(1, True, seed)
            cut(g.write, 64, data)
            g.power_on()
            eq(read(g, 64, len(data)), got)
            shapes[k] = 1
        if len(shapes) < 3:
            raise AssertionError("tears too alike: %r" % shapes)


def test_tear_erase_seed_zero():
    f = NorFlash(4096, 1024, 1)
    f.write(0, b"\x11" * 4096)
    f.fail_at(1, True)
    cut(f.erase, 0, 3072)
    f.power_on()
    eq(read(f, 0, 1024), b"\xff" * 1024)
    eq(read(f, 1024, 512), b"\xff" * 512)
    eq(read(f, 1536, 512), b"\x11" * 512)
    eq(read(f, 2048, 2048), b"\x11" * 2048)


def test_tear_erase_seeds():
    for e in (0xFF, 0x00):
        old = 0x3C
        kinds = {}
        for seed in range(1, 30):
            f = NorFlash(4096, 512, 4, e)
            f.write(0, bytes((old,)) * 4096)
            f.fail_at(1, True, seed)
            cut(f.erase, 1024, 2048)
            f.power_on()
            eq(read(f, 0, 1024), bytes((old,)) * 1024)
            eq(read(f, 3072, 1024), bytes((old,)) * 1024)
            erased = bytes((e,)) * 512
            states = []
            for s in range(2, 6):
                got = read(f, s * 512, 512)
                if got == erased:
                    states.append("E")
                elif got == bytes((old,)) * 512:
                    states.append("O")
                else:
                    states.append("T")
            # erased sectors, then at most one in flight, then untouched ones
            txt = "".join(states)
            if txt.rstrip("O").lstrip("E") not in ("", "T"):
                raise AssertionError("seed %d: %s" % (seed, txt))
            kinds[txt] = 1
            eq(f.erases, states.count("E") + 1)
        if len(kinds) < 4:
            raise AssertionError("tears too alike: %r" % kinds)


def test_fail_writes_and_erases():
    f = NorFlash(1024, 256, 1)
    f.fail_writes(2)
    raises(FLASH_IO, f.write, 0, b"a")
    raises(FLASH_IO, f.write, 0, b"a")
    eq(read(f, 0, 1), b"\xff")
    f.write(0, b"a")
    eq(read(f, 0, 1), b"a")
    f.fail_erases(1)
    raises(FLASH_IO, f.erase, 0, 256)
    eq(read(f, 0, 1), b"a")
    f.erase(0, 256)
    eq(read(f, 0, 1), b"\xff")
    eq((f.writes, f.erases), (1, 1))


def test_corruption_tools():
    f = NorFlash(1024, 256, 4)
    f.write(0, b"\x0f\x0f\x0f\x0f")
    f.flip_bits(1, 0x81)
    eq(read(f, 0, 4), b"\x0f\x8e\x0f\x0f")
    f.poke(6, b"\x00\x01")
    eq(read(f, 4, 4), b"\xff\xff\x00\x01")
    raises(FLASH_RANGE, f.poke, 1023, b"ab")
    raises(FLASH_RANGE, f.flip_bits, 1024, 1)
    eq(f.ops, 1)


def test_snapshot_restore():
    f = NorFlash(2048, 512, 1)
    f.write(0, b"abc")
    snap = f.snapshot()
    f.erase(0, 512)
    f.write(600, b"q")
    f.fail_at(1)
    cut(f.write, 700, b"r")
    f.restore(snap)
    eq(f.cut, False)
    eq(read(f, 0, 4), b"abc\xff")
    eq(read(f, 600, 101), b"\xff" * 101)
    eq((f.ops, f.writes, f.erases, f.bytes_written), (1, 1, 0, 3))
    eq(list(f.sector_erases), [0, 0, 0, 0])
    f.write(3, b"d")
    eq(read(f, 0, 4), b"abcd")


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def test_file_flash_persists():
    _remove(TMP)
    try:
        f = FileFlash(TMP, 4096, 1024, 4)
        eq(os.stat(TMP)[6], 4096)
        eq(read(f, 0, 8), b"\xff" * 8)
        f.write(8, b"persist!")
        f.erase(1024, 1024)
        f.fail_at(1, True)
        cut(f.write, 2048, b"torn-write-here!")
        f.close()
        g = FileFlash(TMP, 4096, 1024, 4)
        eq(read(g, 8, 8), b"persist!")
        eq(read(g, 2048, 16), b"torn-write" + b"\xff" * 6)
        raises(FLASH_NOT_ERASED, g.write, 8, b"abcd")
        g.erase(0, 1024)
        g.flip_bits(2048, 0xFF)
        snap = g.snapshot()
        g.write(0, b"abcd")
        g.restore(snap)
        g.close()
        h = FileFlash(TMP, 4096, 1024, 4)
        eq(read(h, 0, 16), b"\xff" * 16)
        eq(read(h, 2048, 2), b"\x8bo")
        h.close()
        raises(BAD_LAYOUT, FileFlash, TMP, 8192, 1024, 4)
    finally:
        _remove(TMP)


def test_file_flash_zero_erased():
    _remove(TMP)
    try:
        f = FileFlash(TMP, 2048, 512, 1, 0x00)
        eq(read(f, 0, 2048), bytes(2048))
        f.write(100, b"\x01")
        f.close()
        with open(TMP, "rb") as fh:
            raw = fh.read()
        eq(len(raw), 2048)
        eq(raw[99:102], b"\x00\x01\x00")
    finally:
        _remove(TMP)


def _flashes():
    _remove(TMP)
    yield NorFlash(4096, 512, 4)
    yield NorFlash(4096, 512, 4, 0xFF, True)
    f = FileFlash(TMP, 4096, 512, 4)
    yield f
    f.close()
    _remove(TMP)


def test_rules_hold_through_an_area():
    # hal.flash.Area over the flash runs the flash's window: the same rules, counters, cuts
    # and copies (the mirror's reads, the file) as the flash's own methods
    from hal.flash import Area
    for f in _flashes():
        a = Area(f, 1024, 2048)
        a.write(0, b"abcd")
        raises(FLASH_NOT_ERASED, a.write, 0, b"wxyz")
        raises(FLASH_ALIGN, a.write, 2, b"wxyz")
        raises(FLASH_ALIGN, a.erase, 256, 512)
        f.fail_writes(1)
        raises(FLASH_IO, a.write, 8, b"wxyz")
        f.fail_erases(1)
        raises(FLASH_IO, a.erase, 512, 512)
        a.write(8, b"")
        a.write(1536, b"q" * 512)
        eq((f.ops, f.writes, f.bytes_written), (2, 2, 516))
        a.erase(1024, 1024)
        eq((f.ops, f.erases, list(f.sector_erases)), (3, 2, [0, 0, 0, 0, 1, 1, 0, 0]))
        eq(read(a, 0, 8) + read(f, 1024 + 1536, 4), b"abcd\xff\xff\xff\xff" + b"\xff" * 4)
        # a cut during the next write: torn with seed 0, counted, then every access refused
        f.fail_at(2, True)
        a.write(16, b"1234")
        cut(a.write, 32, b"ABCDEFGH")
        cut(read, a, 0, 4)
        cut(a.erase, 0, 512)
        cut(a.write, 0, b"")
        f.power_on()
        eq((f.ops, f.writes), (5, 4))
        eq(read(a, 16, 4) + read(a, 32, 8), b"1234ABCDEF\xff\xff", "half the units, half one")
        eq(read(f, 1024 + 32, 8), b"ABCDEF\xff\xff", "the flash's own read")
        # a cut after an erase of two sectors
        f.fail_after_ops(1)
        cut(a.erase, 0, 1024)
        f.power_on()
        eq((f.erases, f.sector_erases[2], f.sector_erases[3]), (4, 1, 1))
        eq(read(a, 0, 1024), b"\xff" * 1024)
        raises(FLASH_RANGE, a.read, 2045, bytearray(4))
        if isinstance(f, FileFlash):
            g = FileFlash(TMP, 4096, 512, 4)
            eq(read(g, 0, 4096), read(f, 0, 4096), "the file holds what the flash does")
            g.close()
