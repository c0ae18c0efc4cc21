# hal.sim.mem's byte moves: the functions in use (viper loops on MicroPython with the
# emitter) agree with the plain ones on every alignment and length, touch no byte outside
# the range named, program refuses a range with any byte not erased and leaves it as it was,
# and none touches the heap.
import sys
from hal.sim import mem
from tutil import eq, noise as _data


_CASES = [(d, s, n) for d in (0, 1, 3, 4) for s in (0, 2, 4)
          for n in (0, 1, 3, 4, 7, 20, 36, 64, 256)]


def _engines():
    eng = [mem.PLAIN]
    if (mem.copy, mem.fill, mem.count, mem.program) != mem.PLAIN:
        eng.append((mem.copy, mem.fill, mem.count, mem.program))
    return eng


def test_copy_agrees_and_stays_in_range():
    src = _data(300, 5)
    for copy, _fill, _count, _program in _engines():
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
    for _copy, fill, count, _program in _engines():
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


def test_program_agrees_and_refuses_without_a_change():
    src = _data(300, 5)
    old = _data(300, 7)
    for _copy, _fill, _count, program in _engines():
        for d, s, n in _CASES + [(0, 0, 16), (4, 0, 48), (8, 4, 60), (1, 0, 33)]:
            for v in (0xFF, 0x00):
                dst = bytearray(old)
                dst[d:d + n] = bytes((v,)) * n
                want = bytearray(dst)
                want[d:d + n] = src[s:s + n]
                eq(program(dst, d, memoryview(src)[s:s + n], n, v), True, "erased")
                eq(dst, want)
                if not n:
                    continue
                # one byte not erased, at the start, in the middle or at the end: refused,
                # and the bytes copied before it was found are erased again
                for k in (0, n // 2, n - 1):
                    dst = bytearray(old)
                    dst[d:d + n] = bytes((v,)) * n
                    dst[d + k] ^= 0x81
                    want = bytearray(dst)
                    eq(program(dst, d, memoryview(src)[s:s + n], n, v), False, "at %d" % k)
                    eq(dst, want, "unchanged %d %d %d %d" % (d, s, n, k))


def test_flash_sized_copy_allocates_nothing():
    if sys.implementation.name != "micropython":
        return
    import micropython
    big = bytearray(16 * 1024)
    buf = bytearray(256)
    view = memoryview(buf)
    micropython.heap_lock()
    try:
        mem.copy(big, 4096, view, 0, 256)
        mem.copy(buf, 0, big, 8192, 256)
        mem.fill(big, 0, 4096, 0xFF)
        n = mem.count(big, 0, 4096, 0xFF)
        ok = mem.program(big, 512, view, 256, 0xFF)
        refused = mem.program(big, 512, view, 256, 0xFF)
    finally:
        micropython.heap_unlock()
    eq(n, 4096)
    eq((ok, refused), (True, False), "zeros programmed, then refused over them")
