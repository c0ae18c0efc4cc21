# Trusted public keys on the device, picked by key id so keys can be rotated in the field.
# A key id is the first 8 bytes of SHA-256 over the 65-byte uncompressed point 04||x||y.
import hashlib
import binascii

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.errors import OtaError, BAD_KEY, UNKNOWN_KEY

KID_LEN = const(8)  # a key id: the first 8 bytes of SHA-256(uncompressed public point)

# DER prefix of a SubjectPublicKeyInfo holding an uncompressed P-256 point (26 bytes):
# SEQUENCE { SEQUENCE { OID ecPublicKey, OID prime256v1 }, BIT STRING 00 04 x y }
_SPKI_P256 = const(b"\x30\x59\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08"
                   b"\x2a\x86\x48\xce\x3d\x03\x01\x07\x03\x42\x00")


def point(pub):
    """The 65-byte uncompressed point from 64 (x||y) or 65 (04||x||y) bytes."""
    if len(pub) == 64:
        return b"\x04" + bytes(pub)
    if len(pub) == 65 and pub[0] == 4:
        return bytes(pub)
    raise OtaError(BAD_KEY, "public key must be 64 or 65 bytes")


def key_id(pub):
    return hashlib.sha256(point(pub)).digest()[:KID_LEN]


def from_pem(text):
    """The 65-byte point of a PEM 'PUBLIC KEY' (SubjectPublicKeyInfo, P-256)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode()
    lines = [ln.strip() for ln in text.split("\n")]
    try:
        start = lines.index("-----BEGIN PUBLIC KEY-----")
        end = lines.index("-----END PUBLIC KEY-----")
    except ValueError:
        raise OtaError(BAD_KEY, "not a PEM public key")
    try:
        der = binascii.a2b_base64("".join(lines[start + 1:end]))
    except ValueError:
        raise OtaError(BAD_KEY, "bad base64 in PEM")
    if len(der) != 91 or der[:26] != _SPKI_P256:
        raise OtaError(BAD_KEY, "not an uncompressed P-256 public key")
    return der[26:]


class Trust:
    """The set of public keys a device accepts manifests from."""

    def __init__(self, keys=()):
        self._keys = []
        for k in keys:
            self.add(k)

    def add(self, pub):
        from agent.crypto import p256
        p256.check_key(pub)
        pt = point(pub)
        self._keys.append((key_id(pt), pt[1:]))

    def find(self, kid):
        """The 64-byte x||y of the key with this id."""
        if kid is not None:
            for k, pub in self._keys:
                if k == kid:
                    return pub
        raise OtaError(UNKNOWN_KEY, binascii.hexlify(kid or b"").decode())

    def __len__(self):
        return len(self._keys)
