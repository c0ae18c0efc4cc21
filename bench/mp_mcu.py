# Measurements inside the Cortex-M3 firmware (host_tools/bench_mcu.py runs each one in a
# fresh emulator, with -icount so that one microsecond of time.ticks_us() is 1000
# instructions). Each prints one line "result <json>".
#
#   ingest(image, pub, block)   the agent's per-block path (agent.zcl.client on a replayed link,
#                               as bench/mp_ingest.py's), the bare sha256 + crc32 loop over
#                               the same blocks, and the bytes each block allocates
#   update(image, pub, block)   a whole download and verification of image, frames read one
#                               at a time from a file (the image is never in RAM), onto the
#                               board's flash outside the heap; then the power-on check
#   p256(pub, digest, sig)      one ECDSA P-256 verification (after a first call)
#   imports(names)              heap bytes the agent's modules take once imported
# image and pub are paths (the ROMFS image); frames files hold, per block, a u16 length and
# the Image Block Response frame (host_tools/bench_mcu.py writes them).
import gc
import io
import json
import os
import sys
import time
import struct

from micropython import const

MAN = const(0x1234)
TYPE = const(0x0001)
HW = const(2)


def result(d):
    print("result " + json.dumps(d))


def insns(t0):
    """Instructions since t0 (ticks_us under -icount shift=0: 1 us = 1000 instructions)."""
    return time.ticks_diff(time.ticks_us(), t0) * 1000


class Frames:
    """A link replaying a frames file (host_tools.bench_mcu.frames_file): each request is
    answered by the next frame (its sequence number patched in), read with one readinto
    into the receive buffer. Measures from block `start` on: mode 'time' (instructions
    until block `stop`), 'alloc' (bytes each block allocates, collector off)."""

    def __init__(self, path, start, stop, mode=None):
        self.f = open(path, "rb")
        hdr = self.f.read(2)
        self.stride = hdr[0] | hdr[1] << 8
        self.start = start
        self.stop = stop
        self.mode = mode
        self.i = self.seq = 0
        self.t = 0
        self.allocs = []
        self.mark = 0
        self.buf = None

    def send(self, data):
        self.seq = data[1]

    def recv(self, buf, timeout_ms):
        i = self.i
        if self.mode and self.start <= i <= self.stop:
            self._measure(i)
        if buf is not self.buf:
            self.buf = buf
            self.rv = memoryview(buf)[:self.stride + 2]
        self.f.readinto(self.rv)
        s = self.stride
        buf[1] = self.seq
        self.i = i + 1
        return buf[s] | buf[s + 1] << 8

    def _measure(self, i):
        if self.mode == "time":
            if i == self.start:
                # the garbage of the manifest's verification collected now, not at whichever
                # block of the span the heap would fill at (about 4 k a block on the mean)
                gc.collect()
                self.t = time.ticks_us()
            elif i == self.stop:
                self.t = insns(self.t)
        elif self.mode == "alloc":
            a = gc.mem_alloc()
            if i == self.start:
                gc.collect()
                gc.disable()
                a = gc.mem_alloc()
            else:
                self.allocs.append(a - self.mark)
            if i == self.stop:
                gc.enable()
            self.mark = gc.mem_alloc()


def _read_pub(path):
    with open(path, "rb") as f:
        return f.read()


def device(pub, payload, erase=True):
    """A device over the board's flash: blank (erase), or as the PSRAM holds it (a device
    that runs what install() put there)."""
    from agent.crypto.trust import Trust
    from agent.update import Config, Device
    from boards.qemu.board import make_board
    from boards.qemu.layout import layout
    board = make_board(layout(4096, payload), erase=erase)  # its clock: the port's ticks
    board.power_on()
    dev = Device(board, Config(Trust([_read_pub(pub)]), MAN, TYPE, HW))
    dev.start()
    return dev, board


