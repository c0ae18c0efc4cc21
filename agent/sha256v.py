# The SHA-256 compression function (FIPS 180-4, 6.2.2) for MicroPython's viper emitter:
# machine-word arithmetic on the state and schedule in place, nothing allocated. Only
# agent.sha256r imports it, at its first use; a port or build without the emitter (or
# CPython) fails the import and sha256r uses its plain Python function instead.
#
# Words are unsigned: on a 64-bit port a word may carry bits above 31, so the two sums that
# are shifted right later (a and e) are masked, and the schedule words are truncated by
# their 32-bit stores. No `~` (viper lacks it before 1.23): Ch and Maj are written without.
import micropython


@micropython.viper
def compress(h: ptr32, t: ptr32, b: ptr8, o: int):
    # h: the 8 state words; t: 64 schedule words, the 64 round constants, then 0xFFFFFFFF;
    # b[o:o + 64]: the block
    m = uint(t[128])
    i = 0
    while i < 16:
        j = o + 4 * i
        t[i] = (uint(b[j]) << 24) | (uint(b[j + 1]) << 16) | (uint(b[j + 2]) << 8) | uint(b[j + 3])
        i += 1
    while i < 64:
        x = uint(t[i - 15])
        y = uint(t[i - 2])
        s0 = ((x >> 7) | (x << 25)) ^ ((x >> 18) | (x << 14)) ^ (x >> 3)
        s1 = ((y >> 17) | (y << 15)) ^ ((y >> 19) | (y << 13)) ^ (y >> 10)
        t[i] = uint(t[i - 16]) + s0 + uint(t[i - 7]) + s1
        i += 1
    a = uint(h[0])
    bb = uint(h[1])
    c = uint(h[2])
    d = uint(h[3])
    e = uint(h[4])
    f = uint(h[5])
    g = uint(h[6])
    k = uint(h[7])
    i = 0
    while i < 64:
        s1 = ((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21)) ^ ((e >> 25) | (e << 7))
        t1 = k + s1 + (g ^ (e & (f ^ g))) + uint(t[64 + i]) + uint(t[i])
        s0 = ((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19)) ^ ((a >> 22) | (a << 10))
        t2 = s0 + ((a & bb) | (c & (a | bb)))
        k = g
        g = f
        f = e
        e = (d + t1) & m
        d = c
        c = bb
        bb = a
        a = (t1 + t2) & m
        i += 1
    h[0] = uint(h[0]) + a
    h[1] = uint(h[1]) + bb
    h[2] = uint(h[2]) + c
    h[3] = uint(h[3]) + d
    h[4] = uint(h[4]) + e
    h[5] = uint(h[5]) + f
    h[6] = uint(h[6]) + g
    h[7] = uint(h[7]) + k
