# The resumable SHA-256 agrees with hashlib, and survives a save/restore at any point, with
# each compression function the interpreter has (plain Python everywhere; viper on
# MicroPython), and across the two (a state saved by one is resumed by the other).
import hashlib
import struct
import sys
from agent.crypto import sha256r
from agent.crypto.sha256r import Sha256, STATE_SIZE, STATE_FMT
from tutil import eq, noise

# The state after the first 150 bytes of _data(300, 9), as the journal holds it (saved by
# the earlier list-based implementation): the eight words after two blocks, the length 150,
# the 22 pending bytes, zeros. SHA-256 of the 300 bytes: _WHOLE.
_SAVED = bytes.fromhex(
    "b3a5b3d3c77861a716f3cb82866f8c0187cc4b197362bd3f7dd1bf25d7714051"
    "96000000" "bc6797327d0498b5158a0d3f777940681fc0b64c26d6" + "00" * 42)
_WHOLE = bytes.fromhex("d9bf44e8d68e03d031293d0d6cbba21c435d3656b32bd4ce4973cf3a6fb1ec1e")


def _data(n, seed):
    return bytes(noise(n, seed))


def _engines():
    """The engines this interpreter has; the one in use is restored by _restore."""
    out = ["python"]
    if sha256r.native() is not None:
        out.append("viper")
    return out


def _each(fn):
    was = sha256r.engine()
    try:
        for name in _engines():
            eq(sha256r.engine(name), name, "engine")
            fn(name)
    finally:
        sha256r.engine(was)


def test_state_size():
    eq(struct.calcsize(STATE_FMT), STATE_SIZE, "state size")


def test_viper_on_micropython():
    # every MicroPython the project tests on (unix x64, the Cortex-M3 firmware) has the
    # emitter, and the agent's hash must use it there
    want = "viper" if sys.implementation.name == "micropython" else "python"
    eq(sha256r.engine(), want, "default engine")
    if want == "python":
        try:
            sha256r.engine("viper")
            raise AssertionError("viper chosen without the emitter")
        except ValueError:
            pass
        eq(sha256r.engine(), "python", "engine after the refusal")


def test_known_answers():
    def run(name):
        eq(Sha256().digest(), hashlib.sha256(b"").digest(), "empty, " + name)
        h = Sha256()
        h.update(b"abc")
        eq(h.digest(), bytes.fromhex(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc " + name)
        h = Sha256()
        h.update(b"\xff" * 200)     # words with the top bit set everywhere
        eq(h.digest(), hashlib.sha256(b"\xff" * 200).digest(), "ones " + name)
    _each(run)


def test_every_length_and_split():
    def run(name):
        for n in (1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000):
            d = _data(n, n)
            want = hashlib.sha256(d).digest()
            for step in (1, 7, 48, 64, 100):
                h = Sha256()
                for i in range(0, n, step):
                    h.update(d[i:i + step])
                eq(h.digest(), want, "%s: length %d step %d" % (name, n, step))
    _each(run)


def test_random_lengths_and_splits():
    def run(name):
        x = 77
        for case in range(12):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            n = x % 700
            d = _data(n, case + 1)
            h = Sha256()
            i = 0
            while i < n:
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
                k = x % 150
                h.update(memoryview(d)[i:i + k])
                i += k
            eq(h.digest(), hashlib.sha256(d).digest(), "%s: case %d, %d bytes" % (name, case, n))
    _each(run)


def test_save_restore_anywhere():
    def run(name):
        d = _data(700, 3)
        want = hashlib.sha256(d).digest()
        buf = bytearray(STATE_SIZE + 3)
        for cut in (0, 1, 63, 64, 65, 333, 699, 700):
            h = Sha256()
            h.update(d[:cut])
            h.save(buf, 3)
            h2 = Sha256(memoryview(buf)[3:])
            h2.update(d[cut:])
            eq(h2.digest(), want, "%s: cut %d" % (name, cut))
            eq(h.digest(), hashlib.sha256(d[:cut]).digest(), "digest leaves the state alone")
    _each(run)


def test_resume_across_engines_and_resets():
    # a download hashed in legs, the state saved at each "reset" and resumed, alternately
    # by each engine; the journal layout is the same for both
    d = _data(1500, 21)
    names = _engines()
    was = sha256r.engine()
    try:
        for first in range(len(names)):
            state = None
            pos = 0
            leg = 0
            for stop in (37, 64, 200, 201, 777, 1024, 1499, 1500):
                sha256r.engine(names[(first + leg) % len(names)])
                h = Sha256(state)
                h.update(d[pos:stop])
                state = bytearray(STATE_SIZE)
                h.save(state)
                pos = stop
                leg += 1
            sha256r.engine(names[(first + leg) % len(names)])
            eq(Sha256(state).digest(), hashlib.sha256(d).digest(), "legs from " + names[first])
    finally:
        sha256r.engine(was)


def test_journal_state_compatible():
    d = _data(300, 9)

    def run(name):
        h = Sha256()
        h.update(d[:150])
        out = bytearray(STATE_SIZE)
        h.save(out)
        eq(bytes(out), _SAVED, "saved state, " + name)
        h = Sha256(_SAVED)
        h.update(d[150:])
        eq(h.digest(), _WHOLE, "resumed from a saved state, " + name)
        eq(hashlib.sha256(d).digest(), _WHOLE, "the data")
    _each(run)


def test_absorbing_functions_agree():
    # the same data, split the same way, through each function from the same state (words
    # with their high bits set): the same words, length and pending bytes
    t = sha256r.table()
    fns = [sha256r.plain]
    if sha256r.native() is not None:
        fns.append(sha256r.native())
    d = _data(64 * 9 + 5, 5)
    records = []
    for fn in fns:
        s = bytearray(STATE_SIZE)
        s[0:32] = b"\xff" * 16 + b"\x80" * 8 + b"\x7f" * 8
        i = 0
        for k in (0, 5, 59, 64, 1, 127, 63, 64, 130, 50, 18):
            fn(s, t, memoryview(d)[i:i + k], k)
            i += k
        eq(i, len(d), "all the data")
        n = struct.unpack_from("<I", s, 32)[0]
        eq(n, len(d), "length")
        records.append(bytes(s[:36 + (n & 63)]))
    for r in records[1:]:
        eq(r, records[0], "states")
    # one padded block, from the initial state, is SHA-256 of "abc"
    for fn in fns:
        h = Sha256()
        s = bytearray(STATE_SIZE)
        h.save(s)
        blk = b"abc\x80" + b"\x00" * 59 + b"\x18"
        fn(s, t, blk, 64)
        eq(struct.pack(">8I", *struct.unpack_from("<8I", s, 0)), hashlib.sha256(b"abc").digest(),
           "one block")
        eq(s[32:36], b"\x40\x00\x00\x00", "length after one block")


def _refused(fn, *args):
    try:
        fn(*args)
    except Exception:   # struct.error on CPython, ValueError on MicroPython
        return True
    return False


def test_short_buffers_refused():
    # the viper function writes the whole record: a short one must never get that far,
    # and saving never grows the caller's buffer
    eq(_refused(Sha256, bytearray(STATE_SIZE - 1)), True, "short state")
    h = Sha256()
    h.update(b"abc")
    out = bytearray(STATE_SIZE + 2)
    eq(_refused(h.save, out, 3), True, "save past the end")
    eq(len(out), STATE_SIZE + 2, "buffer length")
    h.save(out, 2)
    eq(Sha256(memoryview(out)[2:]).digest(), hashlib.sha256(b"abc").digest(), "saved at 2")
