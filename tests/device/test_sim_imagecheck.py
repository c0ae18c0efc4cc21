# hal.sim.imagecheck: an image run through an emulated device (what it accepts and what it
# reports), and its command line (exit codes, the forms a key may take). The mutants that
# must each be refused with their reason are tests/scenario/test_mutations.py's.
import binascii
import hashlib

from agent.image import fmt
from agent.errors import OtaError, UNKNOWN_KEY, ROLLBACK
from hal.sim.board import Layout
from hal.sim.imagecheck import check_image, summary, run, file_reader, board_for, default_cap
from tutil import read_data, data_path, raises, eq, heap_bound

IMAGE = "img_raw.ota"       # signed with the dev key: version 2, seq 5, 20480 bytes raw
PAYLOAD = 20480


def _check(name, keys, seq=0, want=None):
    with open(data_path(name), "rb") as f:
        size = f.seek(0, 2)
        try:
            return check_image(file_reader(f, 512), size, keys, None, None, seq)
        except OtaError as e:
            heap_bound(e, want, PAYLOAD)
            raise


def _room():
    # the command line's device sizes its flash as check_image does: where this heap cannot
    # hold the image's slot, the run's verdict is the heap's (MemoryError: a skip)
    if default_cap() < PAYLOAD:
        raise MemoryError("no room to emulate a slot of %d bytes" % PAYLOAD)


def _mi_sha256(name):
    # the Manufacturer Image: everything after the OTA header (this image has no trailer)
    h = hashlib.sha256()
    with open(data_path(name), "rb") as f:
        hlen = fmt.parse_header(f.read(fmt.HDR_MAX)).length
        f.seek(hlen)
        while True:
            b = f.read(1024)
            if not b:
                break
            h.update(b)
    return h.digest()


def test_an_accepted_image_and_its_summary():
    info = _check(IMAGE, [read_data("dev_pub.bin"), read_data("other_pub.bin")])
    m = info.manifest
    eq((m.version, m.seq, m.size, m.encoding), (2, 5, 20480, 0), "manifest")
    eq(info.mi_hash, _mi_sha256(IMAGE), "Manufacturer Image SHA-256")
    eq(info.trailer, None, "no supplier trailer")
    eq(info.header.manufacturer, 0x1234, "header")
    s = summary(info)
    eq(s.split()[:3], ["OK", "version=0x00000002", "seq=5"])
    assert ("mi_sha256=%s" % binascii.hexlify(info.mi_hash).decode()) in s, s
    assert s.endswith("size=20480 encoding=raw"), s


def test_the_device_s_reasons():
    raises(UNKNOWN_KEY, _check, IMAGE, [read_data("other_pub.bin")], 0, UNKNOWN_KEY)
    raises(ROLLBACK, _check, IMAGE, [read_data("dev_pub.bin")], 6, ROLLBACK)


def test_file_reader_reads_by_offset_a_block_at_most():
    with open(data_path(IMAGE), "rb") as f:
        read = file_reader(f, 16)
        eq(bytes(read(0, 4)), read_data(IMAGE)[:4], "from the start")
        eq(len(read(100, 64)), 16, "at most one block")
        eq(bytes(read(20780 - 3, 16)), read_data(IMAGE)[-3:], "fewer at the end")
        eq(bytes(read(20780, 16)), b"", "nothing past it")


def test_board_for_a_layout():
    lay = Layout(512, 8 * 512)
    b = board_for(lay)
    eq((b.flash.size, b.flash.sector_size, b.layout is lay), (lay.size, 512, True))


def test_command_line_exit_codes():
    img = data_path(IMAGE)
    dev = data_path("dev_pub.bin")
    eq(run([]), 2, "no arguments")
    eq(run([img]), 2, "no key")
    eq(run([img, dev, "-x", "1"]), 2, "unknown option")
    eq(run([img, dev, "-q"]), 2, "option without its value")
    eq(run([img, dev, "-q", "five"]), 2, "not a number")
    eq(run([img, dev, "-b", "0"]), 2, "block of 0")
    eq(run([img, dev, "-l", "4096,8192"]), 2, "layout of two numbers")
    eq(run([data_path("no_such.ota"), dev]), 2, "a file that cannot be read")
    _room()
    eq(run([img, dev]), 0, "accepted")
    eq(run([img, data_path("other_pub.bin")]), 1, "refused: unknown key")
    eq(run([img, dev, "-q", "6"]), 1, "refused: rollback")
    eq(run([img, dev, "-w", "9"]), 1, "refused: hardware version")


def test_keys_as_raw_point_pem_or_hex():
    img = data_path(IMAGE)
    raw = read_data("dev_pub.bin")
    _room()
    eq(run([img, data_path("dev_pub.pem")]), 0, "PEM file")
    eq(run([img, binascii.hexlify(raw).decode()]), 0, "hex of the 65-byte point")
    eq(run([img, binascii.hexlify(raw[1:]).decode()]), 0, "hex of the 64-byte x||y")
    eq(run([img, "00" * 64]), 1, "a point off the curve is refused (E30)")
