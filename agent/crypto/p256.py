# ECDSA verification on NIST P-256 with SHA-256 (FIPS 186-5 section 6.4.2, SEC 1 v2 4.1.4).
#
# Public data only, so nothing here tries to be constant-time. Points are in Jacobian
# coordinates with the y coordinate doubled: (X, W, Z) stands for x = X/Z^2, y = W/(2 Z^3),
# which saves a few small multiplications per doubling; Z == 0 is the point at infinity.
# u1*G + u2*Q is one pass of doublings with both scalars in width-w NAF (Shamir's trick),
# adding odd multiples of Q and of G from small tables of affine points. The cost is
# dominated by about 256 doublings (3M + 5S, a = -3) and 80 mixed additions (8M + 3S); on a
# Cortex-M3 a 512-bit remainder by p costs about two multiplications.
# The table of G is a bytes constant (_GT: in flash when the module is frozen or in ROMFS, no
# heap), its points decoded when an addition uses them. The table of Q (8 points, by co-Z
# additions and one inversion) is built per call into the same layout in a work buffer the
# caller may lend (the device lends the slot writer's read-back buffer), with the NAF digits
# after it: the heap holds only the few numbers in use, never a table of them (the heap of a
# device in an update is fragmented, and this is its peak). The digits come from
# agent.crypto.p256v's viper function where the port has the emitter, else from _wnaf.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.errors import OtaError, BAD_KEY

# Curve y^2 = x^3 - 3x + b over GF(p); G has prime order n (cofactor 1).
_P = const(0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff)
_N = const(0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551)
_B = const(0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b)
_GX = const(0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296)
_GY = const(0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5)

_WQ = const(5)  # NAF width for u2: 8 odd multiples of Q
_WG = const(6)  # NAF width for u1: 16 odd multiples of G (7: twice the table, and measured
#                  0.4 % slower a verification on the Cortex-M3 tier)
_QT = const(64 << (_WQ - 2))  # bytes of the table of Q: x and w of each odd multiple
WORK = const(_QT + 514)  # bytes of verify's work buffer: the table of Q, two NAF digit strings
_fn = None  # the NAF function in use (native())

