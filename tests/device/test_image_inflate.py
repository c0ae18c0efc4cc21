# agent.image.inflate: per-sector raw deflate chunks decoded to exactly a sector's bytes,
# given to a sink piece by piece through a small buffer (MicroPython's deflate module on the
# device, zlib under CPython), on the chunks of signed images and on deflate streams
# written by hand (RFC 1951 stored blocks).
import binascii
import hashlib
import struct

from agent.image import fmt
from agent.image import pack
from agent.image.inflate import Inflater
from agent.image.manifest import peek
from agent.errors import OtaError, BAD_ENCODING
from tutil import eq, raises, skip, Image


def inflate_into(chunk, out, wbits, piece=256):
    # one chunk (raw deflate, window 2**wbits) decoded into out as the writer does it,
    # through a piece buffer of this many bytes handed to a sink; returns len(out)
    inf = Inflater(len(chunk) or 1)
    ov = memoryview(out)
    at = [0]

    def sink(p):
        ov[at[0]:at[0] + len(p)] = p
        at[0] += len(p)
    return inf.into(inf.put(chunk), len(ov), memoryview(bytearray(piece)), sink, wbits)


def _stored(data, final=True):
    """data as one stored (uncompressed) deflate block: BFINAL, BTYPE 00, LEN, NLEN."""
    n = len(data)
    return bytes((1 if final else 0,)) + struct.pack("<HH", n, n ^ 0xFFFF) + data


def _chunks(name):
    """The manifest of a deflate image, and for each sector (entry, where its chunk is)."""
    with Image(name) as img:
        head = bytes(img[:fmt.MANIFEST_END_MAX])
        m = peek(head)
        off, n = fmt.find_manifest(head)
        table = off + n + fmt.ELEM_SIZE
        payload = table + m.table_size + fmt.ELEM_SIZE
        t = bytes(img[table:table + m.table_size])
        out = []
        for k in range(m.sectors):
            crc, co, cl, dig = pack.unpack_entry(m.encoding, t, k)
            out.append((crc, payload + co, cl, dig))
    return m, out


def _chunk(name, at, n):
    with Image(name) as img:
        return bytes(img[at:at + n])


def test_chunks_of_a_signed_image_decode_to_the_firmware():
    m, chunks = _chunks("core_v2z.ota")
    eq(m.encoding, fmt.ENC_DEFLATE, "a deflate image")
    whole = hashlib.sha256()
    buf = bytearray(m.sector)
    fw = Image("core_v2.bin")
    for k, (crc, at, cl, dig) in enumerate(chunks):
        chunk = _chunk("core_v2z.ota", at, cl)
        n = min(m.sector, m.size - k * m.sector)
        out = memoryview(buf)[:n]
        eq(inflate_into(chunk, out, fmt.deflate_wbits(m.sector)), n, "sector %d" % k)
        eq(bytes(out), bytes(fw.read(k * m.sector, n)), "sector %d bytes" % k)
        eq(binascii.crc32(out) & 0xFFFFFFFF, crc, "sector %d CRC-32" % k)
        eq(hashlib.sha256(chunk).digest()[:fmt.CHUNK_DIGEST], dig, "chunk %d digest" % k)
        whole.update(out)
    fw.close()
    eq(n, 100, "a short last sector")
    eq(whole.digest(), m.sha256, "the manifest's payload SHA-256")


