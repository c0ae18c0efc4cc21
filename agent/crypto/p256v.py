# The width-w NAF of agent.crypto.p256 for MicroPython's viper emitter: machine-word
# arithmetic on the scalar's bytes, nothing allocated (the plain p256._wnaf spends about
# 125 k instructions of a Cortex-M3 a scalar on bytecode; this one, with the scalar's
# to_bytes, about 14 k). Only agent.crypto.p256 imports it, at its first verification;
# without the emitter (or under CPython) the import fails and p256._wnaf runs.
import micropython


@micropython.viper
def wnaf(kb: ptr8, w: int, out: ptr8) -> int:
    # p256._wnaf, argument for argument: kb the scalar's 36 bytes, little-endian
    # (k < 2^256), 2 <= w <= 7; digit i into out[i] (257 bytes, every one written) as a
    # signed byte; returns the number of digits up to the last nonzero one.
    i = 0
    while i < 257:
        out[i] = 0
        i += 1
    m = (1 << w) - 1
    half = 1 << (w - 1)
    acc = 0
    nb = 0
    i = 0
    j = 0
    top = 0
    while i < 257:
        if nb <= w:
            acc += (int(kb[j]) | (int(kb[j + 1]) << 8)) << nb
            nb += 16
            j += 2
        if acc & 1:
            d = acc & m
            if d >= half:
                d -= m + 1
            acc = (acc - d) >> w
            out[i] = d & 0xFF
            top = i + 1
            i += w
            nb -= w
        elif acc & 2:
            acc = acc >> 1
            nb -= 1
            i += 1
        else:  # two zero digits
            acc = acc >> 2
            nb -= 2
            i += 2
    return top