# The table of G: affine x and w = 2y mod p of G, 3G, 5G, ..., 31G (the 2^(_WG - 2) odd
# multiples), (2k + 1)G at bytes 64k..64k+63, x first, each number 32 bytes big-endian, from
# _odd_multiples(_GX, _GY, 16). Tests recompute it from the curve.
_GT = (
    b"\x6b\x17\xd1\xf2\xe1\x2c\x42\x47\xf8\xbc\xe6\xe5\x63\xa4\x40\xf2\x77\x03\x7d\x81\x2d\xeb"
    b"\x33\xa0\xf4\xa1\x39\x45\xd8\x98\xc2\x96\x9f\xc6\x85\xc5\xfc\x34\xff\x37\x1d\xcf\xd6\x94"
    b"\xf8\x1f\x3c\x2c\x57\x9c\x66\xae\xd6\x62\xbd\x9d\x97\x6c\x80\xd0\x6f\x7e\xa3\xea\x5e\xcb"
    b"\xe4\xd1\xa6\x33\x0a\x44\xc8\xf7\xef\x95\x1d\x4b\xf1\x65\xe6\xc6\xb7\x21\xef\xad\xa9\x85"
    b"\xfb\x41\x66\x1b\xc6\xe7\xfd\x6c\x0e\x68\xc8\x19\x93\x31\xfe\xfb\x6e\x96\x0d\x9c\x34\xc9"
    b"\x45\xd9\xb0\x55\x60\x6b\x70\x9f\x70\x7b\x34\xf3\x62\x4f\x44\xfa\xa0\x65\x51\x59\x0b\x7a"
    b"\x51\x51\x40\xd2\xd7\x84\xc8\x56\x08\x66\x8f\xdf\xef\x8c\x82\xfd\x1f\x5b\xe5\x24\x21\x55"
    b"\x4a\x0d\xc3\xd0\x33\xed\xc1\x82\xfb\x52\x20\x94\xe4\xfa\x15\xc3\x7e\x6d\x7f\x14\xf2\x4c"
    b"\x1a\x02\x5e\x00\xa9\xb0\x11\x11\xa3\xa1\x76\x89\xfb\x42\xdb\x49\x8e\x53\x3b\x6f\xa0\xbf"
    b"\x7b\x46\x25\xbb\x30\x66\x7c\x01\xfb\x60\x7e\xf9\xf8\xb8\xa8\x0f\xef\x5b\x30\x06\x28\x70"
    b"\x31\x87\xb2\xa3\xe7\xd6\x3b\x7b\xc0\x66\x30\x6c\xda\x0d\x3f\x07\x4d\xeb\x20\x00\xa7\x8e"
    b"\x6c\x67\x96\x08\x36\x43\x8a\xbc\x35\x0d\x83\xe8\x01\x68\xea\x68\xd7\xb6\xfe\xdf\x0b\x71"
    b"\x87\x89\x38\xd5\x1d\x71\xf8\x72\x9e\x0a\xcb\x8c\x2c\x6d\xf8\xb3\xd7\x9e\x8a\x4b\x90\x94"
    b"\x9e\xe0\x54\x4e\x89\x92\xe5\x93\xf9\xcf\x0e\x02\x95\x2c\x95\x1d\x41\x90\x9a\xe2\x9f\xd5"
    b"\x49\xbd\x04\x7f\xd0\xb4\x44\x94\x9b\xa0\x91\xf4\x3e\xd1\x13\xb7\x88\x3b\x4c\x59\x06\x38"
    b"\x37\x9d\xb0\xc2\x1c\xda\x16\x74\x2e\xd0\x25\x50\x48\xbf\x43\x33\x91\xd3\x74\xbc\x21\xd1"
    b"\x21\x32\x41\x36\x99\x89\x91\x43\x49\x90\x87\x5f\x49\xe9\x8d\x14\x12\x1a\x09\xb3\xbd\x31"
    b"\x13\xb5\xc5\xf1\xdd\xf9\xd0\x54\x6e\x81\x17\x7c\x83\x7a\xe0\xac\x49\x5a\x61\x80\x5d\xf2"
    b"\xd8\x5e\xe2\xfc\x79\x2e\x28\x4b\x65\xea\xd5\x8a\x98\xe1\x5d\x9d\x46\x07\x2c\x01\xc7\x76"
    b"\xb1\x9a\x9d\x7d\x4a\xb1\x44\x81\x23\x5b\x68\x1e\x9c\xe4\x4d\xdc\x29\x87\x43\xf6\x9b\xe7"
    b"\x38\x87\x77\xc5\xdf\x8f\x7f\xb0\xf0\x45\x4d\xc6\x97\x1a\xba\xe7\xad\xfb\x37\x89\x99\x88"
    b"\x82\x65\xae\x03\xaf\x92\xde\x3a\x0e\xf1\x63\x66\x8c\x63\xe5\x9b\x9d\x5f\x6b\x72\x7d\xc7"
    b"\xb2\x5c\x5a\x3d\x9c\xcb\x29\xca\x3f\x2c\x87\xcc\x54\x76\x43\x9b\xeb\x6b\xf4\x7e\x8f\xcb"
    b"\x39\xbc\x1a\x06\x9e\x6d\x47\x77\x69\x04\xc0\xf1\xcc\x3a\x9c\x09\x84\xb6\x6f\x75\x30\x1a"
    b"\x5f\xa6\x86\x78\xf0\xd6\x4a\xf8\xba\x1a\xbc\xe3\x47\x38\xa7\x3e\x54\x00\xbd\xce\x6b\x72"
    b"\xae\x4f\xc4\x63\x0a\xca\xee\xc9\x1d\x07\x03\x65\x00\x87\x51\xaa\xe6\x7e\x65\xef\x0f\xfe"
    b"\xe3\xe3\xf9\xb9\xcb\x6d\x28\x61\x10\x2c\x0c\x25\xce\x39\xb7\xc1\x71\x08\xc5\x07\x78\x2c"
    b"\x45\x22\x57\x88\x48\x95\xc1\xfc\x7b\x74\xab\x03\xed\x83\xb1\xae\xc2\x96\x49\xb3\xde\xa2"
    b"\xb8\x6b\xce\x20\x1a\xda\xd9\xc9\x49\x2c\xe2\xdc\x61\xf4\x7c\x07\xc7\x22\xa0\xea\x57\x9d"
    b"\x9b\x54\x32\x50\xfc\xf6\x86\x63\x7c\x7b\x2e\x4a\xc8\x6e\xb4\x73\xbc\xa5\x3a\x58\x21\x39"
    b"\xf4\x2b\x15\x23\xfd\x76\x36\x4e\x67\x39\x9e\x83\x85\xcf\x86\x84\xcc\xfa\x6b\x27\x2f\x66"
    b"\x12\x1a\x3a\xfd\x71\x19\x12\xf9\xa7\x86\x76\xac\xd5\x04\x2b\xbc\x49\x40\xe3\xa9\x18\x12"
    b"\x0e\x91\xc7\x23\x9c\x26\x40\xd7\xd2\x8a\x3e\x39\xd4\x58\x3f\xa6\x3c\x0b\xc0\xa5\xdf\x64"
    b"\xa4\xfe\x67\x2e\x57\x30\x45\xca\x78\x96\xbb\xec\xb8\x76\xaa\x1b\x74\x44\x34\x44\xe6\x77"
    b"\x71\xc1\x7a\xda\xfc\xd1\x06\x6a\xeb\xcf\x4b\x5c\x27\x00\x8c\xa8\x62\x81\x5a\xaa\x3a\x67"
    b"\xe2\x55\x4b\x0c\x0b\xb6\x85\xf4\xf5\x2d\x8c\x07\xfa\x84\x41\x65\x2f\xc5\xb7\x6f\x1b\x24"
    b"\x84\xa4\xdc\x45\xf2\x00\xd6\x87\x4f\xa1\xe3\x0e\x5e\x3f\x9e\x86\x4d\xb5\xe4\xce\x2c\x75"
    b"\xf6\x1b\x18\x31\x15\xee\x6b\x4e\xc3\x15\x53\xda\x2d\x66\x05\xef\x26\x48\x18\x4f\xfa\x58"
    b"\x19\xd8\x0d\x51\xde\xba\x2f\xac\x46\x11\xf3\x78\x57\x63\x55\xbd\x68\x3e\x54\xab\xf2\xe2"
    b"\x01\x17\x3b\x08\x83\xd1\x81\x4c\xdc\x4f\xcd\x11\xe6\xb2\x49\x8d\xb2\x10\x4d\x97\x33\x2a"
    b"\x8b\x7b\xd9\x97\xc7\xe0\x92\x2c\x41\xa4\x85\x84\xc1\x20\xdc\xdf\xd6\xd3\x3a\xde\xfa\x19"
    b"\x5b\x07\xa7\xc3\x6d\xa0\x90\x85\x3b\x8c\xfd\x8c\xd1\xc6\x88\xb5\x8a\x41\xde\xdd\x69\x3d"
    b"\x1c\x78\x4d\xef\x09\x55\x74\x2e\xdc\x32\xba\xfb\x7e\xf0\x48\xbe\xab\x14\xbb\x96\x13\x42"
    b"\xcd\x55\x97\x2b\xdb\xda\xaa\x18\x24\x8b\x27\xa3\x79\x4d\x30\x1d\x9e\x50\x2d\xc7\xe0\x5d"
    b"\xa8\x5d\xa0\x26\xa7\xae\x9a\xa0\xfa\xc9\xdb\x7d\x52\xa9\x5b\x3e\x3e\x3f\x9a\xa0\xa1\xb4"
    b"\x5b\x8b\xca\xa3\x6d\xed\x66\x0c\x24\x47\xc1\xa4\x78\x04\xd6\x02\xfa\xe4\x53\x1b\x35\xc8"
    b"\xd1\x0f\x94\xc3\xab\x1b\x6d\x5d\x42\xfd\xc4\xce"
)


