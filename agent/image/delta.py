# A delta sector made from its op stream and the old payload (the running slot, which is
# only ever read). The op stream (host_tools/delta.py makes it: the entries of a detools
# "sequential" patch) is, until the sector is complete:
#   diff size, diff bytes      out = old[src + i] + diff[i] (mod 256); src moves on by size
#   extra size, extra bytes    out = the bytes as they are; src stays
#   adjustment                 src moves by it (signed)
# src starts at 0 for every sector. A size is detools' variable-length integer: a first
# byte of bit 7 "more", bit 6 "negative" and 6 value bits, then bytes of 7 value bits,
# least significant first. Every size is checked against the sector and the old payload
# before it is used, so a stream that is not exactly this sector's ops is BAD_ENCODING.
#
# The byte add runs in agent.image.deltav's viper function where the port has the emitter
# (chosen by pick(): when the delta's decoder is reserved, else at the first Maker), else
# in add() below; the tests run both.
from agent import errors as E

_add = None  # the byte add in use, chosen by pick()


def add(dst, doff, src, n):
    """dst[doff + i] += src[i] (mod 256) for i < n: plain Python."""
    for i in range(n):
        dst[doff + i] = (dst[doff + i] + src[i]) & 0xFF


def pick():
    """Choose the byte add (agent.image.deltav's where the port has the emitter), once: at
    the first Maker, or before, when the delta's decoder is reserved (its code in the heap
    before the decoder's window)."""
    global _add
    if _add is not None:
        return
    try:
        from agent.image.deltav import add as v
    except (ImportError, SyntaxError, ValueError):  # CPython; no viper emitter on this port
        v = add
    _add = v


class Maker:
    """make(): one sector from an op stream (anything with readinto: deflate.DeflateIO
    over the sector's chunk) and the old payload, old_size bytes read through
    read_old(offset, buf) (buf filled whole), given to a sink in order, piece by piece.
    tmp: a scratch buffer for the old bytes (its length is the read size); piece: a
    memoryview the sector's bytes are made in, a piece at a time; both lent by the owner."""

    def __init__(self, read_old, old_size, tmp, piece):
        pick()
        self.add = _add
        self.read_old = read_old
        self.old_size = old_size
        self.tmp = tmp
        self.tv = memoryview(tmp)
        self.piece = piece
        self.one = bytearray(1)
        self.rd = None

    def _size(self):
        one = self.one
        if not self.rd.readinto(one):
            raise E.OtaError(E.BAD_ENCODING, "op stream ends inside a size")
        b = one[0]
        v = b & 0x3F
        neg = b & 0x40
        s = 6
        while b & 0x80:
            if s > 27:
                raise E.OtaError(E.BAD_ENCODING, "op stream size too long")
            if not self.rd.readinto(one):
                raise E.OtaError(E.BAD_ENCODING, "op stream ends inside a size")
            b = one[0]
            v |= (b & 0x7F) << s
            s += 7
        return -v if neg else v

    def _read(self, mv):
        # fill mv whole from the op stream
        n = len(mv)
        i = 0
        while i < n:
            k = self.rd.readinto(mv[i:] if i else mv)
            if not k:
                raise E.OtaError(E.BAD_ENCODING, "op stream ends inside its data")
            i += k

    def make(self, rd, n, sink):
        """The sector's n bytes made from the op stream rd, given to sink(view) in order: the
        piece buffer whole each time it is full, then its start with the rest (no call for
        none); OtaError(BAD_ENCODING) for a stream that is not exactly one sector's ops
        within the old payload (the pieces before it were given)."""
        self.rd = rd
        pv = self.piece
        t = len(self.tmp)
        room = len(pv)
        o = 0  # bytes of the sector made
        p = 0  # of them, in the piece
        src = 0
        while o < n:
            k = self._size()
            if k < 0 or o + k > n or src < 0 or src + k > self.old_size:
                raise E.OtaError(E.BAD_ENCODING, "diff of %d at %d, old offset %d"
                                 % (k, o, src))
            o += k
            while k:  # diff bytes, each added to the old byte it is made from
                m = room - p
                if m > k:
                    m = k
                if m > t:
                    m = t
                self._read(pv[p:p + m])
                self.read_old(src, self.tmp if m == t else self.tv[:m])
                self.add(pv, p, self.tmp, m)
                src += m
                k -= m
                p += m
                if p == room:
                    sink(pv)
                    p = 0
            k = self._size()
            if k < 0 or o + k > n:
                raise E.OtaError(E.BAD_ENCODING, "extra of %d at %d" % (k, o))
            o += k
            while k:  # extra bytes, as they are
                m = room - p
                if m > k:
                    m = k
                self._read(pv[p:p + m])
                k -= m
                p += m
                if p == room:
                    sink(pv)
                    p = 0
            src += self._size()
        if rd.readinto(self.one):
            raise E.OtaError(E.BAD_ENCODING, "op stream goes on after the sector")
        if p:
            sink(pv[:p])
        self.rd = None
        return n
