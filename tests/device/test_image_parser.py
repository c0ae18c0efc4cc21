# agent.image.parser: the streaming parser fed in pieces of any size (1 byte, odd sizes,
# whole sectors, the whole file), what it hands its sink, resuming and re-fetching through
# seek(), and each rejection with its reason code.
import hashlib

from agent.image import fmt
from agent.image.parser import Parser
from agent.image.manifest import Policy
from agent.crypto.trust import Trust
from agent.errors import BAD_MAGIC, BAD_HEADER_VERSION, BAD_HEADER_LENGTH, \
    BAD_FIELD_CONTROL, TRUNCATED, SIZE_MISMATCH, BAD_ELEMENT, UNKNOWN_ELEMENT, \
    DUPLICATE_ELEMENT, MISSING_ELEMENT, TRAILING_DATA, BAD_TRAILER, BAD_SIGNATURE, \
    UNKNOWN_KEY, HIGH_S, BAD_TABLE, BAD_TABLE_DIGEST, BAD_ENCODING, SUPPLIER_SIG_REQUIRED, \
    BAD_MANIFEST, \
    WRONG_DESTINATION, WRONG_MANUFACTURER
from tutil import eq, raises, read_data, Image

MAN = 0x1234
TYPE = 0x0001
HARD_IEEE = b"\x11\x22\x33\x44\x55\x66\x77\x88"  # as tests/datagen/gen_hardening.py


class Sink:
    """Records what the parser hands over: the order of the events, the table and payload
    bytes (hashed as they pass, the views being valid only during the call)."""

    def __init__(self, jump=None):
        self.jump = jump
        self.events = []
        self.table = hashlib.sha256()
        self.payload = hashlib.sha256()
        self.table_n = self.payload_n = 0

    def on_manifest(self, p):
        self.events.append("manifest")
        return self.jump

    def on_table(self, mv):
        self.table.update(mv)
        self.table_n += len(mv)

    def on_table_end(self):
        self.events.append("table")

    def on_payload(self, mv):
        self.payload.update(mv)
        self.payload_n += len(mv)

    def on_done(self, p):
        self.events.append("done")
        self.table_sha = self.table.digest()  # a MicroPython hash gives its digest once
        self.payload_sha = self.payload.digest()


def _policy(pub="core_pub.bin", **kw):
    p = Policy(Trust([read_data(pub)]), MAN, TYPE, 2)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def _feed(p, name, sizes, start=0, stop=None, patch=None):
    """Feed bytes start..stop of a data file in pieces of the given sizes, in turn, read a
    block at a time (a piece ends at a block's end); patch = (offset, bytes) changes the
    file's bytes on the way."""
    with Image(name) as img:
        stop = len(img) if stop is None else stop
        big = 512
        for n in sizes:
            big = n if n > big else big
        off = start
        i = 0
        while off < stop:
            block = img.read(off, big if big < stop - off else stop - off)
            if patch is not None and patch[0] < off + len(block) and \
                    off < patch[0] + len(patch[1]):
                b = bytearray(block)
                for k in range(len(patch[1])):
                    if 0 <= patch[0] + k - off < len(b):
                        b[patch[0] + k - off] = patch[1][k]
                block = memoryview(b)
            j = 0
            while j < len(block):
                n = sizes[i % len(sizes)]
                i += 1
                if n > len(block) - j:
                    n = len(block) - j
                p.feed(block[j:j + n])
                j += n
            off += len(block)


def _parts(name):
    """[(offset, length)] of the manifest, table and payload element data of an image,
    the header's length and where the Manufacturer Image ends."""
    with Image(name) as img:
        hl = fmt.parse_header(img[:fmt.HDR_MAX]).length
        off = hl
        out = []
        for _ in range(3):
            tag, n = fmt.unpack_elem(img[off:off + fmt.ELEM_SIZE])
            out.append((off + fmt.ELEM_SIZE, n))
            off += fmt.ELEM_SIZE + n
    return out, hl, off


def _sha(name, a, b):
    """SHA-256 of bytes a..b of a data file."""
    h = hashlib.sha256()
    with Image(name) as img:
        while a < b:
            n = b - a if b - a < 512 else 512
            h.update(img.read(a, n))
            a += n
    return h.digest()


def _parse(name, sizes, policy=None):
    sink = Sink()
    p = Parser(policy or _policy(), sink)
    _feed(p, name, sizes)
    p.finish()
    return p, sink