def _inv(a, m):
    # Inverse of a modulo m (gcd(a, m) == 1, 0 < a < m) by the extended Euclidean algorithm,
    # two steps a pass (b, v then a, u); several times faster than pow(a, m - 2, m) under
    # MicroPython. Invariants: a = u * a0 and b = v * a0 (mod m).
    b = m
    u = 1
    v = 0
    while True:
        q, b = divmod(b, a)
        v -= u if q == 1 else q * u  # q is 1 in about 41 % of the steps
        if not b:
            return u % m
        q, a = divmod(a, b)
        u -= v if q == 1 else q * v
        if not a:
            return v % m


def _dbl(X, W, Z):
    # 2P, Jacobian with W = 2Y, a = -3: 3M + 5S.
    p = _P
    zz = Z * Z % p
    t = W * W % p
    b = X * t % p
    a = (X - zz) * 3 * (X + zz) % p
    Z = W * Z % p
    X = (a * a - (b << 1)) % p
    W = (a * ((b - X) << 1) - t * t) % p
    return X, W, Z


def _odd_multiples(x, y, count, out, tmp):
    # Affine x and w = 2y of P, 3P, 5P, ..., (2*count - 1)P for an affine point P
    # (count > 1) into out (a memoryview of count * 64 bytes): multiple 2k + 1 at bytes 64k,
    # x then w, each 32 bytes big-endian, as _GT. tmp (a memoryview of (count - 1) * 64
    # bytes) holds l^2 and l^3 of each step on the way. By co-Z additions (Meloni): 2P is
    # kept at the Z of the last multiple, so that the next one costs 4M + 2S. Multiple k has
    # the Z of multiple k - 1 times l, and l^2, l^3 are kept; from 1/Z^2 and 1/Z^3 of the
    # last multiple (one inversion) each multiple is made affine with 4M. No multiple is
    # +-2P (n is prime and large), so no addition meets a special case.
    p = _P
    # P (b, c) and 2P (X2, Y2) at Z = 2y, doubled from Z = 1
    t = y * y % p
    a = (x * x - 1) * 3 % p
    b = (x * t << 2) % p
    c = (t * t << 3) % p
    X2 = (a * a - (b << 1)) % p
    Y2 = (a * (b - X2) - c) % p
    z = y << 1
    out[0:32] = x.to_bytes(32, "big")
    out[32:64] = (z % p).to_bytes(32, "big")
    for k in range(1, count):
        # the next multiple (b, c) = (b, c) + 2P, both moved to its Z
        l = X2 - b
        a = l * l % p
        X2 = X2 * a % p
        b = b * a % p
        o = 64 * k
        tmp[o - 64:o - 32] = a.to_bytes(32, "big")
        a = X2 - b  # l^3
        tmp[o - 32:o] = (a % p).to_bytes(32, "big")
        t = Y2 - c
        Y2 = Y2 * a % p
        b = (t * t - X2 - b) % p
        c = (t * (X2 - b) - Y2) % p
        out[o:o + 32] = b.to_bytes(32, "big")
        out[o + 32:o + 64] = c.to_bytes(32, "big")
        z = z * l % p
    a = _inv(z, p)
    b = a * a % p
    c = b * a % p
    fb = int.from_bytes
    for k in range(count - 1, 0, -1):
        o = 64 * k
        out[o:o + 32] = (fb(out[o:o + 32], "big") * b % p).to_bytes(32, "big")
        out[o + 32:o + 64] = ((fb(out[o + 32:o + 64], "big") * c << 1) % p).to_bytes(32, "big")
        if k > 1:  # 1/Z^2 and 1/Z^3 of multiple k - 1
            b = b * fb(tmp[o - 64:o - 32], "big") % p
            c = c * fb(tmp[o - 32:o], "big") % p


