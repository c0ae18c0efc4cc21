# COSE_Sign1 (RFC 9052 section 4.2) with ES256 (ECDSA P-256 / SHA-256) only.
#
#   COSE_Sign1 = #6.18([protected: bstr .cbor header_map, unprotected: header_map,
#                       payload: bstr, signature: bstr])
#   Sig_structure = ["Signature1", protected, external_aad, payload]
#
# The message must carry tag 18; alg must sit in the protected header; a label may not be in
# both header maps; crit (label 2) is not supported, so a message that has it is rejected;
# a detached (nil) payload is rejected.
import hashlib
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.crypto import cbor
from agent.errors import OtaError, BAD_COSE, UNSUPPORTED_ALG, BAD_KEY, HIGH_S

# The COSE numbers, for the device and the host tools alike (the image builder and the
# inspector read them from here):
TAG_SIGN1 = const(18)  # CBOR tag of a COSE_Sign1
ALG_ES256 = const(-7)  # algorithm: ECDSA P-256 with SHA-256
H_ALG = const(1)       # header label: algorithm
_H_CRIT = const(2)      # header label: critical header parameters
H_KID = const(4)       # header label: key id
SIG_LEN = const(64)    # ES256 signature: r || s, 32 bytes each
_PUB_LEN = const(64)    # P-256 public key: x || y, 32 bytes each
# Sig_structure head: array of 4, text string of 10, "Signature1"
SIG1_HEAD = b"\x84\x6aSignature1"
# (n - 1) / 2 for the P-256 group order n, big-endian: a signature's s must not exceed it.
# (r, n - s) verifies whenever (r, s) does; accepting only the low one keeps the COSE bytes,
# and with them the Manufacturer Image hash (the image's identity), unique to the signer.
_HALF_N = const(b"\x7f\xff\xff\xff\x80\x00\x00\x00\x7f\xff\xff\xff\xff\xff\xff\xff"
                b"\xdes}V\xd3\x8b\xcfBy\xdc\xe5a~1\x92\xa8")


class Sign1:
    """A parsed COSE_Sign1: protected is the serialized protected header (bstr contents)."""

    def __init__(self, protected, alg, kid, payload, signature):
        self.protected = protected
        self.alg = alg
        self.kid = kid
        self.payload = payload
        self.signature = signature


def _bad(detail):
    return OtaError(BAD_COSE, detail)


def _check_labels(h, other):
    for k in h:
        if type(k) is bytes:
            raise _bad("header label is a byte string")
        if other is not None and k in other:
            raise _bad("label %r in both header maps" % (k,))


def parse_sign1(buf):
    """Parse a tagged COSE_Sign1 with alg ES256; the signature is not checked here."""
    v = cbor.decode(buf)
    if not isinstance(v, cbor.Tag):
        raise _bad("not tagged; COSE_Sign1 needs tag 18")
    if v.tag != TAG_SIGN1:
        raise _bad("tag %d is not COSE_Sign1 (18)" % v.tag)
    a = v.value
    if type(a) is not list or len(a) != 4:
        raise _bad("content is not an array of 4 items")
    prot, unprot, payload, sig = a
    if type(prot) is not bytes:
        raise _bad("protected header is not a byte string")
    if type(unprot) is not dict:
        raise _bad("unprotected header is not a map")
    if payload is None:
        raise _bad("detached payload not supported")
    if type(payload) is not bytes:
        raise _bad("payload is not a byte string")
    if type(sig) is not bytes:
        raise _bad("signature is not a byte string")
    ph = cbor.decode(prot) if prot else {}
    if type(ph) is not dict:
        raise _bad("protected header is not a map")
    _check_labels(ph, None)
    _check_labels(unprot, ph)
    if _H_CRIT in ph or _H_CRIT in unprot:
        raise _bad("crit header parameter not supported")
    if H_ALG not in ph:
        raise _bad("alg missing from the protected header")
    h = ph if H_KID in ph else unprot
    kid = h.get(H_KID)
    if H_KID in h and type(kid) is not bytes:
        raise _bad("kid is not a byte string")
    alg = ph[H_ALG]
    if type(alg) is not int or alg != ALG_ES256:
        raise OtaError(UNSUPPORTED_ALG, "alg %r" % (alg,))
    if len(sig) != SIG_LEN:
        raise _bad("signature of %d bytes, ES256 needs %d" % (len(sig), SIG_LEN))
    return Sign1(prot, alg, kid, payload, sig)


def sig_structure_digest(protected, external_aad, payload):
    """SHA-256 of the Sig_structure, hashed piece by piece."""
    h = hashlib.sha256(SIG1_HEAD)
    for part in (protected, external_aad, payload):
        h.update(cbor.encode_head(cbor.MAJOR_BSTR, len(part)))
        h.update(part)
    return h.digest()


def check_low_s(msg):
    """Refuse a signature whose s is above n/2: an image offered to the device must carry
    the one encoding its signer made (images already in flash are not re-judged by it)."""
    if bytes(msg.signature[32:64]) > _HALF_N:  # equal lengths: compares as numbers
        raise OtaError(HIGH_S, "the signer must emit low-s signatures")


def verify_sign1(msg, external_aad, pub, verifier=None, work=None):
    """True when msg's ES256 signature over its Sig_structure verifies with pub (x || y).

    verifier(pub, digest32, sig64) -> bool replaces the software check (a hardware hook);
    by default agent.crypto.p256.verify, which takes its digit buffers from work when given
    (a buffer of 514 bytes or more that the caller lends).
    """
    if msg.alg != ALG_ES256:
        raise OtaError(UNSUPPORTED_ALG, "alg %r" % (msg.alg,))
    if len(pub) != _PUB_LEN:
        raise OtaError(BAD_KEY, "public key of %d bytes, expected %d" % (len(pub), _PUB_LEN))
    digest = sig_structure_digest(msg.protected, external_aad, msg.payload)
    if verifier is None:
        from agent.crypto.p256 import verify
        return verify(pub, digest, msg.signature, work)
    return bool(verifier(pub, digest, msg.signature))
