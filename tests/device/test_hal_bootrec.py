# The boot record (what boards/rp2 ships and the emulated bootloader reuses): boot decisions,
# trial boots, confirm / revert, persistence, and a power cut at every flash operation of
# every state change. The emulated reset is test_sim_boot.py's.
import struct

from agent.errors import (OtaError, BAD_LAYOUT, ACTIVATION_FAILED, NOT_IN_TRIAL,
                          SLOT_INVALID, JOURNAL_CORRUPT)
from agent.store.journal import Journal
from hal.flash import Area
from hal.sim.nor import NorFlash, PowerCut
from hal import bootrec
from hal.bootrec import BootRecord
from tutil import raises, eq


def _area(ss=4096, ws=1, erased=0xFF):
    # the bootloader's two sectors sit between two other sectors, to see it stays inside
    fl = NorFlash(4 * ss, ss, ws, erased)
    return fl, Area(fl, ss, 2 * ss)


def _state(b):
    return (b.confirmed(), b.pending(), b.trials_left(), b.running(), b.in_trial(),
            b.boot_info())


def _validator(ok):
    # ok: list of two booleans, changed by the test to make a slot fail its check
    def validate(slot):
        return ok[slot]
    return validate


def test_record_layout():
    eq(struct.calcsize(bootrec._FMT), bootrec.RECORD_LEN, "record size")


def test_factory_boot():
    fl, a = _area()
    b = BootRecord(a)
    eq(_state(b), (0, None, 0, 0, False, (False, 0, 0)), "before the first boot")
    eq(b.boot(), 0, "factory slot")
    eq(_state(b), (0, None, 0, 0, False, (False, 0, 1)), "after the first boot")
    eq(b.boot(), 0, "second boot")
    eq(b.boot_info(), (False, 0, 2), "boots counted")


def test_trial_boots_count_down_then_revert():
    fl, a = _area()
    b = BootRecord(a)
    b.boot()
    b.set_pending(1, 3)
    eq(_state(b), (0, 1, 3, 0, False, (False, 0, 1)), "pending, not booted")
    for left in (2, 1, 0):
        eq(b.boot(), 1, "trial boot")
        eq(_state(b)[:5], (0, 1, left, 1, True), "on trial")
        eq(b.boot_info()[:2], (False, 0), "trial boot is not a revert")
    eq(b.boot(), 0, "trials exhausted")
    eq(_state(b), (0, None, 0, 0, False, (True, ACTIVATION_FAILED, 5)), "reverted")
    eq(b.boot(), 0, "stays on the confirmed slot")
    eq(b.boot_info(), (False, 0, 6), "the revert is reported by the boot that made it")


def test_confirm_makes_permanent():
    fl, a = _area()
    b = BootRecord(a)
    b.boot()
    b.set_pending(1, 2)
    eq(b.boot(), 1, "trial")
    b.confirm()
    eq(_state(b)[:5], (1, None, 0, 1, False), "confirmed")
    for _ in range(4):
        eq(b.boot(), 1, "confirmed slot boots")
    b = BootRecord(a)
    eq(b.confirmed(), 1, "persisted")
    # and back again, to the other slot
    b.set_pending(0, 1)
    eq(b.boot(), 0, "trial of slot 0")
    eq(b.trials_left(), 0, "last trial boot")
    b.confirm()
    eq(b.boot(), 0, "slot 0 confirmed")
    eq(b.confirmed(), 0, "confirmed 0")


def test_pending_invalid_reverts():
    ok = [True, True]
    fl, a = _area()
    b = BootRecord(a, _validator(ok))
    b.boot()
    b.set_pending(1, 3)
    ok[1] = False
    eq(b.boot(), 0, "invalid pending slot not booted")
    eq(_state(b), (0, None, 0, 0, False, (True, SLOT_INVALID, 2)), "reverted, invalid")
    # a slot that fails after one trial boot is reverted too
    ok[1] = True
    b.set_pending(1, 3)
    eq(b.boot(), 1, "trial")
    ok[1] = False
    eq(b.boot(), 0, "reverted on the second boot")
    eq(b.boot_info(), (True, SLOT_INVALID, 4), "reason")


