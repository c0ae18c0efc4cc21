# The device's trusted public keys, from the file `otatool deploy` writes:
#   /ota/keys.bin    one or more 65-byte uncompressed P-256 points (04 || x || y), back to back
# A PEM public key file (one key) is accepted too.
from agent.errors import OtaError, BAD_KEY
from agent.crypto.trust import Trust, from_pem

KEYS_FILE = "ota/keys.bin"
POINT = 65


def load(path=KEYS_FILE):
    """An agent.crypto.trust.Trust with every key in the file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:5] == b"-----":
        return Trust([from_pem(data)])
    if not data or len(data) % POINT:
        raise OtaError(BAD_KEY, "%s: %d bytes, not a list of 65-byte points" % (path, len(data)))
    mv = memoryview(data)
    return Trust([bytes(mv[i:i + POINT]) for i in range(0, len(data), POINT)])
