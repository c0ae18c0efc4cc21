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
# Fault injection, for the power-cut campaign:
#   fail_at(n, tear, seed)  power fails during the n-th counted operation from now
#   power_on()              the reboot: the flash answers again
#   fail_writes(n)          the next n writes fail with FLASH_IO and change nothing
#   flip_bits / poke        corrupt the contents behind the rules' back
#   snapshot / restore      copy of contents and counters, to restart a campaign quickly
import os

from hal.sim import mem
from hal.sim.mem import copy, fill, program
from agent.errors import OtaError, FLASH_ALIGN, FLASH_RANGE, FLASH_NOT_ERASED, FLASH_IO, \
    BAD_LAYOUT


_len = len  # a module global: a builtin is found only after a search of all of them


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
        self._rearm()

    def fail_after_ops(self, n):
        """The next n operations complete; power fails at the end of the n-th (n=0: now)."""
        self.fail_at(n)

    def power_on(self):
        """The reboot after a cut: accesses work again. An armed fail_at that has not fired
        stays armed."""
        self.cut = False
        self._rearm()

    def fail_writes(self, n):
        """The next n non-empty writes raise OtaError(FLASH_IO) and change nothing."""
        self._bad_writes = n
        self._rearm()

    def fail_erases(self, n):
        """The next n erases raise OtaError(FLASH_IO) and change nothing."""
        self._bad_erases = n
        self._rearm()

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
            if sec is None:
                mem.fill(self._mem, o, ss, self.erased)
            else:
                mem.copy(self._mem, o, sec, 0, ss)
            o += ss
        self.ops, self.writes, self.erases, self.bytes_written = snap[1:5]
        self.sector_erases = list(snap[5])
        self.cut = False
        self._cut_at = 0
        self._bad_writes = 0
        self._bad_erases = 0
        self._odd = False
        self._sync(0, self.size)

    def _rearm(self):
        # _odd: power off, a cut armed or failures injected, which the usual write and erase
        # leave to _odd_write and _odd_erase
        self._odd = self.cut or self._cut_at != 0 or self._bad_writes > 0 \
            or self._bad_erases > 0

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

    def _odd_start(self, w, what, offset, n, mask):
        # the first checks of an operation while _odd: power off, alignment to mask; True
        # when it is empty (done with)
        if self.cut:
            raise PowerCut()
        if (offset | n) & mask:
            raise w._misaligned(what, offset, n)
        return not n

    def _odd_write(self, w, offset, data, n):
        # write() of window w while _odd: True when it is done with (an empty write), False
        # when the usual write goes on; or raises (power off, an injected failure, the cut)
        if self._odd_start(w, "write", offset, n, w.wm):
            return True
        if self._bad_writes > 0:
            self._bad_writes -= 1
            self._rearm()
            raise OtaError(FLASH_IO, "write 0x%X+%d" % (offset, n))
        if self._cut_at and self.ops >= self._cut_at - 1:
            self._cut_write(offset, data, n)
        return False

    def _odd_erase(self, w, offset, size):
        # erase() while _odd, as _odd_write; counts the operation when it goes on
        if self._odd_start(w, "erase", offset, size, w.sm):
            return True
        if self._bad_erases > 0:
            self._bad_erases -= 1
            self._rearm()
            raise OtaError(FLASH_IO, "erase 0x%X+%d" % (offset, size))
        self.ops += 1
        if self._cut_at and self.ops >= self._cut_at:
            self._cut_erase(offset, size)
        return False

    def _cut_write(self, offset, data, n):
        # the write power fails during (it reaches _cut_at): checked as any other, counted,
        # then torn or completed, and the power is off
        if mem.count(self._mem, offset, n, self.erased) != n:
            raise OtaError(FLASH_NOT_ERASED, "write 0x%X+%d" % (offset, n))
        self.writes += 1
        self.ops += 1
        self._cut_at = 0
        if self._tear:
            self._tear_write(offset, data)
            self._sync(offset, n)
        else:
            mem.copy(self._mem, offset, data, 0, n)
            self.bytes_written += n
            self._sync(offset, n, data)
        self.cut = True
        self._rearm()
        raise PowerCut()

    def _cut_erase(self, offset, size):
        # the erase power fails during: torn, or completed, and the power is off
        self._cut_at = 0
        if self._tear:
            self._tear_erase(offset, size)
            self._sync(offset, size)
        else:
            mem.fill(self._mem, offset, size, self.erased)
            self._erased(offset, size)
        self.cut = True
        self._rearm()
        raise PowerCut()

    def _erased(self, offset, size):
        # counters and copies after sectors [offset, offset + size) were erased
        ss = self.sector_size
        self.erases += size // ss
        while size:
            self.sector_erases[offset // ss] += 1
            self._sync(offset, ss, self._blank)
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
