# ECDSA P-256 verification time under MicroPython (agent.crypto.p256), and a 256-bit modular
# exponentiation in the same run as the machine's yardstick.
#
#   MICROPYPATH=build/mpy micropython bench/mp_p256.py PUB_HEX DIGEST_HEX SIG_HEX
#
# Prints one JSON object; times in ms, best of REPS after the first call (which also
# builds the table of multiples of G that later calls reuse).
import sys
import time
import json
import binascii

from agent.crypto import p256

REPS = 50
# the field prime of P-256: pow(x, e, P) with 256-bit x and e
P = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffff


def ms(t0):
    return time.ticks_diff(time.ticks_us(), t0) / 1000.0


def main(argv):
    pub, digest, sig = [binascii.unhexlify(a) for a in argv[:3]]
    t0 = time.ticks_us()
    ok = p256.verify(pub, digest, sig)
    first = ms(t0)
    if not ok:
        raise SystemExit("the signature does not verify")
    bad = bytearray(sig)
    bad[40] ^= 1
    if p256.verify(pub, digest, bytes(bad)):
        raise SystemExit("a corrupted signature verifies")
    x = int.from_bytes(digest, "big")
    e = int.from_bytes(sig[:32], "big")
    best = mbest = None
    for _ in range(REPS):  # interleaved, so that both see the same machine
        t0 = time.ticks_us()
        p256.verify(pub, digest, sig)
        t = ms(t0)
        best = t if best is None or t < best else best
        t0 = time.ticks_us()
        pow(x, e, P)
        t = ms(t0)
        mbest = t if mbest is None or t < mbest else mbest
    print(json.dumps({"verify_ms": best, "first_ms": first, "modexp_ms": mbest,
                      "ratio_to_modexp": best / mbest, "reps": REPS}))


main(sys.argv[1:])
