# The per-block path under micropython.heap_lock() inside the Cortex-M3 firmware
# (host_tools/bench_mcu.py heap_locked): a module of its own, so that the other
# measurements of bench/mp_mcu.py load none of it; it builds on bench/mp_update.py.
#
#   locked(image, frames, pub, block, spans, payload, installed=False)
#       the download of image (frames replayed as bench/mp_update.Frames does) with the heap
#       locked over each span [first, last] of blocks; a MemoryError ends it. installed:
#       the device runs what mp_mcu.install() left in the flash (a delta's old image)
import gc
import micropython

import mp_update as M


class Locking(M.Frames):
    """Frames that lock the heap when block `first` of a span is asked for and unlock it
    when the block after its `last` is."""

    def __init__(self, path, spans):
        M.Frames.__init__(self, path, 0, 1 << 29, "lock")
        self.lock_at = {}
        self.unlock_at = set()
        for a, b in spans:
            self.lock_at[a] = b - a + 1
            self.unlock_at.add(b + 1)
        self.locked = 0
        self.held = False

    def _measure(self, i):
        if i in self.unlock_at and self.held:
            micropython.heap_unlock()
            self.held = False
        if i in self.lock_at:
            micropython.heap_lock()
            self.held = True
            self.locked += self.lock_at[i]


def locked(image, frames, pub, block, spans, payload, installed=False):
    dev, board = M.device(pub, payload, not installed)
    link = Locking(frames, spans)
    gc.collect()
    try:
        M._download(dev, link, block, image)
    finally:
        if link.held:  # (unlocking an unlocked heap would lock it: the lock is a depth)
            micropython.heap_unlock()
    M.result({"ok": True, "locked_blocks": link.locked, "spans": len(spans)})
