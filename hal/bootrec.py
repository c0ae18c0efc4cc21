# The boot record: a bootloader's whole state in one small power-safe record, and the boot
# decision made from it at every reset, with the boot control interface of hal/boot.py.
# boards/rp2 ships it (its selector, boards/rp2/select.py, is the bootloader); the emulated
# bootloader (hal/sim/boot.py) is the same record with an emulated reset.
#
# The record is kept in an agent.store.journal.Journal (two or more sectors), so every state
# change is a single Journal.save(): after a power cut the next boot sees either the old
# record or the new one.
#
# boot() is what the bootloader does at every reset:
#   no record yet            -> slot 0 is the confirmed (factory) slot
#   a slot pending, trials 0 -> revert: clear pending, boot_info reason ACTIVATION_FAILED
#   pending fails validate() -> revert: clear pending, boot_info reason SLOT_INVALID
#   pending, trials left     -> trials - 1 saved first, then the pending slot runs on trial
#   otherwise                -> the confirmed slot runs; if it fails validate() it still runs
#                               (the agent decides what to do) and boot_info reports
#                               (False, SLOT_INVALID, boots)
# Every boot saves one record (the boot counter and the decision); boot_info() reads the
# decision of the most recent boot, also from a fresh BootRecord that has not called boot().
import struct

from agent.errors import (OtaError, BAD_LAYOUT, ACTIVATION_FAILED, NOT_IN_TRIAL,
                          SLOT_INVALID, JOURNAL_CORRUPT)
from agent.store.journal import Journal

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_VERSION = const(1)
_NONE = const(0xFF)        # no pending slot
_F_TRIAL = const(1)        # the last boot ran the pending slot on trial
_F_REVERTED = const(2)     # the last boot reverted a pending slot
_MAX_TRIALS = const(255)
_MAX_BOOTS = const(0xFFFFFFFF)

_FMT = "<BBBBBBBI"
# B  record format version (_VERSION)
# B  confirmed slot (0 or 1)
# B  pending slot (0 or 1), _NONE when none
# B  trial boots left for the pending slot
# B  slot chosen by the last boot
# B  flags of the last boot: _F_TRIAL, _F_REVERTED
# B  reason code of the last boot (agent.errors), 0 for a normal boot
# I  boots counted since the state was created (saturates)
RECORD_LEN = const(11)


def _slot(slot):
    if slot != 0 and slot != 1:
        raise OtaError(BAD_LAYOUT, "slot %r" % (slot,))
    return slot


