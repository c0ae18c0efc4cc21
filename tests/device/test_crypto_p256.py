# agent.crypto.p256: Wycheproof, NIST CAVP SigVer and cryptography-made signatures, malformed keys
# and signatures. Vectors come from tests/datagen/gen_p256.py.
import binascii
import hashlib
import struct
import sys

from agent.crypto import p256
from agent.errors import OtaError, BAD_KEY
from tutil import raises, eq, data_path

N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff
GX = 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296
GY = 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5
G = GX.to_bytes(32, "big") + GY.to_bytes(32, "big")

RECORD_FMT = "<64s64sHB"  # as tests/datagen/gen_p256.py: key, sig, flip bit, message length
RECORD_SIZE = 131
RANDOM_COUNT = 2000


def h(s):
    return b"" if s == "-" else binascii.unhexlify(s)


def i32(v):
    return v.to_bytes(32, "big")


def verify_msg(pub, msg, sig):
    """p256.verify over SHA-256(msg)."""
    return p256.verify(pub, hashlib.sha256(msg).digest(), sig)


def verify_or_bad_key(pub, msg, sig):
    """verify_msg's answer, or "K" when it refuses the key with BAD_KEY."""
    try:
        p256.check_key(pub)
    except OtaError:
        raises(BAD_KEY, verify_msg, pub, msg, sig)
        return "K"
    return verify_msg(pub, msg, sig)


def test_wycheproof_all_cases():
    counts = {"V": 0, "I": 0, "A": 0}
    n = 0
    declared = -1
    with open(data_path("p256_wycheproof.txt")) as f:
        for line in f:
            if line.startswith("#"):
                declared = int(line[1:])
                continue
            tcid, res, pub, sig, msg = line.split()
            got = verify_or_bad_key(h(pub), h(msg), h(sig))
            if res == "V" and got is not True:
                raise AssertionError("Wycheproof tcId %s is valid, got %r" % (tcid, got))
            if res == "I" and got is True:
                raise AssertionError("Wycheproof tcId %s is invalid, got True" % tcid)
            counts[res] += 1
            n += 1
    eq(declared, 262, "declared cases")
    eq(n, 262, "cases run")
    eq((counts["V"], counts["I"], counts["A"]), (173, 89, 0), "valid, invalid, acceptable")


def test_lent_work_buffer_gives_the_same_answers():
    # the table of Q and the digits taken from a lent buffer (as the agent lends its
    # writer's read-back buffer): whatever it held before, the verification before's
    # included, each answer is the one without it; a buffer shorter than WORK bytes is not
    # used
    n = p256.WORK
    eq(n, 512 + 514, "the table of 8 points, then two 257-byte digit strings")
    work = bytearray(b"\x5a" * (n + 86))
    short = bytearray(b"\xff" * (n - 1))
    got = {"V": 0, "I": 0}  # four valid cases and two invalid ones (each three
    with open(data_path("p256_wycheproof.txt")) as f:  # verifications: the emulator's minute)
        for line in f:
            if line.startswith("#"):
                continue
            tcid, res, pub, sig, msg = line.split()
            if got.get(res, 9) >= (4 if res == "V" else 2):
                continue
            pub, sig, d = h(pub), h(sig), hashlib.sha256(h(msg)).digest()
            try:
                want = p256.verify(pub, d, sig)
            except OtaError:
                continue
            eq(p256.verify(pub, d, sig, work), want, "lent buffer, tcId %s" % tcid)
            eq(p256.verify(pub, d, sig, memoryview(work)[3:3 + n]), want, "a view of one")
            got[res] += 1
            if got == {"V": 4, "I": 2}:
                break
    eq(got, {"V": 4, "I": 2}, "cases")
    assert bytes(work[:n]) != b"\x5a" * n, "the table and digits went into the lent buffer"
    eq(bytes(work[3 + n:]), b"\x5a" * 83, "nothing past the view's WORK bytes")
    eq(p256.verify(G, bytes(32), bytes(64), short), False, "r = 0")
    eq(bytes(short), b"\xff" * (n - 1), "a short buffer is not used")


def test_nist_cavp_sigver():
    n = passes = 0
    with open(data_path("p256_nist.txt")) as f:
        for line in f:
            res, pub, sig, msg = line.split()
            pub = h(pub)
            msg = h(msg)
            sig = h(sig)
            if res == "K":
                raises(BAD_KEY, verify_msg, pub, msg, sig)
            else:
                eq(verify_msg(pub, msg, sig), res == "P", "SigVer case %d" % n)
                eq(p256.verify(b"\x04" + pub, hashlib.sha256(msg).digest(), sig), res == "P",
                   "SigVer case %d, 65-byte key" % n)
            passes += res == "P"
            n += 1
    eq(n, 15, "SigVer [P-256,SHA-256] cases")
    eq(passes, 3, "SigVer cases with Result = P")


