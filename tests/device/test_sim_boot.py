# The emulated bootloader (hal/sim/boot.py): the boot record with a reset that raises Reboot
# and a power-on that starts again from what the flash holds. The record's own rules are
# test_hal_bootrec.py's.
from agent.errors import ACTIVATION_FAILED, SLOT_INVALID
from hal.flash import Area
from hal.bootrec import BootRecord
from hal.sim.nor import NorFlash
from hal.sim.boot import SimBoot, Reboot, power_on
from tutil import eq


def _area():
    fl = NorFlash(4 * 4096, 4096, 1, 0xFF)
    return fl, Area(fl, 4096, 2 * 4096)


def test_reset_raises_reboot():
    fl, a = _area()
    b = SimBoot(a)
    try:
        try:
            b.reset()
        except Exception:
            raise AssertionError("Reboot must not be an Exception")
    except Reboot:
        pass
    else:
        raise AssertionError("reset() returned")
    # an emulated device: the application confirms or resets; the loop boots again
    b.set_pending(1, 2)
    ran = []
    for _ in range(3):
        try:
            s = b.boot()
            ran.append(s)
            if b.in_trial() and len(ran) == 2:
                b.confirm()
            b.reset()
        except Reboot:
            pass
    eq(ran, [1, 1, 1], "trial, trial then confirmed")
    eq(b.confirmed(), 1, "confirmed")


def test_sim_boot_is_the_boot_record():
    # the emulation decides as the rp2 board does: the same class, only reset() added
    fl, a = _area()
    eq(isinstance(SimBoot(a), BootRecord), True, "a BootRecord")
    b = BootRecord(a)
    b.boot()
    b.set_pending(1, 1)
    eq(SimBoot(a).pending(), 1, "a record written by BootRecord is read by SimBoot")


def test_power_on_reads_flash_only():
    fl, a = _area()
    b, slot = power_on(a)
    eq(slot, 0, "factory slot")
    eq(isinstance(b, SimBoot), True, "an emulated bootloader")
    b.set_pending(1, 2)
    b2, slot = power_on(a)
    eq(slot, 1, "the pending slot saved in flash boots")
    eq(b2 is b, False, "a new bootloader at each power-on")
    eq((b2.in_trial(), b2.trials_left(), b2.boot_info()), (True, 1, (False, 0, 2)),
       "on trial, one boot spent")
    # the old object's RAM state is stale; the power-on after it trusts only the flash
    eq(b.in_trial(), False, "the old object never saw the trial boot")
    b3, slot = power_on(a)
    eq((slot, b3.trials_left()), (1, 0), "last trial boot")
    b4, slot = power_on(a)
    eq((slot, b4.boot_info()), (0, (True, ACTIVATION_FAILED, 4)), "trials used up: revert")


def test_power_on_validates_with_the_given_check():
    fl, a = _area()
    ok = [True, False]
    checked = []

    def validate(s):
        checked.append(s)
        return ok[s]

    b, slot = power_on(a, validate)
    eq((slot, checked), (0, [0]), "the confirmed slot is checked")
    b.set_pending(1, 3)
    b, slot = power_on(a, validate)
    eq(slot, 0, "a pending slot that fails its check is not booted")
    eq(b.boot_info(), (True, SLOT_INVALID, 2), "and reported")
    eq(b.pending(), None, "nor kept pending")


def test_a_device_loop_over_reboots():
    # the loop an emulated device runs: power on, run until reset() raises Reboot, again
    fl, a = _area()
    b, slot = power_on(a)
    b.set_pending(1, 2)
    slots = []
    for _ in range(4):
        try:
            b, slot = power_on(a)
            slots.append(slot)
            b.reset()           # the trial image never confirms
        except Reboot:
            pass
    eq(slots, [1, 1, 0, 0], "two trial boots, then back to the confirmed slot")
    eq(b.boot_info(), (False, 0, 5), "only the boot that reverted reports it")
