# agent.store.slot (the layout of a slot's meta area) and agent.store.writer (the slot
# writer, the parser's sink): blocks of any size, raw and deflate images, sectors that read
# back wrong, and a download resumed from its checkpoint.
import struct

from agent.image import fmt
from agent.image.parser import Parser
from agent.store import slot as L
from agent.store import check as verify
from agent.store.state import State
from agent.store.writer import SlotWriter
from agent.store import writer
from agent.errors import OtaError, BAD_LAYOUT, SECTOR_CRC, FLASH_IO
from hal.flash import Area
from devkit import Rig
from tutil import eq, raises, same_as_file, Image

RAW = "core_v2.ota"
DEFLATE = "core_v2z.ota"
FIRMWARE = "core_v2.bin"  # what both install


def test_meta_layout_is_derived_from_the_formats():
    eq(L.META_SIZE, struct.calcsize(L.META_FMT), "meta record")
    assert L.HDR_OFF >= L.META_SIZE
    eq(L.COSE_OFF, L.HDR_OFF + fmt.HDR_MAX, "manifest right after the largest header")
    assert L.TRAILER_OFF >= L.COSE_OFF + fmt.MANIFEST_MAX
    assert L.TABLE_OFF >= L.TRAILER_OFF + fmt.TRAILER_SIZE
    for off in (L.HDR_OFF, L.TRAILER_OFF, L.TABLE_OFF):
        eq(off % 16, 0, "aligned")
    # the meta areas of slots already in flash are read where they were written
    eq((L.HDR_OFF, L.COSE_OFF, L.TRAILER_OFF, L.TABLE_OFF), (16, 85, 608, 688), "offsets")


