"""Mutants of signed images for tests/scenario/test_mutations.py, each with the reason a device
must reject it with.

Bases: img_raw, img_deflate, img_supplier (GBCS trailer) and img_small_sector, written by
gen_images (which runs first: generate_all goes in name order). A mutant is stored as a
patch of its base, so no copy is written: the device test rebuilds it on the fly.
mutants.txt, one line each:
  B <base> <supplier key file or -> <Manufacturer Image SHA-256 of the base>
  M <reason> <base> <size> <offset> <xor hex or -> <region>
The mutant is the base cut or zero-extended to size bytes, then bytes from offset on XORed
with the hex bytes. Lines are grouped by base; region names the part of the file changed.

The reasons come from Model, a model of the image format written from DESIGN.md section 2
and the order of checks the agent documents (header, each element head, manifest: CBOR,
COSE_Sign1, key id, signature, then the table digest, each sector's CRC-32, the trailer, the
supplier signature, bytes after the image), using cbor2 and cryptography, not agent code.
"""
import hashlib
import os
import random
import struct
import zlib

import cbor2

from agent import errors as E
from host_tools import keys

INDEX = "mutants.txt"
BASES = (("img_raw.ota", None), ("img_deflate.ota", None),
         ("img_supplier.ota", "supplier_pub.bin"), ("img_small_sector.ota", None))
TRUST = ("dev_pub.bin", "other_pub.bin")
MAGIC = 0x0BEEF11E
TAGS = {0xF0A1: 1, 0xF0A2: 2, 0x0000: 3}
RANDOM_FLIPS = 24   # per base, anywhere in the file
RANDOM_FRONT = 24   # per base, in the bytes before the payload


class Reject(Exception):
    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class CTag:
    def __init__(self, tag, value):
        self.tag = tag
        self.value = value


_MIN_ARG = (24, 0x100, 0x10000, 0x100000000)


def cbor_strict(b):
    """Decode one CBOR item filling b with the rules of DESIGN's deterministic manifest:
    preferred argument encodings, definite lengths, no floats or simple values other than
    false/true/null, map keys int/text/bytes without duplicates, nesting up to 8."""
    v, i = _item(b, 0, 0)
    if i != len(b):
        raise Reject(E.BAD_CBOR)
    return v


def _item(b, i, depth):
    if i >= len(b):
        raise Reject(E.BAD_CBOR)
    major, ai = b[i] >> 5, b[i] & 31
    i += 1
    if major == 7:
        if ai in (20, 21, 22):
            return (False, True, None)[ai - 20], i
        raise Reject(E.BAD_CBOR)
    if ai < 24:
        arg = ai
    elif ai < 28:
        k = 1 << (ai - 24)
        if i + k > len(b) or int.from_bytes(b[i:i + k], "big") < _MIN_ARG[ai - 24]:
            raise Reject(E.BAD_CBOR)
        arg = int.from_bytes(b[i:i + k], "big")
        i += k
    else:
        raise Reject(E.BAD_CBOR)
    if major < 2:
        return (arg if major == 0 else -1 - arg), i
    if major < 4:
        if arg > len(b) - i:
            raise Reject(E.BAD_CBOR)
        s = bytes(b[i:i + arg])
        if major == 3:
            try:
                s = s.decode("utf-8")
            except UnicodeDecodeError:
                raise Reject(E.BAD_CBOR)
        return s, i + arg
    if depth >= 8:
        raise Reject(E.BAD_CBOR)
    if major == 6:
        v, i = _item(b, i, depth + 1)
        return CTag(arg, v), i
    if major == 4:
        out = []
        while len(out) < arg:
            v, i = _item(b, i, depth + 1)
            out.append(v)
        return out, i
    out = {}
    while len(out) < arg:
        k, i = _item(b, i, depth + 1)
        if type(k) not in (int, str, bytes) or k in out:
            raise Reject(E.BAD_CBOR)
        out[k], i = _item(b, i, depth + 1)
    return out, i


def hdr_len(fc):
    return 56 + (fc & 1) + 8 * (fc >> 1 & 1) + 4 * (fc >> 2 & 1)