def test_shamir_edge_cases():
    # u1*G + u2*Q with Q = +-kG: doubling inside an addition, cancelling to infinity and
    # recovering, ending at infinity, u1 = 0, e >= n.
    n = valid = 0
    with open(data_path("p256_edge.txt")) as f:
        for line in f:
            res, pub, digest, sig = line.split()
            got = p256.verify(h(pub), h(digest), h(sig))
            eq(got, res == "V", "edge case %d" % n)
            valid += got
            n += 1
    eq(n, 55, "edge cases")
    eq(valid, 43, "valid edge cases")


def test_inverse_against_fermat():
    # p256._inv (Euclid, with its q == 1 shortcut) agrees with a^(m-2) mod m, for both moduli
    for m in (P, N):
        vals = [1, 2, 3, m - 1, m - 2, (m + 1) // 2, 2 ** 255, 2 ** 128 + 1, GX, GY]
        for i in range(30):
            v = int.from_bytes(hashlib.sha256(bytes([i, m & 0xff])).digest(), "big")
            vals.append(v % (m - 1) + 1)
        for v in vals:
            inv = p256._inv(v, m)
            eq(inv, pow(v, m - 2, m), "inverse of %x mod %x" % (v, m))
            eq(inv * v % m, 1, "a * a^-1 mod %x" % m)


def _affine_add(a, b):
    # a + b for affine points (x, y) with a != -b, by the chord-and-tangent formulas
    if a == b:
        lam = (3 * a[0] * a[0] - 3) * pow(2 * a[1], P - 2, P) % P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], P - 2, P) % P
    x = (lam * lam - a[0] - b[0]) % P
    return x, (lam * (a[0] - x) - a[1]) % P


def _nafs():
    # every NAF function the interpreter has: p256._wnaf, and p256v's viper one where the
    # port has the emitter; each as top = f(scalar's 36 bytes little-endian, w, out)
    out = [p256._wnaf]
    try:
        from agent.crypto.p256v import wnaf
    except (ImportError, SyntaxError, ValueError):
        return out
    out.append(wnaf)
    return out


def test_viper_naf_where_the_port_has_the_emitter():
    # CPython verifies with p256._wnaf; the unix port compiles agent.crypto.p256v with its
    # emitter (x64) and verify uses it. (The Cortex-M tier's frozen firmware has it compiled
    # for Thumb; its ROMFS image leaves it out: see host_tools.mcu.ROMFS_LEAVES_OUT.)
    p256.verify(G, b"\x01" * 32, b"\x01" * 64)
    if sys.implementation.name != "micropython":
        eq(p256._fn, p256._wnaf, "CPython: the plain NAF")
    elif sys.platform == "linux":
        assert p256._fn is not p256._wnaf, "the unix port's viper emitter"


def _scalars():
    # the edges, then 300 from a hash chain, one at a time (a list of them would not fit a
    # small heap)
    for k in (0, 1, 2, 3, 5, 7, 2 ** 255, 2 ** 256 - 1, N - 1, N - 2, P, 0x5555 << 240,
              0xAAAA << 240, (1 << 256) - (1 << 17)):
        yield k
    d = b"naf"
    for _ in range(300):
        d = hashlib.sha256(d).digest()
        yield int.from_bytes(d, "big")


def test_naf_functions_agree():
    # both paths give the same digits into a lent buffer (whatever it held) and the same
    # count, for scalars at the edges and 300 from a hash chain, at every width verify
    # could use; the digits make the scalar again
    fns = _nafs()
    for k in _scalars():
        for w in (2, 3, 4, 5, 6, 7):
            want = None
            for f in fns:
                buf = bytearray(b"\xa5" * 257)
                top = f(k.to_bytes(36, "little"), w, memoryview(buf))
                got = (bytes(buf), top)
                if want is None:
                    want = got
                    v = 0
                    for i in range(256, -1, -1):
                        b = buf[i]
                        v = 2 * v + (b - 256 if b > 127 else b)
                    eq(v, k, "digits of %x (w %d)" % (k, w))
                eq(got, want, "NAF of %x, w %d" % (k, w))


