"""Signing keys (ECDSA P-256) and the keygen and getpub commands.

The key id is the first trust.KID_LEN bytes of SHA-256 over the 65-byte uncompressed public
point 0x04||x||y; devices hold that raw point in their trust store.

Every signature made or accepted here is low-s (s <= n/2): ECDSA signatures are malleable
((r, s) and (r, n - s) both verify), and the manifest signature is part of the Manufacturer
Image, whose hash is the image's identity, so the signer only ever writes the low-s one.
"""
import getpass
import hashlib
import os
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed, decode_dss_signature, encode_dss_signature)

from agent.crypto import trust
from host_tools import argtypes, pkcs8
from host_tools.atomic import Outputs
from host_tools.report import Rejected, add_output_options, emit, json_command

POINT_LEN = 65      # 0x04 || x (32) || y (32)
SIG_LEN = 64        # r (32) || s (32)
# the order n of the P-256 group (FIPS 186-4 D.1.2.3)
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
HALF_N = N >> 1
_ECDSA = ec.ECDSA(hashes.SHA256())
_ECDSA_PREHASHED = ec.ECDSA(Prehashed(hashes.SHA256()))


def generate():
    """A fresh P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def _p256(key, path, kind, what):
    if not isinstance(key, kind) or not isinstance(key.curve, ec.SECP256R1):
        raise Rejected("not-p256", "%s: not an ECDSA P-256 %s" % (path, what))
    return key


def _read(path):
    with open(path, "rb") as f:
        return f.read(1 << 20)


# -- passwords ---------------------------------------------------------------------------

def _on_terminal():
    return sys.stdin.isatty() and sys.stderr.isatty()


def password_from(env=None, what="private key", confirm=False):
    """A password as bytes: from the environment variable env, else asked on the terminal
    (twice when confirm). Rejected when neither is possible, or when it is empty."""
    if env is not None:
        pw = os.environ.get(env)
        if pw is None:
            raise Rejected("password-missing", "environment variable %s is not set" % env)
    else:
        if not _on_terminal():
            raise Rejected("password-missing",
                           "%s needs a password: give --password-env VAR or run on a terminal"
                           % what)
        pw = getpass.getpass("password for %s: " % what)
        if confirm and getpass.getpass("again: ") != pw:
            raise Rejected("password-mismatch", "the two passwords differ")
    if not pw:
        raise Rejected("password-empty", "empty password for %s" % what)
    return pw.encode("utf-8")


# -- loading -----------------------------------------------------------------------------

def _parse_private(data, password):
    if data.lstrip().startswith(b"-----"):
        return serialization.load_pem_private_key(data, password=password)
    return serialization.load_der_private_key(data, password=password)


def load_private(path, password_env=None):
    """A P-256 private key from a PEM (PKCS#8 or SEC1) or DER file. An encrypted one is
    opened with the password from the environment variable password_env, or asked on the
    terminal."""
    data = _read(path)
    try:
        key = _parse_private(data, None)
    except TypeError:                                   # encrypted: a password is needed
        pw = password_from(password_env, path)
        try:
            key = _parse_private(data, pw)
        except (ValueError, UnsupportedAlgorithm):
            raise Rejected("wrong-password", "%s: wrong password (or a damaged key)" % path)
    except (ValueError, UnsupportedAlgorithm):
        raise Rejected("bad-key", "%s: not a PEM private key" % path)
    return _p256(key, path, ec.EllipticCurvePrivateKey, "private key")


def _public_of(data):
    if len(data) == POINT_LEN and data[:1] == b"\x04":
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE"):
        return x509.load_pem_x509_certificate(data).public_key()
    if data.lstrip().startswith(b"-----"):
        return serialization.load_pem_public_key(data)
    try:
        return serialization.load_der_public_key(data)
    except ValueError:
        return x509.load_der_x509_certificate(data).public_key()


def load_public(path):
    """A P-256 public key from a PEM or DER SubjectPublicKeyInfo, an X.509 certificate (PEM
    or DER), or a raw 65-byte point."""
    data = _read(path)
    try:
        key = _public_of(data)
    except (ValueError, UnsupportedAlgorithm):
        raise Rejected("bad-key", "%s: not a public key or certificate" % path)
    return _p256(key, path, ec.EllipticCurvePublicKey, "public key")


def load_any(path, password_env=None):
    """The public key of a private key file, or of a public key or certificate file."""
    data = _read(path)
    try:
        _parse_private(data, None)
    except TypeError:
        return load_private(path, password_env).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return load_public(path)
    return load_private(path).public_key()


def public_from_point(point):
    """The public key object for a 65-byte uncompressed point."""
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(point))


def _public_bytes(key, encoding, form):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    return key.public_bytes(encoding, form)


def public_point(key):
    """The 65-byte uncompressed public point of a private or public P-256 key."""
    return _public_bytes(key, serialization.Encoding.X962,
                         serialization.PublicFormat.UncompressedPoint)


def key_id(point):
    """Key id of a 65-byte uncompressed public point."""
    point = bytes(point)
    if len(point) != POINT_LEN or point[0] != 4:
        raise ValueError("not an uncompressed P-256 point")
    return hashlib.sha256(point).digest()[:trust.KID_LEN]


# -- signatures --------------------------------------------------------------------------

def low_s(r, s):
    """The low-s form of the signature (r, s): (r, n - s) when s > n/2."""
    return (r, N - s) if s > HALF_N else (r, s)


def _raw(r, s):
    r, s = low_s(r, s)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def split_signature(data, what="signature"):
    """(r, s) of a P-256 signature given as 64 raw bytes r||s, DER (ECDSA-Sig-Value) or 128
    hex digits."""
    data = bytes(data)
    text = data.strip()
    if len(text) == 2 * SIG_LEN and all(c in b"0123456789abcdefABCDEF" for c in text):
        data = bytes.fromhex(text.decode())
    if len(data) == SIG_LEN:
        r, s = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
    else:
        try:
            r, s = decode_dss_signature(data)
        except ValueError:
            raise Rejected("bad-signature", "%s: not a P-256 signature (64 bytes r||s, DER or "
                           "hex)" % what)
    if not (0 < r < N and 0 < s < N):
        raise Rejected("bad-signature", "%s: r or s out of range" % what)
    return r, s


def parse_signature(data, what="signature"):
    """A signature as split_signature() takes it, as 64 bytes r||s in low-s form."""
    return _raw(*split_signature(data, what))


def sign(private_key, data):
    """ECDSA P-256 / SHA-256 over data; the signature as 64 bytes r||s, low-s."""
    return _raw(*decode_dss_signature(private_key.sign(data, _ECDSA)))


def sign_digest(private_key, digest):
    """As sign(), for a SHA-256 digest computed by the caller."""
    return _raw(*decode_dss_signature(private_key.sign(digest, _ECDSA_PREHASHED)))


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


# -- key files ---------------------------------------------------------------------------

def private_pem(key, password=None):
    """PKCS#8 PEM of a private key; encrypted when a password is given (PBES2: PBKDF2-HMAC-
    SHA256 with pkcs8.ITERATIONS iterations, AES-256-CBC)."""
    if password is not None:
        return pkcs8.encrypted_pem(key, password)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key):
    """SubjectPublicKeyInfo PEM of a private or public key."""
    return _public_bytes(key, serialization.Encoding.PEM,
                         serialization.PublicFormat.SubjectPublicKeyInfo)


def public_der(key):
    """SubjectPublicKeyInfo DER of a private or public key."""
    return _public_bytes(key, serialization.Encoding.DER,
                         serialization.PublicFormat.SubjectPublicKeyInfo)


def write_keypair(private_path, public_path, force=False, key=None, raw_path=None,
                  password=None):
    """Write a key pair (private PKCS#8 PEM mode 0600, encrypted when password is given;
    public SPKI PEM; optional raw 65-byte point), all files or none; refuses to overwrite
    unless force. Returns the key id."""
    out = Outputs(force)
    out.claim(private_path, 0o600, "private key")
    out.claim(public_path, None, "public key")
    out.claim(raw_path, None, "raw public key")
    key = key if key is not None else generate()
    point = public_point(key)
    out.put(private_path, private_pem(key, password))
    out.put(public_path, public_pem(key))
    if raw_path is not None:
        out.put(raw_path, point)
    out.commit()
    return key_id(point)


# -- the commands ------------------------------------------------------------------------

KEYGEN_EXAMPLE = """\
example:
  otatool keygen --private dev_priv.pem --public dev_pub.pem --raw-public dev_pub.bin
  OTA_KEY_PASSWORD=... otatool keygen --private k.pem --public p.pem --password-env OTA_KEY_PASSWORD