def test_pieces_of_any_size_make_the_sector():
    # the sink is given the piece buffer itself while a whole piece is decoded, its start
    # for the last: the same sector's bytes for every piece size, one piece or many
    from agent.image.inflate import Inflater
    m, chunks = _chunks("core_v2z.ota")
    w = fmt.deflate_wbits(m.sector)
    inf = Inflater(fmt.chunk_cap(m.sector), w)
    fw = Image("core_v2.bin")
    crc, at, cl, dig = chunks[2]
    want = bytes(fw.read(2 * m.sector, m.sector))
    fw.close()
    chunk = _chunk("core_v2z.ota", at, cl)
    for size in (1, 7, 512, 2048, 4096, 5000):
        piece = memoryview(bytearray(size))
        got = [0, 0]  # bytes, pieces

        def sink(mv):
            n = len(mv)
            if got[0] + n < m.sector:
                eq(mv is piece, True, "a piece but the last is the buffer")
            eq(bytes(mv) == want[got[0]:got[0] + n], True, "piece %d's bytes" % got[1])
            got[0] += n
            got[1] += 1
        eq(inf.into(inf.put(chunk), m.sector, piece, sink, w), m.sector, "piece %d" % size)
        eq(got, [m.sector, -(-m.sector // size)], "piece %d: the sector, in pieces" % size)
        piece = None


def test_a_sink_s_errors_are_its_own():
    # a sink that fails (the flash, as the writer's) is not a bad chunk: its error passes
    from agent.image.inflate import Inflater
    inf = Inflater(600, 9)
    data = bytes(range(256)) * 2
    for err in (OtaError(83, "flash"), OSError(5)):
        def sink(mv):
            raise err
        try:
            inf.into(inf.put(_stored(data)), len(data), memoryview(bytearray(64)), sink, 9)
            got = None
        except (OtaError, OSError) as e:
            got = e
        eq(got is err, True, "%r passed as it is" % err)


def test_chunk_must_fill_the_buffer_exactly():
    m, chunks = _chunks("core_v2z.ota")
    chunk = _chunk("core_v2z.ota", chunks[0][1], chunks[0][2])
    w = fmt.deflate_wbits(m.sector)
    e = raises(BAD_ENCODING, inflate_into, chunk, bytearray(m.sector - 1), w)
    assert "more" in str(e), e
    e = raises(BAD_ENCODING, inflate_into, chunk, bytearray(m.sector + 1), w)
    assert "4096 bytes, want 4097" in str(e), e


def test_damaged_chunks_refused():
    m, chunks = _chunks("core_v2z.ota")
    chunk = _chunk("core_v2z.ota", chunks[1][1], chunks[1][2])
    w = fmt.deflate_wbits(m.sector)
    raises(BAD_ENCODING, inflate_into, chunk[:len(chunk) // 2], bytearray(m.sector), w)
    raises(BAD_ENCODING, inflate_into, b"", bytearray(m.sector), w)
    raises(BAD_ENCODING, inflate_into, b"\x07" + chunk[1:], bytearray(m.sector), w)  # BTYPE 11


def test_stored_blocks_written_by_hand():
    data = bytes(range(256)) * 2
    out = bytearray(len(data))
    eq(inflate_into(_stored(data), out, 9), len(data), "one block")
    eq(bytes(out), data, "its bytes")
    two = _stored(data[:100], final=False) + _stored(data[100:])
    out = bytearray(len(data))
    eq(inflate_into(two, memoryview(out), 9), len(data), "two blocks")
    eq(bytes(out), data, "in order")
    eq(inflate_into(b"\x03\x00", bytearray(0), 9), 0, "an empty fixed-Huffman block")


def test_stored_block_refusals():
    data = b"firmware" * 40
    out = bytearray(len(data))
    raises(BAD_ENCODING, inflate_into, _stored(data)[:-1], out, 9)       # cut
    raises(BAD_ENCODING, inflate_into, _stored(data, final=False), out, 9)  # no end
    e = raises(BAD_ENCODING, inflate_into, _stored(data), bytearray(len(data) + 10), 9)
    assert "%d bytes, want %d" % (len(data), len(data) + 10) in str(e), e


def test_a_heap_too_small_is_not_a_bad_chunk():
    # MicroPython allocates the window at each chunk: with the heap locked that fails, and
    # the failure is the heap's (MemoryError), not the chunk's encoding (E65)
    try:
        import micropython
        micropython.heap_lock
    except (ImportError, AttributeError):
        skip("needs micropython.heap_lock")
    chunk = _stored(b"x" * 64)
    out = bytearray(64)
    micropython.heap_lock()
    try:
        inflate_into(chunk, out, 8)
        got = None
    except MemoryError:
        got = "MemoryError"
    except OtaError as e:
        got = "E%d" % e.reason
    finally:
        micropython.heap_unlock()
    eq(got, "MemoryError", "a failed allocation")


def test_one_inflater_for_a_download_s_chunks():
    # the writer decodes every chunk of a download with one Inflater (its window made at
    # the start): each chunk alone decides, not the bytes a longer one before it left
    from agent.image.inflate import Inflater
    m, chunks = _chunks("core_v2z.ota")
    w = fmt.deflate_wbits(m.sector)
    inf = Inflater(fmt.chunk_cap(m.sector), w)
    fw = Image("core_v2.bin")
    buf = bytearray(m.sector)
    longest = max(range(len(chunks)), key=lambda k: chunks[k][2])
    order = [longest] + [k for k in range(len(chunks)) if k != longest] + [longest]
    piece = memoryview(bytearray(512))
    at_ = [0]

    def sink(mv):
        buf[at_[0]:at_[0] + len(mv)] = mv
        at_[0] += len(mv)
    for k in order:
        crc, at, cl, dig = chunks[k]
        n = min(m.sector, m.size - k * m.sector)
        at_[0] = 0
        eq(inf.into(inf.put(_chunk("core_v2z.ota", at, cl)), n, piece, sink, w), n,
           "sector %d" % k)
        eq(bytes(buf[:at_[0]]), bytes(fw.read(k * m.sector, n)), "sector %d bytes" % k)
    fw.close()
    # after the longest chunk, a cut of another is refused, though the longest one's
    # bytes follow it in the decoder's source
    crc, at, cl, dig = chunks[longest]
    at_[0] = 0
    inf.into(inf.put(_chunk("core_v2z.ota", at, cl)), m.sector, piece, sink, w)
    other = chunks[0] if longest else chunks[1]
    cut = _chunk("core_v2z.ota", other[1], other[2])[:other[2] // 2]
    at_[0] = 0
    raises(BAD_ENCODING, inf.into, inf.put(cut), m.sector, piece, sink, w)
    # and as a stream (a delta sector's op stream): its end is within the chunk
    data = b"op stream " * 30
    rd = inf.open(inf.put(_stored(data)), 9)
    got = bytearray(len(data))
    eq(rd.readinto(got), len(data), "read")
    eq(bytes(got), data, "bytes")
    eq(inf.end(), True, "ends within the chunk")
    rd = inf.open(inf.put(_stored(data, final=False)), 9)
    rd.readinto(got)
    eq(inf.end(), False, "a stream that goes on past its chunk")


def test_collected_before_each_decoder():
    # with collect set (the writer sets it in a small heap), each chunk's decoder is
    # preceded by a collection, the last one's decoder already let go; without, none
    data = b"sector bytes " * 20
    chunk = _stored(data)
    piece = memoryview(bytearray(64))
    for given, want in ((True, 3), (False, 0)):
        inf = Inflater(len(chunk))
        seen = []

        def collect():
            seen.append(inf.d)  # the last chunk's decoder is no longer held
        inf.collect = collect if given else None
        for _ in range(2):
            inf.into(inf.put(chunk), len(data), piece, lambda p: None, 9)
        rd = inf.open(inf.put(chunk), 9)
        eq(seen, [None] * want, "collect %s" % given)
        got = bytearray(len(data))
        eq(rd.readinto(got), len(data), "decoded after it")
        eq(bytes(got), data, "bytes")


def test_a_small_heap_is_one_of_at_most_small_bytes():
    # small(): MicroPython's gc.mem_free() + gc.mem_alloc(), at most SMALL; never on CPython
    from agent.image import inflate
    try:
        import gc
        size = gc.mem_free() + gc.mem_alloc()
    except AttributeError:
        eq(inflate.small(), False, "CPython")
        return
    eq(inflate.small(), size <= inflate.SMALL, "a heap of %d bytes" % size)
