"""agent.crypto.p256 against the cryptography package, with hypothesis choosing keys, messages and
signatures; plus the internal pieces (NAF recoding, inversion, the tables and the pass of
additions and doublings, the table of G)."""
import hashlib
import os
import subprocess
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings, strategies as st

from agent.crypto import p256
from agent.errors import OtaError, BAD_KEY

N = p256._N
P = p256._P
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

scalars = st.one_of(st.integers(1, N - 1), st.sampled_from([1, 2, 3, N - 1, N - 2, N - 3]))
u256 = st.one_of(st.integers(0, 2 ** 256 - 1), st.integers(0, 3), st.integers(N - 2, N + 2))


def verify_msg(pub, msg, sig):
    """p256.verify over SHA-256(msg)."""
    return p256.verify(pub, hashlib.sha256(msg).digest(), sig)


def pub_of(d):
    pub = ec.derive_private_key(d, ec.SECP256R1()).public_key()
    return pub.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


def crypto_ok(pub65, msg, r, s):
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub65)
    if not (0 < r < N and 0 < s < N):
        return False
    try:
        key.verify(utils.encode_dss_signature(r, s), msg, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def rs(r, s):
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@settings(max_examples=300, deadline=None)
@given(scalars, st.binary(max_size=200))
def test_signatures_by_cryptography_verify(d, msg):
    key = ec.derive_private_key(d, ec.SECP256R1())
    r, s = utils.decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    pub = pub_of(d)
    assert verify_msg(pub, msg, rs(r, s)) is True
    assert verify_msg(pub[1:], msg, rs(r, N - s)) is True
    assert verify_msg(pub, msg + b"\x00", rs(r, s)) is False


@settings(max_examples=300, deadline=None)
@given(scalars, st.binary(max_size=40), u256, u256)
def test_arbitrary_r_s_agree_with_cryptography(d, msg, r, s):
    pub = pub_of(d)
    assert verify_msg(pub, msg, rs(r, s)) == crypto_ok(pub, msg, r, s)


@settings(max_examples=200, deadline=None)
@given(scalars, st.binary(max_size=40), st.integers(0, 511))
def test_one_bit_changed_agrees_with_cryptography(d, msg, bit):
    key = ec.derive_private_key(d, ec.SECP256R1())
    r, s = utils.decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
    v = int.from_bytes(rs(r, s), "big") ^ (1 << bit)
    r, s = divmod(v, 1 << 256)
    assert verify_msg(pub_of(d), msg, rs(r, s)) == crypto_ok(pub_of(d), msg, r, s)


def crypto_key_ok(b65):
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b65)
    except ValueError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(min_size=64, max_size=64),
                 scalars.map(lambda d: pub_of(d)[1:]),
                 scalars.map(lambda d: bytearray(pub_of(d)[1:])).map(
                     lambda b: bytes(b[:63]) + bytes([b[63] ^ 1]))))
def test_check_key_agrees_with_cryptography(xy):
    try:
        got = p256.check_key(b"\x04" + xy)
    except OtaError as e:
        assert e.reason == BAD_KEY
        got = None
    assert (got == xy) == crypto_key_ok(b"\x04" + xy)
    assert got is None or p256.check_key(xy) == xy


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.integers(0, N - 1), st.integers(0, 2 ** 256 - 1),
                 st.integers(0, 64).map(lambda j: (1 << 256) - (1 << j) if j < 256 else 0)),
       st.sampled_from([2, 3, 4, 5, 6, 7]))
