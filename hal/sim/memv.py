# Byte moves over an emulated flash for MicroPython's viper emitter. Assigning a slice of a
# bytearray or memoryview moves the whole rest of the array after the slice onto itself
# (py/obj.h mp_seq_replace_slice_no_grow), so a 256-byte write into a flash of a megabyte
# costs as much as copying the megabyte; these loops touch only the bytes named. Only
# hal.sim.mem imports this module; without the emitter (or on CPython) the import fails and
# hal.sim.mem uses slices.
#
# Speed (Cortex-M3): the emitter keeps the first three parameters of a function in registers
# and the other locals in its frame, so the loops run on the first three (reassigned to the
# moving pointers and the end address) and move 16 or 32 bytes per pass through constant
# offsets. Word loops need both addresses and the length to be multiples of 4; anything else
# takes the byte loops.
import micropython


@micropython.viper
def copy(dst: ptr32, end: int, src: ptr32, soff: int, n: int):
    # dst[doff:doff + n] = src[soff:soff + n] (no overlap); end is doff on entry, then the
    # end address
    dst = ptr32(uint(dst) + uint(end))
    src = ptr32(uint(src) + uint(soff))
    if ((uint(dst) | uint(src) | uint(n)) & 3) != uint(0):
        d = ptr8(dst)
        s = ptr8(src)
        i = 0
        while i < n:
            d[i] = s[i]
            i += 1
        return
    end = int(uint(dst) + uint(n - (n & 15)))
    while uint(dst) < uint(end):
        dst[0] = src[0]
        dst[1] = src[1]
        dst[2] = src[2]
        dst[3] = src[3]
        dst = ptr32(uint(dst) + uint(16))
        src = ptr32(uint(src) + uint(16))
    end = int(uint(end) + uint(n & 15))
    while uint(dst) < uint(end):
        dst[0] = src[0]
        dst = ptr32(uint(dst) + uint(4))
        src = ptr32(uint(src) + uint(4))


@micropython.viper
def fill(dst: ptr32, off: int, n: int, v: int):
    # dst[off:off + n] = bytes((v,)) * n; off then holds an end address, n the value
    dst = ptr32(uint(dst) + uint(off))
    if ((uint(dst) | uint(n)) & 3) != uint(0):
        d = ptr8(dst)
        i = 0
        while i < n:
            d[i] = v
            i += 1
        return
    off = int(uint(dst) + uint(n - (n & 31)))
    t = n & 31
    n = v | (v << 8)
    n = n | (n << 16)
    while uint(dst) < uint(off):
        dst[0] = n
        dst[1] = n
        dst[2] = n
        dst[3] = n
        dst[4] = n
        dst[5] = n
        dst[6] = n
        dst[7] = n
        dst = ptr32(uint(dst) + uint(32))
    off = int(uint(off) + uint(t))
    while uint(dst) < uint(off):
        dst[0] = n
        dst = ptr32(uint(dst) + uint(4))


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


@micropython.viper
def program(dst: ptr32, end: int, src: ptr32, n: int, v: int) -> bool:
    # dst[off:off + n] = src[0:n] if all n bytes there equal v (end is off on entry), in one
    # pass that checks and copies; when one does not, the bytes already copied get v back
    # and the result is False: dst is as it was. A group of 4 words is erased when each of
    # them XOR v (the erased value in every byte) is 0.
    dst = ptr32(uint(dst) + uint(end))
    if ((uint(dst) | uint(src) | uint(n)) & 3) == uint(0):
        v = v | (v << 8)
        v = v | (v << 16)
        end = int(uint(dst) + uint(n - (n & 15)))
        while uint(dst) < uint(end):
            if ((dst[0] ^ v) | (dst[1] ^ v) | (dst[2] ^ v) | (dst[3] ^ v)) != 0:
                break
            dst[0] = src[0]
            dst[1] = src[1]
            dst[2] = src[2]
            dst[3] = src[3]
            dst = ptr32(uint(dst) + uint(16))
            src = ptr32(uint(src) + uint(16))
        # the last words; after a refused group, its words up to the first one not erased
        end = int(uint(end) + uint(n & 15))
        while uint(dst) < uint(end):
            if dst[0] != v:
                break
            dst[0] = src[0]
            dst = ptr32(uint(dst) + uint(4))
            src = ptr32(uint(src) + uint(4))
    else:
        end = int(uint(dst) + uint(n))
        d = ptr8(dst)
        s = ptr8(src)
        while uint(d) < uint(end):
            if d[0] != v:
                break
            d[0] = s[0]
            d = ptr8(uint(d) + uint(1))
            s = ptr8(uint(s) + uint(1))
        dst = ptr32(d)
    if uint(dst) >= uint(end):
        return True
    d = ptr8(uint(end) - uint(n))
    while uint(d) < uint(dst):
        d[0] = v
        d = ptr8(uint(d) + uint(1))
    return False
