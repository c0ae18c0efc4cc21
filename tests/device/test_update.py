# agent.update: the factory install, the download into the inactive slot (refused from its
# manifest when it is not for this device), a sector fetched again, the resume from the
# journal's checkpoint after a reset, and the verification from flash.
from agent.store import state as S
from agent.errors import WRONG_HARDWARE, WRONG_MANUFACTURER, ROLLBACK, UNKNOWN_KEY, \
    SUPPLIER_SIG_REQUIRED, BUSY, BASE_MISMATCH, BAD_TABLE
from agent.image import fmt
from agent.errors import OtaError
from agent.store.slot import TABLE_OFF
from devkit import Rig, updated, rejected, resumed, refuse, download
from tutil import read_data, raises, eq, Image, same_as_file

V2 = Image("core_v2.ota")
SECTOR = 4096


def test_factory_provision():
    r = Rig()
    eq(r.alerts.codes(), [], "a blank device reports nothing")
    d = r.provision()
    eq(r.running(), 0, "slot")
    eq(d.st.run_version, 1, "version")
    eq(d.st.seq, 1, "seq")
    raises(BUSY, d.provision, None, 0)  # never over a valid running image


def test_deflate_update_installs_same_bytes():
    r = Rig()
    r.provision()
    d = updated(r, Image("core_v2z.ota"), 63)
    d.confirm()
    same_as_file("core_v2.bin", r.board.slots[1].area.read, "installed bytes")


def test_chunks_decoded_in_the_window_the_manifest_names():
    # the chunks of core_v2z_w512, core_v2z (the signer's default) and core_v2z_w4k (the
    # sector's) are deflated in a 512-byte, 2 KiB and 4 KiB window, which their manifests
    # name (key 20): the device makes its decoder with that window and installs the same
    # bytes
    from agent.image import pack
    for name, wbits in (("core_v2z_w512.ota", 9), ("core_v2z.ota", 11),
                        ("core_v2z_w4k.ota", 12)):
        r = Rig()
        r.provision()
        img = Image(name)
        eq(pack.peek(img[:fmt.MANIFEST_END_MAX]).wbits, wbits, name + ": the manifest's window")
        r.download(img, 48, 20)
        eq(r.dev.writer._inf.wbits, wbits, name + ": the decoder's window")
        d = updated(r, img, 63)
        d.confirm()
        same_as_file("core_v2.bin", r.board.slots[1].area.read, name + ": installed bytes")


def test_a_window_narrower_than_the_chunks_need_is_refused():
    # core_v2z_narrow's manifest names a 512-byte window over chunks deflated in 4 KiB: the
    # first sector does not decode, is fetched again (cfg.refetch times), and the image is
    # refused (SECTOR_CRC); the running image and the confirmed state are kept
    from agent.alerts import ALERT_VERIFY_FAIL
    from agent.errors import SECTOR_CRC
    r = Rig()
    r.provision()
    run = r.running()
    with Image("core_v2z_narrow.ota") as img:
        e = raises(SECTOR_CRC, download, r.dev, img)
    assert "sector 0" in str(e), e
    eq(r.dev.st.fails, r.dev.cfg.refetch, "fetched again, then refused")
    eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, SECTOR_CRC), "alert")
    d = r.reboot()
    eq((r.running(), d.st.run_version, d.st.seq), (run, 1, 1), "running image and state kept")


def test_mi_hash_same_for_raw_and_deflate_paths():
    # the hash the device reports is SHA-256 over the Manufacturer Image bytes of the file
    for name in ("core_v2.ota", "core_v2z.ota"):
        r = Rig()
        r.provision()
        img = Image(name)
        r.download(img, 50)
        hl = fmt.parse_header(img[:256]).length
        eq(r.dev.st.mi_hash, img.sha256(hl), name)


def test_rejections_before_payload():
    for name, reason in (("core_other_hw.ota", WRONG_HARDWARE),
                         ("core_other_man.ota", WRONG_MANUFACTURER),
                         ("img_other_key.ota", UNKNOWN_KEY)):
        r = Rig()
        r.provision()
        rejected(r, Image(name), reason)


