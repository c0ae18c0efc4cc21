"""Password-encrypted PKCS#8 private keys with a strong key derivation.

cryptography's BestAvailableEncryption writes PBES2 with only 2048 PBKDF2 iterations, cheap to
guess at. This writes the same structure (RFC 8018 PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC, in
an RFC 5958 EncryptedPrivateKeyInfo) with ITERATIONS iterations; OpenSSL and cryptography
read it as any other encrypted PKCS#8 key. Only the DER framing is done here; the key
derivation and the cipher are cryptography's.
"""
import base64
import os

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

ITERATIONS = 600000        # PBKDF2-HMAC-SHA256 (OWASP's figure for it)
SALT_LEN = 16

OID_PBES2 = "1.2.840.113549.1.5.13"
OID_PBKDF2 = "1.2.840.113549.1.5.12"
OID_HMAC_SHA256 = "1.2.840.113549.2.9"
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"


def _tlv(tag, content):
    n = len(content)
    if n < 0x80:
        head = bytes([tag, n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([tag, 0x80 | len(size)]) + size
    return head + content


def _seq(*items):
    return _tlv(0x30, b"".join(items))


def _octets(data):
    return _tlv(0x04, data)


def _integer(v):
    return _tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))


def _oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def encrypted_der(key, password, iterations=ITERATIONS):
    """The EncryptedPrivateKeyInfo (DER) of a private key under password (bytes)."""
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    salt, iv = os.urandom(SALT_LEN), os.urandom(16)
    secret = PBKDF2HMAC(hashes.SHA256(), 32, salt, iterations).derive(password)
    padder = padding.PKCS7(128).padder()
    body = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    data = enc.update(body) + enc.finalize()
    kdf = _seq(_oid(OID_PBKDF2),
               _seq(_octets(salt), _integer(iterations), _seq(_oid(OID_HMAC_SHA256),
                                                              _tlv(0x05, b""))))
    scheme = _seq(_oid(OID_AES256_CBC), _octets(iv))
    return _seq(_seq(_oid(OID_PBES2), _seq(kdf, scheme)), _octets(data))


def encrypted_pem(key, password, iterations=ITERATIONS):
    """As encrypted_der(), in PEM ("ENCRYPTED PRIVATE KEY")."""
    b64 = base64.b64encode(encrypted_der(key, password, iterations)).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + "\n".join(lines)
            + "\n-----END ENCRYPTED PRIVATE KEY-----\n").encode()
