# The unix board's device program (boards/unix/run.py, unchanged) over a flash that lives
# only in its file (bench/mp_flash.py), so that the MicroPython heap holds what a device's
# RAM would: the agent, its buffers, the link. One process is one boot, as with
# `otatool device`; the exit code is run.py's (3: reset).
#
#   MICROPYPATH=build/mpy:bench micropython -X heapsize=N bench/mp_device.py \
#       [--stats FILE] [--free BYTES] [run.py options]
#
# --stats appends to FILE one JSON line: exit code, heap after the imports, flash counters.
# --free fills the heap after the imports but for BYTES (the working heap).
import sys
import gc
import json


class Stats:
    flash = None
    layout = None
    ballast = None


def board_for(o):
    from mp_flash import DiskFlash
    from hal.sim.board import EmuBoard
    from hal.clock import SystemClock
    from boards.unix import layout as L
    lay = L.layout(o["sector"], o["slot-size"])
    fl = DiskFlash(o["flash"], lay.size, lay.sector_size, L.WRITE_SIZE, L.ERASED)
    board = EmuBoard(fl, lay, SystemClock())
    board.trials = L.TRIALS
    board.payload_check = None
    Stats.flash = fl
    Stats.layout = lay
    return board


def fill(free):
    # allocate all the free heap but `free` bytes, in pieces (it is fragmented)
    keep = []
    size = 1 << 20
    while size >= 64:
        if gc.mem_free() - free < size:
            size //= 2
            continue
        try:
            keep.append(bytearray(size - 16))
        except MemoryError:
            size //= 2
    return keep


def main(argv):
    stats = None
    free = None
    while argv[:1] in (["--stats"], ["--free"]):
        if argv[0] == "--stats":
            stats = argv[1]
        else:
            free = int(argv[1])
        argv = argv[2:]
    import boards.unix.run as R
    import agent.update
    import agent.zcl.client
    import agent.crypto.trust
    import agent.crypto.cose
    import agent.crypto.cbor
    import agent.crypto.p256
    import agent.image.inflate
    import boards.unix.layout
    import hal.sim.board
    import hal.udp
    import mp_flash
    gc.collect()
    code = gc.mem_alloc()  # the modules an update imports, loaded from .mpy into RAM
    if free is not None:
        # leave only `free` bytes of heap for the update: what the agent needs when its
        # code is not in the heap (frozen into a device's firmware)
        Stats.ballast = fill(free)
    R.board_for = board_for
    rc = R.main(argv)
    if stats:
        fl = Stats.flash
        lay = Stats.layout
        ss = lay.sector_size
        rec = {"rc": rc, "heap_after_imports": code, "sector_size": ss,
               "boot": [lay.boot_off // ss, lay.boot_size // ss],
               "journal": [lay.journal_off // ss, lay.journal_size // ss],
               "slots": [[lay.slot_off[i] // ss, lay.slot_size // ss] for i in (0, 1)],
               "meta_sectors": lay.meta_size // ss,
               "erases": [[i, fl.erase_counts[i]] for i in range(len(fl.erase_counts))
                          if fl.erase_counts[i]],
               "writes": [[i, fl.write_counts[i]] for i in range(len(fl.write_counts))
                          if fl.write_counts[i]]}
        f = open(stats, "a")
        f.write(json.dumps(rec) + "\n")
        f.close()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
