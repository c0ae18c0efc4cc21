# Runs device tests inside the Cortex-M firmware (MicroPython's qemu port); the host side is
# tests/mcutier.py, which builds the ROMFS image this comes from and starts the emulator.
#
#   import mcurun; mcurun.main(["test_crypto_cbor", ...], pattern, done)
#
# The image holds the device code (lib/), the tests (tests/) and their data (build/testdata,
# tests/fixtures); a RAM overlay mounted at /ram (the working directory) reads through to
# /rom and takes the files tests write. Each test prints "START mod::name", then one of
#   PASS mod::name (N ms)  |  FAIL mod::name  |  SKIP mod::name: reason
# (the host restarts the run past a test that overruns its time, naming it in `done`).
# A test is skipped, never passed, when the port lacks a module it imports, the heap is
# too small for it (MemoryError) or it raises tutil.Skip (it cannot run here); the reason is
# printed. Last line: "mcu: N passed, ...".
import gc
import sys
import os
import time


class _Data:
    """A file's bytes outside the heap: n bytes used of a region that grows by doubling."""

    def __init__(self):
        self.mem = None
        self.n = 0
        self.cap = 0

    def grow(self, size):
        if size <= self.cap:
            return
        cap = self.cap * 2 if self.cap * 2 > size else size
        cap = cap if cap > 4096 else 4096
        mem = _outside_heap(cap)
        if self.n:
            memoryview(mem)[0:self.n] = memoryview(self.mem)[0:self.n]
        self.mem = mem
        self.cap = cap


class _File:
    """A file of RamOverlay: its bytes in a _Data outside the heap."""

    def __init__(self, fs, path, data, text):
        self.fs = fs
        self.path = path
        self.data = data
        self.pos = 0
        self.text = text

    def read(self, n=-1):
        d = self.data
        end = d.n if n is None or n < 0 else min(d.n, self.pos + n)
        out = bytes(memoryview(d.mem)[self.pos:end]) if end > self.pos else b""
        self.pos = max(self.pos, end)
        return out.decode() if self.text else out

    def readinto(self, buf):
        d = self.data
        n = min(len(buf), d.n - self.pos)
        if n <= 0:
            return 0
        buf[0:n] = memoryview(d.mem)[self.pos:self.pos + n]
        self.pos += n
        return n

    def write(self, b):
        if self.text:
            b = b.encode()
        d = self.data
        end = self.pos + len(b)
        d.grow(end)
        mv = memoryview(d.mem)
        for i in range(d.n, self.pos):  # a gap past the end reads as zeros
            mv[i] = 0
        mv[self.pos:end] = b
        if end > d.n:
            d.n = end
        self.pos = end
        return len(b)

    def seek(self, off, whence=0):
        self.pos = off if whence == 0 else (self.pos + off if whence == 1 else
                                            self.data.n + off)
        return self.pos

    def tell(self):
        return self.pos

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class RamOverlay:
    """A writable filesystem over the read-only one at `under`: the files written are kept
    outside the heap, until the next test module."""

    def __init__(self, under):
        self.under = under
        self.files = {}

    def _norm(self, path):
        parts = []
        for p in path.split("/"):
            if p and p != ".":
                parts.append(p)
        return "/" + "/".join(parts)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def chdir(self, path):
        pass

    def getcwd(self):
        return ""

    def open(self, path, mode):
        path = self._norm(path)
        text = "b" not in mode
        if "w" in mode:
            self.files[path] = _Data()
        elif path not in self.files:
            if "r" in mode and "+" not in mode:
                return open(self.under + path, mode)
            d = _Data()
            with open(self.under + path, "rb") as f:
                d.grow(f.seek(0, 2))
                f.seek(0)
                d.n = f.readinto(memoryview(d.mem)[0:d.cap]) or 0
            self.files[path] = d
        f = _File(self, path, self.files[path], text)
        if "a" in mode:
            f.pos = f.data.n
        return f

    def stat(self, path):
        path = self._norm(path)
        if path in self.files:
            return (0x8000, 0, 0, 0, 0, 0, self.files[path].n, 0, 0, 0)
        return os.stat(self.under + path)

    def remove(self, path):
        path = self._norm(path)
        if path not in self.files:
            raise OSError(2)
        del self.files[path]

    def ilistdir(self, path):
        return os.ilistdir(self.under + self._norm(path))

    def mkdir(self, path):
        pass

    def rename(self, a, b):
        self.files[self._norm(b)] = self.files.pop(self._norm(a))


# Memory outside the heap for the tests' emulated flash (boards/qemu/layout.py's PSRAM and
# the board's unused SSRAM2/3): on a microcontroller the flash is not in RAM, so a test's
# flash should not take its heap either. Allocated upwards, freed when a module ends.
_SPANS = ((0x21401000, 0x21F00000), (0x20000000, 0x20400000))
_top = [0, _SPANS[0][0]]


def _outside_heap(size):
    i, top = _top
    while top + size > _SPANS[i][1]:
        i += 1
        if i >= len(_SPANS):
            raise MemoryError("no room outside the heap for a flash of %d bytes" % size)
        top = _SPANS[i][0]
    _top[0] = i
    _top[1] = top + size
    import uctypes
    return uctypes.bytearray_at(top, size)


