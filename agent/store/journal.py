# Power-safe state journal: append-only full snapshots in a flash area, never rewritten in
# place.
#
# The area is split into sectors; each sector holds `slots_per_sector` record slots of
# `record_size` bytes (a multiple of the flash write unit). A record:
REC_FMT = "<BBHI"
#   B    magic 0xA5 (neither erased value, so a record never looks erased)
#   B    record format version, 1
#   H    payload length (a journal of another payload length is not misread)
#   I    sequence number, 1 for the first record, +1 per save
REC_HDR = 8
#   then the payload, zero padding up to record_size - 4, and
CRC_FMT = "<I"
#   I    CRC-32 of every byte of the slot before it: the CRC-32 of the whole slot is then
#        RESIDUE, a check that makes no u32 int (a heap object on a 32-bit port)
#
# Records are appended in slot order into the current sector; when it is full the next
# sector (cyclically) is erased and writing continues at its first slot. Load scans every
# slot and takes the valid record (magic, version, length and CRC good) with the highest
# sequence number. The writer resumes in that record's sector after its last non-erased slot,
# so a torn record is skipped and never written over; a sector is written only after an
# erase of it has completed, and it is never the sector holding the newest record. After a
# power cut during any write or erase, load returns the newest record that was complete.
import struct
from binascii import crc32
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.errors import OtaError, BAD_LAYOUT, JOURNAL_CORRUPT, JOURNAL_FULL, FLASH_IO

MAGIC = const(0xA5)
VERSION = const(1)
CRC_SIZE = const(4)
RESIDUE = const(0x2144DF1C)  # CRC-32 of any bytes followed by their CRC-32 (little-endian)
_SEQ_MAX = const(0xFFFFFFFF)