def _check(p, sink, name, trailer=False):
    ((_m, _mn), (t, tn), (pl, pn)), hl, _end = _parts(name)
    size = _size(name)
    eq(sink.events, ["manifest", "table", "done"], "events")
    eq((sink.table_n, sink.table_sha), (tn, _sha(name, t, t + tn)), "table bytes")
    eq((sink.payload_n, sink.payload_sha), (pn, _sha(name, pl, pl + pn)), "payload bytes")
    eq(p.pos, size, "all consumed")
    eq(p.payload_offset(), pl, "payload offset")
    eq(_sha_of(p.header_bytes()), _sha(name, 0, hl), "header bytes")
    eq(p.trailer is not None, trailer, "trailer")
    assert p.signed


def _sha_of(b):
    return hashlib.sha256(b).digest()


def _size(name):
    with Image(name) as img:
        return len(img)


def test_raw_image_fed_a_byte_at_a_time():
    p, sink = _parse("core_v1.ota", (1,))
    _check(p, sink, "core_v1.ota")
    with Image("core_v1.bin") as fw:
        eq(sink.payload_sha, fw.sha256(), "the installed payload")
    eq((p.manifest.version, p.manifest.seq, p.header.file_version), (1, 1, 1), "manifest")
    eq(p.kid, p.manifest.kid, "key id")
    raises(TRAILING_DATA, p.feed, b"\x00")


def test_deflate_image_in_odd_pieces():
    for sizes in ((7, 64, 3, 1000, 1), (63,), (4096,), (5001,)):
        p, sink = _parse("core_v2z.ota", sizes)
        _check(p, sink, "core_v2z.ota")
        eq(p.manifest.encoding, fmt.ENC_DEFLATE, "deflate")


def test_supplier_trailer_handed_over():
    name = "img_supplier.ota"
    p, sink = _parse(name, (509, 6, 66), _policy("dev_pub.bin"))
    _check(p, sink, name, trailer=True)
    with Image(name) as img:
        eq(p.trailer, fmt.parse_trailer(bytes(img[len(img) - fmt.TRAILER_SIZE:])), "trailer")


def test_addressed_image_for_this_device():
    name = "hard_to_me.ota"
    p, sink = _parse(name, (100,), _policy("hard_pub.bin", ieee=HARD_IEEE))
    _check(p, sink, name)
    eq((p.header.length, p.header.destination), (68, HARD_IEEE), "destination")


def test_resume_from_a_sector_the_sink_names():
    name = "core_v2z.ota"
    (m, _t, (pl, pn)), _hl, _end = _parts(name)
    jump = pl + 1000
    sink = Sink(jump)
    p = Parser(_policy(), sink)
    end = m[0] + m[1]
    _feed(p, name, (5,), 0, end - 2)
    _feed(p, name, (42,), end - 2, end + 40)  # the bytes past the manifest are dropped
    eq(p.pos, jump, "jumped")
    _feed(p, name, (48,), jump)
    p.finish()
    eq(sink.events, ["manifest", "done"], "no table: it was kept from before")
    eq((sink.payload_n, sink.payload_sha), (pn - 1000, _sha(name, jump, pl + pn)), "the rest")


def test_take_feeds_only_the_block_at_its_offset():
    # take(offset, data): the per-block entry (agent.update.Device.take during a transfer)
    # feeds a block at the parser's position and returns the next; a duplicate or a block
    # from elsewhere changes nothing. Fed so, an image parses as feed() parses it.
    for name in ("core_v1.ota", "core_v2z.ota"):
        sink = Sink()
        p = Parser(_policy(), sink)
        with Image(name) as img:
            n = len(img)
            off = 0
            k = 0
            while off < n:
                size = (48, 7, 300)[k % 3]
                k += 1
                block = img.read(off, size if size < n - off else n - off)
                if off:
                    eq(p.take(off - 1, block), off, "a block from elsewhere")
                    eq(p.take(off + 1, block), off, "a block from further on")
                got = p.take(off, block)
                eq(got, off + len(block), "the offset wanted next")
                eq(p.pos, got, "the parser's position")
                eq(p.take(off, block), got, "the same block again")
                off = got
        p.finish()
        _check(p, sink, name)


def test_seek_fetches_a_piece_again_and_refuses_outside_the_payload():
    name = "core_v1.ota"
    (_m, (t, _tn), (pl, pn)), _hl, _end = _parts(name)
    sink = Sink()
    p = Parser(_policy(), sink)
    _feed(p, name, (300,), 0, t + 2)
    raises(BAD_ELEMENT, p.seek, pl)  # in the table: no payload yet
    _feed(p, name, (300,), t + 2, pl + 5000)
    p.seek(pl + 4096)
    _feed(p, name, (300,), pl + 4096)
    p.finish()
    eq(sink.payload_n, pn + 5000 - 4096, "the piece again")
    raises(BAD_ELEMENT, p.seek, pl)  # done: the payload is behind it


