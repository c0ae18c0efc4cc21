# agent.crypto.cbor: decoding a cbor2-made corpus, every rejection with its reason, encode_head.
import binascii

from agent.crypto import cbor
from agent.crypto.cbor import Tag
from agent.errors import OtaError, BAD_CBOR
from tutil import raises, eq, read_data


def h(s):
    return binascii.unhexlify(s.replace(" ", ""))


def same(a, b):
    """Equal values of exactly the same types all the way down (True is not 1)."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return len(a) == len(b) and all(k in b and same(a[k], b[k]) for k in a)
    if type(a) is Tag:
        return a.tag == b.tag and same(a.value, b.value)
    return a == b


def test_corpus_from_cbor2():
    n = 0
    env = {"Tag": Tag}
    for line in read_data("cbor_corpus.txt").decode().split("\n"):
        if not line:
            continue
        hx, lit = line.split(" ", 1)
        want = eval(lit, env)
        got = cbor.decode(h(hx))
        if not same(got, want):
            raise AssertionError("%s: %r != %r" % (hx, got, want))
        n += 1
    assert n > 200


def test_input_buffer_types():
    enc = h("83 43 010203 61 61 a1 01 40")
    want = [b"\x01\x02\x03", "a", {1: b""}]
    for buf in (enc, bytearray(enc), memoryview(enc), memoryview(b"xx" + enc)[2:]):
        got = cbor.decode(buf)
        assert same(got, want)
        assert type(got[0]) is bytes


def test_long_strings():
    for n in (23, 24, 255, 256, 65535, 65536):
        major = 2 if n & 1 else 3
        enc = cbor.encode_head(major, n) + b"x" * n
        got = cbor.decode(enc)
        eq(len(got), n, "length")
        assert type(got) is (bytes if major == 2 else str)


def test_mixed_map_keys_are_distinct():
    got = cbor.decode(h("a4 01 00 61 31 01 41 31 02 20 03"))
    eq(len(got), 4, "keys")
    eq((got[1], got["1"], got[b"1"], got[-1]), (0, 1, 2, 3), "values")


def test_nesting_limit():
    for depth in (0, 1, 3, 8, 9):
        ok = b"\x81" * depth + b"\x00"
        if depth <= 8:
            v = cbor.decode(ok)
            for _ in range(depth):
                v = v[0]
            eq(v, 0, "innermost")
        else:
            e = raises(BAD_CBOR, cbor.decode, ok)
            assert "nesting deeper than 8" in e.detail, e.detail
    raises(BAD_CBOR, cbor.decode, b"\x80", 0)
    raises(BAD_CBOR, cbor.decode, b"\xa0", 0)
    raises(BAD_CBOR, cbor.decode, b"\xc1\x00", 0)
    eq(cbor.decode(b"\x17", 0), 23, "scalar at depth 0")
    eq(cbor.decode(b"\x81\x80", 2), [[]], "two levels")
    raises(BAD_CBOR, cbor.decode, b"\x81\x80", 1)
    # tags and maps count as levels too
    raises(BAD_CBOR, cbor.decode, b"\xc1" * 9 + b"\x00")
    assert cbor.decode(b"\xc1" * 8 + b"\x00").tag == 1
    raises(BAD_CBOR, cbor.decode, b"\xa1\x01" * 9 + b"\x00")
    eq(cbor.decode(b"\xa1\x01\x81\x00", 2), {1: [0]}, "map then array")


# (hex, word in the detail)
REJECT = (
    ("", "truncated"),
    ("18", "truncated argument"),
    ("19 01", "truncated argument"),
    ("1b 00000000000001", "truncated argument"),
    ("42 00", "overruns"),
    ("5b ffffffffffffffff", "overruns"),
    ("7a ffffffff", "overruns"),
    ("9b ffffffffffffffff", "overruns"),
    ("9a 00010000 00", "overruns"),
    ("bb ffffffffffffffff", "overruns"),
    ("a2 01 02 03", "overruns"),
    ("82 01", "overruns"),
    ("a1 01", "overruns"),
    ("82 81 00", "truncated"),
    ("a1 01 c1", "truncated"),
    ("c1", "truncated"),
    ("5f 41 00 ff", "indefinite"),
    ("7f ff", "indefinite"),
    ("9f ff", "indefinite"),
    ("bf ff", "indefinite"),
    ("1c", "reserved additional information 28"),
    ("3d", "reserved additional information 29"),
    ("5e", "reserved additional information 30"),
    ("1f", "reserved additional information 31"),
    ("3f", "reserved additional information 31"),
    ("df 00", "reserved additional information 31"),
    ("fc", "reserved additional information 28"),
    ("f9 3c00", "floating-point"),
    ("fa 3f800000", "floating-point"),
    ("fb 3ff0000000000000", "floating-point"),
    ("f7", "simple value 23"),
    ("f0", "simple value 16"),
    ("e0", "simple value 0"),
    ("f8 ff", "one-byte simple value"),
    ("ff", "break"),
    ("18 17", "non-minimal"),
    ("19 00ff", "non-minimal"),
    ("1a 0000ffff", "non-minimal"),
    ("1b 00000000ffffffff", "non-minimal"),
    ("38 00", "non-minimal"),
    ("58 00", "non-minimal"),
    ("79 0001 61", "non-minimal"),
    ("98 01 00", "non-minimal"),
    ("b8 00", "non-minimal"),
    ("d8 12 00", "non-minimal"),
    ("00 00", "1 bytes after the item"),
    ("80 ffff", "2 bytes after the item"),
    ("a2 01 00 01 00", "duplicate map key"),
    ("a2 61 61 00 61 61 00", "duplicate map key"),
    ("a2 41 61 00 41 61 00", "duplicate map key"),
    ("a2 20 00 20 00", "duplicate map key"),
    ("a1 80 00", "map key must be"),
    ("a1 a0 00", "map key must be"),
    ("a1 c1 00 00", "map key must be"),
    ("a1 f5 00", "map key must be"),
    ("a1 f6 00", "map key must be"),
    ("61 ff", "invalid UTF-8"),
    ("61 80", "invalid UTF-8"),
    ("62 c0 80", "invalid UTF-8"),
    ("62 c1 bf", "invalid UTF-8"),
    ("63 e0 9f bf", "invalid UTF-8"),
    ("63 ed a0 80", "invalid UTF-8"),
    ("63 ed bf bf", "invalid UTF-8"),
    ("64 f0 8f bf bf", "invalid UTF-8"),
    ("64 f4 90 80 80", "invalid UTF-8"),
    ("64 f5 80 80 80", "invalid UTF-8"),
    ("62 e2 82", "invalid UTF-8"),
    ("63 e2 82 41", "invalid UTF-8"),
    ("63 f0 90 80", "invalid UTF-8"),
    ("63 61 62 c3", "invalid UTF-8"),
)


def test_rejections_with_reason():
    for hx, word in REJECT:
        e = raises(BAD_CBOR, cbor.decode, h(hx))
        if word not in e.detail:
            raise AssertionError("%s: %r lacks %r" % (hx, e.detail, word))
        assert "\n" not in str(e)


def test_error_positions():
    eq(raises(BAD_CBOR, cbor.decode, h("83 01 02 f7")).detail, "simple value 23 not supported at byte 3")
    eq(raises(BAD_CBOR, cbor.decode, h("a2 01 00 01 00")).detail, "duplicate map key at byte 3")


def test_utf8_edges_accepted():
    for hx, want in (("62 c2 80", "\x80"), ("63 e0 a0 80", "\u0800"), ("63 ed 9f bf", "\ud7ff"),
                     ("63 ee 80 80", "\ue000"), ("64 f0 90 80 80", "\U00010000"),
                     ("64 f4 8f bf bf", "\U0010ffff")):
        eq(cbor.decode(h(hx)), want, hx)


def test_every_truncation_rejected():
    enc = h("d2 84 43 a10126 a1 04 42 0102 58 20" + "11" * 32 + "83 f4 f5 f6")
    cbor.decode(enc)
    for i in range(len(enc)):
        raises(BAD_CBOR, cbor.decode, enc[:i])


def test_encode_head():
    for major in (0, 2, 4, 7):
        for v, tail in ((0, ""), (23, ""), (24, "18"), (255, "18"), (256, "19"),
                        (65535, "19"), (65536, "1a"), (2 ** 32 - 1, "1a"), (2 ** 32, "1b"),
                        (2 ** 64 - 1, "1b")):
            got = cbor.encode_head(major, v)
            eq(got[0] >> 5, major, "major")
            if not tail:
                eq(len(got), 1, "short form")
            else:
                eq(got[0] & 31, int(tail, 16), "additional information")
            eq(int.from_bytes(got[1:], "big") if len(got) > 1 else got[0] & 31, v, "value")
    eq(cbor.encode_head(0, 500), h("19 01f4"), "500")
    eq(cbor.encode_head(3, 10), h("6a"), "text head")
    eq(cbor.encode_head(2, 70000), h("5a 00011170"), "bstr head")
    for v in (0, 24, 255, 256, 65536, 2 ** 32, 2 ** 64 - 1):
        eq(cbor.decode(cbor.encode_head(0, v)), v, "uint")
        eq(cbor.decode(cbor.encode_head(1, v)), -1 - v, "nint")
    raises(BAD_CBOR, cbor.encode_head, 0, -1)
    raises(BAD_CBOR, cbor.encode_head, 0, 2 ** 64)
    raises(BAD_CBOR, cbor.encode_head, 8, 0)


def test_tag_equality():
    assert Tag(1, [2]) == Tag(1, [2])
    assert Tag(1, [2]) != Tag(1, [3])
    assert Tag(1, 2) != Tag(2, 2)
    assert Tag(1, 2) != 2
    assert repr(Tag(18, 5)) == "Tag(18, 5)"


def test_only_ota_error():
    # a byte-wise sweep of short items: everything decodes or raises OtaError(BAD_CBOR)
    n = 0
    for ib in range(256):
        for tail in (b"", b"\x00", b"\x01\x00", b"\xff\xff\xff\xff\xff\xff\xff\xff\x00"):
            try:
                cbor.decode(bytes((ib,)) + tail)
                n += 1
            except OtaError as e:
                eq(e.reason, BAD_CBOR, "reason")
    assert n > 50
