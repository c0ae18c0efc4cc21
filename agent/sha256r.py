# SHA-256 whose state can be saved and restored (FIPS 180-4), for the one hash the agent
# must carry across a reset: the Manufacturer Image hash of a compressed image, whose
# encoded bytes are not kept in flash. hashlib's objects cannot be saved, so the hash is
# done here: by agent.sha256v's viper function where the port has the emitter (Thumb,
# Xtensa, RV32, x64: no allocation per block), else by the plain Python one below.
import struct
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_M = const(0xFFFFFFFF)
_K = (0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
      0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
      0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
      0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
      0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
      0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
      0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
      0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
      0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
      0xC67178F2)
_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
       0x5BE0CD19)

STATE_FMT = "<8II64s"
#   8I   the eight working words after the last whole 64-byte block
#   I    message length so far, in bytes
#   64s  bytes of the block not yet complete (length mod 64 of them count)
STATE_SIZE = const(100)

_fn = None      # the compression function in use, chosen at the first Sha256()
_tab = None     # its table: 64 schedule words, the 64 round constants, 0xFFFFFFFF


def plain(h, t, b, o):
    """The compression function in plain Python, with the viper one's arguments: h the
    state (8 little-endian words in a bytearray), t the table (unused here), b[o:o + 64]
    the block. Its schedule is a new list each call: on a 32-bit port most words are heap
    objects, which a list kept between calls would leave scattered over the heap."""
    w = [0] * 64
    M = _M
    for i in range(16):
        j = o + 4 * i
        w[i] = (b[j] << 24) | (b[j + 1] << 16) | (b[j + 2] << 8) | b[j + 3]
    for i in range(16, 64):
        x = w[i - 15]
        y = w[i - 2]
        s0 = ((x >> 7 | x << 25) ^ (x >> 18 | x << 14) ^ (x >> 3)) & M
        s1 = ((y >> 17 | y << 15) ^ (y >> 19 | y << 13) ^ (y >> 10)) & M
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M
    v = struct.unpack_from("<8I", h, 0)
    a, b_, c, d, e, f, g, hh = v
    K = _K
    for i in range(64):
        s1 = ((e >> 6 | e << 26) ^ (e >> 11 | e << 21) ^ (e >> 25 | e << 7)) & M
        t1 = (hh + s1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) & M
        s0 = ((a >> 2 | a << 30) ^ (a >> 13 | a << 19) ^ (a >> 22 | a << 10)) & M
        t2 = (s0 + ((a & b_) ^ (a & c) ^ (b_ & c))) & M
        hh = g
        g = f
        f = e
        e = (d + t1) & M
        d = c
        c = b_
        b_ = a
        a = (t1 + t2) & M
    struct.pack_into("<8I", h, 0, (v[0] + a) & M, (v[1] + b_) & M, (v[2] + c) & M,
                     (v[3] + d) & M, (v[4] + e) & M, (v[5] + f) & M, (v[6] + g) & M,
                     (v[7] + hh) & M)



def native():
    """The viper compression function, or None where the port (or CPython) has none."""
    try:
        from agent.sha256v import compress
    except Exception:   # ImportError, or the port cannot load or compile native code
        return None
    return compress


def table():
    """The shared table of the compression functions (built once)."""
    global _tab
    if _tab is None:
        t = bytearray(4 * 129)
        struct.pack_into("<64I", t, 256, *_K)
        struct.pack_into("<I", t, 512, _M)
        _tab = t
    return _tab


def engine(name=None):
    """The compression function in use, "viper" or "python"; name chooses one ("viper"
    raises ValueError where native() finds none). Without name: viper where there is one."""
    global _fn
    if name == "python":
        _fn = plain
    elif name == "viper" or (name is None and _fn is None):
        f = native()
        if f is None and name == "viper":
            raise ValueError("no viper emitter")
        _fn = f or plain
    table()
    return "python" if _fn is plain else "viper"


class Sha256:
    def __init__(self, state=None):
        if _fn is None:
            engine()
        self._h = bytearray(32)
        self._buf = bytearray(64)
        if state is None:
            struct.pack_into("<8I", self._h, 0, *_IV)
            self._n = 0
        else:
            mv = memoryview(state)
            self._h[:] = mv[0:32]
            self._n = struct.unpack_from("<I", mv, 32)[0]
            self._buf[:] = mv[36:100]

    def save(self, out, off=0):
        """Write the state (STATE_SIZE bytes, STATE_FMT) into out at off."""
        out[off:off + 32] = self._h
        struct.pack_into("<I64s", out, off + 32, self._n, self._buf)

    def update(self, data):
        f = _fn
        t = _tab
        mv = memoryview(data)
        n = len(mv)
        i = 0
        fill = self._n & 63
        self._n += n
        if fill:
            take = 64 - fill
            if take > n:
                take = n
            self._buf[fill:fill + take] = mv[:take]
            i = take
            if fill + take < 64:
                return
            f(self._h, t, self._buf, 0)
        while n - i >= 64:
            f(self._h, t, mv, i)
            i += 64
        if i < n:
            self._buf[0:n - i] = mv[i:]

    def digest(self):
        c = Sha256()
        c._h[:] = self._h
        c._n = self._n
        c._buf[:] = self._buf
        n = self._n
        pad = bytearray(72)
        pad[0] = 0x80
        k = (55 - n) & 63
        struct.pack_into(">Q", pad, k + 1, n << 3)
        c.update(memoryview(pad)[:k + 9])
        return struct.pack(">8I", *struct.unpack("<8I", c._h))
