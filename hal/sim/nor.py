# Emulated NOR flash, strict: the rules of hal/flash.py are enforced, not assumed.
#
#   NorFlash(size, sector_size=4096, write_size=1, erased=0xFF, mirror=False)
#                                                                 contents in RAM; with
#                       mirror, also in an io.BytesIO that reads come from, so that a read
#                       allocates nothing (a memoryview slice would), for twice the RAM
#   FileFlash(path, size, ...)                                    RAM copy written through to a file
#
# read, write and erase run in a window object (_Window): flash.window(base, size) gives one
# over an area, whose methods hal.flash.Area takes as its own, so that an access through an
# area is one Python call and one hal.sim.mem loop, checks included.
#
# Rules: writes cover whole write units and only erased bytes (a write to any non-erased byte
# fails with FLASH_NOT_ERASED and changes nothing; real NOR would AND the bits, this flash
# forbids it); erases cover whole sectors; every access is range checked.
#
# Fault injection, for the power-cut campaign (hal.sim.faults, NorFlash's base): power cuts
# at the n-th operation, torn or not (fail_at, power_on), failing writes and erases,
# corruption behind the rules' back (flip_bits, poke), snapshot and restore.
import os

from hal.sim import mem
from hal.sim.mem import copy, fill, program
from hal.sim.faults import Faults, PowerCut
from agent.errors import OtaError, FLASH_ALIGN, FLASH_RANGE, FLASH_NOT_ERASED, FLASH_IO, \
    BAD_LAYOUT


_len = len  # a module global: a builtin is found only after a search of all of them


