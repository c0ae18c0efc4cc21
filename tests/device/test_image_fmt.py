# agent.image.fmt: each structure of the image file declared once (a struct format and its
# size) and read and written through its pair of functions: the OTA header, the element
# head, the GBCS trailer, sector table entries; and finding the manifest element.
import struct

from agent.image import fmt
from agent.image import pack
from agent.errors import BAD_MAGIC, BAD_HEADER_VERSION, BAD_HEADER_LENGTH, \
    BAD_FIELD_CONTROL, BAD_TRAILER, TRUNCATED, BAD_ELEMENT, MISSING_ELEMENT
from tutil import eq, raises, Image

IEEE = b"\x11\x22\x33\x44\x55\x66\x77\x88"
SIG = bytes(range(64))


def _header(security=None, dest=None, hw=None):
    h = fmt.Header()
    h.manufacturer = 0x1234
    h.image_type = 0xABCD
    h.file_version = 0x01020304
    h.stack_version = 2
    h.header_string = b"hello"
    h.total_size = 0xFEDCBA98
    h.security_version = security
    h.destination = dest
    if hw is not None:
        h.hw_min, h.hw_max = hw
    return h


def _same(a, b):
    for k in ("length", "field_control", "manufacturer", "image_type", "file_version",
              "stack_version", "total_size", "security_version", "destination", "hw_min",
              "hw_max"):
        eq(getattr(a, k), getattr(b, k), k)


def test_sizes_are_those_of_the_formats():
    eq(struct.calcsize(fmt.HDR_FMT), fmt.HDR_SIZE, "header")
    eq(struct.calcsize(fmt.HDR_PREFIX_FMT), fmt.HDR_PREFIX, "header prefix")
    eq(fmt.HDR_SIZE + 1 + 8 + struct.calcsize(fmt.HW_FMT), fmt.HDR_MAX, "largest header")
    eq(struct.calcsize(fmt.ELEM_FMT), fmt.ELEM_SIZE, "element head")
    eq(struct.calcsize(fmt.TRAILER_FMT), fmt.TRAILER_SIZE, "trailer")
    eq(struct.calcsize(fmt.TABLE_RAW_FMT), fmt.TABLE_RAW_SIZE, "raw entry")
    eq(struct.calcsize(fmt.TABLE_DEFLATE_FMT), fmt.TABLE_DEFLATE_SIZE, "deflate entry")
    eq(fmt.TABLE_DEFLATE_SIZE, 12 + fmt.CHUNK_DIGEST, "deflate entry digest")
    eq(fmt.MANIFEST_END_MAX, fmt.HDR_MAX + fmt.ELEM_SIZE + fmt.MANIFEST_MAX, "manifest end")
    eq(fmt.table_entry_size(fmt.ENC_RAW), 4, "raw")
    eq(fmt.table_entry_size(fmt.ENC_DEFLATE), 28, "deflate")


def test_header_length_of_each_field_control():
    want = {0: 56, 1: 57, 2: 64, 3: 65, 4: 60, 5: 61, 6: 68, 7: 69}
    for fc in range(8):
        eq(fmt.header_length(fc), want[fc], "field control %d" % fc)


def test_header_round_trip_with_every_optional_field():
    for sec in (None, 0, 7):
        for dest in (None, IEEE):
            for hw in (None, (0, 0xFFFF), (1, 3)):
                h = _header(sec, dest, hw)
                b = pack.pack_header(h)
                fc = (1 if sec is not None else 0) + (2 if dest is not None else 0) + \
                    (4 if hw is not None else 0)
                eq(len(b), fmt.header_length(fc), "length")
                eq(fmt.header_length_of(b), len(b), "length field")
                got = fmt.parse_header(b)
                h.length = len(b)
                h.field_control = fc
                _same(got, h)
                eq(got.header_string, b"hello" + bytes(27), "header string padded")
                eq(pack.pack_header(got), b, "packed again")


