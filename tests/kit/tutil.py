# Helpers shared by the device-side tests; runs under CPython and MicroPython.
from agent.errors import OtaError

try:
    import os.path as _p
    ROOT = _p.dirname(_p.dirname(_p.dirname(_p.abspath(__file__))))
except ImportError:  # MicroPython: mprun runs from the repository root
    ROOT = "."

DATA = ROOT + "/build/testdata"
FIXTURES = ROOT + "/tests/fixtures"


def data_path(name):
    return DATA + "/" + name


def read_data(name):
    with open(data_path(name), "rb") as f:
        return f.read()


class Image:
    """A data file read a block at a time into one buffer, never whole into the heap (the
    device's own path streams too); the file is opened at the first use. len(img) is the
    file's size; img[a:b] is a memoryview of the buffer holding bytes a..b (valid until
    the next read); img[i] is one byte."""

    def __init__(self, name):
        self.name = name
        self.f = None
        self.size = 0
        self.buf = bytearray(0)

    def _open(self):
        if self.f is None:
            self.f = open(data_path(self.name), "rb")
            self.size = self.f.seek(0, 2)
        return self.f

    def __len__(self):
        self._open()
        return self.size

    def __getitem__(self, k):
        n = len(self)
        if not isinstance(k, slice):
            if k < 0:
                k += n
            if not 0 <= k < n:
                raise IndexError(k)
            return self.read(k, 1)[0]
        a = 0 if k.start is None else k.start
        b = n if k.stop is None else k.stop
        a = min(a + n if a < 0 else a, n)
        b = min(b + n if b < 0 else b, n)
        return self.read(a, b - a if b > a else 0)

    def read(self, off, n):
        """n bytes (fewer at the end of the file) from offset off, in the buffer."""
        f = self._open()
        if n > len(self.buf):
            self.buf = None
            self.buf = bytearray(n if n > 64 else 64)
        mv = memoryview(self.buf)[:n]
        f.seek(off)
        got = 0
        while got < n:
            k = f.readinto(mv[got:])
            if not k:
                break
            got += k
        return mv[:got]

    def sha256(self, start=0, step=512):
        """SHA-256 of the file's bytes from start to its end."""
        import hashlib
        h = hashlib.sha256()
        off = start
        while off < len(self):
            h.update(self.read(off, step))
            off += step
        return h.digest()

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def same_as_file(name, read, what=""):
    """read(off, buf) fills buf from offset off of something that must hold exactly the
    bytes of data file `name`; compared a block at a time."""
    with Image(name) as img:
        buf = bytearray(256)
        off = 0
        while off < len(img):
            n = min(len(buf), len(img) - off)
            mv = memoryview(buf)[:n]
            read(off, mv)
            if bytes(mv) != bytes(img.read(off, n)):
                raise AssertionError("%s: differs from %s in bytes %d..%d" % (
                    what, name, off, off + n))
            off += n


def read_fixture(name):
    with open(FIXTURES + "/" + name, "rb") as f:
        return f.read()


def raises(reason, fn, *args):
    """Call fn(*args); it must raise OtaError with this reason. Returns the error."""
    try:
        fn(*args)
    except OtaError as e:
        if e.reason != reason:
            raise AssertionError("expected reason %d, got %s" % (reason, e))
        return e
    raise AssertionError("expected OtaError %d, nothing raised" % reason)


class Skip(Exception):
    """A test that cannot run under this interpreter or on this port: the runners
    (tests/mprun.py, tests/mcurun.py) report it as skipped with its reason, never passed."""


def skip(reason):
    """End the test as skipped, with the reason shown: under pytest a pytest skip, under
    MicroPython a Skip."""
    try:
        import pytest
    except ImportError:
        raise Skip(reason)
    pytest.skip(reason)


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))


def noise(n, seed):
    """n bytes of a 31-bit linear congruential sequence from seed: the same on every
    interpreter."""
    x = seed
    b = bytearray(n)
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        b[i] = x >> 16 & 0xFF
    return b


def heap_bound(e, want, size):
    """A TOO_LARGE from hal.sim.imagecheck that only says this heap cannot hold its emulated
    flash (the slot is sized from the free heap under MicroPython) is the heap's limit, not
    the device's verdict: raised as MemoryError, which the Cortex-M tier reports as a skip.
    e: the OtaError; want: the reason the test expects (None: acceptance); size: the
    payload's bytes."""
    from agent.errors import TOO_LARGE
    from hal.sim.imagecheck import default_cap
    if e.reason == TOO_LARGE and want != TOO_LARGE and (
            "no RAM" in str(e) or default_cap() < size):
        raise MemoryError(str(e))