class NorFlash(Faults):
    """Strict NOR flash in RAM.

    Counters (write and erase calls that did something; reads and no-ops excluded):
      ops            write and erase operations issued (the unit of fail_at)
      writes         write operations
      erases         sectors erased (an erase of 3 sectors adds 3)
      bytes_written  bytes programmed
      sector_erases  list: erase count of each sector (wear)
    An operation cut by power still counts.
    """

    def __init__(self, size, sector_size=4096, write_size=1, erased=0xFF, mirror=False):
        ss = sector_size
        ws = write_size
        if (ss < 1 or ss & (ss - 1) or ws < 1 or ws & (ws - 1) or ws > ss
                or size <= 0 or size % ss or erased not in (0x00, 0xFF)):
            raise OtaError(BAD_LAYOUT, "flash %d/%d/%d/0x%02X" % (size, ss, ws, erased))
        self.size = size
        self.sector_size = ss
        self.write_size = ws
        self.erased = erased
        self._e = bytes((erased,))
        self._blank = self._e * ss
        self._mem = bytearray(size)
        self._mv = memoryview(self._mem)
        self._fill()
        self._io = None
        self._all = None
        if mirror:
            import io
            self._io = io.BytesIO(self._mem)
        self.sector_erases = [0] * (size // ss)
        self.ops = self.writes = self.erases = self.bytes_written = 0
        self.cut = False
        self._cut_at = 0
        self._tear = False
        self._seed = 0
        self._bad_writes = 0
        self._bad_erases = 0
        self._odd = False

    def _fill(self):
        mem.fill(self._mem, 0, self.size, self.erased)

    def _sync(self, offset, n, data=None):
        # contents changed in [offset, offset + n); data, when given, holds the new bytes
        m = self._io
        if m is not None:
            m.seek(offset)
            m.write(self._mv[offset:offset + n] if data is None else data)

    # ---- the flash interface -----------------------------------------------------------

    def read(self, offset, buf):
        self._window().read(offset, buf)

    def write(self, offset, data):
        self._window().write(offset, data)

    def erase(self, offset, size):
        self._window().erase(offset, size)

    def window(self, base, size):
        """The read, write and erase of [base, base + size) (whole sectors inside the
        flash), offsets relative to base, as one object: hal.flash.Area calls them in place
        of its own, one call per operation. None when a subclass has its own read, write or
        erase, which the area must then call."""
        c = type(self)
        if c.read is not NorFlash.read or c.write is not NorFlash.write \
                or c.erase is not NorFlash.erase:
            return None
        return _Window(self, base, size, "area")

    def _window(self):
        # the window of the whole flash, made at the first access (after a subclass or a
        # test has put the contents in place)
        w = self._all
        if w is None:
            w = self._all = _Window(self, 0, self.size, "flash")
        return w

    def _synced(self):
        # True when _sync has a copy to keep up to date
        return self._io is not None

    def _range(self, offset, n):
        if offset < 0 or n < 0 or offset + n > self.size:
            raise OtaError(FLASH_RANGE, "0x%X+%d in flash of 0x%X" % (offset, n, self.size))

    def _erased(self, offset, size):
        # counters and copies after sectors [offset, offset + size) were erased
        ss = self.sector_size
        self.erases += size // ss
        while size:
            self.sector_erases[offset // ss] += 1
            self._sync(offset, ss, self._blank)
            offset += ss
            size -= ss

class _Window:
    """The read, write and erase of NorFlash over [base, base + size): the checks of
    hal.flash.Area and of the flash in one call each, the byte loops in hal.sim.mem.

    The usual case runs here (a few attribute reads, one hal.sim.mem call); the rare ones
    (power cut, injected failures, copies to keep) in the flash's methods. Each method's
    frame stays within 11 words (locals and stack), so that MicroPython keeps it off the
    heap."""

    def __init__(self, fl, base, size, what):
        self.fl = fl
        self.base = base
        self.size = size
        self.what = what
        self.mem = fl._mem
        self.io = fl._io
        self.sync = fl._synced()
        self.e = fl.erased
        self.wm = fl.write_size - 1
        self.sm = fl.sector_size - 1
        if self.io is not None:
            self.read = self._read_io

    def _misaligned(self, what, offset, n):
        unit = "unit %d" % (self.wm + 1) if what == "write" else "sector %d" % (self.sm + 1)
        return OtaError(FLASH_ALIGN, "%s 0x%X+%d, %s" % (what, offset, n, unit))

    def _outside(self, offset, n):
        return OtaError(FLASH_RANGE, "0x%X+%d in %s of 0x%X" % (offset, n, self.what,
                                                               self.size))

    def read(self, offset, buf):
        n = _len(buf)
        if offset < 0 or offset + n > self.size:
            raise self._outside(offset, n)
        if self.fl.cut:
            raise PowerCut()
        copy(buf, 0, self.mem, self.base + offset, n)

    def _read_io(self, offset, buf):
        # read() of a flash with a copy in an io.BytesIO (NorFlash mirror=True)
        n = _len(buf)
        if offset < 0 or offset + n > self.size:
            raise self._outside(offset, n)
        if self.fl.cut:
            raise PowerCut()
        self.io.seek(self.base + offset)
        self.io.readinto(buf)

    def write(self, offset, data):
        n = _len(data)
        if offset < 0 or offset + n > self.size:
            raise self._outside(offset, n)
        fl = self.fl
        offset += self.base
        if fl._odd and fl._odd_write(self, offset, data, n):
            return
        if (offset | n) & self.wm:
            raise self._misaligned("write", offset, n)
        if not n:
            return
        if not program(self.mem, offset, data, n, self.e):
            raise OtaError(FLASH_NOT_ERASED, "write 0x%X+%d" % (offset, n))
        fl.ops += 1
        fl.writes += 1
        fl.bytes_written += n
        if self.sync:
            fl._sync(offset, n, data)

    def erase(self, offset, size):
        if offset < 0 or size < 0 or offset + size > self.size:
            raise self._outside(offset, size)
        fl = self.fl
        offset += self.base
        if fl._odd:
            if fl._odd_erase(self, offset, size):
                return
        elif (offset | size) & self.sm:
            raise self._misaligned("erase", offset, size)
        elif not size:
            return
        else:
            fl.ops += 1
        fill(self.mem, offset, size, self.e)
        if size > self.sm + 1 or self.sync:
            fl._erased(offset, size)
        else:
            fl.erases += 1
            fl.sector_erases[offset // size] += 1


class FileFlash(NorFlash):
    """NorFlash whose contents live in a file, so a restarted process sees what a rebooted
    device would. A missing file is created erased; an existing one must have `size` bytes.
    Every change is written through (the changed range only) and flushed."""

    def __init__(self, path, size, sector_size=4096, write_size=1, erased=0xFF):
        self._f = None
        NorFlash.__init__(self, size, sector_size, write_size, erased)
        self.path = path
        try:
            have = os.stat(path)[6]
        except OSError:
            have = -1
        if have < 0:
            f = open(path, "wb")
            for _ in range(0, size, sector_size):
                f.write(self._blank)
            f.close()
        elif have != size:
            raise OtaError(BAD_LAYOUT, "%s holds %d bytes, not %d" % (path, have, size))
        f = self._f = open(path, "r+b")
        got = 0
        while got < size:
            k = f.readinto(self._mv[got:size])
            if not k:
                self.close()
                raise OtaError(FLASH_IO, "%s: read %d of %d" % (path, got, size))
            got += k

    def _synced(self):
        return True

    def _sync(self, offset, n, data=None):
        f = self._f
        if f is None or n <= 0:
            return
        f.seek(offset)
        f.write(self._mv[offset:offset + n] if data is None else data)
        f.flush()

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
