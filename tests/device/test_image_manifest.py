# agent.image.manifest: the manifest's keys, its decoder (every field's type and range, and
# what the fields must agree on), its agreement with the OTA header, the device's policy,
# and peek(), which reads an image's manifest without verifying it.
import binascii

from agent.image import fmt
from agent.image import pack
from agent.image import manifest as mf
from agent.image.manifest import Manifest, Policy
from agent.crypto import cose, trust
from agent.errors import BAD_MANIFEST, UNSUPPORTED_FORMAT, HEADER_MISMATCH, \
    WRONG_MANUFACTURER, WRONG_IMAGE_TYPE, WRONG_HARDWARE, ROLLBACK, TOO_LARGE, \
    BAD_SECTOR_SIZE, BAD_ENCODING, LAYOUT_NO_FIT, TRUNCATED, BAD_CBOR, BAD_COSE, BAD_MAGIC
from tutil import eq, raises, read_data, Image

UINTS = ((mf.M_SEQ, 0xFFFFFFFF), (mf.M_VERSION, 0xFFFFFFFF), (mf.M_MANUFACTURER, 0xFFFF),
         (mf.M_IMAGE_TYPE, 0xFFFF), (mf.M_HW_MIN, 0xFFFF), (mf.M_HW_MAX, 0xFFFF),
         (mf.M_SIZE, 0xFFFFFFFF), (mf.M_CRC32, 0xFFFFFFFF), (mf.M_ENCODING, 0xFF),
         (mf.M_ENC_SIZE, 0xFFFFFFFF), (mf.M_SECTOR, fmt.MAX_SECTOR))
BSTRS = ((mf.M_SHA256, 32), (mf.M_TABLE_SHA256, 32), (mf.M_KID, trust.KID_LEN))


def _map(changes=None):
    """A valid raw manifest map of 12 KiB in 4 KiB sectors, with changes (None: key removed)."""
    m = {mf.M_FORMAT: 1, mf.M_SEQ: 7, mf.M_VERSION: 0x01020304, mf.M_MANUFACTURER: 0x1234,
         mf.M_IMAGE_TYPE: 1, mf.M_HW_MIN: 1, mf.M_HW_MAX: 3, mf.M_SIZE: 12288,
         mf.M_SHA256: b"\x11" * 32, mf.M_CRC32: 0xDEADBEEF, mf.M_ENCODING: fmt.ENC_RAW,
         mf.M_ENC_SIZE: 12288, mf.M_SECTOR: 4096, mf.M_TABLE_SHA256: b"\x22" * 32,
         mf.M_KID: b"\x33" * 8}
    for k, v in (changes or {}).items():
        if v is None:
            del m[k]
        else:
            m[k] = v
    return m


def _policy(**kw):
    p = Policy(None, 0x1234, 1, 2, seq=7, max_size=16384, sector_size=4096)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def test_keys_are_those_of_format_1():
    eq(mf.FORMAT_VERSION, 1, "format")
    eq([mf.M_FORMAT, mf.M_SEQ, mf.M_VERSION, mf.M_MANUFACTURER, mf.M_IMAGE_TYPE, mf.M_HW_MIN,
        mf.M_HW_MAX, mf.M_SIZE, mf.M_SHA256, mf.M_CRC32, mf.M_ENCODING, mf.M_ENC_SIZE,
        mf.M_SECTOR, mf.M_TABLE_SHA256, mf.M_KID], list(range(1, 16)), "keys 1..15")


def test_fields_decoded():
    m = Manifest(_map())
    eq((m.seq, m.version, m.manufacturer, m.image_type, m.hw_min, m.hw_max),
       (7, 0x01020304, 0x1234, 1, 1, 3), "numbers")
    eq((m.size, m.crc32, m.encoding, m.enc_size, m.sector), (12288, 0xDEADBEEF, 0, 12288, 4096),
       "payload")
    eq((m.sha256, m.table_sha256, m.kid), (b"\x11" * 32, b"\x22" * 32, b"\x33" * 8), "digests")
    eq((m.sectors, m.table_size), (3, 12), "raw table")
    m = Manifest(_map({mf.M_ENCODING: fmt.ENC_DEFLATE, mf.M_ENC_SIZE: 5000, mf.M_SIZE: 12289}))
    eq((m.sectors, m.table_size), (4, 4 * 28), "deflate table")
    m = Manifest(_map({99: "ignored", mf.M_SECTOR: fmt.MIN_SECTOR, mf.M_SEQ: 0xFFFFFFFF}))
    eq((m.sectors, m.seq), (48, 0xFFFFFFFF), "an unknown key is ignored; limits taken")


