"""Images for the board tests (tests/scenario/test_board_*.py).

board_pub.bin                 the public key the board rigs trust (with core_pub.bin)
board_esp_v1.ota / _v2.ota    ESP-IDF application images (header, app descriptor), v1 seq 1
                              and v2 seq 2; board_esp_v2z.ota deflate; board_esp_v2.bin
board_esp_old.ota             version 9, seq 0: a rollback once seq 2 is confirmed
board_esp_merged.ota          an esptool merge_bin image for ESP32 (0xFF up to the
                              bootloader at 0x1000, partition table at 0x8000, app at 0x10000)
board_esp_boot0.ota           a merged image for chips whose bootloader sits at 0
board_esp_s3.ota              an application image for ESP32-S3 (chip id 9)
board_rp2_v1.ota / _v2.ota    application bundles (boards/rp2/bundle.py); _v2z deflate;
                              board_rp2_v2.bin the bundle; board_rp2_raw.ota not a bundle
"""
import os
import random
import struct

from cryptography.hazmat.primitives.asymmetric import ec

from host_tools import keys
from host_tools.imagebuild import build_image
from boards.rp2.bundle import pack

MAN = 0x1234
TYPE = 0x0001


def esp_image(size, seed, chip_id=0, version=b"1.0.0"):
    """An ESP-IDF app image shape: header, first segment with an application descriptor."""
    rnd = random.Random(seed)
    hdr = struct.pack("<BBBBIB3sHBHH4sB", 0xE9, 4, 2, 0x20, 0x400D1A2C, 0xEE, b"\0\0\0",
                      chip_id, 0, 0, 399, b"\0" * 4, 1)
    desc = struct.pack("<II8s32s32s16s16s32s32s", 0xABCD5432, 0, b"", version,
                       b"ota-agent-test", b"00:00:00", b"Jan  1 2026", b"v5.2", bytes(32))
    seg = struct.pack("<II", 0x3F400020, len(desc)) + desc
    body = bytearray(rnd.randbytes(size - len(hdr) - len(seg)))
    for i in range(0, len(body), 2500):
        body[i:i + 900] = bytes(min(900, len(body) - i))
    return hdr + seg + bytes(body)


def merged(bootloader_at):
    """An esptool merge_bin output: bootloader, partition table at 0x8000, app at 0x10000."""
    out = bytearray(b"\xff" * 0x10000)
    boot = bytearray(esp_image(0x5000, 7))
    boot[32:36] = b"\x50\x00\x00\x00"  # a bootloader descriptor, not an app one
    out[bootloader_at:bootloader_at + len(boot)] = boot
    out[0x8000:0x8020] = struct.pack("<2sBBII16sI", b"\xaa\x50", 0, 0x10, 0x10000, 0x100000,
                                     b"factory", 0)
    return bytes(out) + esp_image(12 * 1024, 8)


def bundle(version):
    files = [
        ("app.py", b"VERSION = %d\n\ndef main():\n    return VERSION\n" % version),
        ("lib/helper.py", b"from app import VERSION\nDOUBLE = 2 * VERSION\n"),
        ("data/notes.txt", b"line one\nline two\n"),
    ]
    rnd = random.Random(version)
    files.append(("data/blob.bin", rnd.randbytes(20000 + version)))
    return pack(files)


def generate(outdir):
    k = ec.generate_private_key(ec.SECP256R1())

    def put(name, data):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)

    def img(fw, version, seq, **kw):
        return build_image(fw, k, version=version, seq=seq, manufacturer=MAN, image_type=TYPE,
                           hw_min=1, hw_max=3, **kw)

    put("board_pub.bin", keys.public_point(k.public_key()))
    e1, e2 = esp_image(12 * 1024, 1), esp_image(20 * 1024 + 52, 2, version=b"2.0.0")
    put("board_esp_v2.bin", e2)
    put("board_esp_v1.ota", img(e1, 1, 1))
    put("board_esp_v2.ota", img(e2, 2, 2))
    put("board_esp_v2z.ota", img(e2, 2, 2, compress=True))
    put("board_esp_old.ota", img(esp_image(16 * 1024, 3), 9, 0))
    put("board_esp_merged.ota", img(merged(0x1000), 3, 3))
    put("board_esp_boot0.ota", img(merged(0), 3, 3))
    put("board_esp_s3.ota", img(esp_image(12 * 1024, 4, chip_id=9), 3, 3))
    b2 = bundle(2)
    put("board_rp2_v2.bin", b2)
    put("board_rp2_v1.ota", img(bundle(1), 1, 1))
    put("board_rp2_v2.ota", img(b2, 2, 2))
    put("board_rp2_v2z.ota", img(b2, 2, 2, compress=True))
    put("board_rp2_old.ota", img(bundle(9), 9, 0))
    put("board_rp2_raw.ota", img(esp_image(8 * 1024, 5), 3, 3))
