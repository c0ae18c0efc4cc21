# The slot writer: the parser's sink during a download. It streams the sector table and
# the payload into a slot (agent.store.slot's layout), erasing each sector just before it is
# written, reading each sector back to check its CRC-32, and moving the download's
# checkpoint past it.
#
# The checkpoint is one value, ck.next: the sectors of the payload that are in flash and
# checked, in the state record ck (agent.store.state.State) that the journal saves. The
# writer alone moves it: to 0 when a download starts, one up as each sector passes its
# check (then on_sector lets the owner save the record); the owner reads it to decide a
# resume (agent.update). A deflate image's Manufacturer Image hash state (ck.mi_state) is
# saved with it.
#
# The payload path (on_payload, per block) allocates nothing: one page buffer made here,
# views made once. A raw block that neither completes a page nor ends the payload is copied
# in on_payload itself, one call per block; a sector is read back through a buffer of
# READBACK bytes (the meta area's staging buffer at other times), a few reads per sector.
# A compressed or delta image's sectors are made from their chunks by agent.store.chunks,
# this class's base.
import binascii
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.image import fmt
from agent import errors as E
from agent.errors import OtaError
from agent.store.slot import TRAILER_OFF, TABLE_OFF, align, fill_erased, write_meta, \
    write_trailer, hash_prefix, table_entry, sector_len
from agent.store.state import State
from agent.store.journal import RESIDUE
from agent.store.chunks import Chunks

READBACK = const(2048)  # bytes per read-back read: two reads per 4 KiB sector