def _wnaf(b, w, out):
    # Width-w NAF (2 <= w <= 7) of 0 <= k < 2^256, given as b, its 36 bytes little-endian:
    # out[i] is digit i as a signed byte (odd, |d| < 2^(w-1)) or 0, in out (257 bytes,
    # cleared here). Returns the number of digits up to the last nonzero one. Bits are fed
    # from b, two bytes at a time, into a small int acc: bits i.. of k (nb of them, plus
    # any carry). agent.crypto.p256v's viper function is the same, argument for argument.
    out[0] = 0  # cleared by copies of its cleared start, doubling: 9 copies, not 257 stores
    n = 1
    while n < 257:
        c = n if n < 257 - n else 257 - n
        out[n:n + c] = out[0:c]
        n += c
    m = (1 << w) - 1
    half = 1 << (w - 1)
    acc = nb = i = j = top = 0
    while i < 257:
        if nb <= w:
            acc += (b[j] | b[j + 1] << 8) << nb
            nb += 16
            j += 2
        if acc & 1:
            d = acc & m
            if d >= half:
                d -= m + 1
            acc = (acc - d) >> w
            out[i] = d & 0xff
            top = i + 1
            i += w
            nb -= w
        elif acc & 2:
            acc >>= 1
            nb -= 1
            i += 1
        else:  # two zero digits
            acc >>= 2
            nb -= 2
            i += 2
    return top


def native():
    # the NAF's function, chosen at the first verification: agent.crypto.p256v's viper one
    # where the port has the emitter, else _wnaf (tests/device/test_crypto_p256.py runs both)
    global _fn
    try:
        from agent.crypto.p256v import wnaf as f
    except Exception:  # ImportError, or the port cannot load or compile native code
        f = _wnaf
    _fn = f
    return f