def test_rollback_rejected_after_confirm():
    r = Rig()
    r.provision()
    updated(r, V2).confirm()
    r.reboot()
    rejected(r, Image("core_old.ota"), ROLLBACK)
    eq(r.running(), 1, "still running v2")
    eq(r.dev.st.seq, 2, "seq")


def test_resume_after_reboot():
    for name in ("core_v2.ota", "core_v2z.ota"):
        r = Rig()
        r.provision()
        img = Image(name)
        r.download(img, 48, limit=200)
        done = r.dev.st.next
        assert done > 0, "some sectors written"
        erases = r.flash.erases
        d = r.reboot()
        eq(d.st.phase, S.DOWNLOADING, "phase")
        eq(d.st.next, done, "the checkpoint in the journal")
        seen = resumed(d, img)
        assert seen, "the device jumped to its checkpoint"
        if name == "core_v2.ota":
            p_off = len(img) - len(Image("core_v2.bin"))
            assert seen[0] == p_off + done * SECTOR, (seen, done)
        # sectors already written were not erased again
        extra = r.flash.erases - erases
        sectors = (len(Image("core_v2.bin")) + SECTOR - 1) // SECTOR
        assert extra <= sectors - done + 2, (extra, sectors, done)
        eq(d.st.next, sectors, "checkpoint at the end")


def _cut_at_half(name):
    r = Rig()
    r.provision()
    r.download(Image(name), 48, limit=200)
    assert r.dev.st.next > 0
    return r


def test_no_resume_for_another_image():
    r = _cut_at_half("core_v2.ota")
    d = r.reboot()
    v3 = Image("core_v3.ota")
    eq(resumed(d, v3), [], "from the start")
    eq((d.st.phase, d.st.held_version), (S.HELD, 3), "held")


def test_no_resume_over_a_damaged_meta_area():
    # the sector table in the slot's meta area no longer matches: the download starts
    # again from sector 0 and still ends well
    r = _cut_at_half("core_v2.ota")
    meta = r.layout.slot_off[1] + r.layout.slot_size - r.layout.meta_size
    r.flash.flip_bits(meta + TABLE_OFF + 1, 0x04)
    d = r.reboot()
    eq(d.st.phase, S.DOWNLOADING, "the journal still says so")
    eq(resumed(d, V2), [], "from the start")
    eq(d.st.phase, S.HELD, "held")
    same_as_file("core_v2.bin", r.board.slots[1].area.read, "installed bytes")


def test_corrupt_block_refetches_only_its_sector():
    r = Rig()
    r.provision()
    d = r.dev
    off = d.begin()
    hit = False
    fetched = 0
    while not d.done():
        blk = bytearray(V2[off:off + 48])
        if not hit and off > 9000:
            blk[5] ^= 0xFF  # corrupted in transit
            hit = True
        fetched += len(blk)
        off = d.feed(off, blk)
    assert fetched < len(V2) + SECTOR + 48, "only one sector again"
    eq(d.st.phase, S.HELD, "held")
    eq(d.st.fails, 0, "the count of failures reset at the next checkpoint")


def test_supplier_signature_required():
    sup = read_data("supplier_pub.bin")
    r = Rig(supplier_key=sup[1:], keys=("dev_pub.bin",))
    # a device without an image accepts a factory image only with a valid trailer
    first = r.layout.slot_off[0] // r.layout.sector_size
    raises(SUPPLIER_SIG_REQUIRED, r.provision, "img_raw.ota")
    eq(sum(r.flash.sector_erases[first:]), 0, "rejected before anything was written")
    r.provision("img_supplier.ota")
    eq(r.dev.st.run_version, 2, "version")


def test_take_goes_to_the_transfer_in_progress():
    # from begin() on, Device.take is the new parser's take: a block at its offset is fed
    # (the offset wanted next returned), any other ignored; after recover() and another
    # begin(), blocks go to the new transfer's parser, never to the one before
    r = Rig()
    r.provision()
    d = r.dev
    eq(d.begin(), 0, "from the start")
    old = d.parser
    eq(d.take(0, V2[0:48]), 48, "fed")
    eq(d.take(0, V2[0:48]), 48, "a duplicate ignored")
    eq(d.take(96, V2[96:144]), 48, "a block from further on ignored")
    eq(old.pos, 48, "the parser's position")
    d.recover()
    eq(d.parser, None, "no transfer")
    d.begin()
    new = d.parser
    assert new is not old
    eq(d.take(0, V2[0:100]), 100, "the new transfer")
    eq((old.pos, new.pos), (48, 100), "the old parser untouched")
    off = 100
    while not d.done():
        off = d.feed(off, V2[off:off + 48])
    eq(d.st.phase, S.HELD, "held")