def _header(image):
    with open(image, "rb") as f:
        h = f.read(64)
    return struct.unpack_from("<I", h, 14)[0], struct.unpack_from("<I", h, 52)[0]


def _download(dev, link, block, image):
    from agent.zcl import client as C
    ver, size = _header(image)
    cl = C.Client(dev, link, dev.board.clock, block)
    r = cl._download(MAN, TYPE, ver, size)
    if r != C.HELD:
        raise RuntimeError("download ended with %s" % C.OUTCOMES[r])
    return cl


def ingest(image, frames, pub, block, start, stop, payload, bounds=None):
    """Instructions per block from block start to stop, bare loop over the same blocks, and
    with bounds (the blocks that cross into a new flash sector) the allocation of each
    block, the collector off."""
    dev, board = device(pub, payload)
    link = Frames(frames, start, stop, "time")
    _download(dev, link, block, image)
    agent = link.t
    allocs = []
    if bounds is not None:
        dev = board = link = None
        gc.collect()
        dev, board = device(pub, payload)
        link = Frames(frames, start, stop, "alloc")
        _download(dev, link, block, image)
        allocs = link.allocs
    steady = [a for i, a in enumerate(allocs) if (start + i) not in bounds]
    at_bounds = [a for i, a in enumerate(allocs) if (start + i) in bounds]
    import hashlib
    import binascii
    f = open(image, "rb")
    f.seek(start * block)
    blocks = [f.read(block) for _ in range(start, stop)]
    f.close()
    h = hashlib.sha256()
    c = 0
    t0 = time.ticks_us()
    for d in blocks:
        h.update(d)
        c = binascii.crc32(d, c)
    bare = insns(t0)
    n = stop - start
    st = sum(steady) / len(steady) if steady else 0
    result({"blocks": n, "agent_insns": agent, "bare_insns": bare,
            "insns_per_block": agent // n, "bare_insns_per_block": bare // n,
            "alloc_steady_per_block": st,
            "alloc_per_sector": (sum(at_bounds) / len(at_bounds) - st) if at_bounds else 0,
            "alloc_total": sum(allocs), "sector_bounds": len(at_bounds)})


class Budget(Frames):
    """Frames that end the download (RuntimeError) once it has run more than `budget`
    instructions: a heap so small that the collector runs at every allocation."""

    def __init__(self, path, budget):
        Frames.__init__(self, path, 0, 0)
        self.budget = budget // 1000
        self.t0 = time.ticks_us()

    def recv(self, buf, timeout_ms):
        if self.budget and time.ticks_diff(time.ticks_us(), self.t0) > self.budget:
            raise RuntimeError("over the budget of %d instructions" % (self.budget * 1000))
        return Frames.recv(self, buf, timeout_ms)


def install(image, pub, payload):
    """A blank device given image at the factory (Device.provision), then reset: the flash,
    which outlives this run in the PSRAM's host file, holds a device running image, its
    first power-on check done."""
    dev, board = device(pub, payload)
    f = open(image, "rb")
    size = f.seek(0, 2)

    def read(off, n):
        f.seek(off)
        return f.read(n)
    dev.provision(read, size, 256)
    f.close()
    dev = board = None
    gc.collect()
    dev, board = device(pub, payload, False)
    result({"ok": True, "running": board.boot.running(), "phase": dev.st.phase})


def update(image, frames, pub, block, payload, check, budget=0, installed=False):
    """A whole download and verification, within budget instructions (0: any); with
    check, the power-on check of the slot at a later boot (the signature known from an
    earlier one: the payload's CRC-32 from flash). installed: the device runs what
    install() put in the flash (a delta's old image) instead of starting blank."""
    gc.collect()
    t0 = time.ticks_us()
    dev, board = device(pub, payload, not installed)
    _download(dev, Budget(frames, budget), block, image)
    out = {"ok": True, "heap": gc.mem_free() + gc.mem_alloc(), "insns": insns(t0)}
    if check:
        from agent.store import check as verify
        slot = board.slots[dev.st.slot]
        buf = dev.writer.scratch  # what the device lends its checks (Device._boot_check)
        info = verify.boot_check(slot, dev.cfg.trust, None, None, buf)
        gc.collect()
        t0 = time.ticks_us()
        verify.boot_check(slot, dev.cfg.trust, None, info.tag, buf)
        out["boot_check_insns"] = insns(t0)
        out["payload"] = info.manifest.size
    result(out)