def _flash_outside_heap():
    """hal.sim.nor.NorFlash keeps its contents, its erased sector and its snapshots outside the
    heap (its rules unchanged)."""
    from hal.sim import nor
    init = nor.NorFlash.__init__

    def __init__(self, size, sector_size=4096, write_size=1, erased=0xFF, mirror=False):
        ss = sector_size
        if size <= 0 or size % ss or size <= ss or ss & (ss - 1) or write_size > ss:
            init(self, size, ss, write_size, erased, mirror)
            return
        # the checks and fields of a flash of one write unit; then the real size
        init(self, write_size, write_size, write_size, erased)
        self.size = size
        self.sector_size = ss
        blank = self._blank = _outside_heap(ss)
        blank[0] = erased
        mv = memoryview(blank)
        k = 1
        while k < ss:  # doubling copies: nothing allocated in the heap
            mv[k:2 * k] = mv[0:k]
            k += k
        self._mem = _outside_heap(size)
        self._mv = memoryview(self._mem)
        self._fill()
        self.sector_erases = [0] * (size // ss)
        if mirror:
            import io
            self._io = io.BytesIO(self._mem)

    def _keep(self, o, n):
        b = _outside_heap(n)
        b[0:n] = self._mv[o:o + n]
        return b
    nor.NorFlash.__init__ = __init__
    nor.NorFlash._keep = _keep


def _is_skip(e):
    # tutil.Skip (a kit module beside the tests), known by its name: importing tutil here
    # could itself run out of heap after a MemoryError
    return type(e).__name__ == "Skip"


def _skip_reason(e):
    if isinstance(e, MemoryError):
        gc.collect()
        try:
            return "MemoryError: more than this heap of %d bytes" % (gc.mem_free() +
                                                                     gc.mem_alloc())
        except MemoryError:  # what the test left still holds the heap
            return "MemoryError: more than this heap"
    if _is_skip(e):
        return str(e.args[0]) if e.args else "skipped"
    msg = str(e.args[0]) if e.args else ""
    if isinstance(e, ImportError) and "'agent" not in msg and "'hal" not in msg:
        return "not importable on this port: %s" % msg
    return None


def _not_passed(name, e):
    """Print the SKIP or FAIL line of a test (or module) that raised e; return the word.
    The line is printed a piece at a time, no string made for it: a test that ran out of
    heap may leave too little for one."""
    why = _skip_reason(e)
    gc.collect()
    word = "SKIP" if why else "FAIL"
    print(word, end=" ")
    if why:
        print(name, end=": ")
        print(why)
    else:
        print(name)
    if not why or not _is_skip(e):
        sys.print_exception(e)  # where it ran out (shown by mcutier.py -v), or failed
    return word


_overlay = RamOverlay("/rom")


def _unload(keep):
    """Forget every module not in keep (names), and its attribute on its package, so that
    what one test imported (a delta's modules, with their native code where a ROMFS image
    copies it into the heap) is not the next one's heap: as on a device's reset. One module
    at a time, no list made: the heap may be nearly full."""
    while True:
        name = None
        for k in sys.modules:
            if k not in keep:
                name = k
                break
        if name is None:
            return
        mod = sys.modules.pop(name)
        dot = name.rfind(".")
        if dot > 0:
            pkg = sys.modules.get(name[:dot])
            child = name[dot + 1:]
            if pkg is not None and getattr(pkg, child, None) is mod:
                delattr(pkg, child)
        mod = None


def main(modules, pattern=None, done=()):
    import vfs
    try:
        vfs.mount(_overlay, "/ram")
    except OSError:
        pass
    os.chdir("/ram")
    _flash_outside_heap()
    import agent
    where = getattr(agent, "__file__", "?")
    print("agent from %s" % where)
    n = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    base = set(sys.modules)
    for modname in modules:
        _overlay.files = {}  # its memory is taken back below
        _top[0] = 0
        _top[1] = _SPANS[0][0]
        gc.collect()
        try:
            mod = __import__(modname)
        except BaseException as e:
            n[_not_passed(modname + " (import)", e)] += 1
            continue
        names = sorted(k for k in dir(mod) if k.startswith("test_"))
        try:
            loaded = set(sys.modules)  # what the tests find imported
        except MemoryError:  # no room left by the import: its tests share their imports
            loaded = None
        for name in names:
            if loaded is not None:  # the last test's imports go before anything is made
                _unload(loaded)
            gc.collect()
            full = modname + "::" + name
            if (pattern and pattern not in full) or full in done:
                continue
            print("START %s" % full)
            t0 = time.ticks_ms()
            try:
                getattr(mod, name)()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # PowerCut and Reboot are BaseExceptions
                n[_not_passed(full, e)] += 1
                continue
            print("PASS %s (%d ms)" % (full, time.ticks_diff(time.ticks_ms(), t0)))
            n["PASS"] += 1
        sys.modules.pop(modname, None)
        mod = loaded = None
        gc.collect()
        _unload(base)
    print("mcu: %d passed, %d failed, %d skipped" % (n["PASS"], n["FAIL"], n["SKIP"]))
