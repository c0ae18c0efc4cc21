# Mutants of signed images (tests/datagen/gen_mutations.py, index mutants.txt): the device,
# through hal.sim.imagecheck.check_image, must reject each with exactly the reason the index
# gives. A mutant is its base image with a patch applied as the device reads it, so only
# the base is read, a block at a time from its file; block sizes vary from mutant to mutant.
import binascii

from agent.image import fmt
from agent.errors import OtaError, SECTOR_CRC
from hal.sim.imagecheck import check_image
from tutil import read_data, data_path, eq, Image, heap_bound

TRUST = ("dev_pub.bin", "other_pub.bin")
BLOCKS = (1024, 4096, 61, 509)
REGIONS = ("header.", "elem.", "cose.", "table.", "payload.", "trailer.", "truncated",
           "appended", "random.")


def _reader(img, size, off, x, log=None):
    """read(pos, n) over img (a tutil.Image) cut or zero-extended to size bytes, XORed
    with x at off."""
    n0 = len(img)
    end = off + len(x)

    def read(pos, n):
        if pos + n > size:
            n = size - pos
        if log is not None:
            log.append((pos, n))
        b = bytearray(n)
        if pos < n0:
            k = n if n < n0 - pos else n0 - pos
            b[0:k] = img[pos:pos + k]
        lo = off if off > pos else pos
        hi = end if end < pos + n else pos + n
        for i in range(lo, hi):
            b[i - pos] ^= x[i - off]
        return b
    return read


def _mutants(prefix):
    """(reason, base, supplier key, size, offset, xor, region) from the index, in order."""
    base = sup = None
    with open(data_path("mutants.txt")) as f:
        for line in f:
            w = line.split()
            if w[0] == "B":
                base = w[1]
                sup = None if w[2] == "-" else w[2]
            elif w[6].startswith(prefix):
                x = b"" if w[5] == "-" else binascii.unhexlify(w[5])
                yield int(w[1]), base, sup, int(w[3]), int(w[4]), x, w[6]


def _run(prefix):
    keys = [read_data(k) for k in TRUST]
    bad = []
    count = 0
    name = img = None
    for reason, base, sup, size, off, x, region in _mutants(prefix):
        if base != name:
            name = base
            img = Image(base)
            skey = read_data(sup) if sup else None
        block = BLOCKS[count % len(BLOCKS)]
        count += 1
        try:
            check_image(_reader(img, size, off, x), size, keys, skey, None, 0, block)
            got = "accepted"
        except OtaError as e:
            got = e.reason
            heap_bound(e, reason, size)
            text = str(e)
            if "\n" in text or not text.startswith("E%d " % e.reason):
                got = "bad text %r" % text
        except Exception as e:
            got = "%s %s" % (type(e).__name__, e)
        if got != reason:
            bad.append("%s %s size %d off %d xor %s block %d: want E%d, got %s"
                       % (region, base, size, off, binascii.hexlify(x).decode(), block,
                          reason, got))
    assert count > 0, "no mutants for " + prefix
    if bad:
        raise AssertionError("%d of %d mutants: %s" % (len(bad), count, "; ".join(bad[:8])))
    return count


def test_header():
    _run("header.")


def test_element_heads():
    _run("elem.")


def test_manifest_cose():
    _run("cose.")


def test_sector_table():
    _run("table.")


def test_payload():
    _run("payload.")


def test_trailer():
    _run("trailer.")


def test_truncated():
    _run("truncated")


def test_appended():
    _run("appended")


def test_random_flips():
    _run("random.")


def test_index_covers_every_region_of_every_base():
    seen = {}
    with open(data_path("mutants.txt")) as f:
        for line in f:
            w = line.split()
            if w[0] == "B":
                base = w[1]
                seen[base] = {}
            else:
                for r in REGIONS:
                    if w[6].startswith(r):
                        seen[base][r] = seen[base].get(r, 0) + 1
    eq(len(seen), 4, "bases")
    for base in seen:
        for r in REGIONS:
            if r == "trailer." and base != "img_supplier.ota":
                continue
            assert seen[base].get(r, 0) > 0, (base, r)


def test_bases_accepted_in_any_split():
    keys = [read_data(k) for k in TRUST]
    with open(data_path("mutants.txt")) as f:
        bases = [ln.split() for ln in f if ln[0] == "B"]
    for _, name, sup, mi in bases:
        img = Image(name)
        skey = read_data(sup) if sup != "-" else None
        for block in (1, 1024, 4096) if name == "img_small_sector.ota" else (777,):
            try:
                info = check_image(_reader(img, len(img), 0, b""), len(img), keys, skey, None,
                                   0, block)
            except OtaError as e:
                heap_bound(e, None, len(img))
                raise
            eq(binascii.hexlify(info.mi_hash).decode(), mi, name)
            eq(info.header.total_size, len(img), name)
            eq(info.trailer is not None, sup != "-", name)


def _payload_offset(img):
    import struct
    pos = fmt.parse_header(img[:256]).length
    for _ in range(2):
        pos += fmt.ELEM_SIZE + struct.unpack_from("<I", img[pos + 2:pos + 6], 0)[0]
    return pos + fmt.ELEM_SIZE


def test_sector_fetched_again_before_rejection():
    # a bit flipped in a raw payload sector: the device asks for the sector again
    # (Config.refetch = 3 times) and then rejects the image with SECTOR_CRC
    img = Image("img_raw.ota")
    keys = [read_data(k) for k in TRUST]
    start = _payload_offset(img) + 4096    # sector 1
    log = []
    read = _reader(img, len(img), start + 100, b"\x10", log)
    try:
        check_image(read, len(img), keys, None, None, 0, 512)
        assert False, "accepted"
    except OtaError as e:
        heap_bound(e, SECTOR_CRC, len(img))
        eq(e.reason, SECTOR_CRC, "reason")

    def fetched(off):
        return len([1 for p, n in log if p <= off < p + n])
    eq(fetched(start + 100), 4, "sector 1 fetched once and again 3 times")
    eq(fetched(start + 4095), 4, "the whole sector")
    eq(fetched(start - 1), 1, "sector 0 once")
    eq(fetched(start + 4096 + 512), 0, "nothing past the block that ended sector 1")