def test_g_table_is_the_odd_multiples_of_g():
    # p256._GT holds x and 2y of G, 3G, ..., 31G; recomputed here in affine coordinates
    g = (GX, GY)
    g2 = _affine_add(g, g)
    pt = g
    want = b""
    for k in range(16):
        if k:
            pt = _affine_add(pt, g2)
        want += i32(pt[0]) + i32(2 * pt[1] % P)
    eq(len(p256._GT), 1024, "table size")
    for k in range(16):
        eq(p256._GT[64 * k:64 * k + 64], want[64 * k:64 * k + 64], "%dG" % (2 * k + 1))
    # the builder of the table of Q gives the same points, in the same layout
    eq(_table(GX, GY, 16), want, "_odd_multiples of G")
    q = _affine_add(g2, g)  # 3G
    t = _table(q[0], q[1], 4)
    eq([t[64 * k:64 * k + 64] for k in range(4)],
       [want[64 * k:64 * k + 64] for k in (1, 4, 7, 10)], "_odd_multiples of 3G: 3G, 9G, 15G, 21G")


def _table(x, y, count):
    # p256's table of the odd multiples of (x, y), as verify builds Q's: bytes, as _GT
    out = bytearray(64 * count)
    tmp = bytearray(b"\xa5" * (64 * count - 64))  # what it held before does not matter
    p256._odd_multiples(x, y, count, memoryview(out), memoryview(tmp))
    return bytes(out)


