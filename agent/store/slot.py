# A firmware slot: the installed payload from offset 0 (sector i at i * S), and a meta area
# in the slot's last sectors holding what is needed to check the image again from flash:
#
#   meta + 0              META_FMT record
#   meta + HDR_OFF        the OTA header (external_aad of the signature)
#   meta + COSE_OFF       the COSE_Sign1 manifest
#   meta + TRAILER_OFF    the GBCS supplier trailer, or erased when the image has none
#   meta + TABLE_OFF      the sector table
#
# SlotWriter is the parser's sink during a download (agent.store.check checks a slot from flash).
import binascii
import hashlib
import struct
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.image import fmt
from agent.errors import OtaError, BAD_LAYOUT, SECTOR_CRC, BAD_TABLE, TOO_LARGE, FLASH_IO, \
    LAYOUT_NO_FIT
from agent.image.inflate import inflate_into
from agent.crypto.sha256r import Sha256

META_MAGIC = const(0x4D41544F)
META_FMT = "<IHHI"
#   I    magic 0x4D41544F
#   H    OTA header length
#   H    COSE_Sign1 length
#   I    sector table length
META_SIZE = const(12)
HDR_OFF = const(16)
COSE_OFF = const(85)      # HDR_OFF + fmt.HDR_MAX
TRAILER_OFF = const(608)  # after COSE_OFF + fmt.MANIFEST_MAX, 16-byte aligned
TABLE_OFF = const(688)    # after TRAILER_OFF + fmt.TRAILER_SIZE, 16-byte aligned


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


def elem_head(tag, length):
    return struct.pack(fmt.ELEM_FMT, tag, length)


def align(n, w):
    return (n + w - 1) // w * w


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
    h.update(elem_head(fmt.TAG_MANIFEST, cose_len))
    scan(a, slot.meta + COSE_OFF, cose_len, buf, 0, h)
    h.update(elem_head(fmt.TAG_TABLE, m.table_size))
    scan(a, slot.meta + TABLE_OFF, m.table_size, buf, 0, h)
    h.update(elem_head(fmt.TAG_PAYLOAD, m.enc_size))


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


