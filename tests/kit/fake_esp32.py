# A stand-in for MicroPython's esp32 module and the ESP-IDF second stage bootloader, over a
# strict emulated NOR flash (hal.sim.nor.NorFlash), for the board tests.
#
#   chip = Chip()                 flash with the partition table below, otadata erased
#   chip.flash_app(0, payload)    what esptool does: program an app partition
#   chip.reset()                  the bootloader at a reset (rules below); returns the slot
#   chip.module                   the esp32 module: chip.module.Partition
#   chip.machine                  the machine module: machine.reset() raises Reboot
#
# esp32.Partition as in MicroPython: 4096-byte blocks, readblocks/writeblocks with and
# without offset (without: the blocks are erased first), ioctl 1-6, info(), find(),
# Partition.BOOT / RUNNING, get_next_update(), set_boot() (verifies the image header first,
# as esp_ota_set_boot_partition does, then writes a NEW otadata entry into the sector not
# holding the active one), mark_app_valid_cancel_rollback() (rewrites the active entry in
# place as VALID; OSError when there is no active entry, as on a factory app).
#
# The bootloader (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE): entries still PENDING_VERIFY are
# marked ABORTED (a new app that was not marked valid is rolled back); the active entry is
# the valid one (CRC good, not INVALID or ABORTED) with the highest sequence number; NEW
# becomes PENDING_VERIFY; its app partition (seq - 1) % 2 boots if its image header is
# good, else the other one; no entry: ota_0.
import struct

from hal.sim.nor import NorFlash
from hal.sim.boot import Reboot
from boards.esp32.bootctl import ENTRY_FMT, ENTRY_SIZE, entry_crc, ST_NEW, ST_PENDING, \
    ST_VALID, ST_INVALID, ST_ABORTED, EMPTY

SECTOR = 4096
TYPE_APP = 0
TYPE_DATA = 1
# (label, type, subtype, offset, size)
TABLE = (
    ("otadata", TYPE_DATA, 0x00, 0xD000, 0x2000),
    ("ota_0", TYPE_APP, 0x10, 0x10000, 0x20000),
    ("ota_1", TYPE_APP, 0x11, 0x30000, 0x20000),
    ("ota_journal", TYPE_DATA, 0x06, 0x50000, 0x4000),
    ("vfs", TYPE_DATA, 0x81, 0x54000, 0x4000),
)
FLASH_SIZE = 0x58000
ESP_ERR_INVALID_ARG = 0x102
ESP_ERR_INVALID_SIZE = 0x104
ESP_ERR_NOT_FOUND = 0x105
ESP_FAIL = -1
ESP_ERR_OTA_VALIDATE_FAILED = 0x1503


class Bricked(Exception):
    """No app partition holds a bootable image."""


def image_ok(flash, base, chip_id=0):
    """The checks of esp_image_verify this stand-in makes: magic, segment count, chip id."""
    h = bytearray(24)
    flash.read(base, h)
    return h[0] == 0xE9 and 1 <= h[1] <= 16 and (h[12] | h[13] << 8) == chip_id


class Machine:
    def reset(self):
        raise Reboot()


class Module:
    """The esp32 module of one chip."""

    def __init__(self, chip):
        self.Partition = _partition_class(chip)