def _affine(X, W, Z):
    # the affine point of p256's (X, W, Z) (x = X/Z^2, y = W/(2 Z^3)), None at infinity
    if Z == 0:
        return None
    zi = pow(Z, P - 2, P)
    return X * zi * zi % P, W * zi * zi * zi * ((P + 1) // 2) % P


def test_shamir_additions_meeting_their_special_cases():
    # _shamir's addition with Q = G, both digits at the same position: the accumulator, just
    # made from the digit of u2, meets the point of the digit of u1 (equal: a doubling,
    # opposite: infinity), with either sign; then a doubling and an addition after it
    g = (GX, GY)
    neg = lambda pt: (pt[0], (P - pt[1]) % P)
    g2 = _affine_add(g, g)
    g3 = _affine_add(g2, g)
    g6 = _affine_add(g3, g3)
    g4 = _affine_add(g2, g2)
    g5 = _affine_add(g4, g)
    qt = memoryview(_table(GX, GY, 8))
    cases = [  # ((position, u2 digit, u1 digit), ...), the sum
        (((0, 1, 1),), g2), (((0, -1, -1),), neg(g2)), (((0, 3, 3),), g6),
        (((0, -3, -3),), neg(g6)), (((0, 1, -1),), None), (((0, -1, 1),), None),
        (((0, -3, 3),), None), (((1, 1, 1),), g4), (((1, -1, -1),), neg(g4)),
        (((1, 1, -1), (0, 0, 5)), g5), (((1, -1, 1), (0, -5, 0)), neg(g5)),
        (((1, 1, 0), (0, 1, 0)), g3), (((1, 0, 1), (0, 0, 1)), g3),
    ]
    for digits, want in cases:
        nq = bytearray(257)
        ng = bytearray(257)
        for i, dq, dg in digits:
            nq[i] = dq & 0xff
            ng[i] = dg & 0xff
        got = _affine(*p256._shamir(nq, qt, ng, digits[0][0] + 1))
        eq(got, want, "digits %r" % (digits,))


def _records():
    with open(data_path("p256_random.bin"), "rb") as f:
        count = struct.unpack("<I", f.read(4))[0]
        for _ in range(count):
            pub, sig, flip, mlen = struct.unpack(RECORD_FMT, f.read(RECORD_SIZE))
            yield pub, sig, flip, f.read(mlen)


def test_random_signatures_verify():
    eq(struct.calcsize(RECORD_FMT), RECORD_SIZE, "record size")
    n = 0
    for pub, sig, flip, msg in _records():
        if n & 1:
            ok = p256.verify(b"\x04" + pub, hashlib.sha256(msg).digest(), sig)
        elif n & 2:
            ok = verify_msg(bytearray(pub), msg, memoryview(sig))
        else:
            ok = verify_msg(pub, msg, sig)
        if ok is not True:
            raise AssertionError("record %d: valid signature rejected" % n)
        n += 1
    eq(n, RANDOM_COUNT, "records")


def test_random_signatures_one_bit_flipped():
    n = 0
    for pub, sig, flip, msg in _records():
        data = bytearray(sig + msg)
        data[flip >> 3] ^= 0x80 >> (flip & 7)
        if verify_msg(pub, bytes(data[64:]), bytes(data[:64])) is not False:
            raise AssertionError("record %d: bit %d flipped, still accepted" % (n, flip))
        n += 1
    eq(n, RANDOM_COUNT, "records")


def _one():
    for rec in _records():
        return rec


def test_malleable_s_and_range_of_r_s():
    pub, sig, flip, msg = _one()
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    d = hashlib.sha256(msg).digest()
    assert p256.verify(pub, d, sig)
    # ECDSA itself accepts (r, n - s); a policy against malleability belongs to the caller.
    assert p256.verify(pub, d, i32(r) + i32(N - s))
    m = 2 ** 256 - 1
    for br, bs in ((0, s), (r, 0), (0, 0), (N, s), (r, N), (N + 1, s), (r, N + 1),
                   (m, s), (r, m), (min(r + N, m), s), (r, min(s + N, m))):
        eq(p256.verify(pub, d, i32(br) + i32(bs)), False, "r, s = %x, %x" % (br, bs))


def test_wrong_lengths_return_false():
    pub, sig, flip, msg = _one()
    d = hashlib.sha256(msg).digest()
    assert p256.verify(pub, d, sig)
    for s in (b"", sig[:1], sig[:63], sig + b"\x00", b"\x00" + sig, sig + sig, b"\x30" + sig):
        eq(p256.verify(pub, d, s), False, "sig length %d" % len(s))
        eq(verify_msg(pub, msg, s), False, "sig length %d" % len(s))
    for dd in (b"", d[:31], d + b"\x00", d + d):
        eq(p256.verify(pub, dd, sig), False, "digest length %d" % len(dd))


def test_check_key_forms():
    pub = _one()[0]
    eq(p256.check_key(pub), pub, "64-byte form")
    eq(p256.check_key(b"\x04" + pub), pub, "65-byte form")
    eq(p256.check_key(bytearray(b"\x04" + pub)), pub, "bytearray")
    eq(p256.check_key(memoryview(b"\x04" + pub)), pub, "memoryview")
    assert type(p256.check_key(bytearray(pub))) is bytes
    eq(p256.check_key(G), G, "the generator")


def _small_x_point():
    # a curve point with x < 2^256 - p, so that x + p still fits in 32 bytes
    b = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b
    for x in range(100):
        rhs = (x * x * x - 3 * x + b) % P
        y = pow(rhs, (P + 1) // 4, P)
        if y * y % P == rhs:
            return x, y
    raise AssertionError("no point with a small x")


def test_malformed_keys_raise_bad_key():
    pub, sig, flip, msg = _one()
    x = pub[:32]
    y = pub[32:]
    xi = int.from_bytes(x, "big")
    yi = int.from_bytes(y, "big")
    sx, sy = _small_x_point()
    eq(p256.check_key(i32(sx) + i32(sy)), i32(sx) + i32(sy), "small x point")
    eq(p256.check_key(x + i32(P - yi)), x + i32(P - yi), "-Q")
    bad = [
        b"", b"\x00", b"\x04", pub[:63], pub + b"\x00", b"\x04" + pub + b"\x00", pub + pub,
        b"\x02" + x, b"\x03" + x,  # compressed points are not accepted
        b"\x02" + pub, b"\x03" + pub, b"\x05" + pub, b"\x00" + pub, b"\x06" + pub,
        bytes(64), b"\x04" + bytes(64), bytes(65),  # (0, 0), the usual stand-in for infinity
        x + i32(yi ^ 1), i32(xi ^ 1) + y, x + x, b"\x04" + G[:32] + G[:32],  # off the curve
        i32(sx + P) + i32(sy),  # on the curve modulo p, but x >= p
        i32(P) + y, x + i32(P), i32(2 ** 256 - 1) + y, x + i32(2 ** 256 - 1),
        bytes(32) + i32(P), b"\xff" * 64, b"\x04" + b"\xff" * 64,
    ]
    d = hashlib.sha256(msg).digest()
    for k in bad:
        raises(BAD_KEY, p256.check_key, k)
        raises(BAD_KEY, p256.verify, k, d, sig)
        raises(BAD_KEY, verify_msg, k, msg, sig)
    # the key is checked even when the signature is already known to be bad
    raises(BAD_KEY, p256.verify, b"\x04" + bytes(64), b"", b"")


def test_key_of_other_record_rejects():
    recs = []
    for rec in _records():
        recs.append(rec)
        if len(recs) == 20:
            break
    for i in range(len(recs)):
        pub = recs[(i + 1) % len(recs)][0]
        _, sig, flip, msg = recs[i]
        if pub != recs[i][0]:
            eq(verify_msg(pub, msg, sig), False, "record %d with key of %d" % (i, i + 1))
