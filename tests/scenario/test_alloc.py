# Allocation in the per-block path: a download through agent.zcl.client.Client, from frames
# built beforehand, on an emulated board whose flash reads allocate nothing
# (NorFlash mirror=True). From the first block wholly in the payload to the last one,
# under MicroPython:
#   - gc.mem_alloc() with the collector off does not grow;
#   - nothing allocates under micropython.heap_lock();
#   - no block touches the heap at all, transient allocations included (a function whose
#     frame exceeds MicroPython's limit takes it from the heap on every call), except at the
#     per-sector checkpoint: with gc.threshold(1) any allocation runs a collection, which
#     frees a piece of garbage made before the block;
#   - what a block keeps allocated, the collector off, is nothing but at a sector's end, and
#     there at most SECTOR_BUDGET bytes (a 32-bit port's u32 ints: the CRC-32 of the first
#     read of the sector's read-back, the journal record's CRC-32).
# Under CPython the same download runs and is checked; the heap checks are MicroPython's,
# so those three tests end there as skipped (tutil.skip), not passed.
# Both paths: Image Page Requests (the default: a page of blocks per request, the frames
# replayed in order) and Image Block Requests (Client.page = 0).
import sys
import gc
import array

from agent.zcl import client as C
from agent.zcl import server as zcl_server
from agent.crypto.trust import Trust
from agent.update import Config, Device
from agent.store import state as S
from hal.sim.nor import NorFlash
from hal.sim.board import EmuBoard, Layout
from tutil import read_data, eq, skip

MP = sys.implementation.name == "micropython"
MP_ONLY = "the heap checks need MicroPython's gc.mem_alloc, heap_lock and gc.threshold"
if MP:
    import micropython

SECTOR_BUDGET = 64  # bytes a sector's checkpoint may leave allocated
MAN = 0x1234
TYPE = 0x0001
HW = 2
BLOCK = 48


class Replay:
    """A link that answers each request with the next frame (its sequence number patched
    in); at frame `start` it begins a measurement and at frame `stop` ends it."""

    def __init__(self, frames, start, stop):
        self.frames = frames
        self.start = start
        self.stop = stop

    def rewind(self, mode):
        self.i = self.seq = 0
        self.mode = mode
        self.value = 0
        self.mark = 0
        self.lock = False

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
        if m == "alloc":
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
                self.lock = True
            elif i == self.stop:
                micropython.heap_unlock()
                self.lock = False
        elif m == "sector":  # what each block leaves allocated, the collector off
            if i == self.start:
                gc.collect()
                gc.disable()
            self.marks[i - self.start] = gc.mem_alloc()
            if i == self.stop:
                gc.enable()
        elif m == "touch":
            if i > self.start and gc.mem_alloc() < self.mark:
                self.value += 1  # a collection ran: something allocated during that block
            bytearray(256)       # garbage that the next collection frees
            self.mark = gc.mem_alloc()


class Clock:
    def ticks_ms(self):
        return 0

    def ticks_diff(self, a, b):
        return a - b

    def now(self):
        return 0


def payload_offset(img):
    off = img[6] | img[7] << 8  # header length
    for k in range(3):
        n = int.from_bytes(img[off + 2:off + 6], "little")
        off += 6 + (n if k < 2 else 0)
    return off


def rig(name, page=True):
    img = read_data(name)
    ver = int.from_bytes(img[14:18], "little")
    frames = [zcl_server.build(zcl_server.encode_block_response, 0, MAN, TYPE, ver, o,
                               img[o:o + BLOCK]) for o in range(0, len(img), BLOCK)]
    start = (payload_offset(img) + BLOCK - 1) // BLOCK
    link = Replay(frames, start, len(frames) - 1)
    lay = Layout.for_image(4096, 24 * 1024)  # core_v2: 20 KiB and 100 bytes
    board = EmuBoard(NorFlash(lay.size, 4096, 4, 0xFF, True), lay)
    board.power_on()
    dev = Device(board, Config(Trust([read_data("core_pub.bin")]), MAN, TYPE, HW))
    dev.start()
    cl = C.Client(dev, link, Clock(), BLOCK)
    if not page:
        cl.page = 0
    return img, ver, link, dev, cl


