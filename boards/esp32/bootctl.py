# Boot control (hal/boot.py) on ESP-IDF's OTA rollback, through esp32.Partition.
#
# ESP-IDF keeps its boot selection in the otadata partition: two entries (one per sector),
# the valid one with the highest sequence number selects app partition (seq - 1) % 2.
# esp32.Partition.set_boot() verifies the image and writes a new entry in state NEW; at the
# next reset the bootloader turns NEW into PENDING_VERIFY and boots it; an entry still
# PENDING_VERIFY at a reset is marked ABORTED and the previous entry boots again (rollback).
# mark_app_valid_cancel_rollback() turns PENDING_VERIFY into VALID. The adapter reads
# otadata (never writes it) to see those states:
#
#   set_pending(s, trials)  set_boot() on slot s. ESP-IDF gives a new app exactly one trial
#                           boot, so trials is capped at 1.
#   confirm()               mark_app_valid_cancel_rollback()
#   revert()                on trial: nothing to write, the bootloader rolls back at the next
#                           reset; pending and not booted: set_boot() on the running slot
#   set_confirmed(s)        set_boot() on s
#   running(), pending(), in_trial(), confirmed(), boot_info() from Partition.RUNNING and
#   the otadata entries. The bootloader counts no boots: boot_info() reports boots as 0.
#
# set_boot() of a slot that is already confirmed (revert of a pending slot, set_confirmed)
# still writes NEW, which would put a confirmed image on trial. So the board keeps a boot
# record (its own agent.store.journal.Journal) saved before every set_boot(): the slot it meant to
# put on trial. At start, a running slot in PENDING_VERIFY that is not that slot is marked
# valid at once. A power cut between the record and set_boot() leaves otadata unchanged.
import struct
from binascii import crc32

from agent.errors import OtaError, ACTIVATION_FAILED, NOT_IN_TRIAL, SLOT_INVALID, BOARD, \
    JOURNAL_CORRUPT
from agent.store.journal import Journal

MYPY = False
if MYPY:  # read by the type checker only (tests/host/test_host_stubs.py), never run
    from esp32 import Partition

ENTRY_FMT = "<I20sII"
#   I    ota_seq: sequence number, 0xFFFFFFFF in an empty entry
#   20s  seq_label (unused)
#   I    ota_state (below)
#   I    crc: CRC-32 of the 4 bytes of ota_seq, initial value 0xFFFFFFFF
ENTRY_SIZE = 32
ST_NEW = 0
ST_PENDING = 1
ST_VALID = 2
ST_INVALID = 3
ST_ABORTED = 4
ST_UNDEFINED = 0xFFFFFFFF
EMPTY = 0xFFFFFFFF

REC_FMT = "<BBB"
#   B    record version, 1
#   B    slot put on trial by the last set_pending(), 0xFF none
#   B    slot set_boot() made the confirmed one (set_confirmed, revert), 0xFF none
REC_LEN = 3
_NONE = 0xFF


def entry_crc(seq):
    return crc32(struct.pack("<I", seq), 0xFFFFFFFF) & 0xFFFFFFFF


def read_otadata(part, buf):
    # type: (Partition, bytearray) -> list
    """The two otadata entries as [(seq, state)] of the valid ones (CRC good, not empty)."""
    out = []
    for i in range(2):
        part.readblocks(i, buf, 0)
        seq, _label, state, crc = struct.unpack_from(ENTRY_FMT, buf, 0)
        if seq != EMPTY and crc == entry_crc(seq):
            out.append((seq, state))
    return out


