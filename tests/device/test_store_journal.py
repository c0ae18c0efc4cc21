import struct

from binascii import crc32

from agent.errors import BAD_LAYOUT, JOURNAL_CORRUPT, JOURNAL_FULL, FLASH_IO
from agent.store.journal import Journal, REC_FMT, REC_HDR, CRC_FMT, MAGIC, RESIDUE
from hal.flash import Area
from hal.sim.nor import NorFlash, PowerCut
from tutil import raises, eq
import tutil

GEOMETRIES = ((1, 0xFF), (4, 0xFF), (8, 0xFF), (16, 0xFF),
              (1, 0x00), (4, 0x00), (8, 0x00), (16, 0x00))


def payload(i, n=12):
    # distinct for every i; i = 0 is "no record"
    if i == 0:
        return None
    b = bytearray(n)
    for k in range(n):
        b[k] = (i * 31 + k * 7 + (i >> 8)) & 0xFF
    struct.pack_into("<H", b, 0, i)
    return bytes(b)


def setup(ws=1, e=0xFF, ss=256, sectors=2, plen=12):
    # the journal sits one sector into the flash, with a sector after it
    f = NorFlash(ss * (sectors + 2), ss, ws, e)
    return f, Area(f, ss, ss * sectors), plen


def reload(area, plen):
    j = Journal(area, plen)
    return j, j.load()


def noise(seed, n):
    return bytes(tutil.noise(n, seed))