def download(img, ver, link, dev, cl, mode):
    link.rewind(mode)
    try:
        eq(cl._download(MAN, TYPE, ver, len(img)), C.HELD, "download")
    finally:
        if link.lock:
            micropython.heap_unlock()
    eq(dev.st.phase, S.HELD, "phase")
    return link.value


def test_download_through_the_replayed_link(page=True):
    img, ver, link, dev, cl = rig("core_v2.ota", page)
    download(img, ver, link, dev, cl, "time")
    eq(cl.pager is not None and cl.pager.on, page, "page requests in use")
    assert link.stop - link.start > 400  # about 20 KiB of payload in 48-byte blocks
    eq(dev.st.held_version, ver, "held version")
    # and again: a second download of the same image into the same slot
    download(img, ver, link, dev, cl, "time")
    eq(dev.st.phase, S.HELD)


def test_no_allocation_per_block(page=True):
    img, ver, link, dev, cl = rig("core_v2.ota", page)
    download(img, ver, link, dev, cl, "time")  # warm: every view and buffer exists
    if not MP:
        skip(MP_ONLY)
    try:
        got = download(img, ver, link, dev, cl, "alloc")
    finally:
        gc.enable()
    eq(got, 0, "bytes allocated from the first payload block to the last")


def test_per_block_path_runs_with_the_heap_locked(page=True):
    img, ver, link, dev, cl = rig("core_v2.ota", page)
    download(img, ver, link, dev, cl, "time")
    if not MP:
        skip(MP_ONLY)
    gc.collect()
    download(img, ver, link, dev, cl, "lock")  # a MemoryError would fail the test


def test_no_block_touches_the_heap_but_at_a_checkpoint(page=True):
    img, ver, link, dev, cl = rig("core_v2.ota", page)
    download(img, ver, link, dev, cl, "time")
    if not MP:
        skip(MP_ONLY)
    saves = dev.journal.records
    gc.collect()
    gc.threshold(1)
    try:
        touched = download(img, ver, link, dev, cl, "touch")
    finally:
        gc.threshold(-1)
    checkpoints = dev.journal.records - saves  # one per sector, plus the start and the end
    assert checkpoints >= 5, checkpoints
    # agent.store.state.State.pack takes its frame from the heap (pack_into of 16 fields), once
    # per checkpoint; no other block may touch it
    assert touched <= checkpoints, (touched, checkpoints)


def test_allocation_per_sector_is_bounded(page=True):
    img, ver, link, dev, cl = rig("core_v2.ota", page)
    download(img, ver, link, dev, cl, "time")
    if not MP:
        skip(MP_ONLY)
    link.marks = array.array("i", [0] * (link.stop - link.start + 1))  # made before: the
    saves = dev.journal.records                                      # window allocates none
    try:
        download(img, ver, link, dev, cl, "sector")
    finally:
        gc.enable()
    m = link.marks
    kept = [m[j + 1] - m[j] for j in range(len(m) - 1)]  # block start + j (the last, which
    grew = [x for x in kept if x]                        # checks the slot, is not measured)
    checkpoints = dev.journal.records - saves
    assert len(grew) <= checkpoints, (grew, checkpoints)
    for x in grew:
        assert 0 < x <= SECTOR_BUDGET, grew


def test_download_with_block_requests():
    test_download_through_the_replayed_link(False)


def test_no_allocation_per_block_with_block_requests():
    test_no_allocation_per_block(False)


def test_heap_locked_with_block_requests():
    test_per_block_path_runs_with_the_heap_locked(False)


def test_heap_untouched_with_block_requests():
    test_no_block_touches_the_heap_but_at_a_checkpoint(False)


def test_allocation_per_sector_with_block_requests():
    test_allocation_per_sector_is_bounded(False)
