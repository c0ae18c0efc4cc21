# The rp2 board. MicroPython's rp2 port has no A/B bootloader and the agent does not replace
# the MicroPython firmware: what it updates is the application bundle. Two raw slots and a
# boot record sit at the end of rp2.Flash() (layout.py); the boot decision is the one of
# hal.bootrec (a power-safe record: trials counted down before a trial slot runs, revert
# when none are left, the slot's CRC-32 checked before it runs), made by main.py at every
# reset through boards.rp2.select, which then mounts the chosen slot's bundle.
#
#   board = make_board()              rp2.Flash() and machine from the port
#   dev = agent.update.Device(board, config)
import gc

from hal.flash import Area
from hal.bootrec import BootRecord
from agent.store.slot import Slot
from boards.bdev import BlockFlash
from boards.rp2 import layout as L

MYPY = False
if MYPY:  # read by the type checker only (tests/host/test_host_stubs.py), never run
    from vfs import AbstractBlockDev


class Rp2Boot(BootRecord):
    """hal.bootrec's boot record and decision; reset() is the port's machine.reset()."""

    def __init__(self, area, validate, reset_fn):
        BootRecord.__init__(self, area, validate)
        self._reset = reset_fn

    def reset(self):
        self._reset()


class Rp2Board:
    """slots, journal_area, boot, clock, verifier (hal interfaces), collect and fs_size: the
    bytes of rp2.Flash() left to the filesystem."""

    def __init__(self, dev, reset_fn, clock, verifier=None, slot_size=L.SLOT_SIZE, ieee=None):
        # type: (AbstractBlockDev, object, object, object, int, object) -> None
        f = BlockFlash(dev, L.WRITE_SIZE, L.ERASED, L.PAGE)
        fs, boot_off, j_off, s_off = L.regions(f.size, slot_size)
        self.flash = f
        self.fs_size = fs
        self.boot_area = Area(f, boot_off, L.BOOT_SIZE)
        self.journal_area = Area(f, j_off, L.JOURNAL_SIZE)
        self.slots = [Slot(Area(f, s_off[i], slot_size), L.META_SIZE, i) for i in (0, 1)]
        self.boot = Rp2Boot(self.boot_area, self._valid, reset_fn)
        self.clock = clock
        self.verifier = verifier
        self.payload_check = check_bundle
        self.trials = L.TRIALS
        self.boot_verifies = False  # the selector checks CRC-32 only: the agent's power-on
                                    # check is the payload SHA-256 against the manifest
        self.ieee = ieee  # IEEE address, 8 bytes as in an OTA header's destination field
        self.collect = gc.collect  # before a download's buffers (agent.update.Device)

    def _valid(self, slot):
        from agent.store import check as verify
        verify.check(self.slots[slot])
        return True


def check_bundle(buf):
    """The payload must start with a bundle header (boards.rp2.bundle)."""
    from boards.rp2.bundle import MAGIC
    from agent.errors import OtaError, NOT_APP_IMAGE
    if bytes(buf[0:4]) != MAGIC:
        raise OtaError(NOT_APP_IMAGE, "not an application bundle")


def make_board(dev=None, machine=None, clock=None, verifier=None, slot_size=L.SLOT_SIZE,
               ieee=None):
    if dev is None:
        import rp2
        dev = rp2.Flash()
    if machine is None:
        import machine as _m
        machine = _m
    if clock is None:
        from hal.clock import SystemClock
        clock = SystemClock()
    return Rp2Board(dev, machine.reset, clock, verifier, slot_size, ieee)


def probe(board=None):
    """Check that the mounted filesystem leaves the OTA regions alone; a one-line summary."""
    from agent.errors import OtaError, BAD_LAYOUT
    import os
    b = board or make_board()
    st = os.statvfs("/")
    used = st[0] * st[2]
    if used > b.fs_size:
        raise OtaError(BAD_LAYOUT, "the filesystem spans %d bytes, the OTA regions start at "
                       "%d: build the firmware with boards/rp2/manifest.py" % (used, b.fs_size))
    return "rp2: running slot %d, filesystem %d bytes, slots of %d bytes" % (
        b.boot.running(), b.fs_size, b.slots[0].area.size)
