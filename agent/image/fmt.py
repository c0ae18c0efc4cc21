# The image file, format v1: one definition of the wire format for device and host.
#
# OTA Upgrade File (ZigBee ZCL cluster 0x0019), laid out as a GBCS OTA Upgrade Image:
#   OTA header | Manufacturer Image (sub-elements) | [GBCS supplier trailer]
# Sub-elements, in this order: 0xF0A1 manifest, 0xF0A2 sector table, 0x0000 payload.
# The two manufacturer-specific tags are ones no known vendor uses: zigpy and zigbee-herdsman
# read 0xF000 as Telink's AES element (with a longer element header), and IKEA files carry
# 0xFFBE/0xFFBF; both parsers list 0xF0A1 and 0xF0A2 as plain sub-elements.
#
# Each structure is declared once, as a struct format with one comment per field and its
# size, and read and written only through the functions below it (pack_* / parse_* or
# unpack_*) and those of agent/image/pack.py (what only the host tools and the tests write
# or read, which no device loads), by the device, the host tools, the emulation and the
# tests alike:
#   header          parse_header (Header), header_length_of (first 10 bytes); pack.pack_header
#   element head    unpack_elem / pack_elem; pack.find_manifest locates the manifest element
#   trailer         parse_trailer / pack_trailer
#   table entries   table_entry_size; pack.pack_entry / pack.unpack_entry (delta entries:
#                   the writer and agent.store.slot.table_entry)
# The manifest map inside the manifest element: agent/image/manifest.py.
import struct
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent import errors as E

OTA_MAGIC = const(0x0BEEF11E)
HEADER_VERSION = const(0x0100)

# OTA header, fixed part (56 bytes):
HDR_FMT = "<IHHHHHIH32sI"
#   I    magic 0x0BEEF11E
#   H    header version 0x0100
#   H    header length (56..69, includes optional fields)
#   H    field control (bit 0 security credential, bit 1 destination, bit 2 hardware versions)
#   H    manufacturer code
#   H    image type
#   I    file version
#   H    ZigBee stack version
#   32s  header string
#   I    total image size (header + all elements + trailer)
HDR_SIZE = const(56)
HDR_MAX = const(69)
HDR_PREFIX_FMT = "<IHHH"   # the first fields: magic, version, length, field control
HDR_PREFIX = const(10)     # the bytes a reader takes before it knows the header's length
FC_SECURITY = const(0x01)  # followed by: B security credential version
FC_DEST = const(0x02)      # followed by: 8s upgrade file destination (IEEE address)
FC_HW = const(0x04)        # followed by: H minimum hardware version, H maximum hardware version
HW_FMT = "<HH"
STACK_ZIGBEE_PRO = const(2)

# Sub-element header (6 bytes):
ELEM_FMT = "<HI"
#   H    tag
#   I    length of the data that follows
ELEM_SIZE = const(6)
TAG_PAYLOAD = const(0x0000)
TAG_MANIFEST = const(0xF0A1)
TAG_TABLE = const(0xF0A2)

# GBCS supplier trailer (66 bytes): force-replace, length, signature.
TRAILER_FMT = "<BB64s"
#   B    force-replace flag (0 or 1)
#   B    signature length, always 0x40
#   64s  ECDSA P-256 r||s over SHA-256(Manufacturer Image)
TRAILER_SIZE = const(66)
TRAILER_SIG_LEN = const(0x40)

# Sector table entries, one per sector of the installed payload:
TABLE_RAW_FMT = "<I"
#   I    CRC-32 of the installed bytes of the sector
TABLE_RAW_SIZE = const(4)
TABLE_DEFLATE_FMT = "<III16s"
#   I    CRC-32 of the installed bytes of the sector
#   I    offset of the sector's deflate chunk in the payload element's data
#   I    length of that chunk
#   16s  first 16 bytes of the chunk's SHA-256: binds the encoded bytes (and with them the
#        Manufacturer Image hash) to the signature, chunk by chunk, so a resumed or
#        re-fetched chunk is checked on its own
TABLE_DEFLATE_SIZE = const(28)
TABLE_DELTA_FMT = "<III16sB"
#   I    CRC-32 of the installed bytes of the sector
#   I    offset of the sector's chunk in the payload element's data; COPY: offset in the old
#        payload (the running image's) of the bytes the sector is
#   I    length of that chunk; COPY: 0
#   16s  first 16 bytes of the chunk's SHA-256; COPY: of the sector's bytes
#   B    how the sector is made (MODE_*)
TABLE_DELTA_SIZE = const(29)
MODE_COPY = const(0)     # the bytes at the entry's offset in the old payload, no chunk
MODE_RAW = const(1)      # the chunk is the sector
MODE_DEFLATE = const(2)  # the chunk is the sector raw-deflated, as in ENC_DEFLATE
MODE_DELTA = const(3)    # the chunk is an op stream against the old payload, raw-deflated
                         # the same way (agent/image/delta.py)
CHUNK_DIGEST = const(16)
ENC_RAW = const(0)
ENC_DEFLATE = const(1)   # each sector raw deflate on its own, in the manifest's window
ENC_DELTA = const(2)     # each sector made by its entry's mode, from its chunk or the old
                         # payload; the non-COPY chunks in sector order, back to back