class SlotWriter(Chunks):
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
        # the meta area staged for write_meta, then the read-back buffer of each sector;
        # its first page, what the board's check sees of sector 0
        # (and 4 bytes more: a table entry's CRC-32 after the last read of a sector)
        r = max(READBACK, TRAILER_OFF, page)
        self._big = bytearray(r + 4)
        self._rv = memoryview(self._big)[:r]
        self.scratch = self._rv  # lent between operations (agent.store.check reads through it)
        self._rb = self._rv[:page]
        self._lim = 0       # raw: payload bytes from the page being gathered to the page's
                            # end or the payload's, whichever is first (on_payload's test)
        self._ent = bytearray(fmt.TABLE_DELTA_SIZE)
        e = memoryview(self._ent)
        self._e0 = e[0:4]   # the fields of fmt.TABLE_DELTA_FMT (the first also
        self._e1 = e[4:8]   # fmt.TABLE_RAW_FMT's, the first four fmt.TABLE_DEFLATE_FMT's),
        self._e2 = e[8:12]  # read as little-endian u32 without the tuple
                            # struct.unpack_from would allocate
        self.raw = False    # streaming raw payload sectors (checked as each one ends)
        self.clen = 0       # deflate: the length of the chunk being gathered (0: raw)
        self.mi = None      # Manufacturer Image hash of a deflate download (agent.crypto.sha256r)
        self.ck = None      # the state record holding the checkpoint (start, resume)
        self._src = None    # where a chunk is gathered (agent.store.chunks)
        self.on_sector = None
        self.check = None  # board's check of the first payload bytes (e.g. an app image)
        self.collect = None  # board's heap collection (agent.update.Device.begin sets it)
        self.base = None   # delta: the slot holding the old image (the running one)
        self._mode = fmt.MODE_DEFLATE  # how the sector being gathered is made (delta)
        self._maker = None
        self._inf = None   # the chunks' decoder (agent.image.inflate), _src its source
        self._off = self._crc = 0  # _readback's (_crc a made sector's too, chunks): made
                                   # here, so that the object's attributes do not grow
        self.woff = self.send = 0  # (and the chunks' woff, send and _io with them)
        self._io = False

    def start(self, slot, ck=None):
        """Begin a new download into slot: the checkpoint ck.next back to 0. ck: the state
        record the owner saves at each on_sector; None: a record of the writer's own."""
        self.slot = slot
        self.ck = ck if ck is not None else State()
        self.ck.next = 0
        self.raw = False
        self.clen = 0

    def resume(self, slot, p, ck):
        """Continue the download of the image p parses (its manifest verified) into slot,
        whose meta area and sectors below the checkpoint ck.next are in flash; a deflate
        image's hash continues from ck.mi_state. Returns the file offset to go on from."""
        self.slot = slot
        self.ck = ck
        self.m = p.manifest
        self.cose_len = p.cose_len
        self._tab = slot.meta + TABLE_OFF
        self.raw = False
        self.clen = 0
        self._payload_start()
        return self.resume_offset(p)

    def resume_offset(self, p):
        """File offset of the checkpoint in the image p parses: where the download goes on
        after resume() or after a sector that failed its check."""
        m = self.m
        if m.encoding == fmt.ENC_RAW:
            done = self.ck.next * m.sector
            return p.payload_offset() + (done if done < m.size else m.size)
        return p.payload_offset() + self.epos

    # -- parser sink ---------------------------------------------------------

    def on_manifest(self, p):
        s = self.slot
        m = p.manifest
        if m.size > s.capacity:
            raise OtaError(E.TOO_LARGE, "%d > slot %d bytes" % (m.size, s.capacity))
        if m.table_size > s.table_max:
            raise OtaError(E.TOO_LARGE, "sector table %d > %d bytes" % (m.table_size, s.table_max))
        if m.encoding != fmt.ENC_RAW and m.sectors * m.sector > s.capacity:
            raise OtaError(E.LAYOUT_NO_FIT, "last sector ends past the payload area")
        self.m = m
        self.cose_len = p.cose_len
        write_meta(s, p, self._rv[:TRAILER_OFF])
        self._tab = s.meta + TABLE_OFF
        self._begin(self._tab)

    def on_table(self, mv):
        self._stream(mv)

    def on_table_end(self):
        self._flush()
        self._payload_start()

    def on_payload(self, mv):
        if self.raw:  # as _raw, one call less
            f = self.wfill
            e = f + len(mv)
            if e < self._lim:  # inside the page, short of the payload's end: the common case
                self._lo[f:e] = mv  # (a view one page long: a shorter tail to move)
                self.wfill = e
                return
            self._stream(mv)
            if self.woff + self.wfill == self.m.size:
                self._flush()
        elif self.clen:  # deflate: as _deflate, one call less
            e = self.pos + len(mv)
            if e < self.clen:  # inside the chunk: the common case
                self._src.write(mv)
                self.pos = e
                return
            self._deflate(mv)
        elif self.m.encoding == fmt.ENC_RAW:
            self._raw(mv)
        else:
            self._deflate(mv)

    def on_done(self, p):
        if p.trailer is not None:
            write_trailer(self.slot, p.trailer, self._big)

    # -- payload -------------------------------------------------------------

    def _payload_start(self):
        # the payload starts, or goes on from the checkpoint (resume)
        m = self.m
        k = self.ck.next
        self.pos = 0
        self.mi = None
        self._esz = fmt.table_entry_size(m.encoding)
        self._ev = self._ent if self._esz == len(self._ent) else memoryview(self._ent)[:self._esz]
        self._mode = fmt.MODE_DEFLATE  # a delta's entries say otherwise
        if m.encoding == fmt.ENC_RAW:
            self._begin(k * m.sector)
            self.raw = True
            self._load(k)
            return
        self.reserve(m.sector, False, m.chunk_max, m.wbits)
        # deflate: the encoded chunks are not kept, so the Manufacturer Image hash runs in
        # a SHA-256 whose state is saved with every checkpoint; a resume continues it (the
        # module is imported here: a raw download's device never loads it)
        from agent.crypto.sha256r import Sha256
        if k:
            self.mi = Sha256(self.ck.mi_state)
        else:
            self.mi = Sha256()
            hash_prefix(self.slot, self.cose_len, m, self.mi, self._big)
        if k >= m.sectors:
            self.epos = m.enc_size
        elif m.encoding == fmt.ENC_DEFLATE:
            self.epos = table_entry(self.slot, m, k, self._ent)[1]
        else:  # delta: the chunks before sector k's (copied sectors have none)
            e = 0
            for j in range(k):
                e += table_entry(self.slot, m, j, self._ent)[2]
            self.epos = e
        self._load(k)

    def _load(self, k):
        """Sector k's table entry into self._ent (its CRC-32 in self._e0), self.clen (deflate,
        delta), checking chunk order; a delta's copied sectors from k
        on are made here, as they need no payload."""
        m = self.m
        if k >= m.sectors:
            self.raw = False
            return
        if m.encoding == fmt.ENC_RAW:
            self.slot.area.read(self._tab + self._esz * k, self._e0)
            self.send = k * m.sector + sector_len(m, k)  # where sector k ends
            return
        self._chunk_entry(k)
        while self._mode == fmt.MODE_COPY:
            self._copy(k)
            k += 1
            if k == m.sectors:
                return
            self._chunk_entry(k)

    def _raw(self, mv):
        # a page that ends a sector is checked as it is written (_put); the last sector
        # ends inside a page
        self._stream(mv)
        if self.woff + self.wfill == self.m.size:
            self._flush()

    def _sector_end(self):
        k = self.ck.next
        m = self.m
        if not self._readback(k, self.send - k * m.sector):
            self._begin(k * m.sector)  # bytes of the next sector gathered are dropped too
            raise OtaError(E.SECTOR_CRC, "sector %d" % k)
        self._advance(None)

    def _deflate(self, mv):
        i = 0
        n = len(mv)
        while i < n:
            take = self.clen - self.pos
            if take > n - i:
                take = n - i
            self._src.write(mv if take == n else mv[i:i + take])
            self.pos += take
            i += take
            if self.pos == self.clen:
                self._chunk_done()

    def _advance(self, mi):
        # the sector at the checkpoint is in flash and checked: the checkpoint moves past
        # it, and the next sector's entry is loaded (for a copied sector, by the caller,
        # _load, which goes on with the sectors after it)
        ck = self.ck
        k = ck.next
        if k == 0 and self.check is not None:  # sector 0 is in flash and its CRC good
            self.slot.area.read(0, self._rb)
            self.check(self._rb)
        ck.next = k + 1  # the checkpoint: sectors 0..k are in flash and checked
        if self.mi is not None:
            self.mi.save(ck.mi_state)
        self.pos = 0
        if self.on_sector:
            self.on_sector(k + 1, mi)
        if self._mode != fmt.MODE_COPY:
            self._load(k + 1)

    def _readback(self, k, n):
        # whether sector k's first n bytes as read from flash have the CRC-32 of its table
        # entry self._e0: the CRC-32 of the bytes followed by the entry's is then RESIDUE, a
        # small int. The entry follows the last read in the buffer, so that one CRC-32 only,
        # after the reads before the last, is a u32 (a heap int on a 32-bit port).
        self._off = k * self.m.sector
        self._crc = 0
        b = self._rv
        while n > len(b):
            self._scan(b)
            n -= len(b)
        if n == len(b):
            self.slot.area.read(self._off, b)
            b = self._big
        else:  # the last sector's end
            b = memoryview(self._big)[:n + 4]
            self.slot.area.read(self._off, b[:n])
        b[n:n + 4] = self._e0
        return binascii.crc32(b, self._crc) == RESIDUE

    def _scan(self, b):
        self.slot.area.read(self._off, b)
        self._off += len(b)
        self._crc = binascii.crc32(b, self._crc)

    # -- sequential aligned writer -------------------------------------------

    def _begin(self, off):
        self.woff = off
        self.wfill = 0
        self._limit()

    def _limit(self):
        # _lim for the page that starts at woff (raw payload; meaningless elsewhere)
        r = self.m.size - self.woff
        self._lim = r if r < self._pg else self._pg

    def _stream(self, mv):
        n = len(mv)
        f = self.wfill  # below one page between calls
        if f + n > self._cap:
            self._long(mv, n)
            return
        self._buf[f:f + n] = mv
        f += n
        pg = self._pg
        while f >= pg:  # the first page is full: write it, move what follows to the front
            self.wfill = f  # (for _put: a failed sector's check drops the rest)
            self._put(self._lo, pg)
            f -= pg
            if f > 0:
                self._buf[0:pg] = self._hi
        self.wfill = f

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
        fill_erased(self.slot.area, self._buf, w, f)
        self.wfill = 0
        self._put(self._lo if w == self._pg else self._pv[:w], w)

    def _put(self, data, w):
        a = self.slot.area
        off = self.woff
        if off < self.slot.capacity and off % a.sector_size == 0:
            a.erase(off, a.sector_size)
        a.write(off, data)
        off += w
        self.woff = off
        if self.raw:
            w = self.m.size - off  # _limit, one call less
            self._lim = w if w < self._pg else self._pg
            if off >= self.send:
                self._sector_end()
