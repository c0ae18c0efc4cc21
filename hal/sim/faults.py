# Fault injection of the emulated NOR flash, for the power-cut campaign: the half of
# hal.sim.nor.NorFlash (whose base this class is, and whose state it uses) that makes it
# fail as a real one does.
#
#   fail_at(n, tear, seed)  power fails during the n-th counted operation from now
#   power_on()              the reboot: the flash answers again
#   fail_writes(n)          the next n writes fail with FLASH_IO and change nothing
#   fail_erases(n)          the next n erases, likewise
#   flip_bits / poke        corrupt the contents behind the rules' back
#   snapshot / restore      copy of contents and counters, to restart a campaign quickly
#
# While any of it is armed (NorFlash._odd), the flash's windows hand each write and erase to
# _odd_write and _odd_erase first; otherwise none of this runs.
from hal.sim import mem
from agent.errors import OtaError, FLASH_NOT_ERASED, FLASH_IO


class PowerCut(BaseException):
    """Power failed. Not an Exception, so no `except Exception` in the agent swallows it."""


def _rand(x):
    # 31-bit linear congruential step: deterministic on every interpreter
    return (x * 1103515245 + 12345) & 0x7FFFFFFF


class Faults:
    """The fault injection of hal.sim.nor.NorFlash (no state of its own)."""

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
                secs.append(self._keep(o, ss))
        return (secs, self.ops, self.writes, self.erases, self.bytes_written,
                list(self.sector_erases))

    def _keep(self, o, n):
        # a snapshot's copy of the n bytes at o
        return bytes(self._mv[o:o + n])

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

    # ---- an operation while power is off, cut or failing ----------------------------

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