def test_record_format_sizes():
    eq(struct.calcsize(REC_FMT), REC_HDR)
    eq(struct.calcsize(CRC_FMT), 4)
    for ws, plen, rs in ((1, 12, 24), (4, 12, 24), (8, 12, 24), (16, 12, 32), (1, 0, 12),
                         (8, 52, 64), (16, 53, 80)):
        f = NorFlash(8192, 4096, ws)
        j = Journal(Area(f, 0, 8192), plen)
        eq(j.record_size, rs, "ws %d payload %d" % (ws, plen))
        eq(j.slots_per_sector, 4096 // rs)
        eq(j.sectors, 2)
    eq(MAGIC in (0x00, 0xFF), False)


def test_crc_residue():
    # a record is checked by the CRC-32 of the whole slot, its own CRC-32 included: that
    # is RESIDUE exactly when the stored CRC-32 is the one of the bytes before it
    for data in (b"", b"\x00", bytes(range(256)), b"journal" * 37, b"\xff" * 252):
        c = crc32(data)
        eq(crc32(struct.pack(CRC_FMT, c), c), RESIDUE, "residue")
        eq(crc32(data + struct.pack(CRC_FMT, c)), RESIDUE, "in one piece")
        for bit in (0, 9, 30, 31):
            assert crc32(struct.pack(CRC_FMT, c ^ (1 << bit)), c) != RESIDUE, bit
    assert RESIDUE < 1 << 30  # a small int on a 32-bit port


def test_layout_checked():
    f = NorFlash(4096, 256, 4)
    raises(BAD_LAYOUT, Journal, Area(f, 0, 256), 12)
    raises(BAD_LAYOUT, Journal, Area(f, 0, 512), 245)
    raises(BAD_LAYOUT, Journal, Area(f, 0, 512), -1)
    Journal(Area(f, 0, 512), 244)


def test_round_trip():
    for ws, e in GEOMETRIES:
        f, area, plen = setup(ws, e)
        j = Journal(area, plen)
        eq(j.load(), None)
        eq(j.seq, 0)
        j.format()
        eq(j.load(), None)
        j.save(payload(1))
        eq(j.seq, 1)
        j.save(bytearray(payload(2)))
        j.save(memoryview(payload(3)))
        j2, got = reload(area, plen)
        eq(got, payload(3), "ws %d e %d" % (ws, e))
        eq((j2.seq, j2.bad), (3, 0))
        # the sectors around the area are untouched
        b = bytearray(256)
        f.read(0, b)
        eq(bytes(b), bytes((e,)) * 256)
        f.read(768, b)
        eq(bytes(b), bytes((e,)) * 256)


def test_unformatted_area_and_lazy_load():
    f, area, plen = setup()
    j = Journal(area, plen)
    j.save(payload(1))
    eq((f.erases, f.writes), (1, 1))
    eq(reload(area, plen)[1], payload(1))
    j = Journal(area, plen)
    j.save(payload(2))
    eq((f.erases, f.writes), (1, 2))
    eq(reload(area, plen)[1], payload(2))


def test_payload_packed_in_place():
    # a payload packed into j.payload, the record's own bytes, is saved without a copy; a
    # journal not loaded yet loads first (reading records through those bytes) and still
    # saves the payload packed there
    for ws, e in GEOMETRIES:
        f, area, plen = setup(ws, e)
        j = Journal(area, plen)
        j.format()
        for i in range(1, 40):  # across sector rotations
            j.payload[:] = payload(i)
            j.save(j.payload)
            eq(reload(area, plen)[1], payload(i), "ws %d e %d save %d" % (ws, e, i))
        j = Journal(area, plen)  # a restart: the records are there, none loaded
        j.payload[:] = payload(77)
        j.save(j.payload)
        j2, got = reload(area, plen)
        eq((got, j2.seq), (payload(77), 40), "in place before the first load")


def test_rotation_and_wear():
    for ws, e in GEOMETRIES:
        for sectors in (2, 3):
            f, area, plen = setup(ws, e, sectors=sectors)
            j = Journal(area, plen)
            j.format()
            per = j.slots_per_sector
            n = per * sectors * 4 + 3
            for i in range(1, n + 1):
                j.save(payload(i))
                if i % 7 == 0 or i == n:
                    j2, got = reload(area, plen)
                    eq(got, payload(i), "save %d" % i)
                    eq(j2.seq, i)
                    j = j2
            eq(f.writes, n)
            # one erase per filled sector after the first, plus the format
            eq(f.erases, sectors + (n - 1) // per)
            wear = f.sector_erases[1:1 + sectors]
            if max(wear) - min(wear) > 1:
                raise AssertionError("uneven wear %r" % wear)


def test_payload_length_checked():
    f, area, plen = setup()
    j = Journal(area, plen)
    raises(JOURNAL_CORRUPT, j.save, b"short")
    raises(JOURNAL_CORRUPT, j.save, payload(1) + b"x")
    eq(f.ops, 0)


def test_other_payload_length_not_misread():
    # different record size
    f, area, _ = setup(4)
    j = Journal(area, 20)
    for i in range(1, 30):
        j.save(payload(i, 20))
    j2, got = reload(area, 24)
    eq(got, None)
    if j2.bad == 0:
        raise AssertionError("foreign records not counted")
    # same record size, different payload length
    f, area, _ = setup(16)
    j = Journal(area, 12)
    j.save(payload(1, 12))
    j.save(payload(2, 12))
    eq(Journal(area, 14).record_size, Journal(area, 12).record_size)
    j2, got = reload(area, 14)
    eq((got, j2.bad), (None, 2))
    # and the journal takes over the area cleanly
    j2.save(payload(5, 14))
    eq(reload(area, 14)[1], payload(5, 14))
    eq(reload(area, 12)[1], None)


def test_garbage_area():
    for ws, e in GEOMETRIES:
        for seed in (1, 2, 3):
            f, area, plen = setup(ws, e)
            f.poke(256, noise(seed + ws, 512))
            j, got = reload(area, plen)
            eq(got, None)
            eq(j.bad, j.slots_per_sector * 2)
            j.save(payload(1))
            j.save(payload(2))
            eq(reload(area, plen)[1], payload(2))
    # all bytes at the other value: not erased, not records
    for e in (0xFF, 0x00):
        f, area, plen = setup(4, e)
        f.poke(256, bytes((e ^ 0xFF,)) * 512)
        j, got = reload(area, plen)
        eq((got, j.bad), (None, 20))
        j.save(payload(9))
        eq(reload(area, plen)[1], payload(9))


def test_zero_area_on_zero_erased_flash():
    f, area, plen = setup(1, 0x00)
    f.poke(256, bytes(512))
    j, got = reload(area, plen)
    eq((got, j.bad, j.seq), (None, 0, 0))


def test_garbage_between_records():
    for ws, e in GEOMETRIES:
        f, area, plen = setup(ws, e)
        j = Journal(area, plen)
        j.format()
        for i in range(1, 14):
            j.save(payload(i))
        eq(j.records, 13)
        rs = j.record_size
        per = j.slots_per_sector
        # sector 1 holds saves per+1..13; corrupt an older one, and put noise in the first
        # and the third slot after the newest
        top = 13 - per - 1
        f.poke(512 + 1 * rs, noise(ws, rs))
        f.poke(512 + (top + 1) * rs, noise(ws + 1, rs))
        f.poke(512 + (top + 3) * rs, noise(ws + 2, rs))
        j, got = reload(area, plen)
        eq(got, payload(13), "ws %d e %d" % (ws, e))
        eq(j.bad, 3)
        # the writer skips past the noise, never over it
        j.save(payload(14))
        eq(reload(area, plen)[1], payload(14))
        b = bytearray(rs)
        area.read(256 + (top + 3) * rs, b)
        eq(bytes(b), noise(ws + 2, rs))
        # after the noise, or, when the sector is full, first in the other sector
        at = 256 + (top + 4) * rs if top + 4 < per else 0
        area.read(at, b)
        eq(bytes(b[REC_HDR:REC_HDR + plen]), payload(14))


def craft(rs, seq, data, magic=MAGIC, version=1, plen=None):
    b = bytearray(rs)
    struct.pack_into(REC_FMT, b, 0, magic, version, len(data) if plen is None else plen, seq)
    b[REC_HDR:REC_HDR + len(data)] = data
    struct.pack_into(CRC_FMT, b, rs - 4, crc32(b[0:rs - 4]))
    return bytes(b)


def test_record_fields_checked():
    f, area, plen = setup(4)
    rs = Journal(area, plen).record_size
    f.poke(256, craft(rs, 1, payload(1)))
    eq(reload(area, plen)[1], payload(1))
    # a good CRC is not enough: magic, version and length must match too
    f.poke(256 + rs, craft(rs, 2, payload(2), magic=0x5A))
    f.poke(256 + 2 * rs, craft(rs, 3, payload(3), version=2))
    f.poke(256 + 3 * rs, craft(rs, 4, payload(4), plen=13))
    j, got = reload(area, plen)
    eq((got, j.seq, j.bad), (payload(1), 1, 3))
    f.poke(256 + 4 * rs, craft(rs, 5, payload(5)))
    eq(reload(area, plen)[1], payload(5))
    # the sequence number does not wrap
    f.poke(256 + 5 * rs, craft(rs, 0xFFFFFFFF, payload(6)))
    j, got = reload(area, plen)
    eq((got, j.seq), (payload(6), 0xFFFFFFFF))
    raises(JOURNAL_FULL, j.save, payload(7))


def test_corrupt_newest_falls_back():
    f, area, plen = setup(4)
    j = Journal(area, plen)
    j.format()
    for i in range(1, 5):
        j.save(payload(i))
    f.flip_bits(256 + 3 * j.record_size + REC_HDR + 1, 0x10)
    j, got = reload(area, plen)
    eq((got, j.seq, j.bad), (payload(3), 3, 1))
    j.save(payload(7))
    j, got = reload(area, plen)
    eq((got, j.seq), (payload(7), 4))


def test_flash_failures():
    f, area, plen = setup(4)
    j = Journal(area, plen)
    j.format()
    j.save(payload(1))
    f.fail_writes(1)
    raises(FLASH_IO, j.save, payload(2))
    eq(j.seq, 1)
    eq(reload(area, plen)[1], payload(1))
    j.save(payload(3))
    eq(j.seq, 3)
    j2, got = reload(area, plen)
    eq((got, j2.seq), (payload(3), 3))
    # a failed erase is retried by the next save
    for i in range(4, 4 + j.slots_per_sector - 3):
        j.save(payload(i))
    eq(f.erases, 2)
    f.fail_erases(1)
    raises(FLASH_IO, j.save, payload(50))
    j.save(payload(51))
    eq(reload(area, plen)[1], payload(51))


def _expect(got, old, new, what):
    if got != old and got != new:
        raise AssertionError("%s: got %r, want %r or %r" % (what, got, old, new))


def campaign(ws, e, variants, nsaves, ss=256, sectors=2, plen=12, second=(), every=1):
    """Cut power at every flash operation of nsaves saves, in each variant (tear, seed),
    optionally cut again at the operations in `second` of the recovery save. A snapshot is
    kept before every `every`-th save; the saves in between are replayed. Returns the
    number of cuts made."""
    f, area, _ = setup(ws, e, ss, sectors, plen)
    j = Journal(area, plen)
    j.format()
    # clean run: snapshots, and the number of flash operations of each save
    snaps = []
    nops = []
    for i in range(1, nsaves + 1):
        if (i - 1) % every == 0:
            snaps.append(f.snapshot())
        j = Journal(area, plen)
        eq(j.load(), payload(i - 1, plen))
        start = f.ops
        j.save(payload(i, plen))
        nops.append(f.ops - start)
    cuts = 0
    for i in range(1, nsaves + 1):
        old = payload(i - 1, plen)
        new = payload(i, plen)
        n = nops[i - 1]
        for k in range(1, n + 1):
            for tear, seed in variants:
                what = "ws %d e %d save %d op %d/%d tear %r seed %d" % (
                    ws, e, i, k, n, tear, seed)
                f.restore(snaps[(i - 1) // every])
                j = Journal(area, plen)
                j.load()
                for r in range((i - 1) // every * every + 1, i):
                    j.save(payload(r, plen))
                f.fail_at(k, tear, seed)
                try:
                    j.save(new)
                    raise AssertionError(what + ": no cut")
                except PowerCut:
                    pass
                cuts += 1
                f.power_on()
                j, got = reload(area, plen)
                if tear:
                    _expect(got, old, new, what)
                else:
                    # the last operation of a save is the record write
                    eq(got, new if k == n else old, what)
                last = got
                for m in second:
                    f.fail_at(m, True, seed + 1)
                    try:
                        j.save(payload(1000 + i, plen))
                    except PowerCut:
                        pass
                    f.fail_at(None)
                    f.power_on()
                    j, got2 = reload(area, plen)
                    _expect(got2, last, payload(1000 + i, plen), what + " second %d" % m)
                    last = got2
                seq = j.seq
                for x in (2000, 3000):
                    j.save(payload(x + i, plen))
                    j2, got = reload(area, plen)
                    eq(got, payload(x + i, plen), what + " after")
                    if j2.seq <= seq:
                        raise AssertionError(what + ": seq %d after %d" % (j2.seq, seq))
                    seq = j2.seq
    return cuts


def test_power_cut_every_operation():
    variants = ((False, 0), (True, 0), (True, 1), (True, 2), (True, 3), (True, 5), (True, 8),
                (True, 13))
    total = 0
    for ws, e in GEOMETRIES:
        # 10 (8 for write_size 16) records per sector: 25 saves rotate at least twice
        total += campaign(ws, e, variants, 25)
    if total < 8 * 8 * 28:
        raise AssertionError("only %d cuts" % total)


def test_power_cut_during_recovery():
    variants = ((True, 0), (True, 3), (False, 0))
    for ws, e in ((1, 0xFF), (16, 0x00), (8, 0xFF)):
        campaign(ws, e, variants, 23, second=(1, 2))


def test_power_cut_4k_and_three_sectors():
    # the real sector size and a 52-byte state: 64 records per sector
    campaign(8, 0xFF, ((False, 0), (True, 4)), 130, ss=4096, sectors=2, plen=52, every=16)
    campaign(4, 0x00, ((True, 7), (False, 0)), 40, ss=512, sectors=3, plen=30)


def test_journal_on_file_flash_across_restarts():
    import os
    from hal.sim.nor import FileFlash
    from tutil import ROOT
    path = ROOT + "/build/tmp_journal_test.bin"
    try:
        os.remove(path)
    except OSError:
        pass
    try:
        f = FileFlash(path, 4096, 1024, 8)
        j = Journal(Area(f, 1024, 2048), 20)
        for i in range(1, 60):
            j.save(payload(i, 20))
        f.fail_at(1, True, 3)
        try:
            j.save(payload(60, 20))
            raise AssertionError("no cut")
        except PowerCut:
            pass
        f.close()
        # a new process: nothing but the file survives
        f = FileFlash(path, 4096, 1024, 8)
        j = Journal(Area(f, 1024, 2048), 20)
        _expect(j.load(), payload(59, 20), payload(60, 20), "after restart")
        j.save(payload(61, 20))
        f.close()
        f = FileFlash(path, 4096, 1024, 8)
        j = Journal(Area(f, 1024, 2048), 20)
        eq(j.load(), payload(61, 20))
        f.close()
    finally:
        try:
            os.remove(path)
        except OSError:
            pass
