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

from agent.crypto.sha256r import CONSTANTS


@micropython.viper
def absorb(s: ptr32, t: ptr32, d: ptr8, n: int):
    # s: the state (agent.crypto.sha256r.STATE_FMT: 8 words, the length, 64 pending bytes at 36);
    # t: the 64 words of the message schedule; d[:n]: the data
    sb = ptr8(s)
    k = ptr32(CONSTANTS)            # the round constants (a bytes constant, not the heap's),
    m = uint(k[64])                 # then 0xFFFFFFFF
    fill = int(s[8]) & 63
    s[8] = uint(s[8]) + uint(n)
    i = 0
    while i < n:
        if fill == 0 and n - i >= 64:     # a whole block in place
            src = d
            o = i
            i += 64
        else:
            r = 64 - fill
            if r > n - i:
                r = n - i
            while r > 0:
                sb[36 + fill] = d[i]
                fill += 1
                i += 1
                r -= 1
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
        # four rounds a turn, the working variables renamed rather than moved: round i
        # finds a..h under the names rotated right by i. x is T1; the new e (d + T1) and the
        # new a (T1 + T2) are written where d and h stood. After the four, a..h are under
        # e, f, g, hh, a, bb, c, dd: four swaps give them their names back (eight rounds a
        # turn need no swap but twice the code).
        j = 0
        while j < 64:
            x = (hh + (((e >> 6) | (e << 26)) ^ ((e >> 11) | (e << 21))
                 ^ ((e >> 25) | (e << 7))) + (g ^ (e & (f ^ g))) + uint(k[j]) + uint(t[j]))
            dd = (dd + x) & m
            hh = (x + (((a >> 2) | (a << 30)) ^ ((a >> 13) | (a << 19))
                  ^ ((a >> 22) | (a << 10))) + ((a & bb) | (c & (a | bb)))) & m
            j += 1
            x = (g + (((dd >> 6) | (dd << 26)) ^ ((dd >> 11) | (dd << 21))
                 ^ ((dd >> 25) | (dd << 7))) + (f ^ (dd & (e ^ f))) + uint(k[j]) + uint(t[j]))
            c = (c + x) & m
            g = (x + (((hh >> 2) | (hh << 30)) ^ ((hh >> 13) | (hh << 19))
                  ^ ((hh >> 22) | (hh << 10))) + ((hh & a) | (bb & (hh | a)))) & m
            j += 1
            x = (f + (((c >> 6) | (c << 26)) ^ ((c >> 11) | (c << 21))
                 ^ ((c >> 25) | (c << 7))) + (e ^ (c & (dd ^ e))) + uint(k[j]) + uint(t[j]))
            bb = (bb + x) & m
            f = (x + (((g >> 2) | (g << 30)) ^ ((g >> 13) | (g << 19))
                  ^ ((g >> 22) | (g << 10))) + ((g & hh) | (a & (g | hh)))) & m
            j += 1
            x = (e + (((bb >> 6) | (bb << 26)) ^ ((bb >> 11) | (bb << 21))
                 ^ ((bb >> 25) | (bb << 7))) + (dd ^ (bb & (c ^ dd))) + uint(k[j]) + uint(t[j]))
            a = (a + x) & m
            e = (x + (((f >> 2) | (f << 30)) ^ ((f >> 13) | (f << 19))
                  ^ ((f >> 22) | (f << 10))) + ((f & g) | (hh & (f | g)))) & m
            j += 1
            x = a
            a = e
            e = x
            x = bb
            bb = f
            f = x
            x = c
            c = g
            g = x
            x = dd
            dd = hh
            hh = x
        s[0] = uint(s[0]) + a
        s[1] = uint(s[1]) + bb
        s[2] = uint(s[2]) + c
        s[3] = uint(s[3]) + dd
        s[4] = uint(s[4]) + e
        s[5] = uint(s[5]) + f
        s[6] = uint(s[6]) + g
        s[7] = uint(s[7]) + hh
