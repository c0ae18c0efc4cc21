# The unix board: the emulated board of hal.sim.board (strict NOR flash, emulated bootloader)
# over a flash file, so a restarted process sees what a rebooted device would.
#
#   board = make_board("dev.flash")     the file is created erased when missing
#   board.power_on()                    the bootloader's decision at reset; the running slot
#   dev = agent.update.Device(board, config)
from agent.errors import OtaError, BAD_LAYOUT
from boards.unix import layout as L


def make_board(path, layout=None, create=True, clock=None, verifier=None, ieee=None):
    """hal.sim.board.EmuBoard over hal.sim.nor.FileFlash(path). layout: a hal.sim.board.Layout (default
    boards.unix.layout.layout()). create False: the file must exist. ieee: the device's
    IEEE address (8 bytes), which an addressed image must name."""
    from hal.sim.nor import FileFlash
    from hal.sim.board import EmuBoard
    import os
    lay = layout if layout is not None else L.layout()
    if not create:
        try:
            os.stat(path)
        except OSError:
            raise OtaError(BAD_LAYOUT, "no flash file %s" % path)
    flash = FileFlash(path, lay.size, lay.sector_size, L.WRITE_SIZE, L.ERASED)
    if clock is None:
        from hal.clock import SystemClock
        clock = SystemClock()
    board = EmuBoard(flash, lay, clock, verifier)
    board.trials = L.TRIALS
    board.payload_check = None
    board.boot_verifies = False  # the emulated bootloader checks CRC-32 only
    board.ieee = ieee  # IEEE address, 8 bytes as in an OTA header's destination field
    return board


def probe(board=None):
    """A one-line summary (the unix port needs nothing more)."""
    import sys
    return "unix: %s, flash layout of %d bytes" % (sys.platform, L.layout().size)