def test_wnaf_reconstructs_the_scalar(k, w):
    kb = k.to_bytes(36, "little")
    out = bytearray(257)
    top = p256._wnaf(kb, w, out)
    lent = bytearray(b"\xa5" * 257)  # a lent buffer, as verify's work: cleared, then the same
    top2 = p256._wnaf(kb, w, memoryview(lent))
    assert top2 == top and bytes(lent) == bytes(out)
    digits = [b - 256 if b > 127 else b for b in out]
    assert sum(d << i for i, d in enumerate(digits)) == k
    assert all(d == 0 or (d & 1 and abs(d) < 1 << (w - 1)) for d in digits)
    nz = [i for i, d in enumerate(digits) if d]
    assert all(b - a >= w for a, b in zip(nz, nz[1:]))
    assert top == (nz[-1] + 1 if nz else 0)


@given(st.integers(1, N - 1))
def test_inverse(a):
    assert p256._inv(a, N) * a % N == 1
    assert p256._inv(a, P) * a % P == 1


def affine(X, W, Z):
    if Z == 0:
        return None
    zi = pow(Z, -1, P)
    return X * zi * zi % P, W * zi * zi * zi * pow(2, -1, P) % P


def point(d):
    b = pub_of(d)
    return int.from_bytes(b[1:33], "big"), int.from_bytes(b[33:], "big")


def jac(d, z):
    x, y = point(d)
    return x * z * z % P, 2 * y * z * z * z % P, z


digit = st.sampled_from([0, 1, 3, 5, 7, 9, 11, 13, 15, -1, -3, -5, -7, -9, -11, -13, -15])


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.integers(1, N - 1), st.sampled_from([1, 3, N - 1, N - 3])),
       st.lists(st.tuples(st.integers(0, 3), digit, digit), min_size=1, max_size=4),
       st.integers(1, P - 1))
def test_shamir_additions_and_doubling(a, digits, z):
    # _shamir over a table of Q = aG (8 odd multiples, _odd_multiples) and the table of G,
    # digits chosen freely (with Q = +-G or +-3G the additions meet P == T and P == -T)
    x, y = point(a)
    qt = bytearray(512)
    p256._odd_multiples(x, y, 8, memoryview(qt), memoryview(bytearray(448)))
    num = lambda o: int.from_bytes(qt[o:o + 32], "big")
    assert [point((2 * k + 1) * a % N) for k in range(8)] == \
        [(num(64 * k), num(64 * k + 32) * pow(2, -1, P) % P) for k in range(8)]
    nq = bytearray(257)
    ng = bytearray(257)
    for i, dq, dg in digits:
        nq[i] = dq & 0xff
        ng[i] = dg & 0xff
    top = max(i for i, dq, dg in digits) + 1
    k = sum(((nq[i] - 256 if nq[i] > 127 else nq[i]) * a +
             (ng[i] - 256 if ng[i] > 127 else ng[i])) << i for i in range(top)) % N
    assert affine(*p256._shamir(nq, memoryview(qt), ng, top)) == (point(k) if k else None)
    assert affine(*p256._dbl(*jac(a, z))) == point(2 * a % N)


def test_g_table_holds_odd_multiples_of_g():
    # the constant against the multiples of G that cryptography computes, not the agent's
    # own arithmetic (tests/device/test_crypto_p256.py rebuilds it with the agent's)
    t = p256._GT
    assert len(t) == (1 << (p256._WG - 2)) * 64
    for i in range(len(t) // 64):
        x, y = point(2 * i + 1)
        assert t[64 * i:64 * i + 64] == x.to_bytes(32, "big") + (2 * y % P).to_bytes(32, "big")


def test_no_work_at_import():
    # importing the module or checking a key builds no table: the table of G is a bytes
    # constant (in flash with frozen or ROMFS bytecode) and no module global is a list
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import agent.crypto.p256 as m\n"
            "lists = lambda: [k for k, v in vars(m).items() if isinstance(v, list)]\n"
            "assert lists() == [] and isinstance(m._GT, bytes), lists()\n"
            "m.check_key(bytes.fromhex(%r))\n"
            "assert lists() == [], lists()\n" % (ROOT, pub_of(5)[1:].hex()))
    subprocess.run([sys.executable, "-c", code], check=True)