def test_validate_error_counts_as_invalid():
    def validate(slot):
        if slot == 1:
            raise OtaError(SLOT_INVALID, "bad header")
        return True
    fl, a = _area()
    b = BootRecord(a, validate)
    b.boot()
    b.set_pending(1, 2)
    eq(b.boot(), 0, "not booted")
    eq(b.boot_info()[:2], (True, SLOT_INVALID), "reverted")


def test_confirmed_invalid_is_reported_not_switched():
    ok = [False, True]
    fl, a = _area()
    b = BootRecord(a, _validator(ok))
    eq(b.boot(), 0, "bootloader does not switch by itself")
    eq(b.boot_info(), (False, SLOT_INVALID, 1), "reported")
    raises(SLOT_INVALID, b.set_confirmed, 0)
    b.set_confirmed(1)
    eq(_state(b)[:5], (1, None, 0, 0, False), "switched from the next boot")
    eq(b.boot(), 1, "now runs slot 1")
    eq(b.boot_info(), (False, 0, 2), "normal boot")
    eq(BootRecord(a).confirmed(), 1, "persisted")
    # a revert to an invalid confirmed slot reports the revert reason
    ok[0] = True
    b.set_pending(0, 1)
    ok[1] = False
    eq(b.boot(), 0, "trial of the valid slot 0")
    eq(b.boot(), 1, "trials used up: back to the confirmed slot, invalid or not")
    eq(b.boot_info(), (True, ACTIVATION_FAILED, 4), "revert reason wins")


def test_set_confirmed_during_trial():
    fl, a = _area()
    b = BootRecord(a)
    b.boot()
    b.set_pending(1, 3)
    b.boot()
    b.set_confirmed(0)
    eq(_state(b)[:5], (0, None, 0, 1, False), "trial dropped")
    eq(b.boot(), 0, "confirmed slot")
    b.set_pending(1, 3)
    b.boot()
    b.set_confirmed(1)
    eq(_state(b)[:5], (1, None, 0, 1, False), "same as confirm()")
    ops = fl.ops
    b.set_confirmed(1)
    eq(fl.ops, ops, "no change, no write")


def test_revert_in_trial():
    fl, a = _area()
    b = BootRecord(a)
    b.boot()
    b.set_pending(1, 3)
    eq(b.boot(), 1, "trial")
    eq(b.revert(), True, "reverted")
    eq(_state(b)[:5], (0, None, 0, 1, False), "still running 1, no longer on trial")
    raises(NOT_IN_TRIAL, b.confirm)
    eq(BootRecord(a).in_trial(), False, "persisted")
    eq(b.boot(), 0, "confirmed slot again")
    eq(b.boot_info(), (False, 0, 3), "an explicit revert is not a bootloader revert")
    ops = fl.ops
    eq(b.revert(), False, "nothing to revert")
    eq(fl.ops, ops, "nothing written")


def test_revert_cancels_pending():
    fl, a = _area()
    b = BootRecord(a)
    b.boot()
    b.set_pending(1, 3)
    eq(b.revert(), True, "cancelled")
    eq(_state(b)[:5], (0, None, 0, 0, False), "nothing pending")
    eq(b.boot(), 0, "pending slot never boots")


def test_confirm_outside_trial():
    fl, a = _area()
    b = BootRecord(a)
    raises(NOT_IN_TRIAL, b.confirm)
    b.boot()
    raises(NOT_IN_TRIAL, b.confirm)
    b.set_pending(1, 2)
    raises(NOT_IN_TRIAL, b.confirm)
    eq(b.confirmed(), 0, "unchanged")


def test_set_pending_errors():
    fl, a = _area()
    b = BootRecord(a)
    b.boot()
    raises(BAD_LAYOUT, b.set_pending, 2, 1)
    raises(BAD_LAYOUT, b.set_pending, -1, 1)
    raises(ACTIVATION_FAILED, b.set_pending, 1, 0)
    raises(ACTIVATION_FAILED, b.set_pending, 1, 256)
    raises(ACTIVATION_FAILED, b.set_pending, 0, 1)
    raises(BAD_LAYOUT, b.set_confirmed, 2)
    eq(b.pending(), None, "nothing set by a refused call")
    b.set_pending(1, 1)
    b.set_pending(1, 4)
    eq(b.trials_left(), 4, "pending replaced before it booted")
    ops = fl.ops
    b.set_pending(1, 4)
    eq(fl.ops, ops, "same setting, nothing written")
    b.boot()
    raises(ACTIVATION_FAILED, b.set_pending, 1, 2)
    raises(ACTIVATION_FAILED, b.set_pending, 0, 2)
    eq(_state(b)[:5], (0, 1, 3, 1, True), "trial untouched")