class Partition:
    """esp32.Partition over one chip (the class attribute `chip`, set by _partition_class)."""
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1
    chip = None

    def __init__(self, id, block_size=4096):
        chip = self.chip
        if id == self.BOOT:
            ent = chip.table[chip.boot_index() + 1]
        elif id == self.RUNNING:
            ent = chip.table[chip.running + 1]
        else:
            ent = None
            for e in chip.table:
                if e[0] == id:
                    ent = e
            if ent is None:
                raise OSError(ESP_ERR_NOT_FOUND)
        self._e = ent
        self.bs = block_size

    def info(self):
        e = self._e
        return (e[1], e[2], e[3], e[4], e[0], False)

    def _span(self, block, n, offset):
        o = block * self.bs + offset
        if block < 0 or offset < 0 or o + n > self._e[4]:
            raise OSError(ESP_ERR_INVALID_SIZE)
        return self._e[3] + o

    def readblocks(self, block, buf, offset=None):
        if offset is None and len(buf) % self.bs:
            raise OSError(ESP_ERR_INVALID_SIZE)
        a = self._span(block, len(buf), offset or 0)
        self.chip.flash.read(a, buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            if len(buf) % self.bs:
                raise OSError(ESP_ERR_INVALID_SIZE)
            a = self._span(block, len(buf), 0)
            self.chip.flash.erase(a, len(buf))
        else:
            a = self._span(block, len(buf), offset)
        self.chip.flash.write(a, buf)

    def ioctl(self, op, arg):
        if op in (1, 2, 3):
            return 0
        if op == 4:
            return self._e[4] // self.bs
        if op == 5:
            return self.bs
        if op == 6:
            self.chip.flash.erase(self._span(arg, self.bs, 0), self.bs)
            return 0
        return None

    def get_next_update(self):
        chip = self.chip
        i = chip.app_index(self._e)
        return type(self)(chip.table[(0 if i < 0 else (i + 1) % 2) + 1][0])

    def set_boot(self):
        chip = self.chip
        i = chip.app_index(self._e)
        if i < 0:
            raise OSError(ESP_ERR_INVALID_ARG)
        if not image_ok(chip.flash, self._e[3], chip.chip_id):
            raise OSError(ESP_ERR_OTA_VALIDATE_FAILED)
        chip.set_boot(i)

    def find(cls, type=0, subtype=0xFF, label=None):
        out = []
        for e in cls.chip.table:
            if e[1] == type and (subtype == 0xFF or e[2] == subtype) \
                    and (label is None or e[0] == label):
                out.append(cls(e[0]))
        return out

    def mark_app_valid_cancel_rollback(cls):
        cls.chip.mark_valid()

    find = classmethod(find)
    mark_app_valid_cancel_rollback = classmethod(mark_app_valid_cancel_rollback)


def _partition_class(chip):
    """Partition bound to chip: each chip's module has a class of its own."""
    class ChipPartition(Partition):
        pass
    ChipPartition.chip = chip
    return ChipPartition


class Chip:
    def __init__(self, chip_id=0):
        self.table = TABLE
        self.flash = NorFlash(FLASH_SIZE, SECTOR, 1, 0xFF)
        self.chip_id = chip_id
        self.running = 0
        self.boots = 0
        self.module = Module(self)
        self.machine = Machine()

    # otadata

    def _otadata(self):
        return self.table[0][3]

    def entries(self):
        """[(sector, seq, state)] of the valid entries."""
        b = bytearray(ENTRY_SIZE)
        out = []
        for i in range(2):
            self.flash.read(self._otadata() + i * SECTOR, b)
            seq, _l, state, crc = struct.unpack_from(ENTRY_FMT, b, 0)
            if seq != EMPTY and crc == entry_crc(seq):
                out.append((i, seq, state))
        return out

    def _active(self):
        best = None
        for e in self.entries():
            if e[2] != ST_INVALID and e[2] != ST_ABORTED and (best is None or e[1] > best[1]):
                best = e
        return best

    def _write(self, sector, seq, state):
        # rewrite_ota_seq: erase the entry's sector, then program the entry
        a = self._otadata() + sector * SECTOR
        self.flash.erase(a, SECTOR)
        b = struct.pack(ENTRY_FMT, seq, b"\xff" * 20, state, entry_crc(seq))
        self.flash.write(a, b)

    def boot_index(self):
        a = self._active()
        return 0 if a is None else (a[1] - 1) % 2

    def app_index(self, ent):
        for i in (0, 1):
            if self.table[i + 1] is ent:
                return i
        return -1

    def set_boot(self, i):
        a = self._active()
        if a is None:
            self._write(0, i + 1, ST_NEW)
            return
        seq = a[1] + 1
        while (seq - 1) % 2 != i:
            seq += 1
        self._write(1 - a[0], seq, ST_NEW)

    def mark_valid(self):
        a = self._active()
        if a is None:
            raise OSError(ESP_FAIL)
        if a[2] != ST_VALID:
            self._write(a[0], a[1], ST_VALID)

    # programming and reset

    def flash_app(self, i, payload):
        """esptool write_flash of an app image at the start of app partition i."""
        e = self.table[i + 1]
        n = (len(payload) + SECTOR - 1) // SECTOR * SECTOR
        self.flash.erase(e[3], n)
        self.flash.write(e[3], payload)

    def reset(self):
        """The bootloader: returns the app partition index that runs."""
        for e in self.entries():
            if e[2] == ST_PENDING:
                self._write(e[0], e[1], ST_ABORTED)
        a = self._active()
        if a is None:
            want = 0
        else:
            want = (a[1] - 1) % 2
            if a[2] == ST_NEW:
                self._write(a[0], a[1], ST_PENDING)
        self.boots += 1
        for i in (want, 1 - want):
            if image_ok(self.flash, self.table[i + 1][3], self.chip_id):
                self.running = i
                return i
        raise Bricked("no bootable app")
