# Flash interface. Same shape as Zephyr's flash API and MicroPython's block devices:
# byte offsets, reads into a caller's buffer, writes of whole write units, erases of whole
# sectors. Every implementation (emulated NOR, esp32 partition, rp2 flash) provides:
#
#   size         total bytes
#   sector_size  erase unit in bytes (a power of two)
#   write_size   program unit in bytes: offsets and lengths of write() are multiples of it
#   erased       value of an erased byte (0xFF or 0x00)
#   read(offset, buf)    fill buf (bytearray or memoryview) from offset.
#                        Power loss: no effect on the flash.
#   write(offset, data)  program len(data) bytes; only erased bytes may be programmed.
#                        Power loss: any prefix of the write units may be programmed, and the
#                        unit in flight may hold any mix of old and new bits (torn write).
#   erase(offset, size)  erase whole sectors to the erased value.
#                        Power loss: the sectors being erased may hold anything.
#
# Errors are OtaError with FLASH_ALIGN, FLASH_RANGE, FLASH_NOT_ERASED or FLASH_IO.
#
# Optional: window(base, size) -> an object whose read, write and erase take offsets relative
# to base and do the area's checks as well (or None). An Area then calls them directly: one
# call per operation instead of two, which counts where a call costs hundreds of
# instructions (hal.sim.nor.NorFlash has one).
from agent import errors as E


class Area:
    """A window [base, base + size) of a flash device with the same interface.

    Slots and the journal are areas; offsets are relative to the area's start.
    """

    def __init__(self, flash, base, size):
        ss = flash.sector_size
        if base % ss or size % ss or size <= 0 or base + size > flash.size:
            raise E.OtaError(E.FLASH_ALIGN, "area 0x%X+0x%X" % (base, size))
        self.flash = flash
        self.base = base
        self.size = size
        self.sector_size = ss
        self.write_size = flash.write_size
        self.erased = flash.erased
        win = getattr(flash, "window", None)
        w = win(base, size) if win is not None and type(self) is Area else None
        if w is not None:  # a subclass keeps its own methods
            self.read = w.read
            self.write = w.write
            self.erase = w.erase

    def _check(self, offset, n):
        if offset < 0 or n < 0 or offset + n > self.size:
            raise E.OtaError(E.FLASH_RANGE, "0x%X+%d in area of 0x%X" % (offset, n, self.size))

    def read(self, offset, buf):
        self._check(offset, len(buf))
        self.flash.read(self.base + offset, buf)

    def write(self, offset, data):
        self._check(offset, len(data))
        self.flash.write(self.base + offset, data)

    def erase(self, offset, size):
        self._check(offset, size)
        self.flash.erase(self.base + offset, size)