def test_reset_is_left_to_the_board():
    # rp2 resets with machine.reset(), the emulation raises hal.sim.boot.Reboot
    eq(hasattr(BootRecord, "reset"), False, "BootRecord.reset")
    eq(hasattr(BootRecord, "boot"), True, "the boot decision ships with the record")


def test_state_persists_across_objects():
    ok = [True, True]
    fl, a = _area(ss=256, ws=16, erased=0x00)
    b = BootRecord(a, _validator(ok))
    b.boot()
    b.set_pending(1, 5)
    eq(_state(BootRecord(a)), _state(b), "pending")
    b.boot()
    b2 = BootRecord(a)
    eq(_state(b2), _state(b), "on trial")
    eq(b2.in_trial(), True, "a new object knows the trial")
    b2.confirm()
    eq(_state(BootRecord(a)), _state(b2), "confirmed")
    for _ in range(60):  # many records: the journal turns over its sectors
        BootRecord(a).boot()
    b = BootRecord(a)
    eq(_state(b), (1, None, 0, 1, False, (False, 0, 62)), "after many reboots")
    fresh = NorFlash(4 * 256, 256, 16, 0x00)
    buf = bytearray(256)
    ref = bytearray(256)
    for o in (0, 3 * 256):
        fl.read(o, buf)
        fresh.read(o, ref)
        eq(buf, ref, "sector outside the area untouched")


def test_nonsense_record_refused():
    # a record with a good CRC but impossible fields is a bug, not a power cut: refused
    for rec in ((1, 2, 0xFF, 0, 0, 0, 0, 1), (1, 0, 5, 1, 0, 0, 0, 1),
                (1, 0, 0xFF, 0, 3, 0, 0, 1), (9, 0, 0xFF, 0, 0, 0, 0, 1)):
        fl, a = _area()
        Journal(a, bootrec.RECORD_LEN).save(struct.pack(bootrec._FMT, *rec))
        raises(JOURNAL_CORRUPT, BootRecord, a)
    fl, a = _area()
    Journal(a, bootrec.RECORD_LEN).save(struct.pack(bootrec._FMT, 1, 1, 0, 2, 0, 0, 0, 7))
    b = BootRecord(a)
    eq(_state(b), (1, 0, 2, 0, False, (False, 0, 7)), "a well-formed record is read")
    eq(b.boot(), 0, "its pending slot boots on trial")


def _ops_of(fl, fn, *args):
    n = fl.ops
    fn(*args)
    return fl.ops - n


def test_flash_ops_per_change():
    for ws in (1, 16):
        fl, a = _area(ws=ws)
        b = BootRecord(a)
        got = [_ops_of(fl, b.boot), _ops_of(fl, b.set_pending, 1, 2),
               _ops_of(fl, b.boot), _ops_of(fl, b.confirm),
               _ops_of(fl, b.set_pending, 0, 1), _ops_of(fl, b.revert)]
        print("bootrec ws=%d ops: boot %d set_pending %d trial boot %d confirm %d"
              " set_pending %d revert %d" % tuple([ws] + got))
        for n in got:
            if n < 1 or n > 4:
                raise AssertionError("ops per change %r" % (got,))
        eq(_ops_of(fl, b.confirmed), 0, "reads cost no writes")


# ---- power cuts --------------------------------------------------------------------------
# Each scenario is a list of steps run on one BootRecord; a cut can hit any write or erase.
# After power_on and a new BootRecord, the state must be the one before or after the step that
# was cut, and the boot that follows must run the confirmed slot or the legitimate pending one.

_CONFIRM = (("boot",), ("set_pending", 1, 2), ("boot",), ("confirm",), ("boot",),
            ("set_pending", 0, 1), ("boot",), ("confirm",), ("boot",), ("boot",), ("boot",),
            ("boot",))