def _sector_sized(w, n=SECTOR):
    # the writer's buffers (its own attributes) n bytes long or more: a sector is streamed
    # to flash as it is made, held whole nowhere
    return [k for k in w.__dict__ if isinstance(getattr(w, k), (bytearray, memoryview))
            and len(getattr(w, k)) >= n] + [k for k in ("_sec",) if hasattr(w, k)]


def test_sector_buffers_made_before_the_signature_is_verified():
    # the parser hands the unverified manifest to the device before it verifies it: a
    # compressed or delta image's sector buffers (and the decoder's window) are made then,
    # while the heap still holds large holes, and a delta's op stream code and the resumable
    # hash's code and table are loaded before them; a raw image's are not made at all
    from agent.crypto import cose
    from agent.image import pack
    from agent.image import delta
    from agent.crypto import sha256r
    for name, made in (("core_v2.ota", False), ("core_v2z.ota", True),
                       ("core_v2d.ota", True)):
        r = Rig()
        r.provision()
        with Image(name) as img:
            head = bytes(img[:fmt.MANIFEST_END_MAX])
        off, n = pack.find_manifest(head)
        payload = cose.parse_sign1(head[off:off + n]).payload
        w = r.dev.writer
        eq(w._inf is not None, False, "%s: none before" % name)
        delta._add = None  # (as before a first delta)
        sha256r._fn = sha256r._tab = None  # (as before a first compressed image)
        r.dev.presize(payload)
        eq(w._inf is not None, made, "%s: made" % name)
        if made:  # the chunk buffer as long as the manifest's longest chunk, not the bound,
            m = pack.peek(head)  # and the window the manifest names (2 KiB, a delta's 1)
            eq(w._inf.cap, m.chunk_max, "%s: chunk buffer" % name)
            eq(m.chunk_max < fmt.chunk_cap(m.sector), True, "%s: below the bound" % name)
            eq(w._inf.wbits, m.wbits, "%s: window" % name)
            eq(m.wbits, 10 if name == "core_v2d.ota" else 11, "%s: window bits" % name)
        eq(delta._add is not None, name == "core_v2d.ota", "%s: delta code loaded" % name)
        eq(sha256r._tab is not None, made, "%s: the resumable hash's table made" % name)
        eq(_sector_sized(w), [], "%s: no buffer a sector fits in" % name)
        r.dev.presize(b"\x00" * 20)  # not a manifest: nothing happens


def test_the_board_collects_its_heap_before_the_device_makes_its_buffers():
    # the device's own lasting buffers (the writer's, the journal's) are made after one
    # board.collect: the garbage the imports before it left goes first
    from agent.update import Device
    r = Rig()
    seen = []
    r.board.collect = lambda: seen.append(len(seen))
    d = Device(r.board, r.cfg)
    eq(seen, [0], "collected once, as it is made")
    d.start()
    eq(seen, [0], "not as it starts")


def _decoded_sectors(dev):
    # the sectors of the slot being written whose bytes its decoder makes (a deflate
    # image's all; a delta's DEFLATE and DELTA entries, not RAW or COPY)
    from agent.store.slot import table_entry
    from agent.store.check import read_meta
    m = read_meta(dev.writer.slot).manifest
    if m.encoding == fmt.ENC_DEFLATE:
        return m.sectors
    ent = bytearray(fmt.TABLE_DELTA_SIZE)
    n = 0
    for k in range(m.sectors):
        table_entry(dev.writer.slot, m, k, ent)
        n += ent[28] in (fmt.MODE_DEFLATE, fmt.MODE_DELTA)
    return n


