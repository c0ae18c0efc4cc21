# Ingest efficiency and allocation of the agent's per-block path, under MicroPython.
#
#   MICROPYPATH=build/mpy micropython -X heapsize=12m bench/mp_ingest.py IMAGE PUB.bin
#       [--blocks 48,64,255,256,1024] [--reps 3] [--tag raw] [--slot KIB] [--heap-checks 48]
#
# IMAGE is a signed image for manufacturer 0x1234, image type 1, hardware version 2; PUB.bin
# its 65-byte public key. Prints one JSON object.
#
# The path is the agent's own code on an emulated board in RAM (hal.sim.nor.NorFlash with
# mirror=True, so that a flash read allocates nothing, as a real driver's does not):
#   blocks <= 255 bytes (one ZCL Image Block Response): agent.zcl.client.Client._download runs
#     against a link that answers each request with the next frame, built beforehand by
#     agent.zcl.server; per block that is the request encoding, the frame check and decode,
#     Device.feed -> Parser.feed -> SlotWriter (page copy, flash write per page, erase and
#     read-back CRC-32 per sector, inflate per sector for deflate images) and the journal
#     save per sector;
#   blocks > 255 bytes (a ZCL block carries at most 255): Device.take (Device.feed without
#     its error handling) on views of the image made beforehand.
# --heap-checks: block sizes at which the per-block path is also run with the collector off
# (bytes allocated), under micropython.heap_lock(), and with gc.threshold(1) (blocks that
# touch the heap at all, transient allocations included).
# Timed: the blocks from the first one wholly in the payload up to, not including, the last
# one (which runs the verification from flash, reported apart as the whole-image time).
# The reference is a bare loop of sha256.update and binascii.crc32 over the same blocks.
import sys
import gc
import time
import json
import hashlib
import binascii
import struct
import micropython

from agent.zcl import server as zcl_server, client as C
from agent.crypto.trust import Trust
from agent.update import Config, Device
from hal.sim.nor import NorFlash
from hal.sim.board import EmuBoard, Layout

MAN = 0x1234
TYPE = 0x0001
HW = 2


def us():
    return time.ticks_us()


def since(t0):
    return time.ticks_diff(time.ticks_us(), t0)


class Replay:
    """A link whose answer to each request is the next frame (sequence number patched in).
    From frame `start` to frame `stop` it times, counts the bytes allocated with the
    collector off, locks the heap, or counts the blocks that touch the heap at all
    (gc.threshold(1): any allocation, even a frame freed on return, runs a collection
    that frees a piece of garbage made before the block)."""

    def __init__(self, frames, start, stop):
        self.frames = frames
        self.start = start
        self.stop = stop

    def rewind(self, mode):
        self.i = self.seq = 0
        self.mode = mode
        self.t = self.value = self.mark = 0
        self.locked = False

    def send(self, data):
        self.seq = data[1]

    def recv(self, buf, timeout_ms):
        i = self.i
        if self.start <= i <= self.stop:
            self._measure(i)
        f = self.frames[i]
        n = len(f)
        buf[0:n] = f
        buf[1] = self.seq
        self.i = i + 1
        return n

    def _measure(self, i):
        m = self.mode
        if m == "time":
            if i == self.start:
                self.t = us()
            elif i == self.stop:
                self.t = since(self.t)
        elif m == "alloc":
            if i == self.start:
                gc.collect()
                gc.disable()
                self.value = gc.mem_alloc()
            elif i == self.stop:
                self.value = gc.mem_alloc() - self.value
                gc.enable()
        elif m == "lock":
            if i == self.start:
                micropython.heap_lock()
                self.locked = True
            elif i == self.stop:
                micropython.heap_unlock()
                self.locked = False
        elif m == "touch":
            if i == self.start:
                gc.collect()
                gc.threshold(1)
            elif gc.mem_alloc() < self.mark:
                self.value += 1
            if i == self.stop:
                gc.threshold(-1)
            else:
                bytearray(256)
                self.mark = gc.mem_alloc()


class NoClock:
    """ticks for the client's timeouts; the replayed link never makes it wait."""

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def now(self):
        return 0


def payload_offset(img):
    hl = struct.unpack_from("<H", img, 6)[0]
    off = hl
    for _ in range(3):
        n = struct.unpack_from("<I", img, off + 2)[0]
        off += 6
        if _ < 2:
            off += n
    return off


def device(pub, size):
    lay = Layout.for_image(4096, size, 4096)
    fl = NorFlash(lay.size, 4096, 4, 0xFF, True)
    board = EmuBoard(fl, lay)
    board.power_on()
    dev = Device(board, Config(Trust([pub]), MAN, TYPE, HW))
    dev.start()
    return dev, fl


def bare(blocks, reps):
    best = None
    for _ in range(reps):
        h = hashlib.sha256()
        c = 0
        t0 = us()
        for d in blocks:
            h.update(d)
            c = binascii.crc32(d, c)
        t = since(t0)
        best = t if best is None or t < best else best
    return best


