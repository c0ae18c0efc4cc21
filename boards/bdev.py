# The flash interface of hal/flash.py over a MicroPython block device that speaks the
# extended block protocol (esp32.Partition, rp2.Flash):
#
#   readblocks(block, buf, offset)    read len(buf) bytes from block * B + offset
#   writeblocks(block, buf, offset)   program len(buf) bytes there; never erases
#   ioctl(4, 0) block count, ioctl(5, 0) block size B, ioctl(6, block) erase one block
#
# B is the erase sector. write_size is the unit the agent programs in. When the chip can
# only program whole pages (rp2: 256-byte pages), page > 0: each write is padded out to the
# pages it touches with the erased value, which programming leaves unchanged on NOR flash,
# so bytes already programmed in the same page keep their value.
#
# The port raises OSError on a failed access; that becomes OtaError(FLASH_IO). PowerCut (a
# BaseException of the emulated flash) passes through untouched.
from agent.errors import OtaError, FLASH_ALIGN, FLASH_RANGE, FLASH_IO, BAD_LAYOUT

MYPY = False
if MYPY:  # read by the type checker only (tests/host/test_host_stubs.py), never run
    from vfs import AbstractBlockDev

_IOCTL_COUNT = 4
_IOCTL_SIZE = 5
_IOCTL_ERASE = 6


class BlockFlash:
    """hal/flash.py over block device `dev`: size, sector_size, write_size, erased."""

    def __init__(self, dev, write_size=4, erased=0xFF, page=0):
        # type: (AbstractBlockDev, int, int, int) -> None
        try:
            n = dev.ioctl(_IOCTL_COUNT, 0)
            bs = dev.ioctl(_IOCTL_SIZE, 0)
        except OSError as e:
            raise OtaError(FLASH_IO, "ioctl: %s" % (e,))
        if not n or not bs or bs & (bs - 1) or write_size < 1 or bs % write_size \
                or (page and (page & (page - 1) or bs % page)):
            raise OtaError(BAD_LAYOUT, "block device %r x %r" % (n, bs))
        self.dev = dev
        self.size = n * bs
        self.sector_size = bs
        self.write_size = write_size
        self.erased = erased
        self.page = page
        self._pbuf = bytearray(page)

    def _range(self, offset, n):
        if offset < 0 or n < 0 or offset + n > self.size:
            raise OtaError(FLASH_RANGE, "0x%X+%d in flash of 0x%X" % (offset, n, self.size))

    def read(self, offset, buf):
        n = len(buf)
        self._range(offset, n)
        if not n:
            return
        bs = self.sector_size
        try:
            self.dev.readblocks(offset // bs, buf, offset % bs)
        except OSError as e:
            raise OtaError(FLASH_IO, "read 0x%X+%d: %s" % (offset, n, e))

    def write(self, offset, data):
        n = len(data)
        ws = self.write_size
        if offset % ws or n % ws:
            raise OtaError(FLASH_ALIGN, "write 0x%X+%d, unit %d" % (offset, n, ws))
        self._range(offset, n)
        if not n:
            return
        bs = self.sector_size
        try:
            if not self.page:
                self.dev.writeblocks(offset // bs, data, offset % bs)
                return
            self._paged(offset, memoryview(data))
        except OSError as e:
            raise OtaError(FLASH_IO, "write 0x%X+%d: %s" % (offset, n, e))

    def _paged(self, offset, src):
        p = self.page
        bs = self.sector_size
        buf = self._pbuf
        e = self.erased
        i = 0
        n = len(src)
        while i < n:
            o = offset + i
            base = o - o % p
            at = o - base
            k = p - at
            if k > n - i:
                k = n - i
            if at == 0 and k == p:
                buf[0:p] = src[i:i + p]
            else:
                for j in range(p):
                    buf[j] = e
                buf[at:at + k] = src[i:i + k]
            self.dev.writeblocks(base // bs, buf, base % bs)
            i += k

    def erase(self, offset, size):
        bs = self.sector_size
        if offset % bs or size % bs:
            raise OtaError(FLASH_ALIGN, "erase 0x%X+%d, sector %d" % (offset, size, bs))
        self._range(offset, size)
        b = offset // bs
        try:
            for i in range(size // bs):
                self.dev.ioctl(_IOCTL_ERASE, b + i)
        except OSError as e:
            raise OtaError(FLASH_IO, "erase 0x%X+%d: %s" % (offset, size, e))
