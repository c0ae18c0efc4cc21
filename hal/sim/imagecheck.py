# Check an image file the way a device does: an emulated board over a RAM NorFlash sized for
# the image, and the agent's own factory install (Device.provision): streaming parse, manifest
# signature and policy, writing into the slot, full check from flash. What it accepts, a
# device with these keys accepts; what it rejects comes with the device's reason.
#
#   check_image(read, size, keys, supplier_key=None, hw=None, seq=0, block=1024) -> Info
#   summary(info)   the one-line result
#   micropython -m hal.sim.imagecheck FILE KEY... [-s KEY] [-w HW] [-q SEQ] [-b BLOCK]
#                                 [-l SECTOR,SLOT,META] [-m MANUFACTURER] [-t IMAGE_TYPE]
#
# read(offset, n) returns up to n bytes of the file from offset (the device asks for a sector
# again when its CRC fails, so the file is read by offset, not as a stream). A KEY on the
# command line is a PEM public key file, a file holding the raw 64/65-byte point, or the
# point in hex. Exit 0 with the summary, 1 with "E<code> <text>[: detail]", 2 on usage.
import struct
import binascii
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.image import fmt
from agent.errors import OtaError, TOO_LARGE

_FLASH_SECTOR = const(4096)  # largest flash sector emulated; image sectors are multiples
_TABLE_MIN = const(1024)     # sector table room in the meta area when nothing is known
_CAP_CPYTHON = const(0x4000000)  # largest installed payload emulated under CPython (64 MiB)
ENCODINGS = ("raw", "deflate", "delta")


class Info:
    """What an accepted image holds: its OTA header (agent.image.fmt.Header), manifest
    (agent.image.manifest.Manifest), key id, Manufacturer Image SHA-256 and GBCS trailer
    ((force_replace, signature) or None)."""

    def __init__(self, header, manifest, kid, mi_hash, trailer):
        self.header = header
        self.manifest = manifest
        self.kid = kid
        self.mi_hash = mi_hash
        self.trailer = trailer


def summary(info):
    m = info.manifest
    enc = ENCODINGS[m.encoding] if m.encoding < len(ENCODINGS) else str(m.encoding)
    return "OK version=0x%08X seq=%d kid=%s mi_sha256=%s size=%d encoding=%s" % (
        m.version, m.seq, _hex(info.kid), _hex(info.mi_hash), m.size, enc)


def _hex(b):
    return binascii.hexlify(b).decode()


def _get(read, off, n, size):
    """n bytes from off, or fewer when the file ends first."""
    if off + n > size:
        n = size - off
    out = bytearray()
    while n > 0:
        b = read(off, n)
        if not b:
            break
        out.extend(b)
        off += len(b)
        n -= len(b)
    return out


def default_cap():
    """The largest installed payload the emulated flash is made for: a third of the free
    heap under MicroPython (two slots, and room to work), 64 MiB under CPython."""
    import gc
    free = getattr(gc, "mem_free", None)
    if free is None:
        return _CAP_CPYTHON
    gc.collect()
    return free() // 3


def _peek(read, size):
    """Header fields and the (unverified) manifest, read without checking anything: they only
    configure and size the emulated device, which then makes every decision itself.
    Returns (manufacturer, image type, hw_min, manifest or None)."""
    b = _get(read, 0, fmt.HDR_MAX, size)
    if len(b) < fmt.HDR_SIZE:
        return 0, 0, 0, None   # the device rejects it before it looks at any of these
    (_magic, _hver, hlen, fc, man, itype, _fver, _stack, _hstr,
     _total) = struct.unpack_from(fmt.HDR_FMT, b, 0)
    hw = 0
    off = fmt.header_length(fc & (fmt.FC_SECURITY | fmt.FC_DEST))
    if fc & fmt.FC_HW and off + 4 <= len(b):
        hw = struct.unpack_from(fmt.HW_FMT, b, off)[0]
    m = None
    if fmt.HDR_SIZE <= hlen <= fmt.HDR_MAX:
        m = _peek_manifest(read, size)
    return man, itype, hw, m


def _peek_manifest(read, size):
    from agent.image.manifest import peek
    try:
        return peek(_get(read, 0, fmt.MANIFEST_END_MAX, size))
    except OtaError:
        return None


def _board(size, m, cap):
    """An emulated board whose slots fit the manifest's payload and sector table, or, when
    there is no usable manifest (the device rejects such a file), the file's size."""
    from hal.sim.board import Layout
    if m is not None and m.size <= cap and m.table_size <= cap:
        sector = m.sector if m.sector < _FLASH_SECTOR else _FLASH_SECTOR
        payload = m.size
        table = m.table_size if m.table_size > _TABLE_MIN else _TABLE_MIN
    else:
        sector = fmt.MIN_SECTOR
        payload = size if size < cap else cap
        table = _TABLE_MIN
    if payload < 1:
        payload = 1
    return board_for(Layout.for_image(sector, payload, table))


