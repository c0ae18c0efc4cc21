# A firmware slot: the installed payload from offset 0 (sector i at i * S), and a meta area
# in the slot's last sectors holding what is needed to check the image again from flash:
#
#   meta + 0              META_FMT record
#   meta + HDR_OFF        the OTA header (external_aad of the signature)
#   meta + COSE_OFF       the COSE_Sign1 manifest
#   meta + TRAILER_OFF    the GBCS supplier trailer, or erased when the image has none
#   meta + TABLE_OFF      the sector table
#
# Each region starts 16-byte aligned after the largest of the one before it, as
# agent/image/fmt.py sizes them. Who uses the layout: agent.store.writer writes a slot during
# a download, agent.store.check checks one from flash.
import binascii
import struct
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.image import fmt
from agent.errors import OtaError, BAD_LAYOUT

META_MAGIC = const(0x4D41544F)
META_FMT = "<IHHI"
#   I    magic 0x4D41544F
#   H    OTA header length
#   H    COSE_Sign1 length
#   I    sector table length
META_SIZE = const(12)
_A = const(16)  # alignment of each region
HDR_OFF = const((META_SIZE + _A - 1) // _A * _A)
# The regions after the header are sized by agent/image/fmt.py. MicroPython's const() folds
# a module's own constants only, so these are plain ints made from fmt's sizes at import;
# the modules that import them read them as globals either way (at most once per sector).
COSE_OFF = HDR_OFF + fmt.HDR_MAX
TRAILER_OFF = (COSE_OFF + fmt.MANIFEST_MAX + _A - 1) // _A * _A
TABLE_OFF = (TRAILER_OFF + fmt.TRAILER_SIZE + _A - 1) // _A * _A


class Slot:
    """One A/B slot on a flash Area; the last meta_size bytes hold the meta area."""

    def __init__(self, area, meta_size, index):
        ss = area.sector_size
        if meta_size % ss or meta_size < ss or meta_size >= area.size:
            raise OtaError(BAD_LAYOUT, "meta area of %d bytes" % meta_size)
        self.area = area
        self.index = index
        self.capacity = area.size - meta_size
        self.meta = self.capacity
        self.table_max = meta_size - TABLE_OFF


def align(n, w):
    return (n + w - 1) // w * w


def fill_erased(area, b, end, start=0):
    """b[start:end] set to the area's erased value (what is not written stays erased)."""
    e = area.erased
    for j in range(start, end):
        b[j] = e
    return b


def write_meta(slot, p, buf):
    """Erase the slot's meta area, then write its record, the OTA header and the
    COSE_Sign1 of the image p parses (agent.image.parser.Parser, its manifest verified)
    through buf, a bytearray(TRAILER_OFF)."""
    a = slot.area
    a.erase(slot.meta, a.size - slot.meta)
    b = fill_erased(a, buf, len(buf))
    hb = p.header_bytes()
    struct.pack_into(META_FMT, b, 0, META_MAGIC, len(hb), p.cose_len, p.manifest.table_size)
    b[HDR_OFF:HDR_OFF + len(hb)] = hb
    b[COSE_OFF:COSE_OFF + p.cose_len] = p.cose_bytes()
    a.write(slot.meta, b)


def write_trailer(slot, trailer, buf):
    """Write the GBCS trailer (force_replace, signature) into the slot's meta area (still
    erased there) through buf, at least TABLE_OFF - TRAILER_OFF bytes."""
    n = TABLE_OFF - TRAILER_OFF  # the trailer's region: whole write units
    b = fill_erased(slot.area, buf, n)
    b[:fmt.TRAILER_SIZE] = fmt.pack_trailer(trailer[0], trailer[1])
    slot.area.write(slot.meta + TRAILER_OFF, memoryview(b)[:n])


def scan(area, off, n, buf, crc=0, h1=None, h2=None):
    """CRC-32 of n flash bytes from off (continuing crc), read through buf; the same bytes
    also go into the hashes h1 and h2 when given."""
    size = len(buf)
    mv = None
    while n:
        if n >= size:  # whole buffers need no view
            k = size
            part = buf
        else:
            k = n
            if mv is None:
                mv = memoryview(buf)
            part = mv[:k]
        area.read(off, part)
        crc = binascii.crc32(part, crc)
        if h1 is not None:
            h1.update(part)
        if h2 is not None:
            h2.update(part)
        off += k
        n -= k
    return crc


def hash_prefix(slot, cose_len, m, h, buf):
    """Feed h with the Manufacturer Image up to the payload data, read from flash."""
    a = slot.area
    h.update(fmt.pack_elem(fmt.TAG_MANIFEST, cose_len))
    scan(a, slot.meta + COSE_OFF, cose_len, buf, 0, h)
    h.update(fmt.pack_elem(fmt.TAG_TABLE, m.table_size))
    scan(a, slot.meta + TABLE_OFF, m.table_size, buf, 0, h)
    h.update(fmt.pack_elem(fmt.TAG_PAYLOAD, m.enc_size))


def table_entry(slot, m, k, buf):
    """Sector k's table entry from flash: (crc32, chunk offset, chunk length)."""
    esz = fmt.table_entry_size(m.encoding)
    e = memoryview(buf)[:esz]
    slot.area.read(slot.meta + TABLE_OFF + k * esz, e)
    if esz == 4:
        return struct.unpack_from(fmt.TABLE_RAW_FMT, e, 0)[0], k * m.sector, 0
    return struct.unpack_from(fmt.TABLE_DEFLATE_FMT, e, 0)


def sector_len(m, k):
    return m.sector if k < m.sectors - 1 else m.size - (m.sectors - 1) * m.sector