class Journal:
    """Journal(area, payload_len): state snapshots of payload_len bytes in a flash Area.

    After load(): seq is the newest record's sequence number (0 when there is none) and
    bad is the number of non-erased slots that hold no valid record (torn, corrupt or
    foreign). records and erases count the writes and sector erases made by this object.
    """

    def __init__(self, area, payload_len):
        ws = area.write_size
        rs = REC_HDR + payload_len + CRC_SIZE
        rs = (rs + ws - 1) // ws * ws
        ss = area.sector_size
        if payload_len < 0 or payload_len > 0xFFFF:
            raise OtaError(BAD_LAYOUT, "journal payload of %d bytes" % payload_len)
        if area.size // ss < 2 or rs > ss:
            raise OtaError(BAD_LAYOUT, "journal of %d-byte records in %d sectors of %d"
                           % (rs, area.size // ss, ss))
        self.area = area
        self.payload_len = payload_len
        self.record_size = rs
        self.sectors = area.size // ss
        self.slots_per_sector = ss // rs
        self._buf = bytearray(rs)
        self._mv = memoryview(self._buf)
        self._body = self._mv[0:rs - CRC_SIZE]  # views made once: save() allocates nothing
        self._seq = self._mv[4:REC_HDR]          # REC_FMT's sequence number
        # where the next payload may be packed in place: save(payload) copies nothing then
        # (the state needs no buffer of its own); load() and save() overwrite it
        self.payload = self._mv[REC_HDR:REC_HDR + payload_len]
        self._e = bytes((area.erased,))
        self.seq = 0
        self.bad = 0
        self.records = 0
        self.erases = 0
        self._loaded = False
        self._used = 0  # highest sequence number written since load
        self._sector = 0
        self._slot = 0
        self._erase = True  # the sector at _sector must be erased before _slot 0 is written

    def _offset(self, sector, slot):
        return sector * self.area.sector_size + slot * self.record_size

    def _valid(self):
        # the slot in _buf: its sequence number when it holds a valid record, else -1
        b = self._buf
        if b[0] != MAGIC or b[1] != VERSION:
            return -1
        if b[2] | b[3] << 8 != self.payload_len:  # REC_FMT's payload length
            return -1
        if crc32(self._buf) != RESIDUE:  # CRC_FMT
            return -1
        return int.from_bytes(self._seq, "little")

    def _erased(self):
        return self._buf.count(self._e) == self.record_size

    def load(self):
        """Newest valid payload as bytes, or None when the journal holds none. Positions the
        writer. Garbage in the area is skipped, never raised on; flash errors propagate."""
        area = self.area
        n = self.slots_per_sector
        best = -1
        best_sector = 0
        best_slot = 0
        best_last = 0
        bad = 0
        for sector in range(self.sectors):
            last = -1
            for slot in range(n):
                area.read(self._offset(sector, slot), self._buf)
                seq = self._valid()
                if seq >= 0:
                    last = slot
                    if seq > best:
                        best = seq
                        best_sector = sector
                        best_slot = slot
                elif not self._erased():
                    last = slot
                    bad += 1
            if best >= 0 and best_sector == sector:
                best_last = last
        self.bad = bad
        self._loaded = True
        self._used = 0
        if best < 0:
            self.seq = 0
            self._sector = 0
            self._slot = 0
            self._erase = True
            return None
        self.seq = best
        self._sector = best_sector
        self._slot = best_last + 1
        self._erase = False
        area.read(self._offset(best_sector, best_slot), self._buf)
        if self._valid() != best:
            # the record changed between two reads: the flash is not holding data
            raise OtaError(FLASH_IO, "journal record at sector %d slot %d unstable"
                           % (best_sector, best_slot))
        return bytes(self._mv[REC_HDR:REC_HDR + self.payload_len])

    def save(self, payload):
        """Append payload (bytes, or self.payload packed in place) as the record seq + 1.
        After a power cut during save, load() returns either this payload or the one
        before it."""
        if len(payload) != self.payload_len:
            raise OtaError(JOURNAL_CORRUPT, "payload of %d bytes, journal holds %d"
                           % (len(payload), self.payload_len))
        if not self._loaded:
            if payload is self.payload:
                payload = bytes(payload)  # load() reads the records through it
            self.load()
        seq = max(self.seq, self._used) + 1
        if seq > _SEQ_MAX:
            raise OtaError(JOURNAL_FULL, "sequence number exhausted")
        if self._slot >= self.slots_per_sector or self._erase:
            self._next_sector()
        self._record(payload, seq)
        off = self._offset(self._sector, self._slot)
        # the slot and the sequence number are used from here on, whatever the write does
        self._slot += 1
        self._used = seq
        self.area.write(off, self._buf)
        self.records += 1
        self.area.read(off, self._buf)
        if self._valid() != seq:
            raise OtaError(FLASH_IO, "journal record at 0x%X did not verify" % off)
        self.seq = seq

    def _next_sector(self):
        # move on to the next sector when this one is full; erase it before its first record
        if self._slot >= self.slots_per_sector:
            self._sector = (self._sector + 1) % self.sectors
            self._slot = 0
            self._erase = True
        if self._erase:
            self.area.erase(self._offset(self._sector, 0), self.area.sector_size)
            self.erases += 1
            self._erase = False

    def _record(self, payload, seq):
        # the record for payload with sequence number seq, into _buf (in small steps: each
        # function's frame stays on the C stack under MicroPython)
        n = REC_HDR + self.payload_len
        self._head(seq)
        if payload is not self.payload:  # (else it is in place)
            self._buf[REC_HDR:n] = payload
        while n < self.record_size - CRC_SIZE:
            self._buf[n] = 0
            n += 1
        self._seal(n)

    def _head(self, seq):
        struct.pack_into(REC_FMT, self._buf, 0, MAGIC, VERSION, self.payload_len, seq)

    def _seal(self, n):
        struct.pack_into(CRC_FMT, self._buf, n, crc32(self._body))

    def format(self):
        """Erase the whole journal area (factory provisioning). The journal is then empty."""
        self.area.erase(0, self.area.size)
        self.erases += self.sectors
        self.seq = 0
        self.bad = 0
        self._loaded = True
        self._used = 0
        self._sector = 0
        self._slot = 0
        self._erase = False
