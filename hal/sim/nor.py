# Emulated NOR flash, strict: the rules of hal/flash.py are enforced, not assumed.
#
#   NorFlash(size, sector_size=4096, write_size=1, erased=0xFF, mirror=False)
#                                                                 contents in RAM; with
#                       mirror, also in an io.BytesIO that reads come from, so that a read
#                       allocates nothing (a memoryview slice would), for twice the RAM
#   FileFlash(path, size, ...)                                    RAM copy written through to a file
#
# Rules: writes cover whole write units and only erased bytes (a write to any non-erased byte
# fails with FLASH_NOT_ERASED and changes nothing; real NOR would AND the bits, this flash
# forbids it); erases cover whole sectors; every access is range checked.
#
# Fault injection, for the power-cut campaign:
#   fail_at(n, tear, seed)  power fails during the n-th counted operation from now
#   power_on()              the reboot: the flash answers again
#   fail_writes(n)          the next n writes fail with FLASH_IO and change nothing
#   flip_bits / poke        corrupt the contents behind the rules' back
#   snapshot / restore      copy of contents and counters, to restart a campaign quickly
import os

from hal.sim import mem
from agent.errors import OtaError, FLASH_ALIGN, FLASH_RANGE, FLASH_NOT_ERASED, FLASH_IO, \
    BAD_LAYOUT


class PowerCut(BaseException):
    """Power failed. Not an Exception, so no `except Exception` in the agent swallows it."""


def _rand(x):
    # 31-bit linear congruential step: deterministic on every interpreter
    return (x * 1103515245 + 12345) & 0x7FFFFFFF


