# SHA-256 whose state can be saved and restored (FIPS 180-4), for the one hash the agent
# must carry across a reset: the Manufacturer Image hash of a compressed image, whose
# encoded bytes are not kept in flash. hashlib's objects cannot be saved, so the hash is
# done here: by agent.crypto.sha256v's viper function where the port has the emitter (Thumb,
# Xtensa, RV32, x64: nothing allocated), else by the plain Python one below. Both work on
# the state as the journal stores it (STATE_FMT), in one bytearray.
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
#   I    message length so far, in bytes (modulo 2^32: an image is smaller)
#   64s  bytes of the block not yet complete (length mod 64 of them count)
STATE_SIZE = const(100)
_PEND = const(36)       # where the pending bytes start
_RECORD = "<100s"       # the state as one field: struct checks the buffer's size

_fn = None      # the absorbing function in use, chosen at the first Sha256()
_tab = None     # its table: 64 schedule words, the 64 round constants, 0xFFFFFFFF


def plain(s, t, d, n):
    """Absorb d[:n] into the state s (a STATE_SIZE bytearray): plain Python, with the viper
    function's arguments (t, the table, is not used here)."""
    total = struct.unpack_from("<I", s, 32)[0]
    struct.pack_into("<I", s, 32, (total + n) & _M)
    fill = total & 63
    i = 0
    while i < n:
        if fill == 0 and n - i >= 64:
            _block(s, d, i)
            i += 64
            continue
        k = 64 - fill
        if k > n - i:
            k = n - i
        s[_PEND + fill:_PEND + fill + k] = d[i:i + k]
        fill += k
        i += k
        if fill < 64:
            break
        _block(s, s, _PEND)
        fill = 0


def _block(s, b, o):
    # the compression function (FIPS 180-4, 6.2.2) on the words of s and b[o:o + 64]; the
    # schedule is a new list each call: on a 32-bit port most words are heap objects,
    # which a list kept between calls would leave scattered over the heap
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
    v = struct.unpack_from("<8I", s, 0)
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
    struct.pack_into("<8I", s, 0, (v[0] + a) & M, (v[1] + b_) & M, (v[2] + c) & M,
                     (v[3] + d) & M, (v[4] + e) & M, (v[5] + f) & M, (v[6] + g) & M,
                     (v[7] + hh) & M)


def native():
    """The viper absorbing function, or None where the port (or CPython) has none."""
    try:
        from agent.crypto.sha256v import absorb
    except Exception:   # ImportError, or the port cannot load or compile native code
        return None
    return absorb


def table():
    """The table the absorbing functions share (built once)."""
    global _tab
    if _tab is None:
        t = bytearray(4 * 129)
        struct.pack_into("<64I", t, 256, *_K)
        struct.pack_into("<I", t, 512, _M)
        _tab = t
    return _tab


def engine(name=None):
    """The absorbing function in use, "viper" or "python"; name chooses one ("viper"
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
        self._s = bytearray(STATE_SIZE)
        if state is None:
            struct.pack_into("<8I", self._s, 0, *_IV)
        else:
            self._s[:] = struct.unpack_from(_RECORD, state, 0)[0]

    def save(self, out, off=0):
        """Write the state (STATE_SIZE bytes, STATE_FMT) into out at off."""
        struct.pack_into(_RECORD, out, off, self._s)

    def update(self, data):
        """Absorb data (any buffer); nothing is allocated on the viper path."""
        _fn(self._s, _tab, data, len(data))

    def digest(self):
        c = Sha256(self._s)
        n = struct.unpack_from("<I", self._s, 32)[0]
        pad = bytearray(72)
        pad[0] = 0x80
        k = (55 - n) & 63
        struct.pack_into(">Q", pad, k + 1, n << 3)
        c.update(memoryview(pad)[:k + 9])
        return struct.pack(">8I", *struct.unpack_from("<8I", c._s, 0))
