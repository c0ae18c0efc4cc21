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
# The 64 round constants as little-endian words, then 0xFFFFFFFF (the viper function's
# mask): a bytes constant, in flash when the module is frozen, read by both functions.
CONSTANTS = (
    b"\x98\x2f\x8a\x42\x91\x44\x37\x71\xcf\xfb\xc0\xb5\xa5\xdb\xb5\xe9\x5b\xc2\x56\x39"
    b"\xf1\x11\xf1\x59\xa4\x82\x3f\x92\xd5\x5e\x1c\xab\x98\xaa\x07\xd8\x01\x5b\x83\x12"
    b"\xbe\x85\x31\x24\xc3\x7d\x0c\x55\x74\x5d\xbe\x72\xfe\xb1\xde\x80\xa7\x06\xdc\x9b"
    b"\x74\xf1\x9b\xc1\xc1\x69\x9b\xe4\x86\x47\xbe\xef\xc6\x9d\xc1\x0f\xcc\xa1\x0c\x24"
    b"\x6f\x2c\xe9\x2d\xaa\x84\x74\x4a\xdc\xa9\xb0\x5c\xda\x88\xf9\x76\x52\x51\x3e\x98"
    b"\x6d\xc6\x31\xa8\xc8\x27\x03\xb0\xc7\x7f\x59\xbf\xf3\x0b\xe0\xc6\x47\x91\xa7\xd5"
    b"\x51\x63\xca\x06\x67\x29\x29\x14\x85\x0a\xb7\x27\x38\x21\x1b\x2e\xfc\x6d\x2c\x4d"
    b"\x13\x0d\x38\x53\x54\x73\x0a\x65\xbb\x0a\x6a\x76\x2e\xc9\xc2\x81\x85\x2c\x72\x92"
    b"\xa1\xe8\xbf\xa2\x4b\x66\x1a\xa8\x70\x8b\x4b\xc2\xa3\x51\x6c\xc7\x19\xe8\x92\xd1"
    b"\x24\x06\x99\xd6\x85\x35\x0e\xf4\x70\xa0\x6a\x10\x16\xc1\xa4\x19\x08\x6c\x37\x1e"
    b"\x4c\x77\x48\x27\xb5\xbc\xb0\x34\xb3\x0c\x1c\x39\x4a\xaa\xd8\x4e\x4f\xca\x9c\x5b"
    b"\xf3\x6f\x2e\x68\xee\x82\x8f\x74\x6f\x63\xa5\x78\x14\x78\xc8\x84\x08\x02\xc7\x8c"
    b"\xfa\xff\xbe\x90\xeb\x6c\x50\xa4\xf7\xa3\xf9\xbe\xf2\x78\x71\xc6\xff\xff\xff\xff"
)
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
_tab = None     # its table: the 64 words of the message schedule


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
    K = struct.unpack_from("<64I", CONSTANTS)
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
    """The table the absorbing functions share (made once): the message schedule's 64 words
    (the viper function's; the plain one makes its own)."""
    global _tab
    if _tab is None:
        _tab = bytearray(256)
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
