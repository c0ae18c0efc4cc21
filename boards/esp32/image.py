# What an ESP32 slot may hold: an ESP-IDF application image, as the second stage bootloader
# loads it from the start of an app partition. Checked on the first bytes of the payload, so
# a wrong file is refused after one sector instead of failing at set_boot() hours later.
#
# Application image header (esp_image_header_t), then the first segment's header and the
# application descriptor (esp_app_desc_t) at the start of the first segment's data:
import struct

from agent.errors import OtaError, NOT_APP_IMAGE

HDR_FMT = "<BBBBIB3sHBHH4sB"
#   B    magic 0xE9
#   B    segment count (1..16)
#   B    SPI flash mode
#   B    SPI flash speed (low nibble) and size (high nibble)
#   I    entry point address
#   B    WP pin (0xEE: none)
#   3s   SPI pin drive settings
#   H    chip id (0 ESP32, 2 S2, 5 C3, 9 S3, 12 C2, 13 C6, 16 H2, 18 P4)
#   B    minimum chip revision (legacy)
#   H    minimum chip revision (major * 100 + minor)
#   H    maximum chip revision (major * 100 + minor)
#   4s   reserved
#   B    1 when a SHA-256 of the image is appended
HDR_SIZE = 24
SEG_FMT = "<II"
#   I    load address
#   I    data length
APP_DESC_OFF = 32     # HDR_SIZE + segment header
APP_DESC_FMT = "<I"
#   I    esp_app_desc_t magic word 0xABCD5432
MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
MAX_SEGMENTS = 16
CHECK_LEN = 36        # bytes check_app() needs
# A merged flash image (esptool merge_bin) starts at flash offset 0: on ESP32 and ESP32-S2
# with 0x1000 bytes of 0xFF before the bootloader at 0x1000; on later chips with the
# bootloader itself at 0 (an ESP image without an application descriptor). Its partition
# table sits at flash offset 0x8000 (entries start with 0xAA 0x50) and the app at 0x10000.
PART_TABLE_OFF = 0x8000
PART_MAGIC = b"\xaa\x50"


def check_app(buf, chip_id=0):
    """Raise OtaError(NOT_APP_IMAGE) unless buf (the payload's first bytes, at least
    CHECK_LEN) starts an ESP-IDF application image for chip chip_id."""
    n = len(buf)
    if n < CHECK_LEN:
        raise OtaError(NOT_APP_IMAGE, "payload of %d bytes" % n)
    if buf[0] == 0xFF and buf[1] == 0xFF and buf[2] == 0xFF and buf[3] == 0xFF:
        raise OtaError(NOT_APP_IMAGE, "starts with erased padding: a merged flash image "
                       "(bootloader at 0x1000)? send the application .bin")
    if n > PART_TABLE_OFF + 2 and bytes(buf[PART_TABLE_OFF:PART_TABLE_OFF + 2]) == PART_MAGIC:
        raise OtaError(NOT_APP_IMAGE, "partition table at 0x8000: a merged flash image")
    h = struct.unpack_from(HDR_FMT, buf, 0)
    if h[0] != MAGIC:
        raise OtaError(NOT_APP_IMAGE, "no ESP image magic 0xE9 (0x%02X)" % h[0])
    if h[1] < 1 or h[1] > MAX_SEGMENTS:
        raise OtaError(NOT_APP_IMAGE, "%d segments" % h[1])
    if h[7] != chip_id:
        raise OtaError(NOT_APP_IMAGE, "image for chip id %d, this board is %d" % (h[7], chip_id))
    if struct.unpack_from(APP_DESC_FMT, buf, APP_DESC_OFF)[0] != APP_DESC_MAGIC:
        raise OtaError(NOT_APP_IMAGE, "ESP image without an application descriptor: a "
                       "bootloader or a merged flash image")


def checker(chip_id=0):
    """check_app bound to a chip id: the board's payload check, fn(first_bytes)."""
    def check(buf):
        check_app(buf, chip_id)
    return check