def run_frames(img, pub, B, reps, alloc, slot):
    hdr_ver = struct.unpack_from("<I", img, 14)[0]
    size = len(img)
    dev, fl = device(pub, slot)  # first: its flash is the largest piece of the heap
    frames = []
    for off in range(0, size, B):
        frames.append(zcl_server.build(zcl_server.encode_block_response, 0, MAN, TYPE, hdr_ver,
                                       off, img[off:off + B]))
    po = payload_offset(img)
    start = (po + B - 1) // B
    stop = len(frames) - 1
    blocks = [img[o * B:o * B + B] for o in range(start, stop)]
    nbytes = (stop - start) * B
    link = Replay(frames, start, stop)
    cl = C.Client(dev, link, NoClock(), B)
    out = {"block": B, "path": "client", "blocks": stop - start, "bytes": nbytes}
    best = whole = None
    for r in range(reps):
        gc.collect()
        link.rewind("time")
        t0 = us()
        res = cl._download(MAN, TYPE, hdr_ver, size)
        tw = since(t0)
        if res != C.HELD:
            raise SystemExit("download ended with %s" % C.OUTCOMES[res])
        best = link.t if best is None or link.t < best else best
        whole = tw if whole is None or tw < whole else whole
    out["agent_us"] = best
    out["whole_image_us"] = whole
    out["whole_image_bytes"] = size
    link.rewind("alloc")
    cl._download(MAN, TYPE, hdr_ver, size)
    gc.enable()
    out["alloc_bytes"] = link.value
    out["alloc_per_block"] = link.value / (stop - start)
    if alloc:  # the heap checks: slow on a big heap (gc.mem_alloc() scans all of it)
        gc.collect()
        link.rewind("lock")
        try:
            cl._download(MAN, TYPE, hdr_ver, size)
            out["heap_lock"] = "ok"
        except MemoryError:
            if link.locked:
                micropython.heap_unlock()
            out["heap_lock"] = "MemoryError at block %d" % (link.i - start)
        gc.collect()
        saves = dev.journal.records
        link.rewind("touch")
        cl._download(MAN, TYPE, hdr_ver, size)
        gc.threshold(-1)
        out["blocks_touching_heap"] = link.value
        out["journal_saves"] = dev.journal.records - saves
    out["bare_us"] = bare(blocks, reps)
    out["erases"] = fl.erases
    return out


def run_views(img, pub, B, reps, slot):
    size = len(img)
    dev, fl = device(pub, slot)
    mv = memoryview(img)
    views = [mv[o:o + B] for o in range(0, size, B)]
    po = payload_offset(img)
    start = (po + B - 1) // B
    stop = len(views) - 1
    blocks = [img[o * B:o * B + B] for o in range(start, stop)]
    best = whole = None
    for r in range(reps):
        gc.collect()
        t0 = us()
        dev.begin()
        off = 0
        for i in range(start):
            off = dev.take(off, views[i])
        t1 = us()
        for i in range(start, stop):
            off = dev.take(off, views[i])
        t = since(t1)
        off = dev.take(off, views[stop])
        tw = since(t0)
        if not dev.done():
            raise SystemExit("not done at %d" % off)
        best = t if best is None or t < best else best
        whole = tw if whole is None or tw < whole else whole
    return {"block": B, "path": "device.feed", "blocks": stop - start,
            "bytes": (stop - start) * B, "agent_us": best, "whole_image_us": whole,
            "whole_image_bytes": size, "bare_us": bare(blocks, reps)}


def main(argv):
    img = open(argv[0], "rb").read()
    pub = open(argv[1], "rb").read()
    sizes = (48, 64, 255, 256, 1024)
    reps = 3
    tag = "raw"
    slot = 512 * 1024
    checks = ()
    i = 2
    while i < len(argv):
        if argv[i] == "--blocks":
            sizes = [int(x) for x in argv[i + 1].split(",")]
        elif argv[i] == "--reps":
            reps = int(argv[i + 1])
        elif argv[i] == "--tag":
            tag = argv[i + 1]
        elif argv[i] == "--slot":
            slot = int(argv[i + 1]) * 1024
        elif argv[i] == "--heap-checks":
            checks = [int(x) for x in argv[i + 1].split(",") if x]
        i += 2
    rows = []
    for B in sizes:
        if B <= 255:
            r = run_frames(img, pub, B, reps, B in checks, slot)
        else:
            r = run_views(img, pub, B, reps, slot)
        r["ratio"] = r["bare_us"] / r["agent_us"]
        r["agent_us_per_block"] = r["agent_us"] / r["blocks"]
        r["bare_us_per_block"] = r["bare_us"] / r["blocks"]
        r["agent_MBps"] = r["bytes"] / r["agent_us"]
        r["bare_MBps"] = r["bytes"] / r["bare_us"]
        r["image"] = tag
        rows.append(r)
        gc.collect()
    print(json.dumps({"ingest": rows, "micropython": list(sys.implementation.version)}))


main(sys.argv[1:])
