# SHA-256 absorbing for MicroPython's viper emitter: machine-word arithmetic on the state
# as agent.crypto.sha256r keeps it (the journal's layout), in place, nothing allocated. Only
# agent.crypto.sha256r imports it, at its first use; a port or build without the emitter (or
# CPython) fails the import and sha256r uses its plain Python function instead.
#
# Words are unsigned: on a 64-bit port a word may carry bits above 31, so the two sums that
# are shifted right later (a and e) are masked, and the schedule and state words are
# truncated by their 32-bit stores. No `~` (viper lacks it before 1.23): Ch and Maj are
# written without it.
import micropython


@micropython.viper
def absorb(s: ptr32, t: ptr32, d: ptr8, n: int):
    # s: the state (agent.crypto.sha256r.STATE_FMT: 8 words, the length, 64 pending bytes at 36);
    # t: 64 schedule words, the 64 round constants, then 0xFFFFFFFF; d[:n]: the data
    sb = ptr8(s)
    m = uint(t[128])
    fill = int(s[8]) & 63
    s[8] = uint(s[8]) + uint(n)
    i = 0
    while i < n:
        if fill == 0 and n - i >= 64:     # a whole block in place
            src = d
            o = i
            i += 64
        else:
            k = 64 - fill
            if k > n - i:
                k = n - i
            while k > 0:
                sb[36 + fill] = d[i]
                fill += 1
                i += 1
                k -= 1
            if fill < 64:
                break
            src = sb                        # the pending bytes make a block
            o = 36
            fill = 0
        # the compression function (FIPS 180-4, 6.2.2) on src[o:o + 64]
        j = 0
        while j < 16:
            p = o + 4 * j
            t[j] = ((uint(src[p]) << 24) | (uint(src[p + 1]) << 16) | (uint(src[p + 2]) << 8)
                    | uint(src[p + 3]))
            j += 1
        while j < 64:
            x = uint(t[j - 15])
            y = uint(t[j - 2])
            s0 = ((x >> 7) | (x << 25)) ^ ((x >> 18) | (x << 14)) ^ (x >> 3)
            s1 = ((y >> 17) | (y << 15)) ^ ((y >> 19) | (y << 13)) ^ (y >> 10)
            t[j] = uint(t[j - 16]) + s0 + uint(t[j - 7]) + s1
            j += 1
        a = uint(s[0])
        bb = uint(s[1])
        c = uint(s[2])
        dd = uint(s[3])
        e = uint(s[4])
        f = uint(s[5])
        g = uint(s[6])
        hh = uint(s[7])
        j = 0
        while j < 64:
            s1 = ((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21)) ^ ((e >> 25) | (e << 7))
            t1 = hh + s1 + (g ^ (e & (f ^ g))) + uint(t[64 + j]) + uint(t[j])
            s0 = ((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19)) ^ ((a >> 22) | (a << 10))
            t2 = s0 + ((a & bb) | (c & (a | bb)))
            hh = g
            g = f
            f = e
            e = (dd + t1) & m
            dd = c
            c = bb
            bb = a
            a = (t1 + t2) & m
            j += 1
        s[0] = uint(s[0]) + a
        s[1] = uint(s[1]) + bb
        s[2] = uint(s[2]) + c
        s[3] = uint(s[3]) + dd
        s[4] = uint(s[4]) + e
        s[5] = uint(s[5]) + f
        s[6] = uint(s[6]) + g
        s[7] = uint(s[7]) + hh
