# hal.sim.board: the emulated board's layout of one flash device, and the board itself (its
# areas, slots and bootloader, which checks a slot from flash before it boots it).
from agent.errors import FLASH_RANGE, SLOT_INVALID
from agent.store.slot import TABLE_OFF
from hal.sim.clock import FakeClock
from hal.sim.boot import SimBoot
from hal.sim.board import Layout, EmuBoard
from hal.sim.nor import NorFlash
from devkit import Rig
from tutil import raises, eq


def test_layout_regions_follow_each_other():
    L = Layout(4096, 8 * 4096)
    eq((L.boot_off, L.boot_size), (0, 2 * 4096), "bootloader state: 2 sectors")
    eq((L.journal_off, L.journal_size), (2 * 4096, 2 * 4096), "journal: 2 sectors")
    eq(L.slot_off, (4 * 4096, 12 * 4096), "slots after the journal")
    eq((L.slot_size, L.meta_size, L.size), (8 * 4096, 4096, 20 * 4096))
    L = Layout(256, 1024, meta_size=512, boot_size=512, journal_size=768)
    eq((L.journal_off, L.slot_off, L.meta_size, L.size), (512, (1280, 2304), 512, 3328))


def test_layout_for_image_fits_the_payload_and_table():
    for ss, payload, table in ((4096, 10000, 1024), (4096, 4096, 1024), (256, 1, 64),
                               (1024, 65536, 4000)):
        L = Layout.for_image(ss, payload, table)
        for v in (L.slot_size, L.meta_size, L.size):
            eq(v % ss, 0, "whole sectors")
        assert L.meta_size >= TABLE_OFF + table, (ss, payload, table)
        assert L.meta_size < TABLE_OFF + table + ss, "no spare sector in the meta area"
        room = L.slot_size - L.meta_size
        assert payload <= room < payload + ss, (ss, payload, room)


def test_board_areas_and_slots_sit_where_the_layout_says():
    L = Layout(256, 8 * 256)
    fl = NorFlash(L.size, 256, 1)
    b = EmuBoard(fl, L)
    eq((b.boot_area.base, b.boot_area.size), (L.boot_off, L.boot_size))
    eq((b.journal_area.base, b.journal_area.size), (L.journal_off, L.journal_size))
    for i in (0, 1):
        s = b.slots[i]
        eq((s.area.base, s.area.size, s.index), (L.slot_off[i], L.slot_size, i))
    raises(FLASH_RANGE, b.slots[0].area.write, L.slot_size, b"x")
    eq(isinstance(b.boot, SimBoot), True, "the emulated bootloader")
    eq(b.clock.now(), 0, "a FakeClock unless given one")
    clk = FakeClock(77)
    import sys
    fake = sys.modules.pop("hal.sim.clock")
    try:
        eq(EmuBoard(fl, L, clk).clock.now(), 77)
        eq("hal.sim.clock" in sys.modules, False, "the fake clock's module not loaded")
    finally:
        sys.modules["hal.sim.clock"] = fake


def test_power_on_checks_the_slot_from_flash():
    L = Layout(256, 8 * 256)
    b = EmuBoard(NorFlash(L.size, 256, 1), L)
    old = b.boot
    eq(b.power_on(), 0, "factory slot")
    eq(b.boot is old, False, "a new bootloader after a reset")
    eq(b.boot.boot_info(), (False, SLOT_INVALID, 1), "an empty slot fails its check")


def test_power_on_with_an_image_installed():
    r = Rig()
    r.provision()
    b = r.board
    eq((b.power_on(), b.boot.boot_info()), (0, (False, 0, 3)), "the installed image passes")
    # a pending slot that holds nothing is not booted
    b.boot.set_pending(1, 2)
    eq(b.power_on(), 0, "empty pending slot refused")
    eq(b.boot.boot_info(), (True, SLOT_INVALID, 4), "reverted")
    # damage the running image's payload: the check from flash catches it at the next boot
    b.flash.flip_bits(b.slots[0].area.base, 0x01)
    eq(b.power_on(), 0, "the confirmed slot still runs")
    eq(b.boot.boot_info(), (False, SLOT_INVALID, 5), "but is reported invalid")