def test_header_fields_at_their_offsets():
    b = pack.pack_header(_header(hw=(1, 3)))
    eq(b[0:4], b"\x1e\xf1\xee\x0b", "magic, little-endian")
    eq(b[4:6], b"\x00\x01", "header version 0x0100")
    eq(b[6:8], b"\x3c\x00", "length 60")
    eq(b[8:10], b"\x04\x00", "field control: hardware versions")
    eq(b[10:12], b"\x34\x12", "manufacturer")
    eq(b[14:18], b"\x04\x03\x02\x01", "file version")
    eq(b[52:56], b"\x98\xba\xdc\xfe", "total image size")
    eq(b[56:60], b"\x01\x00\x03\x00", "hardware versions")


def test_header_string_cut_to_32_bytes():
    h = _header()
    h.header_string = b"x" * 40
    eq(fmt.parse_header(pack.pack_header(h)).header_string, b"x" * 32, "cut")


def test_header_parsed_from_a_longer_buffer_and_a_view():
    b = pack.pack_header(_header(dest=IEEE, hw=(2, 5))) + b"\xee" * 30
    h = fmt.parse_header(memoryview(b))
    eq((h.length, h.destination, h.hw_min, h.hw_max), (68, IEEE, 2, 5), "fields")


def test_header_rejections():
    good = pack.pack_header(_header(hw=(1, 3)))

    def bad(off, patch):
        b = bytearray(good)
        b[off:off + len(patch)] = patch
        return b
    raises(BAD_HEADER_LENGTH, fmt.parse_header, good[:fmt.HDR_SIZE - 1])
    raises(BAD_MAGIC, fmt.parse_header, bad(0, b"\x1f"))
    raises(BAD_HEADER_VERSION, fmt.parse_header, bad(4, b"\x01\x01"))
    raises(BAD_FIELD_CONTROL, fmt.parse_header, bad(8, b"\x0c"))
    raises(BAD_FIELD_CONTROL, fmt.parse_header, bad(9, b"\x80"))
    e = raises(BAD_HEADER_LENGTH, fmt.parse_header, bad(6, b"\x38"))
    assert "field control" in str(e), e
    raises(BAD_HEADER_LENGTH, fmt.parse_header, good[:59])  # the hardware versions cut
    eq(fmt.header_length_of(bad(6, b"\xff\x7f")), 0x7FFF, "length field, unchecked")


def test_element_head_round_trip():
    for tag, n in ((fmt.TAG_MANIFEST, 0), (fmt.TAG_TABLE, 28), (fmt.TAG_PAYLOAD, 0xFFFFFFFF),
                   (0xFFFF, 1)):
        b = fmt.pack_elem(tag, n)
        eq(len(b), fmt.ELEM_SIZE, "size")
        eq(tuple(fmt.unpack_elem(b)), (tag, n), "round trip")
        eq(tuple(fmt.unpack_elem(memoryview(b"xyz" + b), 3)), (tag, n), "at an offset")
    eq(fmt.pack_elem(0xF0A1, 0x01020304), b"\xa1\xf0\x04\x03\x02\x01", "little-endian")


def test_trailer_round_trip_and_rejections():
    for force in (0, 1):
        b = fmt.pack_trailer(force, SIG)
        eq(len(b), fmt.TRAILER_SIZE, "size")
        eq(b[:2], bytes((force, 0x40)), "flag and length")
        eq(fmt.parse_trailer(b), (force, SIG), "round trip")
        eq(fmt.parse_trailer(memoryview(bytearray(b))), (force, SIG), "from a view")
    b = fmt.pack_trailer(0, SIG)
    raises(BAD_TRAILER, fmt.parse_trailer, b[:65])
    raises(BAD_TRAILER, fmt.parse_trailer, b + b"\x00")
    raises(BAD_TRAILER, fmt.parse_trailer, b"\x02" + b[1:])
    raises(BAD_TRAILER, fmt.parse_trailer, b[:1] + b"\x41" + b[2:])


