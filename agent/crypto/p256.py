# ECDSA verification on NIST P-256 with SHA-256 (FIPS 186-5 section 6.4.2, SEC 1 v2 4.1.4).
#
# Public data only, so nothing here tries to be constant-time. Points are in Jacobian
# coordinates with the y coordinate doubled: (X, W, Z) stands for x = X/Z^2, y = W/(2 Z^3),
# which saves a few small multiplications per doubling; Z == 0 is the point at infinity.
# u1*G + u2*Q is one pass of doublings with both scalars in width-w NAF (Shamir's trick),
# adding odd multiples of Q and of G from small tables of affine points. The cost is
# dominated by about 256 doublings (3M + 5S, a = -3) and 90 mixed additions (8M + 3S).
# The table for G is built on first use and kept: 16 points, about 1.7 KiB of heap on a
# 32-bit port (2.3 KiB on 64-bit); the table for Q is built per call.
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

_WQ = const(4)  # NAF width for u2: 4 odd multiples of Q
_WG = const(6)  # NAF width for u1: 16 odd multiples of G (7 is 1.5% faster, twice the RAM)

_gx = None  # x of G, 3G, 5G, ... (filled by _gtable)
_gw = None  # 2y of the same points


def _inv(a, m):
    # Inverse of a modulo m (gcd(a, m) == 1, 0 < a < m) by the extended Euclidean algorithm;
    # several times faster than pow(a, m - 2, m) under MicroPython.
    b = m
    u = 1
    v = 0
    while b:
        q, t = divmod(a, b)
        a = b
        b = t
        t = u - v if q == 1 else u - q * v  # q is 1 in about 41 % of the steps
        u = v
        v = t
    return u % m


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


def _add(X1, W1, Z1, X2, W2, Z2):
    # P1 + P2, Jacobian with W = 2Y, any inputs (infinity, P1 == P2, P1 == -P2).
    if Z1 == 0:
        return X2, W2, Z2
    if Z2 == 0:
        return X1, W1, Z1
    p = _P
    z1 = Z1 * Z1 % p
    z2 = Z2 * Z2 % p
    u = X1 * z2 % p
    s = W1 * Z2 % p * z2 % p
    h = X2 * z1 % p - u
    r = W2 * Z1 % p * z1 % p - s
    if h == 0:
        if r == 0:
            return _dbl(X1, W1, Z1)
        return 1, 1, 0
    t = h << 1
    t = t * t % p
    b = h * t % p
    u = u * t % p
    X3 = (r * r - b - u - u) % p
    W3 = ((r * (u - X3) - s * b) << 1) % p
    Z3 = Z1 * Z2 % p * (h << 1) % p
    return X3, W3, Z3


def _odd_multiples(x, y, count):
    # Affine lists x and w = 2y of P, 3P, 5P, ..., (2*count - 1)P for an affine point P.
    p = _P
    w = (y << 1) % p
    dx, dw, dz = _dbl(x, w, 1)
    X = [x]
    W = [w]
    Z = [1]
    for i in range(1, count):
        a, b, c = _add(X[i - 1], W[i - 1], Z[i - 1], dx, dw, dz)
        X.append(a)
        W.append(b)
        Z.append(c)
    # One inversion for all Z (Montgomery's trick); no multiple is infinity, n is prime.
    c = [1] * count
    acc = 1
    for i in range(count):
        acc = acc * Z[i] % p
        c[i] = acc
    inv = _inv(acc, p)
    for i in range(count - 1, -1, -1):
        zi = inv * c[i - 1] % p if i else inv
        inv = inv * Z[i] % p
        z2 = zi * zi % p
        X[i] = X[i] * z2 % p
        W[i] = W[i] * z2 % p * zi % p
    return X, W


def _gtable():
    # (x list, 2y list) of G, 3G, 5G, ..., built on the first call.
    global _gx, _gw
    if _gx is None:
        x, w = _odd_multiples(_GX, _GY, 1 << (_WG - 2))
        # Rebuilt at their exact size (under MicroPython a remainder keeps the allocation of
        # the 512-bit dividend): halves the heap the table holds.
        for t in (x, w):
            for i in range(len(t)):
                t[i] = int.from_bytes(t[i].to_bytes(32, "big"), "big")
        _gx = x
        _gw = w
    return _gx, _gw


def _wnaf(k, w):
    # Width-w NAF of 0 <= k < 2^256: out[i] is digit i as a signed byte (odd, |d| < 2^(w-1))
    # or 0. Returns (out, number of digits). Bits are fed from bytes into a small int.
    out = bytearray(257)
    kb = k.to_bytes(33, "little")
    m = (1 << w) - 1
    half = 1 << (w - 1)
    full = 1 << w
    acc = nb = i = j = top = 0  # acc holds bits i.. of k (nb of them, plus any carry)
    while i < 257:
        if nb <= w and j < 33:
            acc += kb[j] << nb
            nb += 8
            j += 1
        elif acc & 1:
            d = acc & m
            if d >= half:
                d -= full
            acc = (acc - d) >> w
            out[i] = d & 0xff
            i += w
            nb -= w
            top = i - w + 1
        else:
            acc >>= 1
            nb -= 1
            i += 1
    return out, top


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


def verify(pub, digest, sig):
    """True when sig (64 bytes r||s) is a valid ECDSA P-256 signature by pub over digest
    (32 bytes, the SHA-256 of the message). Raises OtaError(BAD_KEY) for a malformed key."""
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
    gx, gw = _gtable()
    qx, qw = _odd_multiples(int.from_bytes(pub[:32], "big"),
                            int.from_bytes(pub[32:], "big"), 1 << (_WQ - 2))
    nq, top = _wnaf(u2, _WQ)
    ng, i = _wnaf(u1, _WG)
    X, W, Z = _shamir(nq, qx, qw, ng, gx, gw, top if top > i else i)
    if Z == 0:
        return False
    # x(R) = X/Z^2 must be r or r + n (x < p < 2n); compared without an inversion.
    p = _P
    zz = Z * Z % p
    if r * zz % p == X:
        return True
    r += n
    return r < p and r * zz % p == X


def _shamir(nq, qx, qw, ng, gx, gw, top):
    """u2*Q + u1*G as (X, W, Z), from the NAF digits of u2 (nq, over the odd multiples of Q
    in qx, qw) and of u1 (ng, over those of G), in one pass of `top` doublings."""
    p = _P
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
            if d:
                tx = qx
                tw = qw
            else:
                tx = gx
                tw = gw
                d = e
                e = 0
            neg = d > 127  # the digit's point is -(x, w): its sign goes into r
            if neg:
                d = 256 - d
            x = tx[d >> 1]
            w = tw[d >> 1]
            d = 0
            # mixed addition (madd-2007-bl) with its special cases
            if Z == 0:
                X = x
                W = p - w if neg else w
                Z = 1
                continue
            zz = Z * Z % p
            h = x * zz % p - X
            r = w * zz % p * Z % p
            if neg:
                r += W  # -r: r * r is the same, r * (a - X) is -r * (X - a)
            else:
                r -= W
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
