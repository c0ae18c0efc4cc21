# The emulated Cortex-M board: hal.sim.board's board (emulated bootloader, journal) over a
# flash held in the PSRAM of layout.py, outside MicroPython's heap, reached through
# uctypes.bytearray_at. Its driver, RamFlash, keeps the rules of hal/flash.py as a NOR
# controller does and nothing of the emulator's machinery (hal.sim.nor: power cuts, fault
# injection, counters), so that what the Cortex-M tier measures is the agent over a board,
# as on a device, not the emulator's bookkeeping.
#
#   board = make_board()                the flash as the PSRAM holds it
#   board = make_board(erase=True)      erased first (a blank device)
#   board.power_on()                    the bootloader's decision at reset
import gc

from hal.sim.mem import copy, fill, program
from boards.qemu import layout as L


def ram(addr, size):
    """A bytearray over size bytes of memory at addr (no heap used for the bytes)."""
    import uctypes
    return uctypes.bytearray_at(addr, size)


class RamFlash:
    """The board's flash driver: size bytes of memory at addr, outside the heap, programmed
    with the rules of hal/flash.py as a NOR controller enforces them (range, write units of
    erased bytes only, whole sectors erased).
    A board's driver, not the emulator: no power cuts, injected faults or wear counters
    (hal.sim.nor has those; a power cut here is the emulator killed, the PSRAM file kept)."""

    def __init__(self, size, sector_size=L.SECTOR, write_size=L.WRITE_SIZE, erased=L.ERASED,
                 erase=False, addr=L.FLASH_ADDR, mem=None):
        from agent.errors import OtaError, BAD_LAYOUT
        ss = sector_size
        ws = write_size
        if size <= 0 or size > L.FLASH_MAX or ss & (ss - 1) or ws < 1 or ws & (ws - 1) \
                or ss < ws or size % ss or erased not in (0x00, 0xFF):
            raise OtaError(BAD_LAYOUT, "flash %d/%d" % (size, ss))
        self.size = size
        self.sector_size = ss
        self.write_size = write_size
        self.erased = erased
        self._mem = ram(addr, size) if mem is None else mem  # mem: a bytearray (tests)
        w = self.window(0, size)
        self.read = w.read
        self.write = w.write
        self.erase = w.erase
        if erase:
            w.erase(0, size)

    def window(self, base, size):
        """read, write and erase of [base, base + size), offsets from base (hal.flash.Area
        takes them as its own: one call per operation)."""
        return _Window(self, base, size)


class _Window:
    # RamFlash's operations over one area; each frame within 11 words (off the heap)

    def __init__(self, fl, base, size):
        self.mem = fl._mem
        self.base = base
        self.size = size
        self.e = fl.erased
        self.wm = fl.write_size - 1
        self.sm = fl.sector_size - 1

    def _bad(self, what, offset, n):
        from agent.errors import OtaError, FLASH_RANGE, FLASH_ALIGN
        if offset < 0 or n < 0 or offset + n > self.size:
            return OtaError(FLASH_RANGE, "%s 0x%X+%d in area of 0x%X" % (what, offset, n,
                                                                          self.size))
        return OtaError(FLASH_ALIGN, "%s 0x%X+%d" % (what, offset, n))

    def read(self, offset, buf):
        n = len(buf)
        if offset < 0 or offset + n > self.size:
            raise self._bad("read", offset, n)
        copy(buf, 0, self.mem, self.base + offset, n)

    def write(self, offset, data):
        n = len(data)
        if offset < 0 or offset + n > self.size or (offset | n) & self.wm:
            raise self._bad("write", offset, n)
        if not program(self.mem, self.base + offset, data, n, self.e):
            from agent.errors import OtaError, FLASH_NOT_ERASED
            raise OtaError(FLASH_NOT_ERASED, "write 0x%X+%d" % (offset, n))

    def erase(self, offset, size):
        if offset < 0 or size < 0 or offset + size > self.size or (offset | size) & self.sm:
            raise self._bad("erase", offset, size)
        fill(self.mem, self.base + offset, size, self.e)


class TicksClock:
    """A clock from the firmware's tick counter: now() is `base` UTC seconds (ZigBee epoch,
    given by the host at start) plus the seconds since."""

    def __init__(self, base=0):
        import time
        self._t = time
        self._base = base
        self._t0 = time.ticks_ms()
        self.ticks_ms = time.ticks_ms  # the port's own (no Python call per block)
        self.ticks_diff = time.ticks_diff

    def now(self):
        t = self._t
        return self._base + t.ticks_diff(t.ticks_ms(), self._t0) // 1000

    def sleep_ms(self, ms):
        self._t.sleep_ms(ms)


def make_board(layout=None, erase=False, clock=None, verifier=None, mem=None):
    """hal.sim.board.EmuBoard over RamFlash. layout: a hal.sim.board.Layout (default
    layout.layout()); mem: the flash's bytes in a bytearray of layout.size instead of the
    PSRAM (tests off the board)."""
    from hal.sim.board import EmuBoard
    lay = layout if layout is not None else L.layout()
    flash = RamFlash(lay.size, lay.sector_size, L.WRITE_SIZE, L.ERASED, erase, mem=mem)
    board = EmuBoard(flash, lay, clock if clock is not None else TicksClock(), verifier)
    board.trials = L.TRIALS
    board.payload_check = None
    board.collect = gc.collect  # before a download's buffers (agent.update.Device)
    return board


class Uart:
    """The console UART as a byte stream for hal.serial.SerialTransport: readinto takes what
    has arrived (0 when nothing has), write sends. Ctrl-C stops being an interrupt."""

    def __init__(self):
        import sys
        import select
        import micropython
        micropython.kbd_intr(-1)
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(self._in, select.POLLIN)
        self._one = bytearray(1)

    def _any(self):
        for _ in self._poll.ipoll(0):
            return True
        return False

    def readinto(self, buf):
        n = 0
        one = self._one
        while n < len(buf) and self._any():
            self._in.readinto(one)
            buf[n] = one[0]
            n += 1
        return n

    def write(self, data):
        return self._out.write(data)

    def close(self):
        pass


def probe(board=None):
    """A one-line summary."""
    import sys
    return "qemu: %s, flash of %d bytes at 0x%08X" % (sys.platform, L.layout().size,
                                                         L.FLASH_ADDR)