def board_for(lay):
    """An emulated board over a RAM flash laid out as lay (a hal.sim.board.Layout)."""
    from hal.sim.board import EmuBoard
    from hal.sim.nor import NorFlash
    flash = None
    for _ in range(2):
        try:
            flash = NorFlash(lay.size, lay.sector_size)
            break
        except MemoryError:
            import gc
            gc.collect()
    if flash is None:
        raise OtaError(TOO_LARGE, "no RAM to emulate a flash of %d bytes" % lay.size)
    return EmuBoard(flash, lay)


def check_image(read, size, keys, supplier_key=None, hw=None, seq=0, block=1024,
                cap=None, layout=None, manufacturer=None, image_type=None):
    """Run the file (size bytes, read(offset, n)) through an emulated device that trusts keys
    (64/65-byte points) and, with supplier_key, requires a valid GBCS supplier trailer.
    The device is the header's manufacturer and image type (or those given), hardware
    version hw (default the header's hw_min), with anti-rollback counter seq; it is fed
    block bytes at a time. layout (a hal.sim.board.Layout): the device's flash, whose slots bound
    what it accepts; None sizes the flash for the image (at most cap bytes a slot).
    Returns an Info, or raises the device's OtaError."""
    from agent.update import Config, Device
    from agent.crypto.trust import Trust
    from agent.crypto import p256
    if block < 1:
        block = 1
    trust = Trust(keys)
    sup = p256.check_key(supplier_key) if supplier_key is not None else None
    man, itype, hw0, m = _peek(read, size)
    if layout is not None:
        board = board_for(layout)
    else:
        board = _board(size, m, default_cap() if cap is None else cap)
    board.power_on()
    if manufacturer is not None:
        man = manufacturer
    if image_type is not None:
        itype = image_type
    cfg = Config(trust, man, itype, hw0 if hw is None else hw, sup)
    dev = Device(board, cfg)
    dev.start()  # empty flash: raises a boot alert, nothing else
    dev.st.seq = seq

    dev.provision(read, size, block)
    from agent.store.check import read_meta
    s = read_meta(board.slots[dev.st.slot])  # (the device's checked copy: given back)
    p = dev.parser
    return Info(s.header, s.manifest, p.kid, bytes(dev.st.mi_hash), p.trailer)


# -- command line -------------------------------------------------------------------------

def _key(arg):
    from agent.crypto.trust import from_pem
    b = None
    if len(arg) in (128, 130):
        try:
            b = binascii.unhexlify(arg)
        except ValueError:
            b = None
    if b is None:
        with open(arg, "rb") as f:
            b = f.read()
        if b[:5] == b"-----":
            b = from_pem(b)
    return b


def file_reader(f, block):
    """read(offset, n) over an open file, through one buffer of block bytes."""
    buf = bytearray(block)
    mv = memoryview(buf)

    def read(off, n):
        f.seek(off)
        if n > block:
            n = block
        k = f.readinto(mv[:n])
        return mv[:k] if k else b""
    return read


def _usage():
    print("usage: micropython -m hal.sim.imagecheck FILE KEY... [-s KEY] [-w HW] [-q SEQ] "
          "[-b BLOCK] [-l SECTOR,SLOT,META] [-m MANUFACTURER] [-t IMAGE_TYPE]")
    return 2


def run(argv):
    """The command line; returns the exit code."""
    import os
    pos = []
    opt = {"-s": None, "-w": None, "-q": "0", "-b": "1024", "-l": None, "-m": None,
           "-t": None}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in opt:
            if i + 1 >= len(argv):
                return _usage()
            opt[a] = argv[i + 1]
            i += 2
        elif a[:1] == "-":
            return _usage()
        else:
            pos.append(a)
            i += 1
    if len(pos) < 2:
        return _usage()
    try:
        hw = None if opt["-w"] is None else int(opt["-w"])
        seq = int(opt["-q"])
        block = int(opt["-b"])
        man = None if opt["-m"] is None else int(opt["-m"])
        itype = None if opt["-t"] is None else int(opt["-t"])
        lay = None
        if opt["-l"] is not None:
            from hal.sim.board import Layout
            sector, slot, meta = [int(x) for x in opt["-l"].split(",")]
            lay = Layout(sector, slot, meta)
    except ValueError:
        return _usage()
    if block < 1:
        return _usage()
    try:
        keys = [_key(k) for k in pos[1:]]
        sup = None if opt["-s"] is None else _key(opt["-s"])
        size = os.stat(pos[0])[6]
        with open(pos[0], "rb") as f:
            info = check_image(file_reader(f, block), size, keys, sup, hw, seq, block,
                               None, lay, man, itype)
    except OtaError as e:
        print(str(e))
        return 1
    except OSError as e:
        print("cannot read: %s" % (e,))
        return 2
    print(summary(info))
    return 0


def main():
    import sys
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
