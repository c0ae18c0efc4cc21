# A stand-in for MicroPython's rp2.Flash over a strict emulated NOR flash (hal.sim.nor.NorFlash),
# for the board tests. As rp2_flash.c: 4096-byte blocks; readblocks(block, buf[, offset]);
# writeblocks(block, buf) erases the blocks then programs them; writeblocks(block, buf,
# offset) only programs, and the QSPI flash programs whole 256-byte pages (pico-sdk
# flash_range_program: offset and length multiples of 256; other values fail here, where
# on the chip they are undefined); ioctl 1-6.
#
# Programming follows NOR: bits go from 1 to 0 only, so a page may be programmed again as
# long as every byte that is not 0xFF lands on an erased byte (the strict flash refuses
# anything else); 0xFF bytes of a page leave flash unchanged.
from hal.sim.nor import NorFlash
from hal.sim.boot import Reboot

BLOCK = 4096
PAGE = 256


class Flash:
    def __init__(self, size, nor=None):
        self.nor = nor if nor is not None else NorFlash(size, BLOCK, 1, 0xFF)
        self.size = self.nor.size
        self.programs = 0

    def _span(self, block, n, offset):
        o = block * BLOCK + offset
        if block < 0 or offset < 0 or o + n > self.size:
            raise OSError(22)
        return o

    def readblocks(self, block, buf, offset=0):
        self.nor.read(self._span(block, len(buf), offset), buf)

    def writeblocks(self, block, buf, offset=None):
        n = len(buf)
        if offset is None:
            if n % BLOCK:
                raise OSError(22)
            o = self._span(block, n, 0)
            self.nor.erase(o, n)
        else:
            o = self._span(block, n, offset)
        if o % PAGE or n % PAGE:
            raise ValueError("flash_range_program 0x%X+%d: not whole pages" % (o, n))
        self.programs += n // PAGE
        src = memoryview(buf)
        i = 0
        while i < n:
            if src[i] == 0xFF:
                i += 1
                continue
            j = i
            while j < n and src[j] != 0xFF:
                j += 1
            self.nor.write(o + i, src[i:j])
            i = j

    def ioctl(self, op, arg):
        if op in (1, 2, 3):
            return 0
        if op == 4:
            return self.size // BLOCK
        if op == 5:
            return BLOCK
        if op == 6:
            self.nor.erase(self._span(arg, BLOCK, 0), BLOCK)
            return 0
        return None


class Machine:
    def reset(self):
        raise Reboot()