def test_slot_sizes_and_refused_layouts():
    r = Rig()
    a = r.board.slots[1].area
    s = L.Slot(a, 2 * a.sector_size, 1)
    eq(s.capacity, a.size - 2 * a.sector_size, "capacity")
    eq(s.meta, s.capacity, "meta area at the end")
    eq(s.table_max, 2 * a.sector_size - L.TABLE_OFF, "room for the table")
    for meta in (0, a.sector_size // 2, a.sector_size + 1, a.size):
        raises(BAD_LAYOUT, L.Slot, a, meta, 1)


class Sink:
    """The parser's sink: a SlotWriter into a slot, optionally resuming from ck."""

    def __init__(self, slot, ck=None, resume=False, page=256):
        self.w = SlotWriter(page)
        self.slot = slot
        self.ck = ck if ck is not None else State()
        self.resume = resume
        self.sectors = []   # (next, mi) as on_sector reports them
        self.mi = None
        self.w.on_sector = self._on_sector

    def _on_sector(self, nxt, mi):
        eq(nxt, self.ck.next, "the checkpoint moved before on_sector")
        self.sectors.append(nxt)
        if mi is not None:
            self.mi = mi

    def on_manifest(self, p):
        if self.resume:
            return self.w.resume(self.slot, p, self.ck)
        self.w.start(self.slot, self.ck)
        return self.w.on_manifest(p)

    def on_table(self, mv):
        self.w.on_table(mv)

    def on_table_end(self):
        self.w.on_table_end()

    def on_payload(self, mv):
        self.w.on_payload(mv)

    def on_done(self, p):
        self.w.on_done(p)


def _feed(p, img, sizes, start=0, stop=None, damage=None):
    """Feed img from start in blocks of the sizes given, in turn, until the parser is done
    (or past stop), the byte at offset damage flipped on its way; the parser may jump
    (resume). Returns the offsets jumped to."""
    off = start
    i = 0
    jumps = []
    while p.state != 6 and (stop is None or off < stop):
        blk = img[off:off + sizes[i % len(sizes)]]
        i += 1
        n = len(blk)
        if damage is not None and off <= damage < off + n:
            blk = bytearray(blk)
            blk[damage - off] ^= 0x01
        p.feed(blk)
        if p.pos != off + n:
            jumps.append(p.pos)
        off = p.pos
    return jumps


def _installed(r, name, sink):
    slot = r.board.slots[1]
    same_as_file(FIRMWARE, slot.area.read, name)
    m = verify.check(slot, r.dev.policy(), None, sink.mi).manifest
    eq(sink.sectors, list(range(1, m.sectors + 1)), "one checkpoint per sector")
    eq(sink.ck.next, m.sectors, "checkpoint at the end")
    return m


def test_blocks_of_any_size_raw_and_deflate():
    for name in (RAW, DEFLATE):
        for sizes in ((1, 7, 48, 63), (255, 256, 257), (4097,), (5000, 3)):
            r = Rig()
            img = Image(name)
            sink = Sink(r.board.slots[1])
            p = Parser(r.dev.policy(), sink)
            eq(_feed(p, img, sizes), [], "no jump")
            m = _installed(r, name, sink)
            if m.encoding == fmt.ENC_DEFLATE:
                hl = fmt.parse_header(img[:256]).length
                eq(sink.mi, img.sha256(hl), "Manufacturer Image hash")
            else:
                eq(sink.mi, None, "a raw image's hash comes from flash")


def test_one_writer_for_deflate_then_raw_then_deflate():
    # a writer kept across downloads of either encoding: its staging and read-back buffer
    # is the one made with it (while the heap is least cut up), whatever the encoding
    r = Rig()
    slot = r.board.slots[1]
    sink = Sink(slot)
    big = sink.w._big
    eq(len(big), writer.READBACK + 4, "a raw image's read-back and a table entry")
    for name in (DEFLATE, RAW, DEFLATE):
        sink.sectors = []
        p = Parser(r.dev.policy(), sink)
        eq(_feed(p, Image(name), (48,)), [], "no jump")
        _installed(r, name, sink)
        assert sink.w._big is big, name


def test_page_sizes():
    for page in (16, 64, 4096):
        r = Rig(write_size=16)
        sink = Sink(r.board.slots[1], page=page)
        _feed(Parser(r.dev.policy(), sink), Image(RAW), (48,))
        _installed(r, RAW, sink)


class BadWrites(Area):
    """An area over another whose writes into sector `bad` store one bit flipped, `times`
    times (a failing flash cell, or a write that went wrong): in the middle of what is
    written, or with `at`, only in a write at that offset, at its byte `byte`."""

    def __init__(self, area, bad, times, at=None, byte=0):
        Area.__init__(self, area.flash, area.base, area.size)
        self.bad = bad
        self.times = times
        self.at = at
        self.byte = byte
        self.hits = 0

    def write(self, offset, data):
        if self.times and offset // self.sector_size == self.bad \
                and (self.at is None or offset == self.at):
            self.times -= 1
            self.hits += 1
            data = bytearray(data)
            data[len(data) // 2 if self.at is None else self.byte] ^= 0x10
        Area.write(self, offset, data)


def test_raw_sector_that_reads_back_wrong_is_written_again_from_its_start():
    r = Rig()
    slot = r.board.slots[1]
    slot.area = BadWrites(slot.area, 2, 1)
    img = Image(RAW)
    sink = Sink(slot)
    p = Parser(r.dev.policy(), sink)
    try:
        _feed(p, img, (48,))
        raise AssertionError("a sector that reads back wrong passed")
    except OtaError as e:
        eq(e.reason, SECTOR_CRC, "reason")
    eq(sink.ck.next, 2, "the checkpoint stays before the bad sector")
    off = sink.w.resume_offset(p)
    eq(off, p.payload_offset() + 2 * 4096, "fetched again from the sector's start")
    p.seek(off)
    _feed(p, img, (48,), off)
    _installed(r, RAW, sink)
    eq(slot.area.hits, 1, "one bad write")


def test_raw_sector_read_back_finds_a_bad_byte_in_any_read():
    # the read-back reads a sector through a buffer of READBACK bytes and checks the
    # CRC-32 of all of it with the table entry's bytes after the last read: a bad bit is
    # found in the first page, a page in the middle, the first byte after a read's end,
    # the last page, and the last, short sector
    rb = writer.READBACK
    last = 5 * 4096  # core_v2's sixth and last sector holds 100 bytes
    for at, byte in ((4096, 0), (4096 + 1024, 17), (4096 + rb, 0), (4096 + rb - 256, 255),
                     (2 * 4096 - 256, 255), (last, 99)):
        r = Rig()
        slot = r.board.slots[1]
        slot.area = BadWrites(slot.area, at // 4096, 1, at, byte)
        img = Image(RAW)
        sink = Sink(slot)
        p = Parser(r.dev.policy(), sink)
        try:
            _feed(p, img, (48,))
            raise AssertionError("a bad byte at %d passed" % (at + byte))
        except OtaError as e:
            eq(e.reason, SECTOR_CRC, "reason")
        k = at // 4096
        eq(sink.ck.next, k, "the checkpoint stays before the bad sector")
        off = sink.w.resume_offset(p)
        eq(off, p.payload_offset() + k * 4096, "fetched again from the sector's start")
        p.seek(off)
        _feed(p, img, (48,), off)
        _installed(r, RAW, sink)
        eq(slot.area.hits, 1, "one bad write")


def test_deflate_sector_is_written_twice_then_refused():
    # (the sector is written in pieces as it is made: the bad write is the one at its start)
    for times, ok in ((1, True), (2, False)):
        r = Rig()
        slot = r.board.slots[1]
        slot.area = BadWrites(slot.area, 1, times, 4096)
        sink = Sink(slot)
        p = Parser(r.dev.policy(), sink)
        erases = r.flash.erases
        try:
            _feed(p, Image(DEFLATE), (63,))
        except OtaError as e:
            assert not ok, e
            eq(e.reason, FLASH_IO, "reason")
            eq(sink.ck.next, 1, "checkpoint")
            continue
        assert ok, "a sector that never reads back right passed"
        _installed(r, DEFLATE, sink)
        m = verify.read_meta(slot).manifest
        eq(r.flash.erases - erases, m.sectors + 1 + 1, "the bad sector erased twice")


def test_deflate_chunk_damaged_in_transit_is_fetched_again():
    r = Rig()
    img = Image(DEFLATE)
    sink = Sink(r.board.slots[1])
    p = Parser(r.dev.policy(), sink)
    _feed(p, img, (63,), 0, 1000)
    eq(p.state, 4, "in the payload")
    at = p.payload_offset() + 5000
    try:
        _feed(p, img, (63,), p.pos, None, at)
        raise AssertionError("a damaged chunk passed")
    except OtaError as e:
        eq(e.reason, SECTOR_CRC, "reason")
    off = sink.w.resume_offset(p)
    assert p.payload_offset() < off <= at, "fetched again from the chunk's start"
    p.seek(off)
    _feed(p, img, (63,), off)
    _installed(r, DEFLATE, sink)
    eq(sink.mi, img.sha256(fmt.parse_header(img[:256]).length), "the damaged bytes not hashed")


def test_resume_from_a_checkpoint():
    for name in (RAW, DEFLATE):
        r = Rig()
        img = Image(name)
        slot = r.board.slots[1]
        ck = State()
        first = Sink(slot, ck)
        p = Parser(r.dev.policy(), first)
        _feed(p, img, (48,), 0, len(img) // 2)  # then power is cut
        done = ck.next
        assert 0 < done < 5, done
        saved = bytes(ck.mi_state)
        ss = r.layout.sector_size
        base = r.layout.slot_off[1] // ss
        erases = list(r.flash.sector_erases)
        # after the reset: the same image, the checkpoint as the journal kept it
        ck2 = State()
        ck2.next = done
        ck2.mi_state[:] = saved
        second = Sink(slot, ck2, resume=True)
        p = Parser(r.dev.policy(), second)
        jumps = _feed(p, img, (48,))
        eq(len(jumps), 1, "one jump")
        if name == RAW:
            eq(jumps[0], p.payload_offset() + done * ss, "to the checkpoint's sector")
        for k in range(done):
            eq(r.flash.sector_erases[base + k], erases[base + k], "sector %d kept" % k)
        second.sectors[0:0] = first.sectors[:done]
        if second.mi is None:
            second.mi = first.mi
        _installed(r, name, second)
        if name == DEFLATE:
            eq(second.mi, img.sha256(fmt.parse_header(img[:256]).length), "hash continued")


def test_a_new_download_starts_the_checkpoint_at_zero():
    r = Rig()
    ck = State()
    ck.next = 3
    w = SlotWriter()
    w.start(r.board.slots[1], ck)
    eq(ck.next, 0, "checkpoint")
    w.start(r.board.slots[1])
    eq(w.ck.next, 0, "a writer on its own keeps its own record")