def check_key(pub):
    """Validate an uncompressed P-256 public key (64 bytes x||y, or 65 bytes 04||x||y).
    Returns the 64-byte x||y form; raises OtaError(BAD_KEY) when it is not a curve point."""
    n = len(pub)
    if n == 65:
        if pub[0] != 4:
            raise OtaError(BAD_KEY, "not an uncompressed point")
        pub = pub[1:]
    elif n != 64:
        raise OtaError(BAD_KEY, "length %d" % n)
    pub = bytes(pub)
    p = _P
    x = int.from_bytes(pub[:32], "big")
    y = int.from_bytes(pub[32:], "big")
    if x >= p or y >= p:
        raise OtaError(BAD_KEY, "coordinate out of range")
    if (y * y - (x * x - 3) * x - _B) % p:
        raise OtaError(BAD_KEY, "point not on the curve")
    return pub


def verify(pub, digest, sig, work=None):
    """True when sig (64 bytes r||s) is a valid ECDSA P-256 signature by pub over digest
    (32 bytes, the SHA-256 of the message). Raises OtaError(BAD_KEY) for a malformed key.
    work: a buffer the caller lends, whose first WORK bytes hold the table of Q and the NAF
    digits (its content before does not matter); where it is shorter or None they are made
    here, in one buffer, which a heap fragmented late in a download may have no hole for."""
    pub = check_key(pub)
    if len(sig) != 64 or len(digest) != 32:
        return False
    n = _N
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if r == 0 or s == 0 or r >= n or s >= n:
        return False
    s = _inv(s, n)
    u1 = int.from_bytes(digest, "big") * s % n
    u2 = r * s % n
    w = memoryview(work if work is not None and len(work) >= WORK else bytearray(WORK))
    qt = w[:_QT]
    # the table first, l^2 and l^3 of its steps where the digits go after
    _odd_multiples(int.from_bytes(pub[:32], "big"), int.from_bytes(pub[32:], "big"),
                   _QT >> 6, qt, w[_QT:_QT + _QT - 64])
    nw = _fn or native()
    nq = w[_QT:_QT + 257]
    ng = w[_QT + 257:WORK]
    top = nw(u2.to_bytes(36, "little"), _WQ, nq)
    i = nw(u1.to_bytes(36, "little"), _WG, ng)
    X, W, Z = _shamir(nq, qt, ng, top if top > i else i)
    if Z == 0:
        return False
    # x(R) = X/Z^2 must be r or r + n (x < p < 2n); compared without an inversion.
    p = _P
    zz = Z * Z % p
    if r * zz % p == X:
        return True
    r += n
    return r < p and r * zz % p == X


def _shamir(nq, qt, ng, top):
    """u2*Q + u1*G as (X, W, Z), from the NAF digits of u2 (nq, over the odd multiples of Q
    in qt, laid out as _GT) and of u1 (ng, over those of G in _GT), in one pass of `top`
    doublings."""
    p = _P
    gt = memoryview(_GT)  # slices of it copy nothing
    fb = int.from_bytes
    X = W = 1  # the accumulator, at infinity
    Z = 0
    for i in range(top - 1, -1, -1):
        # double, as _dbl (the point at infinity stays at Z == 0)
        zz = Z * Z % p
        t = W * W % p
        b = X * t % p
        a = (X - zz) * 3 * (X + zz) % p
        Z = W * Z % p
        X = (a * a - (b << 1)) % p
        W = (a * ((b - X) << 1) - t * t) % p
        # add the digit of u2 then the digit of u1, when nonzero
        d = nq[i]
        e = ng[i]
        while d or e:
            # the point of the digit of u2 (in qt), else that of u1 (in _GT); a negative
            # digit (a byte over 127) is that of -(x, w), its sign going into r
            if d:
                tb = qt
                j = d
                d = 0
            else:
                tb = gt
                j = e
                e = 0
            neg = j > 127
            if neg:
                j = 256 - j
            j = (j >> 1) << 6  # the point's offset in its table
            x = fb(tb[j:j + 32], "big")
            w = fb(tb[j + 32:j + 64], "big")
            # mixed addition (madd-2007-bl) with its special cases
            if Z == 0:
                X = x
                W = p - w if neg else w
                Z = 1
                continue
            zz = Z * Z % p
            h = x * zz % p - X
            r = w * zz % p * Z
            # reduced, so that r == 0 exactly when P == (x, w) (or -(x, w)); for -(x, w) this
            # is -r: r * r is the same, r * (a - X) is -r * (X - a)
            r = (r + W if neg else r - W) % p
            if h == 0:
                if r == 0:
                    X, W, Z = _dbl(X, W, Z)
                else:
                    Z = 0
                continue
            h2 = h << 1
            t = h2 * h2 % p
            b = h * t % p
            a = X * t % p
            X = (r * r - b - a - a) % p
            W = ((r * (X - a if neg else a - X) - W * b) << 1) % p
            Z = Z * h2 % p
    return X, W, Z