def test_table_entries_round_trip():
    raw = b"".join(pack.pack_entry(fmt.ENC_RAW, c) for c in (0, 0xDEADBEEF, 0xFFFFFFFF))
    eq(len(raw), 3 * fmt.TABLE_RAW_SIZE, "raw table")
    eq(tuple(pack.unpack_entry(fmt.ENC_RAW, raw, 1)), (0xDEADBEEF, 0, 0, b""), "raw entry")
    eq(tuple(pack.unpack_entry(fmt.ENC_RAW, raw, 2)), (0xFFFFFFFF, 0, 0, b""), "last")
    d = bytes(range(100, 116))
    dfl = pack.pack_entry(fmt.ENC_DEFLATE, 1, 2, 3, bytes(16)) + \
        pack.pack_entry(fmt.ENC_DEFLATE, 0x11223344, 0x1000, 0x0FFF, d)
    eq(len(dfl), 2 * fmt.TABLE_DEFLATE_SIZE, "deflate table")
    eq(tuple(pack.unpack_entry(fmt.ENC_DEFLATE, dfl, 1)), (0x11223344, 0x1000, 0x0FFF, d),
       "deflate entry")
    eq(dfl[28:40], b"\x44\x33\x22\x11\x00\x10\x00\x00\xff\x0f\x00\x00", "little-endian")


def test_sector_count_and_window():
    eq(fmt.sector_count(1, 4096), 1, "one byte")
    eq(fmt.sector_count(4096, 4096), 1, "one sector")
    eq(fmt.sector_count(4097, 4096), 2, "one more")
    for sector, w in ((256, 9), (512, 9), (1024, 10), (4096, 12), (32768, 15), (65536, 15)):
        eq(fmt.deflate_wbits(sector), w, "window of %d" % sector)


def _elements(img):
    """The element heads of an image file, walked with unpack_elem."""
    h = fmt.parse_header(img[:fmt.HDR_MAX])
    off = h.length
    out = []
    for _ in range(3):
        tag, n = fmt.unpack_elem(img[off:off + fmt.ELEM_SIZE])
        out.append((tag, off + fmt.ELEM_SIZE, n))
        off += fmt.ELEM_SIZE + n
    return h, out, off


def test_generated_images_read_through_fmt():
    for name, trailer in (("core_v1.ota", False), ("img_supplier.ota", True),
                          ("hard_to_me.ota", False)):
        with Image(name) as img:
            h, elems, end = _elements(img)
            eq([t for t, _o, _n in elems], [fmt.TAG_MANIFEST, fmt.TAG_TABLE, fmt.TAG_PAYLOAD],
               name)
            eq(h.total_size, len(img), name)
            eq(end + (fmt.TRAILER_SIZE if trailer else 0), len(img), name + " ends")
            eq(fmt.find_manifest(img[:fmt.MANIFEST_END_MAX]), elems[0][1:], name + " manifest")
            if trailer:
                force, sig = fmt.parse_trailer(bytes(img[end:]))
                eq((force, len(sig)), (0, 64), name + " trailer")


def _head(name):
    with Image(name) as img:
        return bytes(img[:fmt.MANIFEST_END_MAX])


def test_find_manifest_needs_only_the_heads():
    img = _head("core_v1.ota")
    off, n = fmt.find_manifest(img)
    eq(off, 60 + fmt.ELEM_SIZE, "after a 60-byte header")
    eq(fmt.find_manifest(img[:off]), (off, n), "the manifest itself need not be there")
    eq(img[off], 0xD2, "a CBOR tag 18 starts it")
    e = raises(TRUNCATED, fmt.find_manifest, img[:off - 1])
    assert "no element" in str(e), e
    raises(BAD_HEADER_LENGTH, fmt.find_manifest, img[:40])
    raises(BAD_MAGIC, fmt.find_manifest, b"\x00" + img[1:off])


def test_find_manifest_refusals():
    img = bytearray(_head("core_v1.ota")[:200])
    hl = fmt.parse_header(img).length
    img[hl:hl + 6] = fmt.pack_elem(fmt.TAG_TABLE, 100)
    e = raises(MISSING_ELEMENT, fmt.find_manifest, img)
    assert "0xF0A2" in str(e), e
    for n in (0, fmt.MANIFEST_MAX + 1, 0xFFFFFFFF):
        img[hl:hl + 6] = fmt.pack_elem(fmt.TAG_MANIFEST, n)
        raises(BAD_ELEMENT, fmt.find_manifest, img)
    img[hl:hl + 6] = fmt.pack_elem(fmt.TAG_MANIFEST, fmt.MANIFEST_MAX)
    eq(fmt.find_manifest(img), (hl + 6, fmt.MANIFEST_MAX), "the largest manifest")
