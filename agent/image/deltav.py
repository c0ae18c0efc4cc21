# The byte add of agent.image.delta for MicroPython's viper emitter (the plain loop costs a
# few hundred instructions a byte on a microcontroller). Only agent.image.delta imports it,
# at its first Maker; without the emitter (or under CPython) the import fails and the plain
# loop runs.
import micropython


@micropython.viper
def add(dst: ptr8, doff: int, src: ptr8, n: int):
    # dst[doff + i] += src[i] (mod 256) for i < n
    d = ptr8(uint(dst) + uint(doff))
    i = 0
    while i < n:
        d[i] = d[i] + src[i]
        i += 1
