# RP2040 / RP2350 flash layout for the OTA agent. MicroPython's rp2.Flash() is the storage
# region after the firmware (1408 KiB on a 2 MiB Pico). The agent takes its tail:
#
#   [ littlefs: the rest ][ boot record ][ agent journal ][ slot 0 ][ slot 1 ]
#
# The firmware's frozen _boot.py must mount littlefs on the head only (boards/rp2/_boot.py,
# frozen by boards/rp2/manifest.py); a stock firmware formats all of rp2.Flash() as one
# filesystem and would overwrite the slots. A slot holds an application bundle
# (boards/rp2/bundle.py) from offset 0 and the agent's meta area in its last sector.

from agent.errors import OtaError, BAD_LAYOUT

SECTOR = 4096        # erase unit and rp2.Flash block size
PAGE = 256           # program unit of the QSPI flash: writes are padded to pages
WRITE_SIZE = 4       # program unit the agent sees
ERASED = 0xFF
SLOT_SIZE = 256 * 1024
META_SIZE = 4096     # sector table of a 252 KiB deflate bundle: 63 x 28 bytes
BOOT_SIZE = 2 * 4096     # boot record (hal.bootrec state)
JOURNAL_SIZE = 2 * 4096  # agent journal
FS_MIN = 64 * 1024   # smallest filesystem left for the agent and main.py
TRIALS = 3           # trial boots of a new bundle before the selector reverts
MOUNT = "/app"       # where main.py mounts the running slot's bundle


def regions(storage, slot=SLOT_SIZE):
    """(fs_size, boot_off, journal_off, (slot0_off, slot1_off)) in a storage region of
    `storage` bytes, with slots of `slot` bytes."""
    base = storage - BOOT_SIZE - JOURNAL_SIZE - 2 * slot
    if base < FS_MIN or storage % SECTOR:
        raise OtaError(BAD_LAYOUT, "rp2 storage of %d bytes" % storage)
    j = base + BOOT_SIZE
    s0 = j + JOURNAL_SIZE
    return base, base, j, (s0, s0 + slot)
