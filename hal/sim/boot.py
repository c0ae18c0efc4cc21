# The emulated bootloader: the boot record of hal/bootrec.py (its state in flash and its boot
# decision, as boards/rp2 ships them) with what only an emulated device needs: a reset that
# unwinds to the device loop instead of restarting a processor, and a power-on that forgets
# everything held in RAM.
#
#   try:
#       ... the agent runs, and calls board.boot.reset() ...
#   except Reboot:
#       boot, slot = power_on(area, validate)    the bootloader runs again from flash
from hal.bootrec import BootRecord


class Reboot(BaseException):
    """Raised by SimBoot.reset(); an emulated device loop catches it and powers on again.
    Not an Exception, so the agent's own error handling does not swallow it."""


class SimBoot(BootRecord):
    """hal.bootrec.BootRecord whose reset() raises Reboot."""

    def reset(self):
        raise Reboot()


def power_on(area, validate=None):
    """A reset of the emulated device: a new bootloader reads its record from flash (nothing
    survives in RAM) and makes the boot decision. Returns (bootloader, slot it booted)."""
    b = SimBoot(area, validate)
    return b, b.boot()
