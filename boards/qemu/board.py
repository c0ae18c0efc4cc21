# The emulated Cortex-M board: hal.sim.board's board (strict NOR flash, emulated bootloader,
# journal) over a flash held in the PSRAM of layout.py, outside MicroPython's heap, reached
# through uctypes.bytearray_at. The strict rules are hal.sim.nor.NorFlash's; only where the
# bytes live differs.
#
#   board = make_board()                the flash as the PSRAM holds it
#   board = make_board(erase=True)      erased first (a blank device)
#   board.power_on()                    the bootloader's decision at reset
from hal.sim import mem
from hal.sim.nor import NorFlash
from boards.qemu import layout as L


def ram(addr, size):
    """A bytearray over size bytes of memory at addr (no heap used for the bytes)."""
    import uctypes
    return uctypes.bytearray_at(addr, size)


class RamFlash(NorFlash):
    """NorFlash over memory outside the heap: contents at layout.FLASH_ADDR, the erased
    sector used by erases at layout.BLANK_ADDR."""

    def __init__(self, size, sector_size=L.SECTOR, write_size=L.WRITE_SIZE, erased=L.ERASED,
                 erase=False, addr=L.FLASH_ADDR):
        from agent.errors import OtaError, BAD_LAYOUT
        ss = sector_size
        if size > L.FLASH_MAX or ss > L.FLASH_ADDR - L.BLANK_ADDR or ss & (ss - 1) \
                or ss < write_size or size % ss:
            raise OtaError(BAD_LAYOUT, "flash %d/%d" % (size, ss))
        # NorFlash.__init__ checks the rest and sets its fields over a flash of one write
        # unit (a few bytes of heap); the contents then move outside the heap
        NorFlash.__init__(self, write_size, write_size, write_size, erased)
        self.size = size
        self.sector_size = ss
        blank = ram(L.BLANK_ADDR, sector_size)
        mem.fill(blank, 0, sector_size, erased)
        self._blank = blank
        self._mem = ram(addr, size)
        self._mv = memoryview(self._mem)
        self.sector_erases = [0] * (size // sector_size)
        if erase:
            self._fill()


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


def make_board(layout=None, erase=False, clock=None, verifier=None):
    """hal.sim.board.EmuBoard over RamFlash. layout: a hal.sim.board.Layout (default layout.layout())."""
    from hal.sim.board import EmuBoard
    lay = layout if layout is not None else L.layout()
    flash = RamFlash(lay.size, lay.sector_size, L.WRITE_SIZE, L.ERASED, erase)
    board = EmuBoard(flash, lay, clock if clock is not None else TicksClock(), verifier)
    board.trials = L.TRIALS
    board.payload_check = None
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
