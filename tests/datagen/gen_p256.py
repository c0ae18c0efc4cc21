"""ECDSA P-256 / SHA-256 test vectors for agent.crypto.p256, in forms a device reads line by line.

Files written:
  p256_wycheproof.txt  Project Wycheproof ecdsa_secp256r1_sha256_p1363_test.json (tests/fixtures/,
                       see its README), one case a line:
                         TCID RESULT KEY SIG MSG
                       RESULT is V (valid), I (invalid) or A (acceptable), KEY the
                       uncompressed public key (04||x||y), SIG r||s as given (any length),
                       MSG the message ("-" when empty); all hex. First line: "# CASES".
  p256_nist.txt        NIST CAVP FIPS 186-3 SigVer.rsp, section [P-256,SHA-256], from the
                       cryptography-vectors package, one case a line:
                         RESULT KEY SIG MSG
                       RESULT is P (pass), F (fail, the key is a curve point) or K (fail,
                       the key is not a curve point: check_key must refuse it); KEY is x||y.
  p256_edge.txt        signatures made here for chosen u1 = e/s and u2 = r/s and keys that are
                       small multiples of +-G, so that the Shamir loop adds a point to itself,
                       cancels to infinity and recovers, or ends at infinity:
                         RESULT KEY DIGEST SIG
                       RESULT V or I; KEY is x||y, DIGEST the 32-byte e (not a message).
  p256_random.bin      signatures made by the cryptography package (RFC 6979 deterministic
                       nonces, keys from a seeded generator, so the file is reproducible):
                         "<I" record count, then per record RECORD_FMT and MSG_LEN message
                       bytes. Every record is a valid signature; FLIP names one bit of
                       SIG||MSG (bit 7 of byte 0 is bit 0) whose flip makes it invalid.
"""
import binascii
import json
import os
import random
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

WYCHEPROOF = "wycheproof/ecdsa_secp256r1_sha256_p1363_test.json"
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551

RANDOM_COUNT = 2000
# Private keys whose public keys are small multiples of G or their negatives, so that
# u1*G + u2*Q meets equal and opposite points inside the Shamir loop.
SPECIAL_KEYS = (1, 2, 3, 5, 7, 63, N - 1, N - 2, N - 3, N - 5, N - 7, N - 63)

RECORD_FMT = "<64s64sHB"
#   64s  public key x||y
#   64s  signature r||s
#   H    FLIP: index of a bit of SIG||MSG whose flip must make the signature invalid
#   B    MSG_LEN: length of the message that follows
RECORD_SIZE = struct.calcsize(RECORD_FMT)


def _hex(b):
    return binascii.hexlify(b).decode() if b else "-"


def _key_ok(pub65):
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub65)
    except ValueError:
        return False
    return True


def _valid(pub65, msg, sig):
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub65)
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    try:
        key.verify(utils.encode_dss_signature(r, s), msg, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def wycheproof_lines():
    with open(os.path.join(FIXTURES, WYCHEPROOF)) as f:
        doc = json.load(f)
    out = []
    for group in doc["testGroups"]:
        if group["sha"] != "SHA-256" or group["publicKey"]["curve"] != "secp256r1":
            raise SystemExit("gen_p256: unexpected Wycheproof group %r" % group["sha"])
        key = group["publicKey"]["uncompressed"]
        for t in group["tests"]:
            res = {"valid": "V", "invalid": "I", "acceptable": "A"}[t["result"]]
            out.append("%d %s %s %s %s" % (t["tcId"], res, key, t["sig"] or "-", t["msg"] or "-"))
    if len(out) != doc["numberOfTests"]:
        raise SystemExit("gen_p256: %d Wycheproof cases, header says %d"
                         % (len(out), doc["numberOfTests"]))
    return out


def nist_lines():
    import cryptography_vectors
    path = os.path.join(os.path.dirname(cryptography_vectors.__file__),
                        "asymmetric", "ECDSA", "FIPS_186-3", "SigVer.rsp")
    out = []
    section = None
    case = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
                continue
            if section != "[P-256,SHA-256]" or " = " not in line:
                continue
            name, value = line.split(" = ", 1)
            case[name] = value
            if name != "Result":
                continue
            pub = bytes.fromhex(case["Qx"].rjust(64, "0") + case["Qy"].rjust(64, "0"))
            sig = bytes.fromhex(case["R"].rjust(64, "0") + case["S"].rjust(64, "0"))
            msg = bytes.fromhex(case["Msg"])
            res = value[0]
            if res == "F" and not _key_ok(b"\x04" + pub):
                res = "K"
            elif (res == "P") != (_key_ok(b"\x04" + pub) and _valid(b"\x04" + pub, msg, sig)):
                raise SystemExit("gen_p256: cryptography disagrees with SigVer.rsp")
            out.append("%s %s %s %s" % (res, _hex(pub), _hex(sig), _hex(msg)))
            case = {}
    if len(out) != 15:
        raise SystemExit("gen_p256: expected 15 [P-256,SHA-256] SigVer cases, got %d" % len(out))
    return out


def _point(k):
    """x||y of k*G (0 < k < n), by the cryptography package."""
    pub = ec.derive_private_key(k, ec.SECP256R1()).public_key()
    return pub.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)[1:]


