# A firmware slot: the installed payload from offset 0 (sector i at i * S), and a meta area
# in the slot's last sectors holding what is needed to check the image again from flash:
#
#   meta + 0              META_FMT record
#   meta + HDR_OFF        the OTA header (external_aad of the signature)
#   meta + COSE_OFF       the COSE_Sign1 manifest
#   meta + TRAILER_OFF    the GBCS supplier trailer, or erased when the image has none
#   meta + TABLE_OFF      the sector table
#
# SlotWriter is the parser's sink during a download (agent.verify checks a slot from flash).
import binascii
import hashlib
import struct
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent import fmt
from agent.errors import OtaError, BAD_LAYOUT, SECTOR_CRC, BAD_TABLE, TOO_LARGE, FLASH_IO, \
    PAYLOAD_DIGEST
from agent.inflate import inflate_into

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
    mv = memoryview(buf)
    while n:
        k = len(buf) if n > len(buf) else n
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
    images get theirs from flash, in agent.verify), else None."""

    def __init__(self, page=256):
        self._page = bytearray(page)
        self._rb = bytearray(page)
        self._prefix = bytearray(TRAILER_OFF)
        self._ent = bytearray(12)
        self._chunk = None
        self._sec = None
        self.on_sector = None
        self.check = None  # board's check of the first payload bytes (e.g. an app image)

    def start(self, slot):
        """Begin a new download into slot."""
        self.slot = slot
        self.next = 0

    def resume(self, slot, manifest, cose_len, next_sector):
        """Continue a download whose meta area and sectors < next_sector are in flash."""
        self.slot = slot
        self.m = manifest
        self.cose_len = cose_len
        self.next = next_sector
        self._payload_start()

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
        if self.m.encoding == fmt.ENC_RAW:
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

    def _payload_start(self):
        m = self.m
        self.pos = 0
        if m.encoding == fmt.ENC_RAW:
            self.sector = self.next
            self._load(self.sector)
            self._begin(self.sector * m.sector)
            return
        if self._chunk is None or len(self._sec) < m.sector:
            self._chunk = self._sec = None
            self._chunk = bytearray(m.sector + (m.sector >> 3) + 64)
            self._sec = bytearray(m.sector)
        # deflate: every chunk is hashed in order; chunks of sectors already in flash
        # (after a resume) are fetched again, checked and hashed but not written
        self.mi = hashlib.sha256()
        self.enc = hashlib.sha256()
        hash_prefix(self.slot, self.cose_len, m, self.mi, self._rb)
        self.epos = 0
        self.sector = 0
        self._load(0)

    def _load(self, k):
        """Sector k's table entry into self.crc, self.clen (deflate), checking chunk order."""
        m = self.m
        if k >= m.sectors:
            return
        self.crc, off, clen = table_entry(self.slot, m, k, self._ent)
        if m.encoding == fmt.ENC_RAW:
            return
        if off != self.epos or clen == 0 or clen > len(self._chunk) or off + clen > m.enc_size \
                or (k == m.sectors - 1 and off + clen != m.enc_size):
            raise OtaError(BAD_TABLE, "sector %d chunk %d+%d" % (k, off, clen))
        self.clen = clen

    def _raw(self, mv):
        i = 0
        n = len(mv)
        while i < n:
            end = sector_len(self.m, self.sector)
            take = end - self.pos
            if take > n - i:
                take = n - i
            self._stream(mv[i:i + take])
            i += take
            self.pos += take
            if self.pos == end:
                self._flush()
                k = self.sector
                if self._readback(k, end) != self.crc:
                    self.pos = 0
                    self._begin(k * self.m.sector)
                    raise OtaError(SECTOR_CRC, "sector %d" % k)
                self._advance(None)

    def _deflate(self, mv):
        i = 0
        n = len(mv)
        while i < n:
            take = self.clen - self.pos
            if take > n - i:
                take = n - i
            self._chunk[self.pos:self.pos + take] = mv[i:i + take]
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
        try:
            inflate_into(chunk, out, fmt.deflate_wbits(m.sector))
            bad = binascii.crc32(out) != self.crc
        except OtaError:
            bad = True
        if bad:  # corrupted in transit: fetch this chunk again; nothing hashed yet
            raise OtaError(SECTOR_CRC, "sector %d" % k)
        self.mi.update(chunk)
        self.enc.update(chunk)
        self.epos += self.clen
        if k == m.sectors - 1 and self.enc.digest() != m.enc_sha256:
            raise OtaError(PAYLOAD_DIGEST, "encoded payload")
        if k >= self.next:
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
        if k == m.sectors - 1:
            self.mi_hash = self.mi.digest()
            self._advance(self.mi_hash)
        elif k + 1 > self.next:
            self._advance(None)
        else:
            self.sector = k + 1
            self._load(k + 1)

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
        if self.m.encoding == fmt.ENC_RAW:
            self._begin((k + 1) * self.m.sector)

    def _readback(self, k, n):
        return scan(self.slot.area, k * self.m.sector, n, self._rb)

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
        p = self._page
        i = 0
        n = len(mv)
        while i < n:
            take = len(p) - self.wfill
            if take > n - i:
                take = n - i
            p[self.wfill:self.wfill + take] = mv[i:i + take]
            self.wfill += take
            i += take
            if self.wfill == len(p):
                self._flush()

    def _flush(self):
        f = self.wfill
        if not f:
            return
        a = self.slot.area
        off = self.woff
        if off < self.slot.capacity and off % a.sector_size == 0:
            a.erase(off, a.sector_size)
        w = align(f, a.write_size)
        self._fill_erased(self._page, w, f)
        a.write(off, memoryview(self._page)[:w])
        self.woff = off + w
        self.wfill = 0
