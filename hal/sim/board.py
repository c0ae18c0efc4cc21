# An emulated board: one flash device laid out as
#   [bootloader state: 2 sectors][agent journal: J sectors][slot 0][slot 1]
# with the emulated bootloader (hal.sim.boot) checking a slot's CRC-32 before it boots it.
# boards/unix runs it over a file; tests and the power-cut campaign over RAM.
from hal.flash import Area
from hal.sim.boot import SimBoot, power_on


class Layout:
    """Where things are on the flash. Sizes in bytes, multiples of the sector size."""

    def __init__(self, sector_size, slot_size, meta_size=None, boot_size=None,
                 journal_size=None):
        self.sector_size = sector_size
        self.boot_off = 0
        self.boot_size = boot_size or 2 * sector_size
        self.journal_off = self.boot_off + self.boot_size
        self.journal_size = journal_size or 2 * sector_size
        self.slot_off = (self.journal_off + self.journal_size,
                         self.journal_off + self.journal_size + slot_size)
        self.slot_size = slot_size
        self.meta_size = meta_size or sector_size
        self.size = self.slot_off[1] + slot_size

    def for_image(sector_size, payload_size, table_max=1024):
        """A layout whose slots fit a payload of payload_size bytes."""
        from agent.store.slot import TABLE_OFF
        meta = (TABLE_OFF + table_max + sector_size - 1) // sector_size * sector_size
        slot = (payload_size + sector_size - 1) // sector_size * sector_size + meta
        return Layout(sector_size, slot, meta)

    for_image = staticmethod(for_image)


class EmuBoard:
    """The hal objects the agent needs, over one flash device."""

    def __init__(self, flash, layout, clock=None, verifier=None):
        from agent.store.slot import Slot
        self.flash = flash
        self.layout = layout
        if clock is None:  # (a board with a clock of its own never loads the fake one)
            from hal.sim.clock import FakeClock
            clock = FakeClock()
        self.clock = clock
        self.verifier = verifier
        self.boot_area = Area(flash, layout.boot_off, layout.boot_size)
        self.journal_area = Area(flash, layout.journal_off, layout.journal_size)
        self.slots = [Slot(Area(flash, layout.slot_off[i], layout.slot_size),
                           layout.meta_size, i) for i in (0, 1)]
        self.boot = SimBoot(self.boot_area, self._valid)

    def _valid(self, slot):
        from agent.store import check as verify
        verify.check(self.slots[slot])
        return True

    def power_on(self):
        """A reset: the bootloader runs and picks the slot. Returns it."""
        self.boot, slot = power_on(self.boot_area, self._valid)
        return slot