_REVERT = (("boot",), ("set_pending", 1, 2), ("boot",), ("boot",), ("boot",),
           ("set_pending", 1, 3), ("boot",), ("revert",), ("boot",),
           ("set_pending", 1, 1), ("revert",), ("boot",))
_FALLBACK = (("boot",), ("set_confirmed", 1), ("boot",), ("set_pending", 0, 2), ("boot",),
             ("boot",), ("set_pending", 0, 1), ("revert",), ("boot",), ("boot",),
             ("boot",))


def _step(b, st):
    fn = getattr(b, st[0])
    return fn(*st[1:])


def _expect_boot(s, ok):
    # the boot decision from a state, as the spec states it
    conf, pend, trials = s[0], s[1], s[2]
    if pend is not None and trials > 0 and ok[pend]:
        return pend
    return conf


def _run(scenario, ok, ss, ws, erased, cut, tear, seed):
    """Run the scenario, cut at flash op `cut` (0: never). Returns (flash, area, j, states):
    j is the index of the step that was cut (None when none was), states[i] the state
    before step i as a new BootRecord reads it from flash."""
    fl, a = _area(ss, ws, erased)
    if cut:
        fl.fail_at(cut, tear, seed)
    states = []
    try:
        b = BootRecord(a, _validator(ok))
        states.append(_state(b))
        for i in range(len(scenario)):
            _step(b, scenario[i])
            states.append(_state(BootRecord(a)))
    except PowerCut:
        fl.power_on()
        return fl, a, len(states) - 1, states
    return fl, a, None, states


def _campaign(scenario, ok, ss, ws, erased, tear, seed):
    fl, a, _, ref = _run(scenario, ok, ss, ws, erased, 0, False, 0)
    total = fl.ops
    for cut in range(1, total + 1):
        fl, a, j, _ = _run(scenario, ok, ss, ws, erased, cut, tear, seed or cut)
        if j is None or j < 0:
            raise AssertionError("cut %d did not hit a step" % cut)
        b = BootRecord(a, _validator(ok))
        s = _state(b)
        if s != ref[j] and s != ref[j + 1]:
            raise AssertionError("cut %d in step %r: state %r, not %r or %r"
                                 % (cut, scenario[j], s, ref[j], ref[j + 1]))
        slot = b.boot()
        eq(slot, _expect_boot(s, ok), "boot after cut %d" % cut)
        if slot != s[0] and slot != s[1]:
            raise AssertionError("cut %d: booted slot %d, neither confirmed nor pending"
                                 % (cut, slot))
        eq(b.confirmed(), s[0], "confirmed slot kept, cut %d" % cut)
        s2 = _state(b)
        eq(_state(BootRecord(a)), s2, "recovery boot persisted, cut %d" % cut)
        b.boot()
        eq(b.boot_info()[2], s2[5][2] + 1, "journal still writable, cut %d" % cut)
    ref_fl = _run(scenario, ok, ss, ws, erased, 0, False, 0)[0]
    return total, ref_fl.erases


# (tear, seed): a clean cut after the operation; torn half-way (seed 0); torn at a point
# and with bit mixes that vary with the cut (seed = cut number)
_CUTS = ((False, 0), (True, 0), (True, None))


def _campaigns(scenario, ok):
    counts = []
    for ss, ws in ((128, 1), (128, 16), (4096, 1), (4096, 16)):
        for erased in (0xFF, 0x00):
            for tear, seed in _CUTS:
                ops, erases = _campaign(scenario, ok, ss, ws, erased, tear, seed)
                if ops < len(scenario) or (ss == 128 and erases < 3):
                    raise AssertionError("%d ops, %d erases: scenario too short"
                                         % (ops, erases))
                counts.append(ops)
    return counts


def test_power_cut_confirm():
    _campaigns(_CONFIRM, [True, True])


def test_power_cut_revert():
    _campaigns(_REVERT, [True, True])


def test_power_cut_fallback():
    # slot 0 fails its check: reported, switched by set_confirmed, its trial reverted
    _campaigns(_FALLBACK, [False, True])