class BootRecord:
    """The boot record over a hal.flash.Area of at least two sectors: the boot decision and
    every call of hal/boot.py but reset(), which is the board's (a subclass adds it).

    validate(slot) -> bool is the fast image check the bootloader runs before it boots a
    slot; None accepts every slot.
    """

    def __init__(self, area, validate=None):
        self.area = area
        self.validate = validate
        self._load()

    # state kept in RAM mirrors the newest record; it changes only after a save returned

    def _load(self):
        self._journal = Journal(self.area, RECORD_LEN)
        rec = self._journal.load()
        if rec is None:
            self._confirmed = 0
            self._pending = _NONE
            self._trials = 0
            self._ran = 0
            self._flags = 0
            self._reason = 0
            self._boots = 0
            return
        if len(rec) != RECORD_LEN:
            raise OtaError(JOURNAL_CORRUPT, "boot record length %d" % len(rec))
        v, c, p, t, r, f, why, n = struct.unpack(_FMT, rec)
        if v != _VERSION or c > 1 or r > 1 or (p > 1 and p != _NONE):
            raise OtaError(JOURNAL_CORRUPT, "boot record")
        self._confirmed = c
        self._pending = p
        self._trials = t if p != _NONE else 0
        self._ran = r
        self._flags = f
        self._reason = why
        self._boots = n

    def _save(self, confirmed, pending, trials, ran, flags, reason, boots):
        self._journal.save(struct.pack(_FMT, _VERSION, confirmed, pending, trials, ran,
                                       flags, reason, boots))
        self._confirmed = confirmed
        self._pending = pending
        self._trials = trials
        self._ran = ran
        self._flags = flags
        self._reason = reason
        self._boots = boots

    def _valid(self, slot):
        fn = self.validate
        if fn is None:
            return True
        try:
            return bool(fn(slot))
        except OtaError:
            return False

    # the bootloader

    def boot(self):
        """Run the boot decision from the state in flash; returns the slot to run."""
        self._load()
        c = self._confirmed
        p = self._pending
        t = self._trials
        boots = self._boots + 1 if self._boots < _MAX_BOOTS else _MAX_BOOTS
        flags = 0
        reason = 0
        if p != _NONE:
            if t == 0:
                flags = _F_REVERTED
                reason = ACTIVATION_FAILED
            elif not self._valid(p):
                flags = _F_REVERTED
                reason = SLOT_INVALID
            else:
                self._save(c, p, t - 1, p, _F_TRIAL, 0, boots)
                return p
        if not flags and not self._valid(c):
            reason = SLOT_INVALID
        self._save(c, _NONE, 0, c, flags, reason, boots)
        return c

    # the boot control interface (hal/boot.py)

    def running(self):
        return self._ran

    def confirmed(self):
        return self._confirmed

    def pending(self):
        """The pending slot, or None."""
        return None if self._pending == _NONE else self._pending

    def in_trial(self):
        return self._pending != _NONE and (self._flags & _F_TRIAL) != 0

    def trials_left(self):
        return self._trials

    def boot_info(self):
        """(reverted, reason, boots) of the most recent boot.

        reverted True: the pending slot was abandoned, reason ACTIVATION_FAILED (no trials
        left) or SLOT_INVALID (failed validate). reverted False with reason SLOT_INVALID:
        the confirmed slot failed validate() and ran anyway. boots counts every boot.
        """
        return ((self._flags & _F_REVERTED) != 0, self._reason, self._boots)

    def set_pending(self, slot, trials):
        """From the next reset, boot slot on trial for at most trials boots."""
        _slot(slot)
        if trials < 1 or trials > _MAX_TRIALS:
            raise OtaError(ACTIVATION_FAILED, "trials %r" % (trials,))
        if self.in_trial():
            raise OtaError(ACTIVATION_FAILED, "slot %d on trial" % self._ran)
        if slot == self._confirmed:
            raise OtaError(ACTIVATION_FAILED, "slot %d is the confirmed slot" % slot)
        if slot == self._pending and trials == self._trials:
            return
        self._save(self._confirmed, slot, trials, self._ran, self._flags, self._reason,
                   self._boots)

    def confirm(self):
        """Make the running trial slot the confirmed one."""
        if not self.in_trial():
            raise OtaError(NOT_IN_TRIAL, "running slot %d" % self._ran)
        self._save(self._ran, _NONE, 0, self._ran, self._flags & ~_F_TRIAL, self._reason,
                   self._boots)

    def revert(self):
        """Abandon the running trial slot, or cancel a pending slot that has not booted.

        The next reset boots confirmed(). Returns False (and writes nothing) when no slot
        is pending, so a revert repeated after a power cut is harmless.
        """
        if self._pending == _NONE:
            return False
        self._save(self._confirmed, _NONE, 0, self._ran, self._flags & ~_F_TRIAL,
                   self._reason, self._boots)
        return True

    def set_confirmed(self, slot):
        """Make slot the confirmed one from the next reset, dropping any pending slot.

        For the agent's power-on fallback when the confirmed slot fails its check and the
        other slot holds a valid image. The slot must pass validate().
        """
        _slot(slot)
        if not self._valid(slot):
            raise OtaError(SLOT_INVALID, "slot %d" % slot)
        if slot == self._confirmed and self._pending == _NONE:
            return
        self._save(slot, _NONE, 0, self._ran, self._flags & ~_F_TRIAL, self._reason,
                   self._boots)