MIN_SECTOR = const(256)    # the table's sector size: a power of two from MIN_SECTOR
MAX_SECTOR = const(65536)  # to MAX_SECTOR

# The manifest element's data: a COSE_Sign1 (agent/crypto/cose.py) whose payload is the
# manifest map (its keys and decoder: agent/image/manifest.py). It comes first, right after
# the header, so it ends by MANIFEST_END_MAX (HDR_MAX + ELEM_SIZE + MANIFEST_MAX).
MANIFEST_MAX = const(512)  # a manifest element larger than this is rejected
MANIFEST_END_MAX = const(587)
del const  # every const() above is folded (on MicroPython): its entry is free for what follows


def __getattr__(name):
    # what only the host tools and the tests use (find_manifest), from the host-only
    # agent/image/pack.py; on a device, which has no pack.py, it does not exist
    try:
        from agent.image import pack
    except ImportError:
        raise AttributeError(name)
    return getattr(pack, name)


def header_length(field_control):
    """Length of an OTA header with the given field control."""
    n = HDR_SIZE
    if field_control & FC_SECURITY:
        n += 1
    if field_control & FC_DEST:
        n += 8
    if field_control & FC_HW:
        n += 4
    return n


class Header:
    """A parsed OTA header. hw_min/hw_max are None when absent."""

    def __init__(self):
        self.length = HDR_SIZE
        self.field_control = 0
        self.manufacturer = 0
        self.image_type = 0
        self.file_version = 0
        self.stack_version = STACK_ZIGBEE_PRO
        self.header_string = b""
        self.total_size = 0
        self.security_version = None
        self.destination = None
        self.hw_min = None
        self.hw_max = None


def header_length_of(prefix):
    """The header length field from the first HDR_PREFIX bytes of a file, unchecked."""
    return struct.unpack_from(HDR_PREFIX_FMT, prefix, 0)[2]


def parse_header(buf):
    """Parse an OTA header from buf (at least HDR_SIZE bytes, or the whole header)."""
    if len(buf) < HDR_SIZE:
        raise E.OtaError(E.BAD_HEADER_LENGTH, "%d bytes" % len(buf))
    (magic, hver, hlen, fc, man, itype, fver, stack, hstr,
     total) = struct.unpack_from(HDR_FMT, buf, 0)
    if magic != OTA_MAGIC:
        raise E.OtaError(E.BAD_MAGIC, "0x%08X" % magic)
    if hver != HEADER_VERSION:
        raise E.OtaError(E.BAD_HEADER_VERSION, "0x%04X" % hver)
    if fc & 0xFFF8:
        raise E.OtaError(E.BAD_FIELD_CONTROL, "0x%04X" % fc)
    if hlen != header_length(fc):
        raise E.OtaError(E.BAD_HEADER_LENGTH, "%d for field control 0x%04X" % (hlen, fc))
    if len(buf) < hlen:
        raise E.OtaError(E.BAD_HEADER_LENGTH, "%d of %d bytes" % (len(buf), hlen))
    h = Header()
    h.length = hlen
    h.field_control = fc
    h.manufacturer = man
    h.image_type = itype
    h.file_version = fver
    h.stack_version = stack
    h.header_string = bytes(hstr)
    h.total_size = total
    off = HDR_SIZE
    if fc & FC_SECURITY:
        h.security_version = buf[off]
        off += 1
    if fc & FC_DEST:
        h.destination = bytes(buf[off:off + 8])
        off += 8
    if fc & FC_HW:
        h.hw_min, h.hw_max = struct.unpack_from(HW_FMT, buf, off)
    return h


def pack_elem(tag, length):
    """The 6-byte head of a sub-element of length bytes."""
    return struct.pack(ELEM_FMT, tag, length)


def unpack_elem(buf, off=0):
    """(tag, length) of the sub-element head at buf[off:]."""
    return struct.unpack_from(ELEM_FMT, buf, off)


def pack_trailer(force, sig):
    """The 66-byte GBCS trailer: force-replace flag (0 or 1) and the 64-byte signature."""
    return struct.pack(TRAILER_FMT, force, TRAILER_SIG_LEN, sig)


def parse_trailer(buf):
    """Parse a 66-byte GBCS trailer: returns (force_replace, signature)."""
    if len(buf) != TRAILER_SIZE:
        raise E.OtaError(E.BAD_TRAILER, "%d bytes" % len(buf))
    force, slen, sig = struct.unpack(TRAILER_FMT, buf)
    if slen != TRAILER_SIG_LEN or force > 1:
        raise E.OtaError(E.BAD_TRAILER, "flag %d length %d" % (force, slen))
    return force, bytes(sig)


def table_entry_size(encoding):
    if encoding == ENC_RAW:
        return TABLE_RAW_SIZE
    return TABLE_DEFLATE_SIZE if encoding == ENC_DEFLATE else TABLE_DELTA_SIZE


def sector_count(size, sector):
    return (size + sector - 1) // sector


def chunk_cap(sector):
    """The longest chunk a sector of this size may have: deflate's bound for incompressible
    bytes, with room to spare (a manifest without M_CHUNK_MAX allows this much)."""
    return sector + (sector >> 3) + 64


def deflate_wbits(sector):
    """Window bits for per-sector deflate: the smallest window covering a sector."""
    w = 9
    while (1 << w) < sector and w < 15:
        w += 1
    return w
