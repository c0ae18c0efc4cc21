# A strict NOR flash whose contents live only in a file (CPython and MicroPython), for the
# heap benchmark: hal.sim.nor.FileFlash keeps a copy in RAM, which would count in the heap a
# device never spends on its flash. Same rules as hal.sim.nor.NorFlash: writes of whole write
# units to erased bytes only, erases of whole sectors, ranges checked; no fault injection.
# Counts, per sector, the erases and the writes that start in it.
import os
from array import array

from agent.errors import OtaError, FLASH_ALIGN, FLASH_RANGE, FLASH_NOT_ERASED, FLASH_IO

_CHUNK = 256


class DiskFlash:
    def __init__(self, path, size, sector_size=4096, write_size=4, erased=0xFF):
        self.size = size
        self.sector_size = sector_size
        self.write_size = write_size
        self.erased = erased
        self._e = bytes((erased,))
        self._blank = self._e * _CHUNK
        self._chk = bytearray(_CHUNK)
        n = size // sector_size
        self.erase_counts = bytearray(n)
        self.write_counts = array("H", bytes(2 * n))
        self.writes = self.erases = self.bytes_written = 0
        try:
            have = os.stat(path)[6]
        except OSError:
            have = -1
        if have < 0:
            f = open(path, "wb")
            for _ in range(size // _CHUNK):
                f.write(self._blank)
            f.close()
        elif have != size:
            raise OtaError(FLASH_RANGE, "%s holds %d bytes, not %d" % (path, have, size))
        self._f = open(path, "r+b")

    def _range(self, offset, n):
        if offset < 0 or n < 0 or offset + n > self.size:
            raise OtaError(FLASH_RANGE, "0x%X+%d" % (offset, n))

    def read(self, offset, buf):
        self._range(offset, len(buf))
        self._f.seek(offset)
        if self._f.readinto(buf) != len(buf):
            raise OtaError(FLASH_IO, "short read at 0x%X" % offset)

    def _erased(self, offset, n):
        f = self._f
        f.seek(offset)
        while n > 0:
            k = _CHUNK if n > _CHUNK else n
            f.readinto(self._chk)
            if self._chk.count(self._e, 0, k) != k:
                return False
            n -= k
        return True

    def write(self, offset, data):
        n = len(data)
        if offset % self.write_size or n % self.write_size:
            raise OtaError(FLASH_ALIGN, "write 0x%X+%d" % (offset, n))
        self._range(offset, n)
        if not n:
            return
        if not self._erased(offset, n):
            raise OtaError(FLASH_NOT_ERASED, "write 0x%X+%d" % (offset, n))
        self._f.seek(offset)
        self._f.write(data)
        self.writes += 1
        self.bytes_written += n
        self.write_counts[offset // self.sector_size] += 1

    def erase(self, offset, size):
        ss = self.sector_size
        if offset % ss or size % ss:
            raise OtaError(FLASH_ALIGN, "erase 0x%X+%d" % (offset, size))
        self._range(offset, size)
        f = self._f
        f.seek(offset)
        for _ in range(size // _CHUNK):
            f.write(self._blank)
        for s in range(offset // ss, (offset + size) // ss):
            self.erase_counts[s] += 1
            self.erases += 1

    def close(self):
        self._f.close()
