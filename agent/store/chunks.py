# A compressed or delta image's sectors, for the slot writer (agent.store.writer.SlotWriter,
# whose base this class is, and whose attributes it uses): each sector's table entry
# checked, the sector made by its mode (fmt.MODE_*) from its chunk (inflated, as it is, or
# an op stream applied to the old image: agent.image.delta) or copied from the running
# slot, checked against the entry (CRC-32, digest) before it is written, then erased,
# written and read back, and the checkpoint moved (the writer's _advance).
#
# Buffers: the chunk's, the sector's and the decoder's (agent.image.inflate.Inflater) are
# made once (reserve) and kept; the op stream's reads of the old slot go through the
# writer's read-back buffer, free while a sector is made.
import binascii
import hashlib

from agent.image import fmt
from agent import errors as E
from agent.errors import OtaError
from agent.image.inflate import Inflater
from agent.store.slot import align, fill_erased, sector_len
from agent.store.journal import RESIDUE


class Chunks:
    """The chunk half of agent.store.writer.SlotWriter (no state of its own)."""

    def reserve(self, sector):
        """Make the buffers a compressed or delta image's sectors of this size are made in
        (a chunk's, a sector's, the decoder's), unless they are there."""
        if self._inf is None or len(self._sec) < sector:  # _inf is made last
            self._chunk = self._sec = self._inf = None
            self._chunk = bytearray(sector + (sector >> 3) + 64)
            self._sec = bytearray(sector)
            self._inf = Inflater(len(self._chunk), fmt.deflate_wbits(sector))

    def release(self):
        """Give the buffers reserve() made back to the heap (a transfer ended)."""
        self._chunk = self._sec = self._inf = self._maker = None

    def _chunk_entry(self, k):
        m = self.m
        e = self._ent
        self.slot.area.read(self._tab + self._esz * k, self._ev)
        off = int.from_bytes(self._e1, "little")
        clen = int.from_bytes(self._e2, "little")
        last = k == m.sectors - 1
        if m.encoding == fmt.ENC_DELTA:
            mode = self._mode = e[28]
            n = sector_len(m, k)
            if mode == fmt.MODE_COPY:
                if clen or off + n > m.base_size or (last and self.epos != m.enc_size):
                    raise OtaError(E.BAD_TABLE, "sector %d copies %d+%d" % (k, off, n))
                self.clen = 0
                return
            if mode > fmt.MODE_DELTA or (mode == fmt.MODE_RAW and clen != n):
                raise OtaError(E.BAD_TABLE, "sector %d mode %d" % (k, mode))
        if off != self.epos or clen == 0 or clen > len(self._chunk) or off + clen > m.enc_size \
                or (last and off + clen != m.enc_size):
            raise OtaError(E.BAD_TABLE, "sector %d chunk %d+%d" % (k, off, clen))
        self.clen = clen
        self._cb = len(self._chunk) - clen  # the chunk is gathered at the buffer's end, so
                                            # that a copy moves the chunk's rest, not the
                                            # buffer's

    def _chunk_done(self):
        m = self.m
        k = self.ck.next
        n = sector_len(m, k)
        out = memoryview(self._sec)[:n]
        chunk = memoryview(self._chunk)[self._cb:]
        self.pos = 0
        if hashlib.sha256(chunk).digest()[:fmt.CHUNK_DIGEST] != self._ent[12:28]:
            raise OtaError(E.SECTOR_CRC, "sector %d: chunk digest" % k)
        mode = self._mode
        try:
            if mode == fmt.MODE_DEFLATE:
                self._inf.into(chunk, out, fmt.deflate_wbits(m.sector))
            elif mode == fmt.MODE_RAW:
                out[:] = chunk
            else:
                self._delta(chunk, out, n)
            bad = binascii.crc32(self._e0, binascii.crc32(out)) != RESIDUE
        except (OtaError, OSError, ValueError, EOFError):  # the last three: DeflateIO's
            bad = True
        if bad:  # corrupted in transit: fetch this chunk again; nothing hashed yet
            raise OtaError(E.SECTOR_CRC, "sector %d" % k)
        self.mi.update(chunk)
        self.epos += self.clen
        self._program(k, n, out)

    def _delta(self, chunk, out, n):
        # out: the sector the op stream in chunk makes from the old payload, whose bytes are
        # read through the read-back buffer (not in use until the sector is written)
        mk = self._maker
        if mk is None:  # once a download: a full image's device never loads the module
            from agent.image.delta import Maker
            mk = self._maker = Maker(self.base.area.read, self.m.base_size, self._rv)
        mk.make(self._inf.open(chunk, fmt.deflate_wbits(self.m.sector)), out, n)
        if not self._inf.end():
            raise OtaError(E.BAD_ENCODING, "op stream past its chunk")

    def _copy(self, k):
        # a delta's sector k made of the old payload's bytes at its entry's offset: checked
        # against the entry's CRC-32 and digest before it is written. They are the running
        # image's bytes, which a fetch cannot mend: another image than the delta's old one
        n = sector_len(self.m, k)
        out = memoryview(self._sec)[:n]
        self.base.area.read(int.from_bytes(self._e1, "little"), out)
        if binascii.crc32(self._e0, binascii.crc32(out)) != RESIDUE or \
                hashlib.sha256(out).digest()[:fmt.CHUNK_DIGEST] != self._ent[12:28]:
            raise OtaError(E.BASE_MISMATCH, "sector %d's old bytes differ" % k)
        self._program(k, n, out)

    def _program(self, k, n, out):
        # sector k's n bytes (out, a view of self._sec) into flash: erased, written, read
        # back; then the checkpoint moves past it
        m = self.m
        a = self.slot.area
        w = align(n, a.write_size)
        fill_erased(a, self._sec, w, n)
        back = memoryview(self._chunk)[:n]
        for _ in range(2):
            a.erase(k * m.sector, m.sector)
            a.write(k * m.sector, memoryview(self._sec)[:w])
            a.read(k * m.sector, back)  # into the chunk's buffer (hashed, done with): one
            if back == out:             # read, and out's CRC-32 is the table's
                break
        else:
            raise OtaError(E.FLASH_IO, "sector %d reads back wrong" % k)
        self._advance(self.mi.digest() if k == m.sectors - 1 else None)
