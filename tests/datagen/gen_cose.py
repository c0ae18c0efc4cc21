"""CBOR items (encoded by cbor2) and COSE_Sign1 messages (made by pycose) for the device tests.

Files written:
  cbor_corpus.txt   one item a line: hex of the cbor2 encoding, a space, a Python literal of
                    the value (ASCII only; tags written as Tag(n, value))
  cose_sign1.bin    tagged COSE_Sign1, ES256, kid in the protected header, external_aad set
  cose_sign1_ukid.bin  the same payload signed with the kid in the unprotected header
  cose_aad.bin      the external_aad both messages were signed with (an OTA header)
  cose_payload.bin  the payload (a manifest-like CBOR map)
  cose_kid.bin      the key id
  cose_pub.bin      the signing public key, x || y
  cose_pub2.bin     another public key, x || y
  cose_tbs.bin      pycose's Sig_structure (to-be-signed bytes) for cose_sign1.bin
  cose_bad.txt      malformed messages: REASON_NAME WORD HEX, one a line; parse_sign1 must
                    raise OtaError(REASON_NAME) with WORD in its detail
"""
import binascii
import hashlib
import os
import random

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from pycose.algorithms import Es256
from pycose.headers import KID, Algorithm
from pycose.keys import EC2Key
from pycose.keys.curves import P256
from pycose.messages import Sign1Message

from agent.image import fmt
from agent.image import pack
from agent.crypto.trust import KID_LEN
from agent.image import manifest as mf

CORPUS = [
    0, 1, 10, 23, 24, 25, 100, 255, 256, 1000, 65535, 65536, 1000000,
    2 ** 32 - 1, 2 ** 32, 2 ** 53, 2 ** 63, 2 ** 64 - 1,
    -1, -10, -24, -25, -100, -256, -257, -1000, -65536, -65537,
    -2 ** 32, -2 ** 32 - 1, -2 ** 63, -2 ** 64,
    b"", b"\x00", b"\x00\xff", bytes(range(24)), bytes(range(256)), b"\x01" * 300,
    "", "a", "IETF", "\"\\", "\u00fc", "\u6c34", "\U00010151", "\u20ac" * 100, "a\nb\x00",
    "\ud7ff\ue000\uffff\U0010ffff",
    False, True, None,
    [], [1, 2, 3], [1, [2, 3], [4, 5]], list(range(25)),
    {}, {1: 2, 3: 4}, {"a": 1, "b": [2, 3]}, {"a": "A", "b": "B", "c": "C"},
    {1: "int", "1": "text", -1: None}, {1: "int", b"1": "bytes"},
    [b"", "", [], {}, False],
    cbor2.CBORTag(1, 1363896240), cbor2.CBORTag(18, [b"\xa1\x01\x26", {}, b"", b""]),
    cbor2.CBORTag(2, b"\x01" + bytes(8)), cbor2.CBORTag(3, b"\x01" + bytes(8)),
    cbor2.CBORTag(2 ** 64 - 1, None), cbor2.CBORTag(24, cbor2.CBORTag(25, [])),
    [[[[[[[[0]]]]]]]],
]


def literal(v):
    """A one-line, ASCII-only Python literal for v that MicroPython's eval reads back."""
    if isinstance(v, cbor2.CBORTag):
        return "Tag(%d, %s)" % (v.tag, literal(v.value))
    if isinstance(v, list):
        return "[" + ", ".join(literal(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (literal(k), literal(x)) for k, x in v.items()) + "}"
    if isinstance(v, str):
        return ascii(v)
    return repr(v)


def random_value(rng, depth):
    kind = rng.randrange(9 if depth < 4 else 5)
    if kind == 0:
        return rng.randrange(2 ** rng.choice((5, 8, 16, 32, 64)))
    if kind == 1:
        return -1 - rng.randrange(2 ** rng.choice((5, 8, 16, 32, 64)))
    if kind == 2:
        return bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 5, 23, 24, 40))))
    if kind == 3:
        chars = []
        for _ in range(rng.randrange(12)):
            c = rng.choice((rng.randrange(0x80), rng.randrange(0x80, 0x800),
                            rng.randrange(0x800, 0xD800), rng.randrange(0xE000, 0x10000),
                            rng.randrange(0x10000, 0x110000)))
            chars.append(chr(c))
        return "".join(chars)
    if kind == 4:
        return rng.choice((False, True, None))
    if kind in (5, 6):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(6))]
    if kind == 7:
        out = {}
        text_keys = rng.randrange(2)  # str and bytes keys in one map: see CORPUS
        for _ in range(rng.randrange(6)):
            key = rng.choice((rng.randrange(-1000, 1000),
                              "k%d" % rng.randrange(100) if text_keys else
                              bytes((rng.randrange(256),))))
            out[key] = random_value(rng, depth + 1)
        return out
    return cbor2.CBORTag(rng.choice((5, 18, 24, 100, 1000, 70000)), random_value(rng, depth + 1))