def test_seek_bounds():
    name = "core_v1.ota"
    (_m, _t, (pl, pn)), _hl, end = _parts(name)
    p = Parser(_policy(), Sink())
    _feed(p, name, (4096,), 0, pl + 10)
    raises(BAD_ELEMENT, p.seek, pl - 1)
    raises(BAD_ELEMENT, p.seek, pl + pn + 1)
    p.seek(pl + pn)  # the end of the payload: done, no trailer
    eq(p.pos, end, "at the end")
    p.finish()


def _refused(reason, name, patch=None, policy=None, sizes=(97,)):
    p = Parser(policy or _policy(), Sink())
    return raises(reason, _feed, p, name, sizes, 0, None, patch)


def test_header_refusals():
    v1 = "core_v1.ota"
    raises(BAD_MAGIC, Parser(_policy(), Sink()).feed, b"\x00" * 10)
    _refused(BAD_MAGIC, v1, (3, b"\x0c"))
    _refused(BAD_HEADER_VERSION, v1, (5, b"\x02"))
    e = _refused(BAD_HEADER_LENGTH, v1, (6, b"\x37"), sizes=(10,))
    assert "55 for field control" in str(e), e
    _refused(BAD_HEADER_LENGTH, v1, (6, b"\x46"))   # 70 > HDR_MAX
    _refused(BAD_FIELD_CONTROL, v1, (8, b"\x0c"))
    e = _refused(BAD_HEADER_LENGTH, v1, (6, b"\x38\x00\x00"))
    assert "hardware versions absent" in str(e), e
    _refused(SIZE_MISMATCH, v1, (52, b"\x49\x00\x00\x00"))  # below 60 + 3 * 6
    _refused(WRONG_DESTINATION, "hard_to_other.ota", None,
             _policy("hard_pub.bin", ieee=HARD_IEEE))
    _refused(WRONG_DESTINATION, "hard_to_me.ota", None, _policy("hard_pub.bin"))
    p = Parser(_policy(), Sink())
    _feed(p, v1, (30,), 0, 30)
    e = raises(TRUNCATED, p.finish)
    assert "30 bytes" in str(e), e


def test_element_refusals():
    v1 = "core_v1.ota"
    (m, t, pl), _hl, _end = _parts(v1)
    mh, th, ph = m[0] - 6, t[0] - 6, pl[0] - 6   # the element heads
    e = _refused(MISSING_ELEMENT, v1, (mh, b"\x03\x00"))
    assert "no signed manifest" in str(e), e
    e = _refused(MISSING_ELEMENT, v1, (mh, fmt.pack_elem(fmt.TAG_TABLE, 5)))
    assert "before its predecessor" in str(e), e
    for n in (0, fmt.MANIFEST_MAX + 1):
        e = _refused(BAD_ELEMENT, v1, (mh, fmt.pack_elem(fmt.TAG_MANIFEST, n)))
        assert "manifest of %d bytes" % n in str(e), e
    e = _refused(BAD_ELEMENT, v1, (ph, fmt.pack_elem(0, pl[1] + 1)))
    assert "past total size" in str(e), e
    _refused(UNKNOWN_ELEMENT, v1, (th, b"\x34\x12"))
    _refused(DUPLICATE_ELEMENT, v1, (th, b"\xa1\xf0"))
    _refused(DUPLICATE_ELEMENT, v1, (ph, b"\xa2\xf0"))
    _refused(MISSING_ELEMENT, v1, (th, b"\x00\x00"))
    _refused(BAD_TABLE, v1, (th, fmt.pack_elem(fmt.TAG_TABLE, t[1] - 4)))
    _refused(BAD_ENCODING, v1, (ph, fmt.pack_elem(0, pl[1] - 1)))


def test_manifest_and_content_refusals():
    v1 = "core_v1.ota"
    (_m, t, _pl), _hl, _end = _parts(v1)
    _refused(BAD_SIGNATURE, v1, (30, b"!"))  # the header string: the header is the aad
    _refused(HIGH_S, "hard_highs.ota")
    _refused(UNKNOWN_KEY, "img_other_key.ota", None, _policy("dev_pub.bin"))
    _refused(WRONG_MANUFACTURER, "core_other_man.ota")
    e = _refused(BAD_MANIFEST, "core_v1_kid.ota")  # signed well, naming another key's id
    assert "key id" in str(e), e
    with Image(v1) as img:
        flipped = bytes((img[t[0] + 5] ^ 1,))
    _refused(BAD_TABLE_DIGEST, v1, (t[0] + 5, flipped))
    sup = read_data("supplier_pub.bin")[1:]
    _refused(SUPPLIER_SIG_REQUIRED, "img_raw.ota", None,
             _policy("dev_pub.bin", supplier_key=sup))
    name = "img_supplier.ota"
    e = _refused(BAD_TRAILER, name, (_size(name) - 65, b"\x41"), _policy("dev_pub.bin"),
                 (4096,))
    assert "length 65" in str(e), e
