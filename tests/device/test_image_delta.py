# agent.image.delta: a sector made from its op stream and the old payload, with each byte
# add the interpreter has (plain Python everywhere; viper on MicroPython), against the host
# encoder's output (build/testdata/delta_ops.bin: core_v2d's delta sectors made against
# core_v1's payload); and every kind of bad op stream refused with BAD_ENCODING.
import struct
import sys
from agent.image import delta
from agent.image.pack import pack_size
from agent.errors import BAD_ENCODING
from tutil import read_data, eq, raises


class _Ops:
    # an op stream read with readinto, a few bytes at a time (as deflate.DeflateIO may)
    def __init__(self, b, step=7):
        self.b = bytes(b)
        self.i = 0
        self.step = step

    def readinto(self, buf):
        n = min(len(buf), self.step, len(self.b) - self.i)
        buf[:n] = self.b[self.i:self.i + n]
        self.i += n
        return n


def _vectors():
    v = read_data("delta_ops.bin")
    out = []
    i = 0
    while i < len(v):
        n, k = struct.unpack_from("<II", v, i)
        i += 8
        out.append((v[i:i + k], v[i + k:i + k + n]))
        i += k + n
    return out


def _maker(old, tmp=64, piece=256):
    def read_old(off, buf):
        if off < 0 or off + len(buf) > len(old):
            raise AssertionError("read of the old payload out of range")
        buf[:] = old[off:off + len(buf)]
    return delta.Maker(read_old, len(old), bytearray(tmp), memoryview(bytearray(piece)))


def _make(mk, ops, n, step=7):
    # the sector mk makes of ops, joined from the pieces it gives its sink: every piece
    # but the last as long as the piece buffer, and the buffer itself or its start
    pieces = []

    def sink(mv):
        if pieces and len(pieces[-1]) != len(mk.piece):
            raise AssertionError("a piece after a short one")
        if len(mv) > len(mk.piece) or not len(mv):
            raise AssertionError("a piece of %d bytes" % len(mv))
        pieces.append(bytes(mv))
    eq(mk.make(_Ops(ops, step), n, sink), n, "length")
    return b"".join(pieces)


def _whole(ops, old, n):
    # the sector made in one buffer of its size, as the maker made it before it streamed:
    # the reference its pieces are held to
    out = bytearray(n)
    rd = _Ops(ops, 1 << 20)
    one = bytearray(1)

    def size():
        v = s = 0
        while True:
            rd.readinto(one)
            b = one[0]
            if not s:
                v, neg, s = b & 0x3F, b & 0x40, 6
            else:
                v |= (b & 0x7F) << s
                s += 7
            if not b & 0x80:
                return -v if neg else v
    o = src = 0
    while o < n:
        k = size()
        d = bytearray(k)
        rd.readinto(d)
        for i in range(k):
            out[o + i] = (old[src + i] + d[i]) & 0xFF
        o += k
        src += k
        k = size()
        x = bytearray(k)
        rd.readinto(x)
        out[o:o + k] = x
        o += k
        src += size()
    return bytes(out)


def _adds():
    out = [delta.add]
    try:
        from agent.image.deltav import add
        out.append(add)
    except (ImportError, SyntaxError, ValueError):
        pass
    return out


def test_viper_add_on_micropython():
    # every MicroPython the project tests on has the emitter, and the maker uses it there
    _maker(b"x")
    native = delta._add is not delta.add
    eq(native, sys.implementation.name == "micropython", "viper add in use")


def test_adds_agree():
    a = bytearray(range(200, 256)) + bytearray(range(0, 200))
    b = bytearray((i * 37 + 11) & 0xFF for i in range(256))
    want = None
    for add in _adds():
        for view in (False, True):  # the maker adds into a view of its piece buffer
            out = bytearray(a)
            add(memoryview(out) if view else out, 3, b, 250)
            if want is None:
                want = bytes(out)
                eq(out[3], (a[3] + b[0]) & 0xFF, "first byte")
                eq(out[:3], a[:3], "bytes before")
                eq(out[253:], a[253:], "bytes after")
            eq(bytes(out), want, "add %r, view %r" % (add, view))


def test_sectors_of_the_release():
    # streamed through pieces of any size (the writer's: 2 KiB, old bytes read 512 at a
    # time), the sectors are the host's and what one whole buffer made of the same stream
    old = read_data("core_v1.bin")
    vec = _vectors()
    assert vec, "no delta sectors in the test data"
    for add in _adds():
        for tmp, piece in ((64, 2048), (1000, 512), (512, 2048), (4096, 100), (7, 4096)):
            mk = _maker(old, tmp, piece)
            mk.add = add
            for ops, sec in vec:
                got = _make(mk, ops, len(sec))
                eq(got, bytes(sec), "sector, read %d, piece %d" % (tmp, piece))
                if piece == 2048:
                    eq(got, _whole(ops, old, len(sec)), "as made whole")


def _ops(*entries):
    # an op stream of (diff bytes, extra bytes, adjustment) entries
    from_size = pack_size
    out = b""
    for d, x, adj in entries:
        out += from_size(len(d)) + d + from_size(len(x)) + x + from_size(adj)
    return out


def test_a_stream_made_here():
    old = bytes(range(100))
    for piece in (1, 3, 8, 19, 400):
        mk = _maker(old, 8, piece)
        # 10 bytes of old + 1, 3 extra, then back 5 and 4 bytes of old + 0, then 2 extra
        ops = _ops((b"\x01" * 10, b"abc", -5), (bytes(4), b"zz", 0))
        want = bytes(range(1, 11)) + b"abc" + bytes(range(5, 9)) + b"zz"
        eq(_make(mk, ops, 19, 1), want, "made, piece %d" % piece)
        eq(_whole(ops, old, 19), want, "made whole")
        ops = _ops((bytes(50), b"", 0), (b"", bytes(300), 0))
        eq(_make(mk, ops, 350), old[:50] + bytes(300), "long extra, piece %d" % piece)
    # a size in three bytes, and a negative one
    eq(pack_size(-70), b"\xc6\x01", "negative size")


def test_bad_streams_refused():
    old = bytes(range(100))
    mk = _maker(old, 16, 8)
    cases = (
        _ops((bytes(21), b"", 0)),                    # diff past the sector
        _ops((bytes(10), bytes(11), 0)),              # extra past the sector
        _ops((bytes(5), b"", 96), (bytes(5), b"", 0)),  # diff past the old payload
        _ops((bytes(5), b"", -6), (bytes(5), b"", 0)),  # diff before the old payload
        _ops((bytes(10), bytes(10), 0)) + b"\x00",    # goes on after the sector
        _ops((bytes(10), b"", 0)),                    # ends before the sector
        _ops((bytes(10), bytes(10), 0))[:-3],         # ends inside the extra bytes
        b"\x85",                                      # ends inside a size
        b"\xff\xff\xff\xff\xff\x01",                  # a size too long
    )
    for i, ops in enumerate(cases):
        got = []
        e = raises(BAD_ENCODING, mk.make, _Ops(ops), 20, lambda mv: got.append(len(mv)))
        assert e.detail, "case %d has a reason" % i
        assert sum(got) < 20, "case %d: no whole sector given (%r)" % (i, got)