def test_not_a_map_or_another_format():
    for v in ([], None, b"", 1):
        e = raises(BAD_MANIFEST, Manifest, v)
        assert "not a map" in str(e), e
    for fv in (None, 0, 2, "1", b"\x01", True):
        raises(UNSUPPORTED_FORMAT, Manifest, _map({mf.M_FORMAT: fv}))


def test_every_field_type_and_range():
    for k, top in UINTS:
        for bad in (None, -1, top + 1, True, "1", b"\x01"):
            e = raises(BAD_MANIFEST, Manifest, _map({k: bad}))
            eq(str(e).endswith("field %d" % k), True, "%s: %s" % (bad, e))
    for k, n in BSTRS:
        for bad in (None, b"\x00" * (n - 1), b"\x00" * (n + 1), "x" * n, n):
            e = raises(BAD_MANIFEST, Manifest, _map({k: bad}))
            eq(str(e).endswith("field %d" % k), True, "%s: %s" % (bad, e))


def test_fields_that_must_agree():
    for s in (300, 128, 0, 4097):
        raises(BAD_SECTOR_SIZE, Manifest, _map({mf.M_SECTOR: s}))
    e = raises(BAD_MANIFEST, Manifest, _map({mf.M_HW_MIN: 4}))
    assert "hardware range 4..3" in str(e), e
    e = raises(BAD_MANIFEST, Manifest, _map({mf.M_SIZE: 0, mf.M_ENC_SIZE: 0}))
    assert "empty" in str(e), e
    raises(BAD_ENCODING, Manifest, _map({mf.M_ENC_SIZE: 12287}))
    raises(BAD_ENCODING, Manifest, _map({mf.M_ENCODING: 3}))
    Manifest(_map({mf.M_ENCODING: fmt.ENC_DEFLATE, mf.M_ENC_SIZE: 1}))


_BASE = {mf.M_BASE_SIZE: 12000, mf.M_BASE_SHA256: b"\x33" * 32, mf.M_BASE_VERSION: 1}


def test_delta_names_its_old_image():
    d = dict(_BASE)
    d.update({mf.M_ENCODING: fmt.ENC_DELTA, mf.M_ENC_SIZE: 0})
    m = Manifest(_map(d))
    eq((m.base_size, m.base_sha256, m.base_version), (12000, b"\x33" * 32, 1), "old image")
    eq(m.table_size, 3 * fmt.TABLE_DELTA_SIZE, "table of 29-byte entries")
    eq(Manifest(_map()).base_size, None, "a full image names none")
    for k in _BASE:  # each of the three is required
        d2 = dict(d)
        del d2[k]
        e = raises(BAD_MANIFEST, Manifest, _map(d2))
        eq(str(e).endswith("field %d" % k), True, str(e))
    d[mf.M_BASE_SHA256] = b"\x33" * 31
    raises(BAD_MANIFEST, Manifest, _map(d))
    for k in _BASE:  # and none of them in a full image
        e = raises(BAD_MANIFEST, Manifest, _map({k: _BASE[k]}))
        assert "old image" in str(e), e


# the optional bounds of a compressed or delta image's chunks: what a device's chunk decoder
# is made for before the table is known. (key, attribute, value when absent (4 KiB sectors),
# good values, bad values)
BOUNDS = ((mf.M_CHUNK_MAX, "chunk_max", fmt.chunk_cap(4096), (1, 1741, fmt.chunk_cap(4096)),
           (0, -1, fmt.chunk_cap(4096) + 1, True, "900", b"\x01")),
          (mf.M_WINDOW, "wbits", 12, (9, 10, 11, 12), (8, 13, 0, -1, True, "10", b"\x0a")))


