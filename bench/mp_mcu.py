# Measurements inside the Cortex-M3 firmware (host_tools/bench_mcu.py runs each one in a
# fresh emulator, with -icount so that one microsecond of time.ticks_us() is 1000
# instructions). Each prints one line "result <json>".
#
#   ingest(image, pub, block)   the agent's per-block path (agent.zcl.client on a replayed link,
#                               as bench/mp_ingest.py's), the bare sha256 + crc32 loop over
#                               the same blocks, and the bytes each block allocates
#   update(...)                 bench/mp_update.py's (the device main of a whole update)
#   p256(pub, digest, sig)      one ECDSA P-256 verification (after a first call)
#   imports(names)              heap bytes the agent's modules take once imported
#   install, delta_sectors      a delta's old image installed; the cost of each delta sector
# image and pub are paths (the ROMFS image); frames files as bench/mp_update.py reads them.
import gc
import io
import os
import sys
import time

from mp_update import result, insns, Frames, device, _download, update  # noqa: F401


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


def p256(pub, digest, sig, lend=0):
    """One verification, the second call; lend: bytes of a work buffer lent to it, as the
    device lends its slot writer's read-back buffer (0: none, verify makes its own)."""
    import binascii
    from agent.crypto import p256 as P
    pub, digest, sig = [binascii.unhexlify(a) for a in (pub, digest, sig)]
    work = bytearray(lend) if lend else None
    if not P.verify(pub, digest, sig, work):
        raise RuntimeError("the signature does not verify")
    gc.collect()
    t0 = time.ticks_us()
    ok = P.verify(pub, digest, sig, work)
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
