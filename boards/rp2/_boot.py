# Frozen into an rp2 firmware by boards/rp2/manifest.py in place of the port's own _boot.py:
# the same littlefs root filesystem, but only on the head of rp2.Flash(), so that the OTA
# regions at its tail (boards/rp2/layout.py) are never formatted or allocated by littlefs.
import rp2
from boards.rp2 import layout
from boards.rp2.select import _vfs

vfs = _vfs()


class _Window:
    # rp2.Flash(start=, len=) for firmware before MicroPython 1.23
    def __init__(self, dev, blocks):
        self.dev = dev
        self.blocks = blocks

    def readblocks(self, n, buf, off=0):
        self.dev.readblocks(n, buf, off)

    def writeblocks(self, n, buf, off=None):
        if off is None:
            self.dev.writeblocks(n, buf)
        else:
            self.dev.writeblocks(n, buf, off)

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        return self.dev.ioctl(op, arg)


def _bdev():
    whole = rp2.Flash()
    fs = layout.regions((whole.ioctl(4, 0) or 0) * (whole.ioctl(5, 0) or 0))[0]
    try:
        return rp2.Flash(start=0, len=fs)
    except TypeError:
        return _Window(whole, fs // layout.SECTOR)


bdev = _bdev()
try:
    fs = vfs.VfsLfs2(bdev, progsize=256)
except OSError:
    vfs.VfsLfs2.mkfs(bdev, progsize=256)
    fs = vfs.VfsLfs2(bdev, progsize=256)
vfs.mount(fs, "/")
del _Window, _bdev, bdev, fs, vfs, rp2, layout, _vfs