def p256(pub, digest, sig):
    import binascii
    from agent.crypto import p256 as P
    pub, digest, sig = [binascii.unhexlify(a) for a in (pub, digest, sig)]
    if not P.verify(pub, digest, sig):
        raise RuntimeError("the signature does not verify")
    gc.collect()
    t0 = time.ticks_us()
    ok = P.verify(pub, digest, sig)
    result({"ok": ok, "insns": insns(t0)})


def imports(names):
    gc.collect()
    a = gc.mem_alloc()
    for n in names:
        __import__(n)
    gc.collect()
    result({"heap": gc.mem_alloc() - a, "modules": len(names),
            "where": getattr(sys.modules["agent"], "__file__", "frozen")})


class HeapFs:
    """A filesystem whose files are io.BytesIO copies of those under `under`: an .mpy
    imported from it is loaded into the heap, as from a device's FAT or littlefs."""

    def __init__(self, under):
        self.under = under

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def open(self, path, mode):
        with open(self.under + path, "rb") as f:
            return io.BytesIO(f.read())

    def stat(self, path):
        return os.stat(self.under + path)

    def ilistdir(self, path):
        return os.ilistdir(self.under + path)


def mount_heapfs(under, at):
    import vfs  # (os and io are imported above: an import here would look in this fs)
    vfs.mount(HeapFs(under), at)


def delta_sectors(image, frames, pub, block, payload, count_alloc=False):
    """A delta download onto the device install() left: the instructions of each sector
    made from its chunk (SlotWriter._chunk_done: the chunk's digest, the sector made, its
    CRC-32, erased, written and read back, the checkpoint moved) by the sector's mode, less
    the copied sectors the writer makes on its way (SlotWriter._copy, timed apart), and of
    the op stream's decoding alone with the sector's pieces written as they are made
    (SlotWriter._delta); with count_alloc, the heap bytes
    each DELTA-mode sector allocates instead (gc.mem_alloc() around it, where no collection
    fell inside: each call scans the heap's table, millions of instructions)."""
    dev, board = device(pub, payload, False)
    w = dev.writer
    cls = type(w)
    modes = {}
    dec = []
    cp = [0, 0]
    alloc = []

    def copy(k):
        t0 = time.ticks_us()
        cls._copy(w, k)
        cp[0] += insns(t0)
        cp[1] += 1

    def delta(n):
        t0 = time.ticks_us()
        cls._delta(w, n)
        dec.append(insns(t0))

    def done():
        mode = w._mode
        c = cp[0]
        a = gc.mem_alloc() if count_alloc else 0
        t0 = time.ticks_us()
        cls._chunk_done(w)
        t = insns(t0)
        if count_alloc and mode == 3 and cp[0] == c:  # a delta sector, no copy after it
            b = gc.mem_alloc()
            if b >= a:
                alloc.append(b - a)
        modes.setdefault(mode, []).append(t - (cp[0] - c))
    w._copy = copy
    w._delta = delta
    w._chunk_done = done
    gc.collect()
    t0 = time.ticks_us()
    _download(dev, Frames(frames, 0, 0), block, image)
    out = {"insns": insns(t0), "copy_sectors": cp[1], "copy_insns": cp[0],
           "decode": dec, "running": board.boot.running(), "alloc": alloc}
    for mode in modes:
        out["mode_%d" % mode] = modes[mode]
    result(out)