class SlotWriter:
    """Parser sink: streams the table and payload into a slot, erasing each sector just
    before it is written and checking each sector's CRC-32 by reading it back.

    on_sector(next_sector, mi_hash) is called after each sector is in flash and checked;
    mi_hash is the Manufacturer Image hash after the last sector of a deflate image (raw
    images get theirs from flash, in agent.store.check), else None."""

    def __init__(self, page=256):
        # the page being gathered and the start of the next one: a block is copied in whole
        # and each full page written from a view made here, so the payload path allocates
        # nothing (a memoryview slice is an allocation under MicroPython)
        self._pg = page
        self._buf = bytearray(2 * page)
        self._cap = 2 * page
        self._pv = memoryview(self._buf)
        self._lo = self._pv[:page]
        self._hi = self._pv[page:]
        self._rb = bytearray(page)
        self._prefix = bytearray(TRAILER_OFF)
        self._ent = bytearray(28)
        e = memoryview(self._ent)
        self._e0 = e[0:4]   # the fields of fmt.TABLE_DEFLATE_FMT (the first also
        self._e1 = e[4:8]   # fmt.TABLE_RAW_FMT), read as little-endian u32 without the
        self._e2 = e[8:12]  # tuple struct.unpack_from would allocate
        self.raw = False    # streaming raw payload sectors (checked as each one ends)
        self.mi = None      # Manufacturer Image hash of a deflate download (agent.crypto.sha256r)
        self._chunk = None
        self._sec = None
        self.on_sector = None
        self.check = None  # board's check of the first payload bytes (e.g. an app image)

    def start(self, slot):
        """Begin a new download into slot."""
        self.slot = slot
        self.next = 0
        self.raw = False

    def resume(self, slot, manifest, cose_len, next_sector, mi_state=None):
        """Continue a download whose meta area and sectors < next_sector are in flash;
        mi_state: the saved Manufacturer Image hash of a deflate image (mi_save)."""
        self.slot = slot
        self.m = manifest
        self.cose_len = cose_len
        self.next = next_sector
        self.raw = False
        self._payload_start(mi_state)

    def mi_save(self, out):
        """Save the running Manufacturer Image hash (deflate images) into out."""
        if self.mi is not None:
            self.mi.save(out)

    def resume_offset(self, payload_offset):
        """File offset to fetch from after start/resume or a failed sector."""
        m = self.m
        if m.encoding == fmt.ENC_RAW:
            done = self.sector * m.sector
            return payload_offset + (done if done < m.size else m.size)
        return payload_offset + self.epos

    # -- parser sink ---------------------------------------------------------

    def on_manifest(self, p):
        s = self.slot
        m = p.manifest
        if m.size > s.capacity:
            raise OtaError(TOO_LARGE, "%d > slot %d bytes" % (m.size, s.capacity))
        if m.table_size > s.table_max:
            raise OtaError(TOO_LARGE, "sector table %d > %d bytes" % (m.table_size, s.table_max))
        if m.encoding != fmt.ENC_RAW and m.sectors * m.sector > s.capacity:
            raise OtaError(LAYOUT_NO_FIT, "last sector ends past the payload area")
        self.m = m
        self.cose_len = p.cose_len
        a = s.area
        a.erase(s.meta, a.size - s.meta)
        b = self._fill_erased(self._prefix, len(self._prefix))
        hb = p.header_bytes()
        struct.pack_into(META_FMT, b, 0, META_MAGIC, len(hb), p.cose_len, m.table_size)
        b[HDR_OFF:HDR_OFF + len(hb)] = hb
        b[COSE_OFF:COSE_OFF + p.cose_len] = p.cose_bytes()
        a.write(s.meta, b)
        self._begin(s.meta + TABLE_OFF)

    def on_table(self, mv):
        self._stream(mv)

    def on_table_end(self):
        self._flush()
        self._payload_start()

    def on_payload(self, mv):
        if self.raw:  # as _raw, one call less
            self._stream(mv)
            if self.woff + self.wfill == self.m.size:
                self._flush()
        elif self.m.encoding == fmt.ENC_RAW:
            self._raw(mv)
        else:
            self._deflate(mv)

    def on_done(self, p):
        if p.trailer is None:
            return
        s = self.slot
        b = self._fill_erased(self._prefix, 80)
        struct.pack_into(fmt.TRAILER_FMT, b, 0, p.trailer[0], fmt.TRAILER_SIG_LEN, p.trailer[1])
        s.area.write(s.meta + TRAILER_OFF, memoryview(b)[:80])

    # -- payload -------------------------------------------------------------

    def _payload_start(self, mi_state=None):
        m = self.m
        self.pos = 0
        self.mi = None
        if m.encoding == fmt.ENC_RAW:
            self.sector = self.next
            self._begin(self.sector * m.sector)
            self.raw = True
            self._load(self.sector)
            return
        if self._chunk is None or len(self._sec) < m.sector:
            self._chunk = self._sec = None
            self._chunk = bytearray(m.sector + (m.sector >> 3) + 64)
            self._sec = bytearray(m.sector)
        # deflate: the encoded chunks are not kept, so the Manufacturer Image hash runs in
        # a SHA-256 whose state is saved with every checkpoint; a resume continues it
        k = self.next
        if k and mi_state is not None:
            self.mi = Sha256(mi_state)
        else:
            k = self.next = 0
            self.mi = Sha256()
            hash_prefix(self.slot, self.cose_len, m, self.mi, self._rb)
        self.sector = k
        if k < m.sectors:
            self.epos = table_entry(self.slot, m, k, self._ent)[1]
            self._load(k)
        else:
            self.epos = m.enc_size

    def _load(self, k):
        """Sector k's table entry into self.crc, self.clen (deflate), checking chunk order."""
        m = self.m
        if k >= m.sectors:
            self.raw = False
            return
        if m.encoding == fmt.ENC_RAW:
            self.slot.area.read(self.slot.meta + TABLE_OFF + 4 * k, self._e0)
            self.crc = int.from_bytes(self._e0, "little")
            self.send = k * m.sector + sector_len(m, k)  # where sector k ends
        else:
            self._chunk_entry(k)

    def _chunk_entry(self, k):
        m = self.m
        self.slot.area.read(self.slot.meta + TABLE_OFF + 28 * k, self._ent)
        self.crc = int.from_bytes(self._e0, "little")
        off = int.from_bytes(self._e1, "little")
        clen = int.from_bytes(self._e2, "little")
        if off != self.epos or clen == 0 or clen > len(self._chunk) or off + clen > m.enc_size \
                or (k == m.sectors - 1 and off + clen != m.enc_size):
            raise OtaError(BAD_TABLE, "sector %d chunk %d+%d" % (k, off, clen))
        self.clen = clen

    def _raw(self, mv):
        # a page that ends a sector is checked as it is written (_put); the last sector
        # ends inside a page
        self._stream(mv)
        if self.woff + self.wfill == self.m.size:
            self._flush()

    def _sector_end(self):
        k = self.sector
        m = self.m
        if self._readback(k, self.send - k * m.sector) != self.crc:
            self._begin(k * m.sector)  # bytes of the next sector gathered are dropped too
            raise OtaError(SECTOR_CRC, "sector %d" % k)
        self._advance(None)

    def _deflate(self, mv):
        i = 0
        n = len(mv)
        while i < n:
            take = self.clen - self.pos
            if take > n - i:
                take = n - i
            self._chunk[self.pos:self.pos + take] = mv if take == n else mv[i:i + take]
            self.pos += take
            i += take
            if self.pos == self.clen:
                self._chunk_done()

    def _chunk_done(self):
        m = self.m
        k = self.sector
        n = sector_len(m, k)
        out = memoryview(self._sec)[:n]
        chunk = memoryview(self._chunk)[:self.clen]
        self.pos = 0
        if hashlib.sha256(chunk).digest()[:fmt.CHUNK_DIGEST] != self._ent[12:28]:
            raise OtaError(SECTOR_CRC, "sector %d: chunk digest" % k)
        try:
            inflate_into(chunk, out, fmt.deflate_wbits(m.sector))
            bad = binascii.crc32(out) != self.crc
        except OtaError:
            bad = True
        if bad:  # corrupted in transit: fetch this chunk again; nothing hashed yet
            raise OtaError(SECTOR_CRC, "sector %d" % k)
        self.mi.update(chunk)
        self.epos += self.clen
        a = self.slot.area
        w = align(n, a.write_size)
        self._fill_erased(self._sec, w, n)
        for _ in range(2):
            a.erase(k * m.sector, m.sector)
            a.write(k * m.sector, memoryview(self._sec)[:w])
            if self._readback(k, n) == self.crc:
                break
        else:
            raise OtaError(FLASH_IO, "sector %d reads back wrong" % k)
        self._advance(self.mi.digest() if k == m.sectors - 1 else None)

    def _advance(self, mi):
        k = self.sector
        if k == 0 and self.check is not None:  # sector 0 is in flash and its CRC good
            self.slot.area.read(0, self._rb)
            self.check(self._rb)
        self.sector = self.next = k + 1
        self.pos = 0
        if self.on_sector:
            self.on_sector(k + 1, mi)
        self._load(k + 1)

    def _readback(self, k, n):
        # CRC-32 of sector k's first n bytes as read from flash (scan, with a smaller frame)
        self._off = k * self.m.sector
        self._crc = 0
        rb = self._rb
        while n >= len(rb):
            self._scan(rb)
            n -= len(rb)
        if n:
            self._scan(memoryview(rb)[:n])
        return self._crc

    def _scan(self, b):
        self.slot.area.read(self._off, b)
        self._off += len(b)
        self._crc = binascii.crc32(b, self._crc)

    # -- sequential aligned writer -------------------------------------------

    def _fill_erased(self, b, end, start=0):
        e = self.slot.area.erased
        for j in range(start, end):
            b[j] = e
        return b

    def _begin(self, off):
        self.woff = off
        self.wfill = 0

    def _stream(self, mv):
        n = len(mv)
        f = self.wfill  # below one page between calls
        if f + n > self._cap:
            self._long(mv, n)
            return
        self._buf[f:f + n] = mv
        f += n
        self.wfill = f
        if f >= self._pg:
            self._spill()
            while self.wfill >= self._pg:
                self._spill()

    def _long(self, mv, n):
        pg = self._pg
        i = 0
        while i < n:  # a block longer than a page
            take = pg - self.wfill
            if take > n - i:
                take = n - i
            self._buf[self.wfill:self.wfill + take] = mv[i:i + take]
            self.wfill += take
            i += take
            if self.wfill == pg:
                self._spill()

    def _spill(self):
        # the first page is full: write it, then move what follows it to the front
        pg = self._pg
        self._put(self._lo, pg)
        f = self.wfill - pg
        if f > 0:
            self._buf[0:pg] = self._hi
        self.wfill = f

    def _flush(self):
        f = self.wfill
        if not f:
            return
        w = align(f, self.slot.area.write_size)
        self._fill_erased(self._buf, w, f)
        self.wfill = 0
        self._put(self._lo if w == self._pg else self._pv[:w], w)

    def _put(self, data, w):
        a = self.slot.area
        off = self.woff
        if off < self.slot.capacity and off % a.sector_size == 0:
            a.erase(off, a.sector_size)
        a.write(off, data)
        self.woff = off + w
        if self.raw and self.woff >= self.send:
            self._sector_end()
