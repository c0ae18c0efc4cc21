# agent.crypto.p256's table of G against the multiples of G that the cryptography package
# computes (a public key is the private scalar times G), not the agent's own arithmetic.
from cryptography.hazmat.primitives.asymmetric import ec

from agent.crypto import p256

P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff


def test_g_table_matches_cryptography():
    assert len(p256._GT) == 16 * 64
    for k in range(16):
        pub = ec.derive_private_key(2 * k + 1, ec.SECP256R1()).public_key().public_numbers()
        want = pub.x.to_bytes(32, "big") + (2 * pub.y % P).to_bytes(32, "big")
        assert p256._GT[64 * k:64 * k + 64] == want, "%dG" % (2 * k + 1)