def test_chunk_bounds():
    # key 19, the longest chunk's length (without it, the bound for the sector size), and
    # key 20, the window of the chunks' raw deflate streams in bits (without it, the one
    # covering a sector); neither in a raw image
    eq((mf.M_CHUNK_MAX, mf.M_WINDOW), (19, 20), "keys")
    eq(fmt.chunk_cap(4096), 4096 + 512 + 64, "the longest chunk of a 4 KiB sector")
    for key, attr, absent, good, bad in BOUNDS:
        z = {mf.M_ENCODING: fmt.ENC_DEFLATE, mf.M_ENC_SIZE: 5000}
        eq(getattr(Manifest(_map(z)), attr), absent, "%s absent" % attr)
        for v in good:
            z[key] = v
            eq(getattr(Manifest(_map(z)), attr), v, "%s given" % attr)
        d = dict(_BASE)
        d.update({mf.M_ENCODING: fmt.ENC_DELTA, mf.M_ENC_SIZE: 0, key: good[1]})
        eq(getattr(Manifest(_map(d)), attr), good[1], "%s of a delta" % attr)
        for v in bad:
            z[key] = v
            e = raises(BAD_MANIFEST, Manifest, _map(z))
            eq(str(e).endswith("field %d" % key), True, "%s %r: %s" % (attr, v, e))
        eq(getattr(Manifest(_map()), attr), 0, "%s: a raw image has none" % attr)
        e = raises(BAD_MANIFEST, Manifest, _map({key: good[0]}))
        assert "raw image" in str(e), e
    z = {mf.M_ENCODING: fmt.ENC_DEFLATE, mf.M_ENC_SIZE: 5000, mf.M_SECTOR: 512}
    eq(Manifest(_map(z)).wbits, 9, "absent: a 512-byte sector's window")
    z[mf.M_WINDOW] = 10
    e = raises(BAD_MANIFEST, Manifest, _map(z))
    eq(str(e).endswith("field 20"), True, "a window past the sector's: %s" % e)


def test_check_header():
    m = Manifest(_map())
    h = fmt.parse_header(pack.pack_header(_header(m)))
    m.check_header(h)
    for k, v in (("file_version", 2), ("manufacturer", 0x1235), ("image_type", 2),
                 ("hw_min", 0), ("hw_max", 4)):
        h2 = fmt.parse_header(pack.pack_header(_header(m)))
        setattr(h2, k, v)
        raises(HEADER_MISMATCH, m.check_header, h2)
    h2 = _header(m)
    h2.hw_min = h2.hw_max = None
    raises(HEADER_MISMATCH, m.check_header, fmt.parse_header(pack.pack_header(h2)))


def _header(m):
    h = fmt.Header()
    h.file_version = m.version
    h.manufacturer = m.manufacturer
    h.image_type = m.image_type
    h.hw_min = m.hw_min
    h.hw_max = m.hw_max
    return h


def test_check_policy():
    m = Manifest(_map())
    m.check_policy(_policy())
    m.check_policy(_policy(hw_version=1))
    m.check_policy(_policy(hw_version=3, max_size=12288, table_max=12))
    raises(WRONG_MANUFACTURER, m.check_policy, _policy(manufacturer=0x1235))
    raises(WRONG_IMAGE_TYPE, m.check_policy, _policy(image_type=2))
    raises(WRONG_HARDWARE, m.check_policy, _policy(hw_version=0))
    raises(WRONG_HARDWARE, m.check_policy, _policy(hw_version=4))
    raises(ROLLBACK, m.check_policy, _policy(seq=8))
    e = raises(TOO_LARGE, m.check_policy, _policy(max_size=12287))
    assert "12288 > 12287" in str(e), e
    e = raises(TOO_LARGE, m.check_policy, _policy(table_max=11))
    assert "sector table" in str(e), e
    raises(BAD_SECTOR_SIZE, m.check_policy, _policy(sector_size=8192))


def test_check_policy_deflate_sectors_within_the_payload_area():
    # 3 sectors of 4 KiB: raw, 12 KiB of payload fit 12 KiB + 1 byte; deflate, the last
    # sector is erased whole, so the area must hold all 3 sectors
    m = Manifest(_map({mf.M_SIZE: 8193, mf.M_ENC_SIZE: 8193}))
    m.check_policy(_policy(max_size=8193))
    d = Manifest(_map({mf.M_SIZE: 8193, mf.M_ENCODING: fmt.ENC_DEFLATE, mf.M_ENC_SIZE: 900}))
    raises(LAYOUT_NO_FIT, d.check_policy, _policy(max_size=8193))
    d.check_policy(_policy(max_size=12288))


def _head(name):
    """The first bytes of a data file, those that hold its header and manifest."""
    with Image(name) as img:
        return bytes(img[:fmt.MANIFEST_END_MAX])


def _cose_payload(name):
    head = _head(name)
    off, n = fmt.find_manifest(head)
    return cose.parse_sign1(head[off:off + n]).payload


def test_decode_a_signed_manifest():
    m = mf.decode(_cose_payload("core_v1.ota"))
    eq((m.version, m.seq, m.manufacturer, m.image_type, m.hw_min, m.hw_max),
       (1, 1, 0x1234, 1, 1, 3), "as gen_core signed it")
    with Image("core_v1.bin") as fw:
        n = len(fw)
        eq((m.size, m.encoding, m.enc_size, m.sector), (n, fmt.ENC_RAW, n, 4096), "raw")
        eq(m.sha256, fw.sha256(), "payload SHA-256")
        crc = 0
        for off in range(0, n, 1024):
            crc = binascii.crc32(fw.read(off, 1024), crc)
    eq(m.crc32, crc & 0xFFFFFFFF, "payload CRC-32")
    eq(m.kid, trust.key_id(read_data("core_pub.bin")), "key id")


