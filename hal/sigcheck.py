# Signature check interface: a board may verify ECDSA P-256 signatures in hardware (a secure
# element, a crypto accelerator) instead of the agent's pure-Python agent.crypto.p256.
#
#   verifier(pub, digest, sig) -> bool
#       pub     64 bytes x||y of a P-256 public key (already checked to be on the curve)
#       digest  32 bytes SHA-256 of the signed message
#       sig     64 bytes r||s
#       True only for a valid signature; it must never raise for a bad one.
#
# A board hands it to the agent as board.verifier (None: agent.crypto.p256.verify). The agent uses
# it for the manifest signature, the supplier trailer and every check from flash.


class CountingVerifier:
    """Wraps a verifier and counts its calls (for tests and for boards that log use)."""

    def __init__(self, inner=None):
        if inner is None:
            from agent.crypto.p256 import verify as inner
        self.inner = inner
        self.calls = 0

    def __call__(self, pub, digest, sig):
        self.calls += 1
        return bool(self.inner(pub, digest, sig))