def inflates_to(chunk, want_len, crc, wbits):
    """The sector a per-sector deflate chunk must give: exactly want_len bytes, the stream
    ending in the chunk, with the table's CRC-32."""
    z = zlib.decompressobj(-wbits)
    try:
        out = z.decompress(bytes(chunk), want_len)
        extra = len(z.decompress(z.unconsumed_tail, 1)) + len(z.flush())
    except zlib.error:
        return False
    return z.eof and not extra and len(out) == want_len and zlib.crc32(out) == crc


class Model:
    """What a device trusting `trust` (65-byte points), and requiring a trailer signed by
    `supplier` when given, does with a file: expect(data) is the reason code or None."""

    def __init__(self, trust, supplier=None):
        self.keys = {keys.key_id(p): keys.public_from_point(p) for p in trust}
        self.supplier = keys.public_from_point(supplier) if supplier is not None else None

    def expect(self, d):
        try:
            self._run(bytes(d))
        except Reject as r:
            return r.reason
        return None

    def _run(self, d):
        n = len(d)
        if n < 10:
            raise Reject(E.TRUNCATED)
        magic, hver, hlen, fc = struct.unpack_from("<IHHH", d, 0)

        def header_faults():
            for bad, why in ((magic != MAGIC, E.BAD_MAGIC), (hver != 0x0100, E.BAD_HEADER_VERSION),
                             (fc & 0xFFF8, E.BAD_FIELD_CONTROL),
                             (hlen != hdr_len(fc), E.BAD_HEADER_LENGTH)):
                if bad:
                    raise Reject(why)
        if not 56 <= hlen <= 69:       # decided on the first 10 bytes
            header_faults()
            raise Reject(E.BAD_HEADER_LENGTH)
        if n < hlen:
            raise Reject(E.TRUNCATED)
        header_faults()
        if not fc & 4:
            raise Reject(E.BAD_HEADER_LENGTH)
        total = struct.unpack_from("<I", d, 52)[0]
        if total < hlen + 18:
            raise Reject(E.SIZE_MISMATCH)
        self.pos = hlen

        def head(order):
            if n < self.pos + 6:
                raise Reject(E.TRUNCATED)
            tag, ln = struct.unpack_from("<HI", d, self.pos)
            self.pos += 6
            got = TAGS.get(tag)
            if got is None:
                raise Reject(E.MISSING_ELEMENT if order == 1 else E.UNKNOWN_ELEMENT)
            if got < order:
                raise Reject(E.DUPLICATE_ELEMENT)
            if got > order:
                raise Reject(E.MISSING_ELEMENT)
            if self.pos + ln > total:
                raise Reject(E.BAD_ELEMENT)
            return ln

        def need(k):
            if n < self.pos + k:
                raise Reject(E.TRUNCATED)
            self.pos += k
            return d[self.pos - k:self.pos]

        ln = head(1)
        if ln == 0 or ln > 512:
            raise Reject(E.BAD_ELEMENT)
        m = self._cose(need(ln), d[:hlen])
        sector, size, enc = m[13], m[8], m[11]
        sectors = (size + sector - 1) // sector
        tsize = sectors * (4 if enc == 0 else 28)
        rest = total - (self.pos + 12 + tsize + m[12])
        if rest not in (0, 66):
            raise Reject(E.SIZE_MISMATCH)
        if rest == 0 and self.supplier is not None:
            raise Reject(E.SUPPLIER_SIG_REQUIRED)
        if head(2) != tsize:
            raise Reject(E.BAD_TABLE)
        table = need(tsize)
        if hashlib.sha256(table).digest() != m[14]:
            raise Reject(E.BAD_TABLE_DIGEST)
        if head(3) != m[12]:
            raise Reject(E.BAD_ENCODING)
        start = self.pos
        fw = bytearray()
        wbits = max(9, min(15, (sector - 1).bit_length()))
        for k in range(sectors):
            want = min(sector, size - k * sector)
            if enc == 0:
                crc = struct.unpack_from("<I", table, 4 * k)[0]
                self.pos = start + k * sector
                part = need(want)
                if zlib.crc32(part) != crc:
                    raise Reject(E.SECTOR_CRC)
                fw += part
            else:
                crc, off, clen, dig = struct.unpack_from("<III16s", table, 28 * k)
                self.pos = start + off
                chunk = need(clen)
                if hashlib.sha256(chunk).digest()[:16] != dig:
                    raise Reject(E.SECTOR_CRC)
                if not inflates_to(chunk, want, crc, wbits):
                    raise Reject(E.SECTOR_CRC)
                fw += zlib.decompress(chunk, -wbits)
        self.pos = start + m[12]
        mi = d[hlen:self.pos]
        if rest:
            force, slen = need(66)[:2]
            if slen != 0x40 or force > 1:
                raise Reject(E.BAD_TRAILER)
        if hashlib.sha256(fw).digest() != m[9] or zlib.crc32(fw) != m[10]:
            raise Reject(E.PAYLOAD_DIGEST)
        if self.supplier is not None and not keys.verify(
                self.supplier, d[self.pos - 64:self.pos], digest=hashlib.sha256(mi).digest()):
            raise Reject(E.BAD_SUPPLIER_SIG)
        if n > total:
            raise Reject(E.TRAILING_DATA)

    def _cose(self, c, aad):
        v = cbor_strict(c)
        bad = Reject(E.BAD_COSE)
        if not isinstance(v, CTag) or v.tag != 18 or type(v.value) is not list \
                or len(v.value) != 4:
            raise bad
        prot, unprot, payload, sig = v.value
        if type(prot) is not bytes or type(unprot) is not dict or type(payload) is not bytes \
                or type(sig) is not bytes:
            raise bad
        ph = cbor_strict(prot) if prot else {}
        if type(ph) is not dict or any(type(k) is bytes for k in list(ph) + list(unprot)) \
                or any(k in ph for k in unprot) or 2 in ph or 2 in unprot or 1 not in ph:
            raise bad
        h = ph if 4 in ph else unprot
        kid = h.get(4)
        if 4 in h and type(kid) is not bytes:
            raise bad
        if type(ph[1]) is not int or ph[1] != -7:
            raise Reject(E.UNSUPPORTED_ALG)
        if len(sig) != 64:
            raise bad
        if int.from_bytes(sig[32:], "big") > keys.HALF_N:  # before the key is looked up
            raise Reject(E.HIGH_S)
        pub = self.keys.get(kid) if kid is not None else None
        if pub is None:
            raise Reject(E.UNKNOWN_KEY)
        tbs = cbor2.dumps(["Signature1", prot, bytes(aad), payload])
        try:
            ok = keys.verify(pub, sig, tbs)
        except Exception:
            ok = False
        if not ok:
            raise Reject(E.BAD_SIGNATURE)
        return cbor2.loads(payload)


