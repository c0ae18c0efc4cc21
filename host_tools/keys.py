"""Signing keys (ECDSA P-256) and the keygen command.

The key id is the first fmt.KID_LEN bytes of SHA-256 over the 65-byte uncompressed public
point 0x04||x||y; devices hold that raw point in their trust store.
"""
import hashlib
import os

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed, decode_dss_signature, encode_dss_signature)

from agent import fmt
from host_tools.cli import InputError

POINT_LEN = 65      # 0x04 || x (32) || y (32)
SIG_LEN = 64        # r (32) || s (32)
_ECDSA = ec.ECDSA(hashes.SHA256())
_ECDSA_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))


def generate():
    """A fresh P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _p256(key, path, kind):
    if not isinstance(key, kind) or not isinstance(key.curve, ec.SECP256R1):
        raise InputError("%s: not an ECDSA P-256 key" % path)
    return key


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def load_private(path):
    """An unencrypted P-256 private key from a PEM (PKCS8 or SEC1) or DER file."""
    data = _read(path)
    try:
        if data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise InputError("%s: encrypted private keys are not supported" % path)
    except (ValueError, UnsupportedAlgorithm):
        raise InputError("%s: not a PEM private key" % path)
    return _p256(key, path, ec.EllipticCurvePrivateKey)


def load_public(path):
    """A P-256 public key from a PEM or DER SubjectPublicKeyInfo, or a raw 65-byte point."""
    data = _read(path)
    try:
        if len(data) == POINT_LEN and data[0] == 4:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
        elif data.lstrip().startswith(b"-----"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise InputError("%s: not a public key" % path)
    return _p256(key, path, ec.EllipticCurvePublicKey)


def public_from_point(point):
    """The public key object for a 65-byte uncompressed point."""
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(point))


def public_point(key):
    """The 65-byte uncompressed public point of a private or public P-256 key."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


def key_id(point):
    """Key id of a 65-byte uncompressed public point."""
    point = bytes(point)
    if len(point) != POINT_LEN or point[0] != 4:
        raise ValueError("not an uncompressed P-256 point")
    return hashlib.sha256(point).digest()[:fmt.KID_LEN]


def _raw(der):
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign(private_key, data):
    """ECDSA P-256 / SHA-256 over data; the signature as 64 bytes r||s."""
    return _raw(private_key.sign(data, _ECDSA))


def sign_digest(private_key, digest):
    """As sign(), for a SHA-256 digest computed by the caller."""
    return _raw(private_key.sign(digest, _ECDSA_PREHASHED))


def verify(public_key, signature, data=None, digest=None):
    """True when the 64-byte r||s signature is valid over data (or the SHA-256 digest)."""
    if len(signature) != SIG_LEN:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    try:
        if digest is not None:
            public_key.verify(der, digest, _ECDSA_PREHASHED)
        else:
            public_key.verify(der, data, _ECDSA)
    except InvalidSignature:
        return False
    return True


def _write_new(path, data, mode, force):
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if force else os.O_EXCL)
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


def write_keypair(private_path, public_path, force=False, key=None, raw_path=None):
    """Write a key pair (private PKCS8 PEM mode 0600, public SPKI PEM, optional raw
    65-byte point); refuses to overwrite unless force. Returns the key id."""
    paths = [p for p in (private_path, public_path, raw_path) if p is not None]
    if len(set(os.path.abspath(p) for p in paths)) != len(paths):
        raise InputError("the key files must be distinct")
    if not force:
        for p in paths:
            if os.path.lexists(p):
                raise InputError("%s exists (use --force to overwrite)" % p)
    key = key if key is not None else generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    point = public_point(key)
    _write_new(private_path, priv, 0o600, force)
    _write_new(public_path, pub, 0o644, force)
    if raw_path is not None:
        _write_new(raw_path, point, 0o644, force)
    return key_id(point)


def register(sub):
    p = sub.add_parser("keygen", help="make an ECDSA P-256 signing key pair",
                       description="Make an ECDSA P-256 key pair and print its key id (hex).")
    p.add_argument("--private", required=True, metavar="K.pem",
                   help="private key out (PKCS8 PEM, unencrypted, mode 0600)")
    p.add_argument("--public", required=True, metavar="P.pem",
                   help="public key out (SubjectPublicKeyInfo PEM)")
    p.add_argument("--raw-public", metavar="P.bin",
                   help="also write the raw 65-byte public point (device trust store)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=run_keygen)


def run_keygen(args):
    kid = write_keypair(args.private, args.public, force=args.force, raw_path=args.raw_public)
    print(kid.hex())
    return 0