def corpus_lines():
    rng = random.Random(20240917)
    values = CORPUS + [random_value(rng, 0) for _ in range(150)]
    lines = []
    for v in values:
        enc = cbor2.dumps(v)
        lines.append("%s %s\n" % (binascii.hexlify(enc).decode(), literal(v)))
    return "".join(lines)


def private_key(label):
    d = int.from_bytes(hashlib.sha256(label).digest(), "big") % (2 ** 255)
    return ec.derive_private_key(d + 1, ec.SECP256R1())


def xy(priv):
    n = priv.public_key().public_numbers()
    return n.x.to_bytes(32, "big"), n.y.to_bytes(32, "big")


def cose_key(priv):
    x, y = xy(priv)
    d = priv.private_numbers().private_value.to_bytes(32, "big")
    return EC2Key(crv=P256, x=x, y=y, d=d)


def ota_header():
    h = fmt.Header()
    h.manufacturer = 0x1234
    h.image_type = 0x0101
    h.file_version = 0x01020304
    h.header_string = b"gen_cose test image"
    h.total_size = 4096
    h.hw_min = 1
    h.hw_max = 3
    return pack.pack_header(h)


def manifest(kid):
    return cbor2.dumps({
        mf.M_FORMAT: mf.FORMAT_VERSION, mf.M_SEQ: 7, mf.M_VERSION: 0x01020304,
        mf.M_MANUFACTURER: 0x1234, mf.M_IMAGE_TYPE: 0x0101, mf.M_HW_MIN: 1,
        mf.M_HW_MAX: 3, mf.M_SIZE: 3000, mf.M_SHA256: hashlib.sha256(b"fw").digest(),
        mf.M_CRC32: 0x12345678, mf.M_ENCODING: fmt.ENC_RAW, mf.M_ENC_SIZE: 3000,
        mf.M_SECTOR: 4096, mf.M_TABLE_SHA256: hashlib.sha256(b"table").digest(),
        mf.M_KID: kid,
    })


