# The bench's device main for a whole update inside the Cortex-M3 firmware: the board, the
# device and the client over a replayed link, and nothing else, so that the heap figures of
# an update (host_tools/bench_mcu.py heap_min) count what a device's own main program would
# hold. bench/mp_mcu.py's other measurements build on it.
#
#   update(image, frames, pub, block, payload, check)   a whole download and verification of
#                               image, frames read one at a time from a file (the image is
#                               never in RAM), onto the board's flash outside the heap; then
#                               the power-on check
# image and pub are paths (the ROMFS image); frames files hold, per block, the Image Block
# Response frame padded to a stride and its u16 length (host_tools/bench_mcu.py writes them).
import gc
import json
import struct
import time

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


def update(image, frames, pub, block, payload, check, budget=0, installed=False, pad=0):
    """A whole download and verification, within budget instructions (0: any); with
    check, the power-on check of the slot at a later boot (the signature known from an
    earlier one: the payload's CRC-32 from flash). installed: the device runs what
    install() put in the flash (a delta's old image) instead of starting blank. pad: bytes
    the main holds through the update (another heap layout: each allocation after it lands
    elsewhere)."""
    hold = bytearray(pad) if pad else None
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
    if hold is not None:
        out["pad"] = len(hold)  # (held to here)
    result(out)
