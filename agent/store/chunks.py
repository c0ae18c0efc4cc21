# A compressed or delta image's sectors, for the slot writer (agent.store.writer.SlotWriter,
# whose base this class is, and whose attributes it uses): each sector's table entry
# checked, the sector made by its mode (fmt.MODE_*) from its chunk (inflated, as it is, or
# an op stream applied to the old image: agent.image.delta) or copied from the running
# slot, and streamed into its erased sector as it is made, piece by piece, its CRC-32 (and
# a copy's digest) run over the pieces; then read back, and the checkpoint moved (the
# writer's _advance) once both match the entry. A sector whose made bytes do not match
# stays where it is (the inactive slot; the checkpoint before it): erased and written
# again when its chunk comes again (a resume, the refetch).
#
# Buffers: no sector's. The decoder's (agent.image.inflate.Inflater) is made once
# (reserve) and kept. A chunk is held once, in the decoder's source (_src): gathered there
# block by block (the writer's on_payload), decoded from it, and read out of it in pieces
# where its bytes are needed (its digest, the MI hash, a raw sector). The pieces, the
# sector's pieces on their way to flash and its read-back all go through the writer's
# read-back buffer (_rv, a few pieces a sector), each in its turn; a delta's reads of the
# old slot go through its page buffer (_buf), free while the payload is made.
import binascii
import hashlib

from agent.image import fmt
from agent import errors as E
from agent.errors import OtaError
from agent.store.slot import align, fill_erased, sector_len
from agent.store.journal import RESIDUE