def test_the_board_collects_its_heap_before_a_download_makes_its_buffers():
    # board.collect (gc.collect on a board with a small heap) runs where a download's
    # long-lived buffers are about to be made: at its start, before the parser is, and,
    # for a compressed or delta image, before the decoder is reserved; not per block, and
    # not for a decoder a new session finds still reserved. In a small heap (at most
    # inflate.SMALL bytes, as MicroPython's gc tells; stood in for here), before each
    # chunk's decoder as well: the last one's window is collected before the next one's
    # tables are made, and they do not take its place
    from agent.image import inflate
    real = inflate.small
    try:
        for small in (False, True):
            inflate.small = lambda: small
            for name in ("core_v2.ota", "core_v2z.ota", "core_v2d.ota"):
                _collects(name, small)
            # the same where the reservation before the signature check found no room
            # and the writer reserves the decoder at the payload's start
            _collects("core_v2d.ota", small, True)
    finally:
        inflate.small = real


def _collects(name, small, late=False):
    r = Rig()
    r.provision()
    d = r.dev
    seen = []
    if late:
        d.presize = lambda payload: None

    def collect():
        w = d.writer
        if not d.loading:  # begin(): the last download's parser, or none
            seen.append("parser")
        elif w._inf is None:
            seen.append("decoder")
        elif w.clen and w.pos == 0:  # a chunk gathered, its sector being made
            seen.append("sector")
        else:
            seen.append("late")
    r.board.collect = collect
    with Image(name) as img:
        download(d, img)
        eq(d.st.phase, S.HELD, "%s: held" % name)
        want = ["parser"]
        if name != "core_v2.ota":
            want.append("decoder")
            if small:
                want += ["sector"] * _decoded_sectors(d)
        eq(seen, want, "%s, small heap %s" % (name, small))
        if len(want) > 1:
            del seen[:]
            download(d, img, 48, 30)  # a new session: the decoder kept from the last
            eq(d.parser.manifest is not None, True, "%s: past the manifest" % name)
            rest = [k for k in seen[1:] if not (small and k == "sector")]
            eq(seen[:1] + rest, ["parser"], "%s: again" % name)


def test_the_final_check_holds_one_copy_of_the_manifest():
    # through the final check from flash (its P-256 verification is the update's peak of
    # heap), the download's decoded header and manifest and their buffers are given back:
    # the check decodes them anew from the slot's meta area, and the held image's version
    # and sequence number come from there
    for name in ("core_v2.ota", "core_v2z.ota"):
        r = Rig()
        r.provision()
        d = r.dev
        held = []
        real = d.check_slot

        def check_slot(*a):
            p = d.parser
            held.append((p.manifest, p.header, p._man, p._hdr, d.writer.m))
            return real(*a)
        d.check_slot = check_slot
        with Image(name) as img:
            download(d, img)
        eq(held, [(None,) * 5], "%s: nothing of the download's copy held" % name)
        eq(d.st.phase, S.HELD, "%s: held" % name)
        eq((d.st.held_version, d.st.held_seq), (2, 2), "%s: from the slot" % name)


def test_sector_buffers_given_back_when_a_transfer_ends():
    # a compressed image's buffers are the device's only while it transfers one: given back
    # when the session closes, after a fault and when an image is refused
    r = Rig()
    r.provision()
    w = r.dev.writer
    with Image("core_v2z.ota") as img:
        r.download(img, 48, 200)
        eq(w._inf is not None, True, "made for the download")
        r.dev.close()
        eq((w._src, w._inf), (None, None), "given back at close")
        r.download(img, 48, 300)  # a new session resumes and makes them again
        eq(w._inf is not None, True, "made again")
        r.dev.recover()  # after a fault in the session
        eq((w._src, w._inf), (None, None), "given back at a fault")
        r.download(img)
    eq(r.dev.st.phase, S.HELD, "held")
    r2 = Rig()
    r2.provision()
    w = r2.dev.writer
    with Image("core_v3d.ota") as img:  # a delta against another image: refused
        refuse(r2.dev, img, BASE_MISMATCH)
    eq((w._src, w._inf), (None, None), "given back at the refusal")