"""

GETPUB_EXAMPLE = """\
example:
  otatool getpub --key dev_priv.pem                      # every form, labelled
  otatool getpub --key dev_priv.pem --format c --out ota_key.h
  otatool getpub --key supplier_cert.pem --format raw --out supplier.bin
"""

FORMATS = ("all", "pem", "der", "raw", "c", "micropython", "kid")


def register(sub):
    p = sub.add_parser("keygen", help="make an ECDSA P-256 signing key pair",
                       formatter_class=argtypes.HelpFormatter, epilog=KEYGEN_EXAMPLE,
                       description="Make an ECDSA P-256 key pair and print its key id (and "
                                   "the files written). All the files\nare written, or none; "
                                   "an existing one is refused without --force.")
    p.add_argument("--private", required=True, metavar="K.pem",
                   help="private key out: PKCS#8 PEM, mode 0600 (required)")
    p.add_argument("--public", required=True, metavar="P.pem",
                   help="public key out: SubjectPublicKeyInfo PEM (required)")
    p.add_argument("--raw-public", metavar="P.bin",
                   help="also write the raw 65-byte public point, as a device trust store "
                        "holds it (default: not written)")
    p.add_argument("--encrypt", action="store_true",
                   help="encrypt the private key with a password (PBES2: PBKDF2-HMAC-SHA256, "
                        "AES-256-CBC), asked twice on the terminal (default: off)")
    p.add_argument("--password-env", metavar="VAR",
                   help="encrypt the private key with the password in environment variable "
                        "VAR (implies --encrypt; default: none)")
    add_output_options(p)
    p.set_defaults(func=run_keygen)

    p = sub.add_parser("getpub", help="print the public key of a key in several forms",
                       formatter_class=argtypes.HelpFormatter, epilog=GETPUB_EXAMPLE,
                       description="The public key of a private key (or of a public key or "
                                   "X.509 certificate) as PEM, DER,\nthe raw 65-byte point, a C "
                                   "array and a MicroPython bytes literal, and its key id.")
    p.add_argument("--key", required=True, metavar="K.pem",
                   help="private key (PEM or DER, encrypted or not), public key, raw point or "
                        "X.509 certificate (required)")
    p.add_argument("--format", choices=FORMATS, default="all",
                   help="the form to print: all of them labelled, or one")
    p.add_argument("--out", metavar="FILE",
                   help="write the form to FILE instead of stdout (default: stdout)")
    p.add_argument("--name", default="ota_public_key", metavar="IDENT",
                   help="identifier of the C array (upper case for MicroPython)")
    p.add_argument("--password-env", metavar="VAR",
                   help="password of an encrypted private key from environment variable VAR "
                        "(default: asked on the terminal)")
    add_output_options(p, "print every form as JSON")
    p.set_defaults(func=run_getpub)


@json_command
def run_keygen(args):
    encrypt = args.encrypt or args.password_env is not None
    out = Outputs(args.force)
    out.claim(args.private, 0o600, "private key")
    out.claim(args.public, None, "public key")
    out.claim(args.raw_public, None, "raw public key")
    password = password_from(args.password_env, "the new private key", confirm=True) \
        if encrypt else None
    key = generate()
    kid = write_keypair(args.private, args.public, args.force, key, args.raw_public, password)
    point = public_point(key)
    if args.json:
        emit({"ok": True, "kid": kid.hex(), "private": args.private, "public": args.public,
              "raw_public": args.raw_public, "encrypted": encrypt, "point": point.hex()})
        return 0
    print("key id       %s" % kid.hex())
    print("private key  %s (PKCS#8 PEM, %s, mode 0600)"
          % (args.private, "encrypted" if encrypt else "unencrypted"))
    print("public key   %s (SubjectPublicKeyInfo PEM)" % args.public)
    if args.raw_public:
        print("raw public   %s (65-byte uncompressed point)" % args.raw_public)
    return 0


def _c_array(point, kid, name):
    lines = ["/* ECDSA P-256 public key (uncompressed point), key id %s */" % kid.hex(),
             "const unsigned char %s[%d] = {" % (name, len(point))]
    for i in range(0, len(point), 12):
        lines.append("    " + ", ".join("0x%02x" % b for b in point[i:i + 12]) + ",")
    lines.append("};")
    return "\n".join(lines) + "\n"


def _micropython(point, kid, name):
    return ("# ECDSA P-256 public key (uncompressed point), key id %s\n%s = b\"%s\"\n"
            % (kid.hex(), name.upper(), "".join("\\x%02x" % b for b in point)))


def public_forms(key, name="ota_public_key"):
    """Every form of a public key: {format: bytes or text}."""
    point = public_point(key)
    kid = key_id(point)
    return {"kid": kid.hex() + "\n", "pem": public_pem(key).decode(), "der": public_der(key),
            "raw": point, "c": _c_array(point, kid, name),
            "micropython": _micropython(point, kid, name)}


def _labelled(forms):
    return ("key id       %s" % forms["kid"]
            + "raw point    %s (65 bytes)\n" % forms["raw"].hex()
            + "DER          %s (%d bytes)\n" % (forms["der"].hex(), len(forms["der"]))
            + "PEM\n" + forms["pem"] + "C array\n" + forms["c"]
            + "MicroPython\n" + forms["micropython"])


@json_command
def run_getpub(args):
    if not args.name.isidentifier():
        raise Rejected("bad-parameter", "--name %r is not an identifier" % args.name)
    out = Outputs(args.force, inputs=[args.key])
    out.claim(args.out, None, "--out file")
    forms = public_forms(load_any(args.key, args.password_env), args.name)
    if args.json:
        obj = {"ok": True}
        obj.update((k, v.hex() if isinstance(v, bytes) else v.strip() if k == "kid" else v)
                   for k, v in forms.items())
        if args.out is not None:
            out.put(args.out, forms[args.format] if args.format != "all"
                    else _labelled(forms).encode())
            out.commit()
            obj["out"] = args.out
        emit(obj)
        return 0
    data = _labelled(forms) if args.format == "all" else forms[args.format]
    if isinstance(data, str):
        data = data.encode()
    if args.out is not None:
        out.put(args.out, data)
        out.commit()
        return 0
    if args.format in ("der", "raw") and sys.stdout.isatty():
        raise Rejected("binary-output", "the %s form is binary: give --out FILE" % args.format)
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0