def _prehashed_valid(pub, digest, sig):
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + pub)
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                     int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


def _edge(d, u1, u2, e_plus_n=False):
    # The signature (r, s) and digest e for which verification computes u1*G + u2*Q, Q = d*G.
    k = (u1 + u2 * d) % N
    r = int.from_bytes(_point(k)[:32], "big") % N if k else 0x1234567
    s = r * pow(u2, -1, N) % N
    e = u1 * s % N
    if e_plus_n and e + N < 2 ** 256:
        e += N
    pub = _point(d)
    digest = e.to_bytes(32, "big")
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    res = "V" if k else "I"
    if (res == "V") != _prehashed_valid(pub, digest, sig):
        raise SystemExit("gen_p256: cryptography disagrees on an edge case")
    return "%s %s %s %s" % (res, _hex(pub), _hex(digest), _hex(sig))


def edge_lines():
    out = []
    for j in (0, 1, 4, 6, 100, 254, 255):
        out.append(_edge(1, 1 << j, 1 << j))              # Q = G: G + G inside the loop
        out.append(_edge(N - 1, (1 << j) + 1, 1 << j))    # Q = -G: cancels, then ends at G
        out.append(_edge(N - 1, 1 << j, 1 << j))          # Q = -G: ends at infinity
        out.append(_edge(3, 3 << j, 1 << j))              # Q = 3G: 3G + 3G
        out.append(_edge(N - 3, (3 << j) + 5, 1 << j))    # Q = -3G: cancels, then 5G
    for j in (2, 50, 200):
        out.append(_edge(5, (5 << j) % N, (1 << j) + 1))  # Q = 5G
        out.append(_edge(7, 0, (7 << j) % N))             # u1 = 0 (e = 0)
        out.append(_edge(7, 0, (7 << j) % N, True))       # e = n
        out.append(_edge(N - 7, 7 << j, 1 << j))          # Q = -7G: ends at infinity
    for u1 in (1, 2, N - 1, N - 2):
        out.append(_edge(2, u1, N - 1))
        out.append(_edge(N - 2, u1, 1))
    return out


def random_records(count=RANDOM_COUNT, seed=256):
    rnd = random.Random(seed)
    algo = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    recs = []
    for i in range(count):
        if i < len(SPECIAL_KEYS) * 8:
            d = SPECIAL_KEYS[i % len(SPECIAL_KEYS)]
        else:
            d = rnd.randrange(1, N)
        key = ec.derive_private_key(d, ec.SECP256R1())
        pub65 = key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        msg = rnd.randbytes(rnd.randrange(0, 100))
        r, s = utils.decode_dss_signature(key.sign(msg, algo))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        while True:
            flip = rnd.randrange((64 + len(msg)) * 8)
            data = bytearray(sig + msg)
            data[flip >> 3] ^= 0x80 >> (flip & 7)
            if not _valid(pub65, bytes(data[64:]), bytes(data[:64])):
                break
        recs.append(struct.pack(RECORD_FMT, pub65[1:], sig, flip, len(msg)) + msg)
    return recs


def generate(outdir):
    lines = wycheproof_lines()
    with open(os.path.join(outdir, "p256_wycheproof.txt"), "w") as f:
        f.write("# %d\n" % len(lines))
        for line in lines:
            f.write(line + "\n")
    with open(os.path.join(outdir, "p256_nist.txt"), "w") as f:
        for line in nist_lines():
            f.write(line + "\n")
    with open(os.path.join(outdir, "p256_edge.txt"), "w") as f:
        for line in edge_lines():
            f.write(line + "\n")
    recs = random_records()
    with open(os.path.join(outdir, "p256_random.bin"), "wb") as f:
        f.write(struct.pack("<I", len(recs)))
        for rec in recs:
            f.write(rec)