def test_a_chunk_is_held_once():
    # a compressed image's chunk is gathered straight into the decoder's source, its only
    # copy: the writer holds no other buffer a chunk fits in, a block inside a chunk is
    # written there without touching the heap, and (MicroPython) the buffers made for a
    # download weigh a sector, one chunk and the decoder's window and tables
    from agent.store.writer import SlotWriter
    r = Rig()
    r.provision()
    w = r.dev.writer
    with Image("core_v2z.ota") as img:
        off = r.download(img, 48, 130)  # inside the payload: a chunk half gathered
        cap = w._inf.cap
        assert 0 < w.pos < w.clen, (w.pos, w.clen)
        eq(w._src is w._inf.src, True, "gathered in the decoder's source")
        eq(w._src.getvalue()[:w.pos], bytes(img[off - w.pos:off]), "the chunk's bytes so far")
        big = [k for k in w.__dict__ if isinstance(getattr(w, k), (bytearray, memoryview))
               and len(getattr(w, k)) >= cap]
        eq(big, [], "no buffer of the writer's own a chunk fits in")
        block = memoryview(bytes(img[off:off + 48]))
        assert w.pos + 48 < w.clen
        try:
            import gc
            import micropython
            micropython.heap_lock
        except (ImportError, AttributeError):  # CPython: the gathered bytes, no heap
            w.on_payload(block)
            eq(w._src.getvalue()[w.pos - 48:w.pos], bytes(block), "one block more")
            return
        micropython.heap_lock()
        try:
            w.on_payload(block)  # a MemoryError would fail the test
        finally:
            micropython.heap_unlock()
        eq(w._src.getvalue()[w.pos - 48:w.pos], bytes(block), "one block more")
    sector = 4096
    w = SlotWriter(256)
    gc.collect()
    used = gc.mem_alloc()
    w.reserve(sector, False, cap, fmt.deflate_wbits(sector))  # the chunk buffer: the longest chunk
    gc.collect()
    used = gc.mem_alloc() - used
    window = 1 << fmt.deflate_wbits(sector)
    # and the decoder's own state and tables (about 1.6 KiB): the chunk held twice would add
    # another cap bytes, a sector's buffer 4 KiB, past this
    assert cap + window < used < cap + window + 2048, (used, cap)
    # with the 512-byte window a manifest may name (key 20): 3.5 KiB less
    w = SlotWriter(256)
    gc.collect()
    small = gc.mem_alloc()
    w.reserve(sector, False, cap, 9)
    gc.collect()
    small = gc.mem_alloc() - small
    assert used - window + 512 - 64 <= small <= used - window + 512 + 64, (small, used)


def _reserve(w, sector):
    # the decoder any image of this sector size fits (no manifest's bounds)
    w.reserve(sector, False, fmt.chunk_cap(sector), fmt.deflate_wbits(sector))


def test_the_decoder_is_made_again_only_for_a_larger_chunk_or_window():
    # reserve() keeps a decoder whose chunk buffer and window hold what is asked, and makes
    # one anew when either is too small (another image's manifest bounds)
    from agent.store.writer import SlotWriter
    w = SlotWriter(256)
    w.reserve(SECTOR, False, 1000, 10)
    first = w._inf
    eq((first.cap, first.wbits), (1000, 10), "as asked")
    w.reserve(SECTOR, False, 900, 9)
    eq(w._inf is first, True, "a smaller chunk and window: kept")
    for cap, wbits in ((1000, 12), (1001, 10)):
        w.release()
        w.reserve(SECTOR, False, 1000, 10)
        first = w._inf
        w.reserve(SECTOR, False, cap, wbits)
        eq(w._inf is not first and (w._inf.cap, w._inf.wbits) == (cap, wbits), True,
           "made again for %d, %d" % (cap, wbits))
        eq(w._src is w._inf.src, True, "its source gathers the chunks")