def test_decode_refusals():
    raises(BAD_CBOR, mf.decode, b"\xa1\x01")     # a map of one pair, cut
    raises(BAD_MANIFEST, mf.decode, b"\x80")     # an empty array
    raises(UNSUPPORTED_FORMAT, mf.decode, b"\xa1\x01\x02")  # {1: 2}


def test_peek_reads_without_verifying():
    img = bytearray(_head("core_v2z.ota"))
    m = mf.peek(img)
    eq((m.version, m.encoding, m.size, m.sectors), (2, fmt.ENC_DEFLATE, 20 * 1024 + 100, 6),
       "deflate update")
    off, n = fmt.find_manifest(img)
    img[off + n - 1] ^= 1  # the signature's last byte: peek does not look at it
    eq(mf.peek(img).sha256, m.sha256, "signature not checked")
    eq(mf.peek(_head("img_other_key.ota")).kid,
       trust.key_id(read_data("other_pub.bin")), "any key")


def test_peek_refusals():
    img = _head("core_v1.ota")
    off, n = fmt.find_manifest(img)
    e = raises(TRUNCATED, mf.peek, img[:off + n - 1])
    assert "ends at %d" % (off + n) in str(e), e
    raises(BAD_MAGIC, mf.peek, b"\x00" + img[1:off + n])
    e = raises(BAD_COSE, mf.peek, img[:off] + b"\xd3" + img[off + 1:off + n])
    assert "tag 19" in str(e), e


def test_sector_of_an_unverified_manifest():
    # what the agent sizes its chunk decoder by before the signature is verified
    from agent.image.manifest import sector_of
    enc = _cbor
    none = (0, 0, 0, 0)
    eq(sector_of(enc(_map())), none, "raw: none")
    eq(sector_of(enc(_map({mf.M_ENCODING: fmt.ENC_DEFLATE, mf.M_ENC_SIZE: 5}))),
       (4096, fmt.ENC_DEFLATE, fmt.chunk_cap(4096), 12), "deflate, no keys: the largest")
    eq(sector_of(enc(_map({mf.M_ENCODING: fmt.ENC_DELTA, mf.M_SECTOR: 8192}))),
       (8192, fmt.ENC_DELTA, fmt.chunk_cap(8192), 13), "delta")
    eq(sector_of(enc(_map({mf.M_ENCODING: fmt.ENC_DELTA, mf.M_CHUNK_MAX: 1741,
                           mf.M_WINDOW: 10}))),
       (4096, fmt.ENC_DELTA, 1741, 10), "the chunk bound and window given")
    for bad in (0, fmt.chunk_cap(4096) + 1, "1741"):
        eq(sector_of(enc(_map({mf.M_ENCODING: 1, mf.M_CHUNK_MAX: bad}))), none,
           "chunk bound %r" % (bad,))
    for bad in (8, 13, "10", b"\x0a"):
        eq(sector_of(enc(_map({mf.M_ENCODING: 1, mf.M_WINDOW: bad}))), none,
           "window %r" % (bad,))
    for bad in (3000, 128, 1 << 17, "4096", None):
        eq(sector_of(enc(_map({mf.M_ENCODING: 1, mf.M_SECTOR: bad}))), none,
           "sector %r" % bad)
    eq(sector_of(enc(_map({mf.M_ENCODING: "1"}))), none, "encoding not a number")
    eq(sector_of(b"\xff\x00"), none, "not CBOR")
    eq(sector_of(enc([1, 2])), none, "not a map")


def _cbor(v):
    # CBOR of the maps, lists, ints, bytes and text these tests use (cbor.encode_head's)
    from agent.crypto import cbor
    if isinstance(v, dict):
        return cbor.encode_head(5, len(v)) + b"".join(_cbor(k) + _cbor(x) for k, x in v.items())
    if isinstance(v, list):
        return cbor.encode_head(4, len(v)) + b"".join(_cbor(x) for x in v)
    if isinstance(v, int):
        return cbor.encode_head(0, v) if v >= 0 else cbor.encode_head(1, -1 - v)
    if isinstance(v, bytes):
        return cbor.encode_head(2, len(v)) + v
    if v is None:
        return b"\xf6"
    v = v.encode()
    return cbor.encode_head(3, len(v)) + v