class EspBoot:
    """port: the esp32 module (or a fake), parts: the two slot Partitions, record_area: a
    hal.flash.Area of 2 sectors for the boot record, reset_fn: machine.reset."""

    def __init__(self, port, parts, record_area, reset_fn=None):
        P = port.Partition  # type: type[Partition]
        self._P = P
        self._parts = parts  # type: list[Partition]
        self._addr = [p.info()[2] for p in parts]
        found = P.find(P.TYPE_DATA, 0)
        if not found:
            raise OtaError(BOARD, "no otadata partition")
        self._otadata = found[0]
        self._buf = bytearray(ENTRY_SIZE)
        self._reset = reset_fn
        self._rec = Journal(record_area, REC_LEN)
        self._trial = _NONE
        self._conf = _NONE
        raw = self._rec.load()
        if raw is not None:
            v, t, c = struct.unpack(REC_FMT, raw)
            if v != 1:
                raise OtaError(JOURNAL_CORRUPT, "boot record version %d" % v)
            self._trial = t
            self._conf = c
        self._reverted = False
        self._read()
        if self._state == ST_PENDING and self._act == self._run and self._trial != self._run:
            self._mark_valid()

    # -- what ESP-IDF shows -------------------------------------------------

    def _slot_of(self, part):
        a = part.info()[2]
        for i in range(2):
            if self._addr[i] == a:
                return i
        raise OtaError(BOARD, "partition at 0x%X is not a slot" % a)

    def _read(self):
        """Refresh the running slot and the otadata entries."""
        try:
            # the stubs type the id as a label; the port takes BOOT and RUNNING too
            self._run = self._slot_of(self._P(self._P.RUNNING))  # type: ignore[arg-type]
            ents = read_otadata(self._otadata, self._buf)
        except OSError as e:
            raise OtaError(BOARD, "otadata: %s" % (e,))
        top = act = None
        for ent in ents:
            if top is None or ent[0] > top[0]:
                top = ent
            if ent[1] != ST_INVALID and ent[1] != ST_ABORTED and (act is None or ent[0] > act[0]):
                act = ent
        self._top = top
        self._confirmed = 0
        best = 0
        for ent in ents:
            if (ent[1] == ST_VALID or ent[1] == ST_UNDEFINED) and ent[0] > best:
                best = ent[0]
                self._confirmed = (ent[0] - 1) % 2
        if act is None:
            self._act = None
            self._state = None
        else:
            self._act = (act[0] - 1) % 2
            self._state = act[1]

    def _set_boot(self, slot, trial, conf):
        self._rec.save(struct.pack(REC_FMT, 1, trial, conf))
        self._trial = trial
        self._conf = conf
        try:
            self._parts[slot].set_boot()
        except OSError as e:
            raise OtaError(SLOT_INVALID, "set_boot slot %d: %s" % (slot, e))
        finally:
            self._read()

    def _mark_valid(self):
        try:
            self._P.mark_app_valid_cancel_rollback()
        except OSError as e:
            raise OtaError(BOARD, "mark_app_valid_cancel_rollback: %s" % (e,))
        self._read()

    # -- hal/boot.py ----------------------------------------------------------

    def running(self):
        return self._run

    def in_trial(self):
        return (not self._reverted and self._state == ST_PENDING and self._act == self._run)

    def pending(self):
        if self.in_trial():
            return self._run
        if self._state == ST_NEW and self._act != self._run and self._act != self._conf:
            return self._act
        return None

    def confirmed(self):
        if self._state == ST_NEW and self._act == self._conf:
            return self._conf
        return self._confirmed

    def trials_left(self):
        return 1 if self.pending() is not None and not self.in_trial() else 0

    def boot_info(self):
        t = self._top
        if t is None:
            return (False, 0, 0)
        if t[1] == ST_ABORTED:
            return (True, ACTIVATION_FAILED, 0)
        if t[1] == ST_INVALID or (t[1] == ST_PENDING and (t[0] - 1) % 2 != self._run):
            return (True, SLOT_INVALID, 0)
        return (False, 0, 0)

    def set_pending(self, slot, trials):
        if slot != 0 and slot != 1:
            raise OtaError(ACTIVATION_FAILED, "slot %r" % (slot,))
        if trials < 1:
            raise OtaError(ACTIVATION_FAILED, "trials %r" % (trials,))
        if self.in_trial():
            raise OtaError(ACTIVATION_FAILED, "slot %d on trial" % self._run)
        if slot == self.confirmed() or slot == self._run:
            raise OtaError(ACTIVATION_FAILED, "slot %d is the confirmed slot" % slot)
        if self.pending() == slot:
            return
        try:
            self._set_boot(slot, slot, _NONE)
        except OtaError as e:
            raise OtaError(ACTIVATION_FAILED, e.detail)

    def confirm(self):
        if not self.in_trial():
            raise OtaError(NOT_IN_TRIAL, "running slot %d" % self._run)
        self._mark_valid()

    def revert(self):
        if self.in_trial():
            self._reverted = True
            return True
        if self.pending() is None:
            return False
        self._set_boot(self._run, _NONE, self._run)
        return True

    def set_confirmed(self, slot):
        if slot != 0 and slot != 1:
            raise OtaError(SLOT_INVALID, "slot %r" % (slot,))
        if slot == self.confirmed() and self.pending() is None:
            return
        self._set_boot(slot, _NONE, slot)

    def reset(self):
        if self._reset is None:
            raise OtaError(BOARD, "no reset")
        self._reset()
