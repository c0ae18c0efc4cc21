# The resumable SHA-256 agrees with hashlib, and survives a save/restore at any point.
import hashlib
import struct
from agent.sha256r import Sha256, STATE_SIZE, STATE_FMT
from tutil import eq


def _data(n, seed):
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = x >> 16 & 0xFF
    return bytes(out)


def test_state_size():
    eq(struct.calcsize(STATE_FMT), STATE_SIZE, "state size")


def test_known_answers():
    eq(Sha256().digest(), hashlib.sha256(b"").digest(), "empty")
    h = Sha256()
    h.update(b"abc")
    eq(h.digest(), bytes.fromhex(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc")


def test_every_length_and_split():
    for n in (1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000):
        d = _data(n, n)
        want = hashlib.sha256(d).digest()
        for step in (1, 7, 48, 64, 100):
            h = Sha256()
            for i in range(0, n, step):
                h.update(d[i:i + step])
            eq(h.digest(), want, "length %d step %d" % (n, step))


def test_save_restore_anywhere():
    d = _data(700, 3)
    want = hashlib.sha256(d).digest()
    buf = bytearray(STATE_SIZE + 3)
    for cut in (0, 1, 63, 64, 65, 333, 699, 700):
        h = Sha256()
        h.update(d[:cut])
        h.save(buf, 3)
        h2 = Sha256(memoryview(buf)[3:])
        h2.update(d[cut:])
        eq(h2.digest(), want, "cut %d" % cut)
        eq(h.digest(), hashlib.sha256(d[:cut]).digest(), "digest leaves the state alone")
