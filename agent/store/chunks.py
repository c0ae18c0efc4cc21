# A compressed or delta image's sectors, for the slot writer (agent.store.writer.SlotWriter,
# whose base this class is, and whose attributes it uses): each sector's table entry
# checked, the sector made by its mode (fmt.MODE_*) from its chunk (inflated, as it is, or
# an op stream applied to the old image: agent.image.delta) or copied from the running
# slot, checked against the entry (CRC-32, digest) before it is written, then erased,
# written and read back, and the checkpoint moved (the writer's _advance).
#
# Buffers: the sector's and the decoder's (agent.image.inflate.Inflater) are made once
# (reserve) and kept. A chunk is held once, in the decoder's source (_src): gathered there
# block by block (the writer's on_payload), decoded from it, and read out of it in pieces
# where its bytes are needed (its digest, the MI hash, a delta's raw sector). The pieces,
# the op stream's reads of the old slot and the sector's read-back all go through the
# writer's read-back buffer (_rv), free while a sector is made, each in its turn.
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
        (a sector's, the decoder's with its source, where the chunks are gathered), unless
        they are there."""
        if self._inf is None or len(self._sec) < sector:  # _inf is made last
            self._sec = self._inf = self._src = None
            self._sec = bytearray(sector)
            self._inf = Inflater(sector + (sector >> 3) + 64, fmt.deflate_wbits(sector))
            self._src = self._inf.src

    def release(self):
        """Give the buffers reserve() made back to the heap (a transfer ended)."""
        self._sec = self._inf = self._src = self._maker = None

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
        if off != self.epos or clen == 0 or clen > self._inf.cap or off + clen > m.enc_size \
                or (last and off + clen != m.enc_size):
            raise OtaError(E.BAD_TABLE, "sector %d chunk %d+%d" % (k, off, clen))
        self.clen = clen
        self._src.seek(0)  # the chunk is gathered from the source's start

    def _chunk_done(self):
        m = self.m
        k = self.ck.next
        n = sector_len(m, k)
        out = memoryview(self._sec)[:n]
        self.pos = 0
        h = hashlib.sha256()
        self._pieces(h.update)
        if h.digest()[:fmt.CHUNK_DIGEST] != self._ent[12:28]:
            self._refetch(k, ": chunk digest")
        mode = self._mode
        try:
            if mode == fmt.MODE_DEFLATE:
                self._inf.into(self.clen, out, fmt.deflate_wbits(m.sector))
            elif mode == fmt.MODE_RAW:  # as long as the sector (_chunk_entry)
                self._src.seek(0)
                self._src.readinto(out)
            else:
                self._delta(out, n)
            bad = binascii.crc32(self._e0, binascii.crc32(out)) != RESIDUE
        except (OtaError, OSError, ValueError, EOFError):  # the last three: DeflateIO's
            bad = True
        if bad:  # corrupted in transit: fetch this chunk again; nothing hashed yet
            self._refetch(k, "")
        self._pieces(self.mi.update)
        self.epos += self.clen
        self._program(k, n)

    def _refetch(self, k, why):
        # sector k's chunk is bad: agent.update fetches it again, gathered from the start
        self._src.seek(0)
        raise OtaError(E.SECTOR_CRC, "sector %d%s" % (k, why))

    def _pieces(self, fn):
        # the chunk's bytes out of the source, piece by piece through the read-back buffer,
        # each given to fn
        s = self._src
        s.seek(0)
        b = self._rv
        n = self.clen
        while n > len(b):
            s.readinto(b)
            fn(b)
            n -= len(b)
        b = b[:n]
        s.readinto(b)
        fn(b)

    def _delta(self, out, n):
        # out: the sector the chunk's op stream makes from the old payload, whose bytes are
        # read through the read-back buffer (not in use until the sector is written)
        mk = self._maker
        if mk is None:  # once a download: a full image's device never loads the module
            from agent.image.delta import Maker
            mk = self._maker = Maker(self.base.area.read, self.m.base_size, self._rv)
        mk.make(self._inf.open(self.clen, fmt.deflate_wbits(self.m.sector)), out, n)
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
        self._program(k, n)

    def _program(self, k, n):
        # sector k's n bytes (self._sec's, their CRC-32 the entry's) into flash: erased,
        # written, read back (the writer's _readback); then the checkpoint moves past it
        m = self.m
        a = self.slot.area
        w = align(n, a.write_size)
        fill_erased(a, self._sec, w, n)
        for _ in range(2):
            a.erase(k * m.sector, m.sector)
            a.write(k * m.sector, memoryview(self._sec)[:w])
            if self._readback(k, n):
                break
        else:
            raise OtaError(E.FLASH_IO, "sector %d reads back wrong" % k)
        self._advance(self.mi.digest() if k == m.sectors - 1 else None)