class Chunks:
    """The chunk half of agent.store.writer.SlotWriter (no state of its own)."""

    def reserve(self, sector, delta, cap, wbits):
        """Make the decoder compressed or delta sectors of this size are made with, with its
        source, where chunks of up to cap bytes are gathered (the manifest's chunk_max), and
        its window of 2**wbits bytes (the manifest's wbits), unless one as large is there
        (for any image: fmt.chunk_cap(sector) and fmt.deflate_wbits(sector)); the writer's
        collect() first, when it has one (the board's: see agent.update.Device), and before each
        chunk's decoder in a small heap (agent.image.inflate.small). delta: a delta
        image's, whose op streams' code (agent.image.delta, and its native byte add where
        the port has it) is loaded here too, before the decoder, rather than at its first
        delta sector, where the module's objects would land in the holes its window needs;
        so is the resumable hash's (agent.crypto.sha256r, its table) for any image.
        A failed allocation leaves nothing made (MemoryError)."""
        inf = self._inf
        if inf is None or inf.cap < cap or inf.wbits < wbits:
            self._inf = self._src = None
            collect = self.collect
            if collect is not None:
                collect()
            if delta:
                from agent.image.delta import pick
                pick()
            from agent.crypto.sha256r import engine
            engine()  # the Manufacturer Image hash's code and its 256-byte schedule, too
            from agent.image import inflate  # (a raw download never loads it)
            try:  # the source (the largest), then the window and tables: Inflater()
                self._inf = inflate.Inflater(cap, wbits)
            except MemoryError:
                self._inf = self._src = None
                raise
            self._src = self._inf.src
            if collect is not None and inflate.small():
                self._inf.collect = collect

    def release(self):
        """Give the buffers reserve() made back to the heap (a transfer ended)."""
        self._inf = self._src = self._maker = None

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
        if off != self.epos or clen == 0 or clen > m.chunk_max or off + clen > m.enc_size \
                or (last and off + clen != m.enc_size):
            raise OtaError(E.BAD_TABLE, "sector %d chunk %d+%d" % (k, off, clen))
        self.clen = clen
        self._src.seek(0)  # the chunk is gathered from the source's start

    def _chunk_done(self):
        m = self.m
        k = self.ck.next
        self.pos = 0
        h = hashlib.sha256()
        self._pieces(h.update)
        if h.digest()[:fmt.CHUNK_DIGEST] != self._ent[12:28]:
            self._refetch(k, ": chunk digest")
        if not self._program(k, sector_len(m, k)):
            self._refetch(k, "")  # corrupted in transit: fetched again; nothing hashed yet
        self._pieces(self.mi.update)
        self.epos += self.clen
        self._advance(self.mi.digest() if k == m.sectors - 1 else None)

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

    def _copy(self, k):
        # a delta's sector k made of the old payload's bytes at its entry's offset. They are
        # the running image's bytes, which a fetch cannot mend: another image than the
        # delta's old one
        m = self.m
        if not self._program(k, sector_len(m, k)):
            raise OtaError(E.BASE_MISMATCH, "sector %d's old bytes differ" % k)
        self._advance(self.mi.digest() if k == m.sectors - 1 else None)

    def _program(self, k, n):
        # sector k (n bytes) erased, then made by its mode straight into it (_make), and
        # read back (the writer's _readback): True once both match the entry, False when the
        # bytes made do not; made again once when only the read-back differs
        m = self.m
        a = self.slot.area
        for _ in range(2):
            a.erase(k * m.sector, m.sector)
            self.woff = k * m.sector
            self.send = self.woff + n
            self._crc = 0
            if not self._make(n):
                return False
            if self._readback(k, n):
                return True
        raise OtaError(E.FLASH_IO, "sector %d reads back wrong" % k)

    def _make(self, n):
        # the sector's n bytes, by its mode, given to _piece in order: whether they were
        # all made and match the entry (its CRC-32; a copy's, its digest too)
        mode = self._mode
        if mode == fmt.MODE_COPY:
            return self._copied(n)
        self._io = False  # True inside the flash's calls: what they raise is the flash's
        try:
            if mode == fmt.MODE_DEFLATE:
                self._inf.into(self.clen, n, self._rv, self._piece, self.m.wbits)
            elif mode == fmt.MODE_RAW:  # as long as the sector (_chunk_entry)
                self._pieces(self._piece)
            else:
                self._delta(n)
        except (OtaError, OSError, ValueError, EOFError) as e:  # the last three: DeflateIO's
            if self._io or (isinstance(e, OtaError) and e.reason != E.BAD_ENCODING):
                raise  # the flash's (a board's driver may raise OSError too), not the chunk's
            return False
        return self.woff == self.send and self._crc == RESIDUE

    def _copied(self, n):
        # _make of a copied sector: the old payload's bytes, their digest run on as well
        h = hashlib.sha256()
        read = self.base.area.read
        off = int.from_bytes(self._e1, "little")
        b = self._rv
        while n:
            p = b if n >= len(b) else b[:n]
            read(off, p)
            h.update(p)
            self._piece(p)
            off += len(p)
            n -= len(p)
        return self._crc == RESIDUE and h.digest()[:fmt.CHUNK_DIGEST] == self._ent[12:28]

    def _piece(self, mv):
        # the sector's next bytes, mv: the read-back buffer from its start (each piece but
        # the last as long as it), written at woff. The CRC-32 runs on; after the last piece
        # the entry's follows its bytes in the buffer, so that a match leaves RESIDUE, a
        # small int (the pieces before it make a u32 each: a heap int on a 32-bit port)
        self._io = True
        n = len(mv)
        off = self.woff
        a = self.slot.area
        if off + n < self.send:
            self._crc = binascii.crc32(mv, self._crc)
            a.write(off, mv)
            self.woff = off + n
            self._io = False
            return
        b = self._big
        b[n:n + 4] = self._e0
        self._crc = binascii.crc32(b if n + 4 == len(b) else memoryview(b)[:n + 4], self._crc)
        w = align(n, a.write_size)
        fill_erased(a, b, w, n)
        a.write(off, mv if w == n else memoryview(b)[:w])
        self.woff = off + n
        self._io = False

    def _old(self, off, buf):
        # a delta's read of the old payload (the running slot), for its Maker
        self._io = True
        self.base.area.read(off, buf)
        self._io = False

    def _delta(self, n):
        # the sector the chunk's op stream makes from the old payload, whose bytes are read
        # through the page buffer (not in use while the payload is made)
        mk = self._maker
        if mk is None:  # once a download: a full image's device never loads the module
            from agent.image.delta import Maker
            mk = self._maker = Maker(self._old, self.m.base_size, self._buf,
                                     self._rv)
        mk.make(self._inf.open(self.clen, self.m.wbits), n, self._piece)
        if not self._inf.end():
            raise OtaError(E.BAD_ENCODING, "op stream past its chunk")
