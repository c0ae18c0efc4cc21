# The ESP32 board: the agent's slots are the OTA app partitions, its journal and the board's
# boot record a raw data partition, its bootloader ESP-IDF's (see bootctl.py, layout.py).
#
#   board = make_board()            on the device: esp32 and machine from the port
#   dev = agent.update.Device(board, config)
#   board.payload_check(first_bytes)   refuses anything but an application image
import gc

from agent.errors import OtaError, BOARD, BAD_LAYOUT
from agent.store.slot import Slot
from hal.flash import Area
from boards.bdev import BlockFlash
from boards.esp32 import layout as L
from boards.esp32.bootctl import EspBoot
from boards.esp32.image import checker

MYPY = False
if MYPY:  # read by the type checker only (tests/host/test_host_stubs.py), never run
    from esp32 import Partition


def _find(P, kind, label):
    # type: (type[Partition], int, str) -> Partition
    found = P.find(kind, 0xFF, label=label)
    if not found:
        raise OtaError(BOARD, "no partition labelled %r: flash boards/esp32/partitions.csv"
                       % label)
    return found[0]


class Esp32Board:
    """slots, journal_area, boot, clock, verifier, payload_check (hal interfaces), collect."""

    def __init__(self, port, reset_fn, clock, verifier=None, ieee=None):
        P = port.Partition  # type: type[Partition]
        parts = [_find(P, P.TYPE_APP, lab) for lab in L.SLOT_LABELS]
        jpart = _find(P, P.TYPE_DATA, L.JOURNAL_LABEL)
        self.slots = []
        for i in range(2):
            f = BlockFlash(parts[i], L.WRITE_SIZE, L.ERASED)
            if f.sector_size != L.SECTOR:
                raise OtaError(BAD_LAYOUT, "block size %d" % f.sector_size)
            self.slots.append(Slot(Area(f, 0, f.size), L.META_SIZE, i))
        j = BlockFlash(jpart, L.WRITE_SIZE, L.ERASED)
        self.journal_flash = j
        self.journal_area = Area(j, L.JOURNAL_OFF, L.JOURNAL_SIZE)
        self.record_area = Area(j, L.RECORD_OFF, L.RECORD_SIZE)
        self.boot = EspBoot(port, parts, self.record_area, reset_fn)
        self.clock = clock
        self.verifier = verifier
        self.payload_check = checker(L.CHIP_ID)
        self.trials = L.TRIALS
        self.boot_verifies = L.SECURE_BOOT
        self.ieee = ieee  # IEEE address, 8 bytes as in an OTA header's destination field
        self.collect = gc.collect  # before a download's buffers (agent.update.Device)
        self.parts = parts
        self.port = port


def make_board(port=None, machine=None, clock=None, verifier=None, ieee=None):
    """The board over the port's esp32 and machine modules (or stand-ins with the same
    API)."""
    if port is None:
        import esp32
        port = esp32
    if machine is None:
        import machine as _m
        machine = _m
    if clock is None:
        from hal.clock import SystemClock
        clock = SystemClock()
    return Esp32Board(port, machine.reset, clock, verifier, ieee)


def probe(board=None):
    """Check the port and partition table; returns a one-line summary."""
    b = board or make_board()
    P = b.port.Partition  # type: type[Partition]
    nxt = P(P.RUNNING).get_next_update().info()[2]  # type: ignore[arg-type]
    run = b.boot.running()
    if nxt != b.parts[1 - run].info()[2]:
        raise OtaError(BAD_LAYOUT, "next update partition is not slot %d" % (1 - run))
    return "esp32: running slot %d, slots of %d bytes, journal %d bytes" % (
        run, b.slots[0].area.size, b.journal_flash.size)
