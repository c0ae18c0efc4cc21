# hal.sim.mem's byte moves: the functions in use (viper loops on MicroPython with the
# emitter) agree with the plain ones on every alignment and length, touch no byte outside
# the range named, and leave the heap alone.
import sys
from hal.sim import mem
from tutil import eq, noise as _data


_CASES = [(d, s, n) for d in (0, 1, 3, 4) for s in (0, 2, 4) for n in (0, 1, 3, 4, 7, 64, 256)]


def _engines():
    eng = [mem.PLAIN]
    if (mem.copy, mem.fill, mem.count) != mem.PLAIN:
        eng.append((mem.copy, mem.fill, mem.count))
    return eng


def test_copy_agrees_and_stays_in_range():
    src = _data(300, 5)
    for copy, _fill, _count in _engines():
        for d, s, n in _CASES:
            dst = _data(300, 9)
            want = bytearray(dst)
            want[d:d + n] = src[s:s + n]
            copy(dst, d, src, s, n)
            eq(dst, want)
            dst = _data(300, 9)
            copy(dst, d, memoryview(src)[s:s + n], 0, n)  # a view as the source
            eq(dst, want)


def test_fill_and_count_agree():
    for _copy, fill, count in _engines():
        for d, _s, n in _CASES:
            for v in (0x00, 0xFF, 0x5A):
                dst = _data(300, 3)
                want = bytearray(dst)
                want[d:d + n] = bytes((v,)) * n
                fill(dst, d, n, v)
                eq(dst, want)
                eq(count(dst, d, n, v), n)
                eq(count(dst, 0, 300, v), want.count(bytes((v,))))
                if n:
                    dst[d + n - 1] ^= 1
                    eq(count(dst, d, n, v), n - 1)


def test_flash_sized_copy_allocates_nothing():
    if sys.implementation.name != "micropython":
        return
    import micropython
    big = bytearray(64 * 1024)
    buf = bytearray(256)
    view = memoryview(buf)
    micropython.heap_lock()
    try:
        mem.copy(big, 4096, view, 0, 256)
        mem.copy(buf, 0, big, 8192, 256)
        mem.fill(big, 0, 4096, 0xFF)
        n = mem.count(big, 0, 4096, 0xFF)
    finally:
        micropython.heap_unlock()
    eq(n, 4096)