class Layout:
    """Where the parts of a valid image are."""

    def __init__(self, d):
        self.hlen = struct.unpack_from("<H", d, 6)[0]
        self.total = len(d)
        self.elems = []                      # (offset of the head, data length)
        pos = self.hlen
        for _ in range(3):
            self.elems.append((pos, struct.unpack_from("<I", d, pos + 2)[0]))
            pos += 6 + self.elems[-1][1]
        self.end = pos                       # end of the Manufacturer Image
        (co, cl), (to, tl), (po, pl) = self.elems
        self.cose = (co + 6, cl)
        self.table = (to + 6, tl)
        self.payload = (po + 6, pl)
        cose = cbor2.loads(d[co + 6:co + 6 + cl]).value
        self.manifest = cbor2.loads(cose[2])
        # offsets inside the COSE bytes: protected contents, payload contents, signature
        c = d[co + 6:co + 6 + cl]
        self.prot = (c.index(cose[0]), len(cose[0]))
        self.pay = (c.index(cose[2]), len(cose[2]))
        self.sig = (cl - 64, 64)


class Maker:
    def __init__(self, name, data, model):
        self.name = name
        self.d = data
        self.model = model
        self.lines = []
        self.accepted = []
        self.seen = set()

    def add(self, region, size=None, off=0, xor=b""):
        size = len(self.d) if size is None else size
        key = (size, off, bytes(xor))
        if key in self.seen or (size == len(self.d) and not any(xor)):
            return None
        self.seen.add(key)
        m = bytearray(self.d[:size]) + bytes(max(0, size - len(self.d)))
        for i, x in enumerate(xor):
            m[off + i] ^= x
        why = self.model.expect(m)
        rec = (why, self.name, size, off, bytes(xor).hex() or "-", region)
        (self.accepted if why is None else self.lines).append(rec)
        return why

    def set(self, region, off, new):
        self.add(region, None, off, bytes(a ^ b for a, b in zip(self.d[off:off + len(new)], new)))

    def flip(self, region, off, bit):
        return self.add(region, None, off, bytes((1 << bit,)))