def bad_cases(prot, payload, sig, kid):
    """(reason name, word in the detail, encoded message)."""
    def msg(p=prot, u=None, pl=payload, s=sig, tag=18):
        return cbor2.dumps(cbor2.CBORTag(tag, [p, {} if u is None else u, pl, s]))

    def hdr(m):
        return cbor2.dumps(m)

    good = msg()
    return [
        ("BAD_COSE", "tag 18", cbor2.dumps([prot, {}, payload, sig])),
        ("BAD_COSE", "tag 98", msg(tag=98)),
        ("BAD_COSE", "array", cbor2.dumps(cbor2.CBORTag(18, {1: 2}))),
        ("BAD_COSE", "array", cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload]))),
        ("BAD_COSE", "array", cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, sig, b""]))),
        ("BAD_COSE", "protected", msg(p="text")),
        ("BAD_COSE", "protected", msg(p=hdr([1, -7]))),
        ("BAD_CBOR", "overruns", msg(p=b"\xa2\x01\x26")),
        ("BAD_COSE", "unprotected", msg(u=[1])),
        ("BAD_COSE", "detached", msg(pl=None)),
        ("BAD_COSE", "payload", msg(pl="text")),
        ("BAD_COSE", "signature", msg(s=0)),
        ("BAD_COSE", "signature of 63", msg(s=sig[:63])),
        ("BAD_COSE", "signature of 65", msg(s=sig + b"\x00")),
        ("BAD_COSE", "alg missing", msg(p=hdr({4: kid}))),
        ("BAD_COSE", "alg missing", msg(p=b"")),
        ("BAD_COSE", "alg missing", msg(p=hdr({4: kid}), u={1: -7})),
        ("UNSUPPORTED_ALG", "-35", msg(p=hdr({1: -35, 4: kid}))),
        ("UNSUPPORTED_ALG", "-8", msg(p=hdr({1: -8}))),
        ("UNSUPPORTED_ALG", "ES256", msg(p=hdr({1: "ES256"}))),
        ("UNSUPPORTED_ALG", "None", msg(p=hdr({1: None}))),
        ("BAD_COSE", "both", msg(u={4: kid})),
        ("BAD_COSE", "both", msg(p=hdr({1: -7, "x": 1}), u={"x": 2})),
        ("BAD_COSE", "crit", msg(p=hdr({1: -7, 2: [99], 99: 0}))),
        ("BAD_COSE", "crit", msg(p=hdr({1: -7}), u={2: [99]})),
        ("BAD_COSE", "kid", msg(p=hdr({1: -7, 4: "kid"}))),
        ("BAD_COSE", "kid", msg(p=hdr({1: -7}), u={4: 5})),
        ("BAD_COSE", "label", msg(u={b"x": 1})),
        ("BAD_COSE", "label", msg(p=hdr({1: -7, b"x": 1}))),
        ("BAD_CBOR", "after", good + b"\x00"),
        ("BAD_CBOR", "overruns", good[:-1]),
        ("BAD_CBOR", "non-minimal", b"\xd8\x12" + good[1:]),
        ("BAD_CBOR", "indefinite", b"\xd2\x9f" + good[2:] + b"\xff"),
    ]


P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def sign(key, phdr, uhdr, payload, aad):
    """pycose signs with a random s; devices take only s <= n/2, so the high form is turned
    into the low one (the signature bstr is the message's last 64 bytes)."""
    m = Sign1Message(phdr=phdr, uhdr=uhdr, payload=payload, external_aad=aad, key=key)
    enc = m.encode(tag=True)
    s = int.from_bytes(enc[-32:], "big")
    if s > P256_N // 2:
        enc = enc[:-32] + (P256_N - s).to_bytes(32, "big")
    return m, enc


def generate(outdir):
    def put(name, data):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)

    put("cbor_corpus.txt", corpus_lines().encode("ascii"))
    priv = private_key(b"gen_cose signing key")
    x, y = xy(priv)
    kid = hashlib.sha256(b"\x04" + x + y).digest()[:KID_LEN]
    key = cose_key(priv)
    aad = ota_header()
    payload = manifest(kid)
    m, enc = sign(key, {Algorithm: Es256, KID: kid}, {}, payload, aad)
    decoded = Sign1Message.decode(enc)
    decoded.key = key
    decoded.external_aad = aad
    if not decoded.verify_signature():
        raise SystemExit("gen_cose: pycose cannot verify its own message")
    _m2, enc2 = sign(key, {Algorithm: Es256}, {KID: kid}, payload, aad)
    put("cose_sign1.bin", enc)
    put("cose_sign1_ukid.bin", enc2)
    put("cose_aad.bin", aad)
    put("cose_payload.bin", payload)
    put("cose_kid.bin", kid)
    put("cose_pub.bin", x + y)
    x2, y2 = xy(private_key(b"gen_cose other key"))
    put("cose_pub2.bin", x2 + y2)
    put("cose_tbs.bin", m._create_sig_structure())
    items = cbor2.loads(enc).value
    lines = ["%s %s %s\n" % (r, w, binascii.hexlify(b).decode())
             for r, w, b in bad_cases(items[0], payload, items[3], kid)]
    put("cose_bad.txt", "".join(lines).encode("ascii"))
