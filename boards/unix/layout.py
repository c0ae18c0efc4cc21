# Flash layout of the emulated board of the unix port: one flash file laid out by
# hal.sim.board.Layout as [bootloader state][agent journal][slot 0][slot 1].

SECTOR = 4096
WRITE_SIZE = 4
ERASED = 0xFF
SLOT_PAYLOAD = 512 * 1024   # largest installed payload
TABLE_MAX = 128 * 28        # sector table of a 512 KiB deflate image
TRIALS = 3


def layout(sector=SECTOR, payload=SLOT_PAYLOAD):
    """The hal.sim.board.Layout of the flash file."""
    from hal.sim.board import Layout
    return Layout.for_image(sector, payload, (payload // sector) * 28)
