# agent.crypto.trust: the points of public keys, their key ids, PEM parsing, and the set of
# keys a device trusts (refusing unknown key ids and keys that are not P-256 points).
import binascii

from agent.crypto.trust import Trust, point, key_id, from_pem
from agent.errors import BAD_KEY, UNKNOWN_KEY
from tutil import eq, raises, read_data

# The generator G of P-256 as a public key, and its key id: the first 8 bytes of SHA-256
# over 04||x||y (computed apart, with openssl dgst -sha256).
G = binascii.unhexlify("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
                       "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
G_KID = binascii.unhexlify("698bea63dc44a344")
# DER head of a SubjectPublicKeyInfo holding an uncompressed P-256 point (RFC 5480), 26 bytes:
# SEQUENCE { SEQUENCE { OID ecPublicKey, OID prime256v1 }, BIT STRING 00 ...
SPKI_P256 = binascii.unhexlify("3059301306072a8648ce3d020106082a8648ce3d030107034200")

# Public keys that are not an uncompressed P-256 point (made with openssl): a P-384 key,
# and dev_pub.pem's key in compressed form.
P384_PEM = """-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE2FZnbk3UZ4SwX8KJchjZ5Loc422JEfmk
CvllXz+IONLc5AEyQSyS+h4hxZaqvnQPiQolJeLDfuEATm6L/EQB3MrDccxYC4fK
UAbGlM4qIH88QtZDsp+mu4PWc2x9v8Sd
-----END PUBLIC KEY-----
"""
COMPRESSED_PEM = """-----BEGIN PUBLIC KEY-----
MDkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDIgACB9+qlodSWZCCp/f84BUV8wfgeTZL
IUmbtXgmDVrUp1Y=
-----END PUBLIC KEY-----
"""


def pem(der):
    """A PEM 'PUBLIC KEY' holding der, 64 base64 characters a line."""
    b64 = binascii.b2a_base64(der).strip().decode()
    lines = ["-----BEGIN PUBLIC KEY-----"]
    for i in range(0, len(b64), 64):
        lines.append(b64[i:i + 64])
    lines.append("-----END PUBLIC KEY-----")
    return "\n".join(lines) + "\n"


def test_point_forms():
    full = b"\x04" + G
    eq(point(G), full, "x||y gets the 04 prefix")
    eq(point(full), full, "04||x||y as it is")
    eq(point(bytearray(G)), full, "from a bytearray")
    eq(point(memoryview(full)), full, "from a memoryview")
    eq(type(point(memoryview(full))), bytes, "a bytes copy")
    raises(BAD_KEY, point, b"\x02" + G[:32])       # compressed
    raises(BAD_KEY, point, b"\x03" + G)            # 65 bytes, not uncompressed
    raises(BAD_KEY, point, G[:63])
    raises(BAD_KEY, point, b"\x04" + G + b"\x00")
    raises(BAD_KEY, point, b"")


def test_key_id_known_answers():
    eq(key_id(G), G_KID, "key id of G")
    eq(key_id(b"\x04" + G), G_KID, "either form of the point")
    # the key id the COSE test data was signed with (tests/datagen/gen_cose.py)
    eq(key_id(read_data("cose_pub.bin")), read_data("cose_kid.bin"), "COSE key id")
    a = key_id(read_data("dev_pub.bin"))
    b = key_id(read_data("other_pub.bin"))
    eq((len(a), len(b)), (8, 8), "8 bytes")
    assert a != b and a != G_KID
    raises(BAD_KEY, key_id, G[:40])


def test_pem_gives_the_point():
    for name in ("dev", "other", "supplier"):
        text = read_data(name + "_pub.pem")
        want = read_data(name + "_pub.bin")
        eq(from_pem(text), want, name + " from bytes")
        eq(from_pem(text.decode()), want, name + " from text")
        eq(from_pem(bytearray(text)), want, name + " from a bytearray")
    text = read_data("dev_pub.pem").decode()
    want = read_data("dev_pub.bin")
    eq(from_pem(text.replace("\n", "\r\n")), want, "CRLF line ends")
    eq(from_pem("a key, as mailed:\n" + text + "-- \n"), want, "text around the PEM")
    eq(from_pem(pem(SPKI_P256 + b"\x04" + G)), b"\x04" + G, "a PEM made here")


def test_pem_refusals():
    text = read_data("dev_pub.pem").decode()
    lines = text.strip().split("\n")
    e = raises(BAD_KEY, from_pem, "")
    eq(e.detail, "not a PEM public key", "empty")
    raises(BAD_KEY, from_pem, "\n".join(lines[:-1]))              # no END line
    raises(BAD_KEY, from_pem, "\n".join(lines[1:]))               # no BEGIN line
    private = text.replace("PUBLIC KEY", "PRIVATE KEY")
    e = raises(BAD_KEY, from_pem, private)                        # labelled a private key
    eq(e.detail, "not a PEM public key", "private key")
    e = raises(BAD_KEY, from_pem, "\n".join([lines[0], lines[1][:-1], lines[-1]]))
    eq(e.detail, "bad base64 in PEM", "base64 cut short")
    for what, bad in (("P-384", P384_PEM), ("compressed", COMPRESSED_PEM),
                      ("one byte short", pem(SPKI_P256 + b"\x04" + G[:-1])),
                      ("one byte over", pem(SPKI_P256 + b"\x04" + G + b"\x00")),
                      ("another algorithm", pem(b"\x30\x59\x30\x13\x06\x07\x2a\x86\x48\xce\x3d"
                                                b"\x02\x02" + SPKI_P256[13:] + b"\x04" + G))):
        e = raises(BAD_KEY, from_pem, bad)
        eq(e.detail, "not an uncompressed P-256 public key", what)


def test_trust_finds_keys_by_id():
    dev = read_data("dev_pub.bin")
    other = read_data("other_pub.bin")
    t = Trust([dev, other[1:]])  # 65- and 64-byte forms
    eq(len(t), 2, "two keys")
    eq(t.find(key_id(dev)), dev[1:], "dev key as x||y")
    eq(t.find(key_id(other)), other[1:], "other key")
    t.add(G)
    eq(len(t), 3, "three keys")
    eq(t.find(G_KID), G, "G")
    eq(len(Trust()), 0, "empty")


def test_trust_refuses_unknown_key_ids():
    t = Trust([read_data("dev_pub.bin")])
    e = raises(UNKNOWN_KEY, t.find, G_KID)
    eq(e.detail, "698bea63dc44a344", "the unknown id in hex")
    assert "E25" in str(e) and "698bea63dc44a344" in str(e), str(e)
    e = raises(UNKNOWN_KEY, t.find, None)
    eq(e.detail, "", "no key id")
    kid = key_id(read_data("dev_pub.bin"))
    raises(UNKNOWN_KEY, t.find, kid[:7])          # a prefix of a known id
    raises(UNKNOWN_KEY, t.find, kid + b"\x00")
    raises(UNKNOWN_KEY, t.find, b"")
    raises(UNKNOWN_KEY, Trust().find, kid)


def test_trust_refuses_keys_off_the_curve():
    t = Trust([G])
    off = bytearray(G)
    off[63] ^= 1  # y changed: not on the curve
    raises(BAD_KEY, t.add, bytes(off))
    raises(BAD_KEY, t.add, b"\x04" + bytes(off))
    raises(BAD_KEY, t.add, b"\xff" * 64)        # coordinates beyond the field
    raises(BAD_KEY, t.add, G[:32])
    raises(BAD_KEY, Trust, [G, bytes(off)])
    eq(len(t), 1, "refused keys are not added")
    raises(UNKNOWN_KEY, t.find, key_id(bytes(off)))
