# agent.crypto.cose: COSE_Sign1 messages made by pycose, parsed and verified on the device.
import binascii
import hashlib

from agent.crypto import cose
from agent.image import pack

from agent import errors
from agent.errors import BAD_COSE, BAD_KEY, UNSUPPORTED_ALG
from tutil import raises, eq, read_data

MSG = "cose_sign1.bin"


def _flip(buf, i):
    b = bytearray(buf)
    b[i] ^= 0x01
    return bytes(b)


def _verify(raw, aad=None, pub=None):
    return cose.verify_sign1(cose.parse_sign1(raw), aad if aad is not None else read_data("cose_aad.bin"),
                             pub if pub is not None else read_data("cose_pub.bin"))


def test_parse_pycose_message():
    m = cose.parse_sign1(read_data(MSG))
    eq(m.alg, -7, "alg")
    eq(m.kid, read_data("cose_kid.bin"), "kid")
    eq(m.payload, read_data("cose_payload.bin"), "payload")
    eq(len(m.signature), 64, "signature length")
    tbs = read_data("cose_tbs.bin")
    eq(tbs[12], 0x40 + len(m.protected), "protected head")
    eq(m.protected, tbs[13:13 + len(m.protected)], "protected bytes")
    assert type(m.protected) is bytes and type(m.payload) is bytes


def test_kid_in_unprotected_header():
    m = cose.parse_sign1(read_data("cose_sign1_ukid.bin"))
    eq(m.kid, read_data("cose_kid.bin"), "kid")
    eq(m.protected, b"\xa1\x01\x26", "protected")
    raw = read_data(MSG)
    eq((raw[2], raw[16]), (0x4D, 0xA0), "layout")
    # the same message with no kid at all: protected {1: -7}, unprotected {}
    m = cose.parse_sign1(b"\xd2\x84\x43\xa1\x01\x26\xa0" + raw[17:])
    eq(m.kid, None, "no kid")


def test_sig_structure_matches_pycose():
    m = cose.parse_sign1(read_data(MSG))
    aad = read_data("cose_aad.bin")
    tbs = read_data("cose_tbs.bin")
    eq(pack.sig_structure(m.protected, aad, m.payload), tbs, "Sig_structure")
    want = hashlib.sha256(tbs).digest()
    eq(cose.sig_structure_digest(m.protected, aad, m.payload), want, "digest")
    mv = memoryview(b"--" + aad)[2:]
    eq(cose.sig_structure_digest(m.protected, mv, m.payload), want, "digest, memoryview aad")
    eq(pack.sig_structure(m.protected, mv, m.payload), tbs, "Sig_structure, memoryview aad")


def test_sig_structure_shapes():
    eq(pack.sig_structure(b"", b"", b""), b"\x84\x6aSignature1\x40\x40\x40", "empty")
    s = pack.sig_structure(b"\xa0", b"A" * 24, b"P" * 300)
    eq(s[:14], b"\x84\x6aSignature1\x41\xa0", "protected")
    eq(s[14:16], b"\x58\x18", "aad head")
    eq(s[40:43], b"\x59\x01\x2c", "payload head")
    eq(len(s), 43 + 300, "length")
    eq(cose.sig_structure_digest(b"\xa0", b"A" * 24, b"P" * 300), hashlib.sha256(s).digest(),
       "digest")


def test_verify_pycose_messages():
    assert _verify(read_data(MSG)) is True
    assert _verify(read_data("cose_sign1_ukid.bin")) is True


def test_tampering_rejected():
    raw = read_data(MSG)
    kid = read_data("cose_kid.bin")
    payload = read_data("cose_payload.bin")
    # protected header: a kid byte inside the protected bstr (still parses)
    i = raw.find(kid)
    assert 0 < i < 16
    assert _verify(_flip(raw, i)) is False
    # payload byte
    i = raw.find(payload)
    assert i > 0
    assert _verify(_flip(raw, i + len(payload) - 3)) is False
    # signature byte (r, then s)
    assert _verify(_flip(raw, len(raw) - 40)) is False
    assert _verify(_flip(raw, len(raw) - 1)) is False
    # external_aad (the OTA header)
    assert _verify(raw, _flip(read_data("cose_aad.bin"), 10)) is False
    assert _verify(raw, b"") is False
    # another public key
    assert _verify(raw, None, read_data("cose_pub2.bin")) is False


def test_verifier_hook():
    m = cose.parse_sign1(read_data(MSG))
    aad = read_data("cose_aad.bin")
    pub = read_data("cose_pub.bin")
    seen = []

    def hook(p, digest, sig):
        seen.append((p, digest, sig))
        return 1

    assert cose.verify_sign1(m, aad, pub, hook) is True
    eq(seen, [(pub, hashlib.sha256(read_data("cose_tbs.bin")).digest(), m.signature)], "hook args")
    assert cose.verify_sign1(m, aad, pub, lambda p, d, s: 0) is False


def test_verify_rejects_bad_key_and_alg():
    m = cose.parse_sign1(read_data(MSG))
    aad = read_data("cose_aad.bin")
    raises(BAD_KEY, cose.verify_sign1, m, aad, b"\x04" * 63)
    raises(BAD_KEY, cose.verify_sign1, m, aad, b"\x01" * 64)
    m.alg = -35
    raises(UNSUPPORTED_ALG, cose.verify_sign1, m, aad, read_data("cose_pub.bin"), lambda p, d, s: True)


def test_malformed_messages():
    n = 0
    for line in read_data("cose_bad.txt").decode().split("\n"):
        if not line:
            continue
        name, rest = line.split(" ", 1)
        word, hx = rest.rsplit(" ", 1)
        e = raises(getattr(errors, name), cose.parse_sign1, binascii.unhexlify(hx))
        if word not in e.detail:
            raise AssertionError("%s: %r lacks %r" % (name, e.detail, word))
        n += 1
    assert n >= 30
    e = raises(BAD_COSE, cose.parse_sign1, b"\xd2\x84\x40\xa0\x40\x40")
    assert "alg" in e.detail, e.detail
    e = raises(UNSUPPORTED_ALG, cose.parse_sign1, b"\xd2\x84\x43\xa1\x01\x27\xa0\x40\x40")
    eq(e.detail, "alg -8", "detail")