def test_a_failed_reservation_keeps_nothing():
    # a MemoryError in reserve() leaves no buffer made (a part kept would pin its memory
    # where the next try needs it), the ones of an earlier, smaller reservation included
    from agent.image import inflate
    from agent.store.writer import SlotWriter
    w = SlotWriter(256)
    _reserve(w, 1024)
    eq(w._inf is not None and w._src is w._inf.src, True, "a small reservation")
    real = inflate.Inflater

    def short(*a):
        raise MemoryError("short heap")
    inflate.Inflater = short
    try:
        _reserve(w, SECTOR)
        got = None
    except MemoryError as e:
        got = e
    finally:
        inflate.Inflater = real
    eq(got is not None, True, "the MemoryError passed on")
    eq((w._inf, w._src), (None, None), "nothing kept")
    _reserve(w, SECTOR)
    eq(w._inf.cap >= SECTOR, True, "made with room")
    eq(_sector_sized(w), [], "no sector buffer")


def _spoil(w, sector):
    # the writer's sink spoils one byte of the first piece of sector `sector` made, once:
    # bytes made wrong past the chunk's digest check (as a damaged chunk's would be)
    real = w._piece
    hit = []

    def piece(mv):
        if not hit and w.woff == sector * SECTOR and w.ck.next == sector:
            hit.append(w._mode)
            mv[len(mv) // 2] ^= 0x20
        real(mv)
    w._piece = piece
    return hit


def test_a_sector_made_wrong_is_streamed_then_fetched_again():
    # a deflate and a delta sector whose bytes are made wrong: streamed into flash as they
    # are made, found by their CRC-32, fetched again alone and written over; the image is
    # right, and nothing of the bad sector reached the MI hash (the image verifies)
    for name, plain in (("core_v2z.ota", "core_v2.bin"), ("core_v2d.ota", "core_v2d.bin")):
        r = Rig()
        r.provision()
        d = r.dev
        hit = _spoil(d.writer, 1)
        first = r.layout.slot_off[1] // SECTOR
        with Image(name) as img:
            off = d.begin()
            fetched = 0
            while not d.done():
                blk = img[off:off + 48]
                fetched += len(blk)
                off = d.feed(off, blk)
            size = len(img)
        eq(hit, [fmt.MODE_DEFLATE if name.endswith("z.ota") else fmt.MODE_DELTA],
           "%s: sector 1 spoiled" % name)
        assert size < fetched < size + SECTOR, (name, size, fetched)
        eq(d.st.phase, S.HELD, "%s: held" % name)
        eq(d.st.fails, 0, "%s: the count of failures reset" % name)
        eq(r.flash.sector_erases[first + 1], 2, "%s: sector 1 erased again" % name)
        same_as_file(plain, r.board.slots[1].area.read, "%s: installed bytes" % name)


def test_a_flash_error_while_a_sector_is_made_is_the_flashs():
    # an OSError of the board's flash driver while a sector is streamed into the slot (a
    # deflate sector's write) or made from the old image (a delta sector's read of the
    # running slot) passes out as it is: not taken for a bad chunk, so nothing is fetched
    # again and the checkpoint stays before the sector
    for name, mode in (("core_v2z.ota", fmt.MODE_DEFLATE), ("core_v2d.ota", fmt.MODE_DELTA)):
        r = Rig()
        r.provision()
        d = r.dev
        w = d.writer
        if mode == fmt.MODE_DEFLATE:
            area = r.board.slots[1].area
            op = "write"
        else:
            area = r.board.slots[r.running()].area
            op = "read"
        real = getattr(area, op)

        def failing(off, buf, real=real, mode=mode):
            if w._mode == mode and w.ck.next == 1 and w.m is not None:
                raise OSError(5)
            real(off, buf)
        setattr(area, op, failing)
        got = None
        with Image(name) as img:
            off = d.begin()
            try:
                while not d.done():
                    off = d.feed(off, img[off:off + 48])
            except OSError as e:
                got = e
        eq(got is not None and not isinstance(got, OtaError), True, "%s: the OSError" % name)
        eq((d.st.fails, w.ck.next), (0, 1), "%s: no refetch, the checkpoint" % name)


def test_a_copied_sector_reads_back_wrong_or_differs():
    # core_v2d's sector 0 is copied from the running slot: a write of it that goes wrong
    # once is made again (not the old image's fault); bytes that differ in the running
    # slot are BASE_MISMATCH, the checkpoint before the sector, the running slot only read
    r = Rig()
    r.provision()
    area = r.board.slots[1].area
    real = area.write
    bad = []

    def write(off, data):
        if not bad and off < SECTOR:
            bad.append(off)
            data = bytearray(data)
            data[7] ^= 0x01
        real(off, data)
    area.write = write
    with Image("core_v2d.ota") as img:
        updated(r, img)
    eq(bad, [0], "one bad write")
    same_as_file("core_v2d.bin", r.board.slots[r.running()].area.read, "installed bytes")
    r = Rig()
    r.provision()
    run = r.running()
    r.flash.flip_bits(r.layout.slot_off[run] + 4096 + 100, 0x01)  # what sector 0 copies
    before = bytearray(3 * SECTOR)
    r.board.slots[run].area.read(0, before)
    erases = list(r.flash.sector_erases)
    with Image("core_v2d.ota") as img:
        raises(BASE_MISMATCH, download, r.dev, img)
    eq(r.dev.st.next, 0, "the checkpoint before sector 0")
    after = bytearray(3 * SECTOR)
    r.board.slots[run].area.read(0, after)
    eq(after, before, "the running slot as it was")
    first = r.layout.slot_off[run] // SECTOR
    eq(r.flash.sector_erases[first:first + 16], erases[first:first + 16],
       "no sector of the running slot erased")


def test_a_chunk_longer_than_the_manifest_bounds_is_refused():
    # core_v2z signed with a manifest whose chunk bound (M_CHUNK_MAX) is one byte below its
    # longest chunk (the device's chunk buffer is made that long: the presize test): the
    # longest chunk's table entry is refused (BAD_TABLE) before a byte of it is gathered.
    # The running image and the confirmed state are kept; the image signed right downloads
    from agent.alerts import ALERT_VERIFY_FAIL
    from agent.image import pack
    r = Rig()
    r.provision()
    run = r.running()
    with Image("core_v2z_short.ota") as img:
        m = pack.peek(img[:fmt.MANIFEST_END_MAX])
        e = raises(BAD_TABLE, download, r.dev, img)
    assert "chunk" in str(e) and str(e).endswith("+%d" % (m.chunk_max + 1)), e  # the longest
    eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, BAD_TABLE), "alert")
    eq(r.dev.st.phase, S.IDLE, "idle")
    d = r.reboot()
    eq((r.running(), d.st.run_version, d.st.seq), (run, 1, 1), "running image and state kept")
    r.download(Image("core_v2z.ota"))
    eq(d.st.phase, S.HELD, "the right image then held")