class NorFlash:
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

    def _fill(self):
        mem.fill(self._mem, 0, self.size, self.erased)

    def _sync(self, offset, n, data=None):
        # contents changed in [offset, offset + n); data, when given, holds the new bytes
        m = self._io
        if m is not None:
            m.seek(offset)
            m.write(self._mv[offset:offset + n] if data is None else data)

    # ---- fault injection -------------------------------------------------------------

    def fail_at(self, n, tear=False, seed=0):
        """Power fails during the n-th counted operation from now (n=1: the next one).

        The operations before it complete. Without tear, operation n completes too and then
        raises PowerCut: "fail after n operations". With tear, operation n is left partial
        (see _tear_write and _tear_erase; the partial state is a function of seed) and raises
        PowerCut. n=0 cuts power now: the next access raises PowerCut and changes nothing.
        fail_at(None) disarms. Once cut, every read, write and erase raises PowerCut until
        power_on(). Only counted operations (see `ops`) advance towards n.
        """
        self._tear = tear
        self._seed = seed
        if n is None:
            self._cut_at = 0
        elif n <= 0:
            self._cut_at = 0
            self.cut = True
        else:
            self._cut_at = self.ops + n

    def fail_after_ops(self, n):
        """The next n operations complete; power fails at the end of the n-th (n=0: now)."""
        self.fail_at(n)

    def power_on(self):
        """The reboot after a cut: accesses work again. An armed fail_at that has not fired
        stays armed."""
        self.cut = False

    def fail_writes(self, n):
        """The next n non-empty writes raise OtaError(FLASH_IO) and change nothing."""
        self._bad_writes = n

    def fail_erases(self, n):
        """The next n erases raise OtaError(FLASH_IO) and change nothing."""
        self._bad_erases = n

    def flip_bits(self, offset, mask):
        """XOR the byte at offset with mask, ignoring the NOR rules (corruption)."""
        self._range(offset, 1)
        self._mem[offset] ^= mask & 0xFF
        self._sync(offset, 1)

    def poke(self, offset, data):
        """Store data at offset, ignoring the NOR rules (corruption, test set-up)."""
        n = len(data)
        self._range(offset, n)
        self._mem[offset:offset + n] = data
        self._sync(offset, n)

    def snapshot(self):
        """Contents and counters, as an opaque value for restore(). Erased sectors take no
        space in it."""
        ss = self.sector_size
        secs = []
        for o in range(0, self.size, ss):
            if self._mem.count(self._e, o, o + ss) == ss:
                secs.append(None)
            else:
                secs.append(bytes(self._mv[o:o + ss]))
        return (secs, self.ops, self.writes, self.erases, self.bytes_written,
                list(self.sector_erases))

    def restore(self, snap):
        """Return to a snapshot: contents and counters; powered on, fault injection off."""
        ss = self.sector_size
        o = 0
        for sec in snap[0]:
            self._mem[o:o + ss] = self._blank if sec is None else sec
            o += ss
        self.ops, self.writes, self.erases, self.bytes_written = snap[1:5]
        self.sector_erases = list(snap[5])
        self.cut = False
        self._cut_at = 0
        self._bad_writes = 0
        self._bad_erases = 0
        self._sync(0, self.size)

    # ---- checks ------------------------------------------------------------------------

    def _alive(self):
        if self.cut:
            raise PowerCut()

    def _range(self, offset, n):
        if offset < 0 or n < 0 or offset + n > self.size:
            raise OtaError(FLASH_RANGE, "0x%X+%d in flash of 0x%X" % (offset, n, self.size))

    def _count(self):
        # one more operation issued; True when power fails during it
        self.ops += 1
        if self._cut_at and self.ops >= self._cut_at:
            self._cut_at = 0
            return True
        return False

    # ---- the flash interface -----------------------------------------------------------

    # The frames of read and write stay within 11 words (locals and stack), so that
    # MicroPython keeps them on the C stack: a larger one is taken from the heap.

    def read(self, offset, buf):
        self._alive()
        n = len(buf)
        self._range(offset, n)
        if self._io is None:
            mem.copy(buf, 0, self._mem, offset, n)
        else:
            self._io.seek(offset)
            self._io.readinto(buf)

    def write(self, offset, data):
        n = len(data)
        if not self._writable(offset, n):
            return
        self.writes += 1
        if self._count():
            self._cut_write(offset, data, n)
        mem.copy(self._mem, offset, data, 0, n)
        self.bytes_written += n
        self._sync(offset, n, data)

    def _cut_write(self, offset, data, n):
        # power fails during this write: torn, or after it completes
        if self._tear:
            self._tear_write(offset, data)
            self._sync(offset, n)
        else:
            mem.copy(self._mem, offset, data, 0, n)
            self.bytes_written += n
            self._sync(offset, n, data)
        self.cut = True
        raise PowerCut()

    def _writable(self, offset, n):
        # False for an empty write; raises for any other that breaks a rule
        self._alive()
        ws = self.write_size
        if offset % ws or n % ws:
            raise OtaError(FLASH_ALIGN, "write 0x%X+%d, unit %d" % (offset, n, ws))
        self._range(offset, n)
        if n == 0:
            return False
        if self._bad_writes > 0:
            self._bad_writes -= 1
            raise OtaError(FLASH_IO, "write 0x%X+%d" % (offset, n))
        if mem.count(self._mem, offset, n, self.erased) != n:
            raise OtaError(FLASH_NOT_ERASED, "write 0x%X+%d" % (offset, n))
        return True

    def erase(self, offset, size):
        self._alive()
        ss = self.sector_size
        if offset % ss or size % ss:
            raise OtaError(FLASH_ALIGN, "erase 0x%X+%d, sector %d" % (offset, size, ss))
        self._range(offset, size)
        if size == 0:
            return
        if self._bad_erases > 0:
            self._bad_erases -= 1
            raise OtaError(FLASH_IO, "erase 0x%X+%d" % (offset, size))
        cut = self._count()
        if cut and self._tear:
            self._tear_erase(offset, size)
            self._sync(offset, size)
            self.cut = True
            raise PowerCut()
        self._wipe(offset, size)
        if cut:
            self.cut = True
            raise PowerCut()

    def _wipe(self, offset, size):
        ss = self.sector_size
        while size:
            mem.fill(self._mem, offset, ss, self.erased)
            self.sector_erases[offset // ss] += 1
            self._sync(offset, ss, self._blank)
            self.erases += 1
            offset += ss
            size -= ss

    # ---- torn operations ---------------------------------------------------------------

    def _tear_write(self, offset, data):
        # Units are programmed in order. Seed 0: the first half of the units, then the first
        # half of the bytes of the unit in flight (write_size 1: half the bytes). Other
        # seeds: a random number of whole units, then a random number of bytes of the unit in
        # flight, then one byte with a random mix of its old (erased) and new bits.
        ws = self.write_size
        n = len(data)
        src = memoryview(data)
        if self._seed == 0:
            done = (n // ws) // 2 * ws + ws // 2
            mask = 0
        else:
            r = _rand(self._seed)
            done = (r >> 4) % (n // ws) * ws
            r = _rand(r)
            done += (r >> 4) % ws
            mask = _rand(r) >> 8 & 0xFF
        self._mem[offset:offset + done] = src[0:done]
        self.bytes_written += done
        if mask and done < n:
            o = offset + done
            self._mem[o] = (self._mem[o] & ~mask | src[done] & mask) & 0xFF
            self.bytes_written += 1

    def _tear_erase(self, offset, size):
        # Sectors are erased in order; the ones before the sector in flight are erased and
        # the ones after it untouched. Seed 0: the middle sector is in flight with its first
        # half erased. Other seeds pick the sector and one of: a random prefix erased;
        # every byte at the programmed value (the pre-program phase of an erase); every byte
        # with a random part of its bits moved to the erased state.
        ss = self.sector_size
        nsec = size // ss
        if self._seed == 0:
            k = nsec // 2
            mode = 0
            cut = ss // 2
        else:
            r = _rand(self._seed)
            k = (r >> 4) % nsec
            r = _rand(r)
            mode = (r >> 4) % 3
            r = _rand(r)
            cut = (r >> 4) % ss
        first = offset // ss
        for i in range(k):
            o = offset + i * ss
            self._mem[o:o + ss] = self._blank
            self.sector_erases[first + i] += 1
        self.erases += k + 1
        self.sector_erases[first + k] += 1
        o = offset + k * ss
        mem = self._mem
        if mode == 0:
            mem[o:o + cut] = self._blank[0:cut]
        elif mode == 1:
            step = 64 if ss > 64 else ss
            prog = bytes((self.erased ^ 0xFF,)) * step
            for i in range(o, o + ss, step):
                mem[i:i + step] = prog
        else:
            e = self.erased
            for i in range(o, o + ss):
                r = _rand(r)
                m = r >> 12 & 0xFF
                mem[i] = (mem[i] | m) if e else (mem[i] & ~m & 0xFF)


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