def _header(mk, lay):
    d = mk.d
    for region, off, width, values in (
            ("header.magic", 0, 4, (0x1EF1EE0B, 0x0BEEF11F, 0)),
            ("header.version", 4, 2, (0x0200, 0x0101, 0x0000, 0x0001)),
            ("header.length", 6, 2, (0, 55, 56, 59, 61, 64, 69, 70, 0xFFFF)),
            ("header.field_control", 8, 2, (0, 1, 3, 5, 7, 8, 0x8004, 0xFFFF)),
            ("header.manufacturer", 10, 2, (0x4321, 0)),
            ("header.image_type", 12, 2, (2, 0xFFFF)),
            ("header.file_version", 14, 4, (3, 1, 0x02000000)),
            ("header.stack_version", 18, 2, (1, 0xFFFF)),
            ("header.total_size", 52, 4, (0, lay.hlen + 17, lay.hlen + 18, lay.total - 1,
                                          lay.total + 1, lay.total + 66, 0xFFFFFFFF)),
            ("header.hw_min", 56, 2, (0, 2, 0xFFFF)),
            ("header.hw_max", 58, 2, (1, 4, 0))):
        for v in values:
            mk.set(region, off, v.to_bytes(width, "little"))
        for bit in (0, 8 * width - 1):
            mk.flip(region, off + bit // 8, bit % 8)
    for off in (20, 35, 51):
        mk.flip("header.string", off, 0)
    # consistent length and field control: hardware versions absent, or a credential added
    mk.set("header.field_control", 6, struct.pack("<HH", 56, 0))
    mk.set("header.field_control", 6, struct.pack("<HH", 61, 5))


def _elements(mk, lay):
    names = ("manifest", "table", "payload")
    tags = ((0xF0A2, 0x0000, 0x1234, 0xF000), (0xF0A1, 0x0000, 0xF000, 0x0001),
            (0xF0A1, 0xF0A2, 0x0001, 0x0005))
    for (off, ln), name, others in zip(lay.elems, names, tags):
        for t in others:
            mk.set("elem.%s.tag" % name, off, struct.pack("<H", t))
        for v in (ln - 1, ln + 1, 0, ln + 12, 513, lay.total, 0xFFFFFFFF):
            mk.set("elem.%s.length" % name, off + 2, struct.pack("<I", v))


def _manifest(mk, lay):
    base = lay.cose[0]
    pro, plen = lay.prot
    for i in range(pro - 1 + plen + 1):      # structure and protected header: every bit
        step = 1 if pro + 5 <= i < pro + plen else 0  # kid bytes: two bits each
        for bit in range(8) if not step else (0, 7):
            mk.flip("cose.protected" if i >= pro - 1 else "cose.structure", base + i, bit)
    po, pl = lay.pay
    for i in range(pro + plen, po):          # unprotected map and the payload's head
        for bit in range(8):
            mk.flip("cose.structure", base + i, bit)
    for i in (0, 1, pl // 3, pl // 2, pl - 9, pl - 1):
        mk.flip("cose.payload", base + po + i, i % 8)
    so = lay.sig[0]
    for i in range(po + pl, so):             # the signature's head
        for bit in range(8):
            mk.flip("cose.structure", base + i, bit)
    for i in (0, 1, 31, 32, 33, 63):
        mk.flip("cose.signature", base + so + i, (i * 3) % 8)
    mk.set("cose.signature", base + so, bytes(64))


def _table(mk, lay):
    off, ln = lay.table
    enc = lay.manifest[11]
    esz = 4 if enc == 0 else 12
    for k in range(ln // esz):
        for f in range(esz // 4):            # each field of each entry
            mk.flip("table.entry", off + k * esz + 4 * f, k % 8)
    mk.flip("table.entry", off + ln - 1, 7)


def _payload(mk, lay):
    off, ln = lay.payload
    sector = lay.manifest[13]
    if lay.manifest[11] == 0:
        step = max(1, ln // sector // 8) * sector   # at most about 8 sectors
        for k in range(0, ln, step):
            for i in (0, sector // 2, sector - 1):
                if k + i < ln:
                    mk.flip("payload.sector", off + k + i, (k // sector + i) % 8)
        mk.flip("payload.sector", off + ln - 1, 7)
        return
    table = mk.d[lay.table[0]:lay.table[0] + lay.table[1]]
    for k in range(lay.table[1] // 28):
        _crc, co, cl, _dig = struct.unpack_from("<III16s", table, 28 * k)
        for i in (0, 1, cl // 2, cl - 2, cl - 1):
            mk.flip("payload.chunk", off + co + i, 0)
        mk.set("payload.chunk", off + co + cl // 4, bytes(16))


def _trailer(mk, lay):
    if lay.end == lay.total:
        return
    t = lay.end
    for v in (1, 2, 0x80, 0xFF):    # 1: force-replace, a flag no signature covers
        mk.set("trailer.flag", t, bytes((v,)))
    for v in (0x3F, 0x41, 0x00, 0xC0):
        mk.set("trailer.length", t + 1, bytes((v,)))
    for i in (0, 31, 32, 63):
        mk.flip("trailer.signature", t + 2 + i, i % 8)


def _cuts(mk, lay):
    cuts = {0, 1, 9, 10, 11, lay.hlen - 1, lay.hlen}
    for off, ln in lay.elems:
        cuts.update((off + 1, off + 3, off + 5, off + 6, off + 6 + ln // 2, off + 5 + ln,
                     off + 6 + ln))
    po, pl = lay.payload
    sector = lay.manifest[13]
    cuts.update((po + sector, po + sector + 1, po + pl - 1))
    if lay.end != lay.total:
        cuts.update((lay.end + 1, lay.end + 2, lay.total - 1))
    for c in sorted(cuts):
        if c < lay.total:
            mk.add("truncated", c)
    for extra in (b"\x00", b"\xff", bytes(66), b"\x5a" * 1000):
        mk.add("appended", lay.total + len(extra), lay.total, extra)


def _random(mk, lay, seed):
    rnd = random.Random(seed)
    for region, top, count in (("random.any", lay.total, RANDOM_FLIPS),
                               ("random.front", lay.payload[0], RANDOM_FRONT)):
        made = 0
        while made < count:
            if mk.flip(region, rnd.randrange(top), rnd.randrange(8)) is not None:
                made += 1


def mutants(outdir, name, supplier):
    """(Maker with the rejected mutants and the accepted ones, Layout) for one base."""
    def rd(n):
        with open(os.path.join(outdir, n), "rb") as f:
            return f.read()
    d = rd(name)
    model = Model([rd(k) for k in TRUST], rd(supplier) if supplier else None)
    if model.expect(d) is not None:
        raise ValueError("%s: the model rejects the base image" % name)
    lay = Layout(d)
    mk = Maker(name, d, model)
    for part in (_header, _elements, _manifest, _table, _payload, _trailer, _cuts):
        part(mk, lay)
    _random(mk, lay, sum(name.encode()))
    return mk, lay


def generate(outdir):
    out = []
    for name, supplier in BASES:
        mk, lay = mutants(outdir, name, supplier)
        mi = hashlib.sha256(mk.d[lay.hlen:lay.end]).hexdigest()
        out.append("B %s %s %s" % (name, supplier or "-", mi))
        out += ["M %d %s %d %d %s %s" % rec for rec in mk.lines]
    with open(os.path.join(outdir, INDEX), "w") as f:
        f.write("\n".join(out) + "\n")