def test_sector_buffers_left_to_later_when_the_heap_is_short():
    # presize runs before the signature is verified: a heap too small for the buffers, or
    # for reading the manifest, then is no error (the writer makes them when the payload
    # starts). The shortage is played by the two steps raising MemoryError
    from agent.crypto import cose
    from agent.image import pack
    from agent.image import manifest as man
    r = Rig()
    r.provision()
    with Image("core_v2z.ota") as img:
        head = bytes(img[:fmt.MANIFEST_END_MAX])
    off, n = pack.find_manifest(head)
    payload = cose.parse_sign1(head[off:off + n]).payload
    w = r.dev.writer

    def short(*a):
        raise MemoryError("short heap")
    for where in ("reserve", "sector_of"):
        obj = w if where == "reserve" else man
        real = getattr(man, "sector_of")
        setattr(obj, where, short)
        try:
            r.dev.presize(payload)
        finally:
            if obj is w:
                del w.reserve  # the class's method again
            else:
                setattr(obj, where, real)
        eq(w._inf, None, "%s short: no buffers, no error" % where)
    r.dev.presize(payload)
    made = w._inf is not None
    if not made:  # a heap with no room at all for them (the Cortex-M tier's) says so here with
        _reserve(w, man.sector_of(payload)[0])  # a MemoryError, which the runners take for
                                                # a skip
    eq(made, True, "made with room")
    with Image("core_v2z.ota") as img:  # and a download made without them completes
        w.release()
        r.download(img)
    eq(r.dev.st.phase, S.HELD, "held")
    eq(w._inf.cap, pack.peek(head).chunk_max, "made then as long as the longest chunk")
