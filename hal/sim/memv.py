# Byte moves over an emulated flash for MicroPython's viper emitter. Assigning a slice of a
# bytearray or memoryview moves the whole rest of the array after the slice onto itself
# (py/obj.h mp_seq_replace_slice_no_grow), so a 256-byte write into a flash of a megabyte
# costs as much as copying the megabyte; these loops touch only the bytes named. Only
# hal.sim.mem imports this module; without the emitter (or on CPython) the import fails and
# hal.sim.mem uses slices.
import micropython


@micropython.viper
def copy(dst: ptr8, doff: int, src: ptr8, soff: int, n: int):
    # dst[doff:doff + n] = src[soff:soff + n] (no overlap)
    d = ptr8(uint(dst) + uint(doff))
    s = ptr8(uint(src) + uint(soff))
    if ((uint(d) | uint(s) | uint(n)) & 3) == uint(0):
        d4 = ptr32(d)
        s4 = ptr32(s)
        i = 0
        w = n >> 2
        while i < w:
            d4[i] = s4[i]
            i += 1
        return
    i = 0
    while i < n:
        d[i] = s[i]
        i += 1


@micropython.viper
def fill(dst: ptr8, off: int, n: int, v: int):
    # dst[off:off + n] = bytes((v,)) * n
    d = ptr8(uint(dst) + uint(off))
    i = 0
    if ((uint(d) | uint(n)) & 3) == uint(0):
        d4 = ptr32(d)
        w = n >> 2
        v4 = v | (v << 8)
        v4 = v4 | (v4 << 16)
        while i < w:
            d4[i] = v4
            i += 1
        return
    while i < n:
        d[i] = v
        i += 1


@micropython.viper
def count(m: ptr8, off: int, n: int, v: int) -> int:
    # how many of m[off:off + n] equal v
    d = ptr8(uint(m) + uint(off))
    c = 0
    i = 0
    while i < n:
        if d[i] == v:
            c += 1
        i += 1
    return c
