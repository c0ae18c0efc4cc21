# The writing side of the image format (agent/image/fmt.py declares it): what only the host
# tools and the tests write or read, kept off every device (host_tools/mpy.py HOST_ONLY,
# agent/package.json): the OTA header a signer writes, sector table entries, the
# Sig_structure a signer signs (a device hashes it piece by piece:
# agent.crypto.cose.sig_structure_digest), the manifest's keys by name and a look at an
# image's manifest without the parser (find_manifest, peek). agent.image.fmt and
# agent.image.manifest hand these names on (fmt.find_manifest, manifest.M_SIZE, ...).
# Runs under MicroPython too, for the tests.
import struct

from agent.image import fmt
from agent.crypto import cbor, cose
from agent.errors import OtaError, TRUNCATED, BAD_ELEMENT, MISSING_ELEMENT

# The manifest map's keys (agent/image/manifest.py decodes them under these numbers):
FORMAT_VERSION = 1
M_FORMAT = 1         # uint: format version, 1
M_SEQ = 2            # uint: sequence number (anti-rollback counter)
M_VERSION = 3        # uint: firmware version, equal to the header's file version
M_MANUFACTURER = 4   # uint: manufacturer code
M_IMAGE_TYPE = 5     # uint: image type
M_HW_MIN = 6         # uint: lowest hardware version supported
M_HW_MAX = 7         # uint: highest hardware version supported
M_SIZE = 8           # uint: installed payload size in bytes
M_SHA256 = 9         # bstr 32: SHA-256 of the installed payload
M_CRC32 = 10         # uint: CRC-32 of the installed payload
M_ENCODING = 11      # uint: fmt.ENC_RAW, fmt.ENC_DEFLATE or fmt.ENC_DELTA
M_ENC_SIZE = 12      # uint: length of the payload element's data
M_SECTOR = 13        # uint: sector size the table and encoding use
M_TABLE_SHA256 = 14  # bstr 32: SHA-256 of the sector table element's data
M_KID = 15           # bstr KID_LEN: key id of the signing key
M_BASE_SIZE = 16     # uint: delta only: installed payload size of the old image
M_BASE_SHA256 = 17   # bstr 32: delta only: SHA-256 of the old image's installed payload
M_BASE_VERSION = 18  # uint: delta only: the old image's firmware version
M_CHUNK_MAX = 19     # uint: deflate and delta: the longest chunk's length, the most a
                     # device holds of one (optional; fmt.chunk_cap(sector) without it)
M_WINDOW = 20        # uint: deflate and delta: the window of the chunks' raw deflate
                     # streams, bits, 9 to fmt.deflate_wbits(sector) (optional; that without it)


def pack_header(h):
    """Serialise a Header; length and field control are derived from its fields."""
    fc = 0
    tail = b""
    if h.security_version is not None:
        fc |= fmt.FC_SECURITY
        tail += bytes((h.security_version,))
    if h.destination is not None:
        fc |= fmt.FC_DEST
        tail += h.destination
    if h.hw_min is not None:
        fc |= fmt.FC_HW
        tail += struct.pack(fmt.HW_FMT, h.hw_min, h.hw_max)
    hs = h.header_string[:32]
    hs = hs + b"\x00" * (32 - len(hs))
    return struct.pack(fmt.HDR_FMT, fmt.OTA_MAGIC, fmt.HEADER_VERSION, fmt.header_length(fc),
                       fc, h.manufacturer, h.image_type, h.file_version, h.stack_version,
                       hs, h.total_size) + tail


def pack_entry(encoding, crc, off=0, length=0, digest=b"", mode=0):
    """One sector table entry: raw, the sector's CRC-32 alone; deflate, with its chunk's
    offset, length and fmt.CHUNK_DIGEST-byte digest; delta, with the sector's mode too."""
    if encoding == fmt.ENC_RAW:
        return struct.pack(fmt.TABLE_RAW_FMT, crc)
    if encoding == fmt.ENC_DEFLATE:
        return struct.pack(fmt.TABLE_DEFLATE_FMT, crc, off, length, digest)
    return struct.pack(fmt.TABLE_DELTA_FMT, crc, off, length, digest, mode)


def unpack_entry(encoding, buf, k):
    """Sector k's entry of a sector table held in buf: (crc32, chunk offset, chunk length,
    chunk digest), and for a delta entry its mode after them; a raw entry has no chunk:
    (crc32, 0, 0, b"")."""
    if encoding == fmt.ENC_RAW:
        return (struct.unpack_from(fmt.TABLE_RAW_FMT, buf, k * fmt.TABLE_RAW_SIZE)[0], 0, 0,
                b"")
    if encoding == fmt.ENC_DEFLATE:
        return struct.unpack_from(fmt.TABLE_DEFLATE_FMT, buf, k * fmt.TABLE_DEFLATE_SIZE)
    return struct.unpack_from(fmt.TABLE_DELTA_FMT, buf, k * fmt.TABLE_DELTA_SIZE)


def pack_size(v):
    """A size of a delta sector's op stream (agent/image/delta.py): detools' variable-length
    form of the signed v."""
    out = bytearray([0x40 if v < 0 else 0])
    v = -v if v < 0 else v
    out[0] |= v & 0x3F
    v >>= 6
    while v:
        out[-1] |= 0x80
        out.append(v & 0x7F)
        v >>= 7
    return bytes(out)


def sig_structure(protected, external_aad, payload):
    """The CBOR Sig_structure for COSE_Sign1: ["Signature1", protected, aad, payload]."""
    out = bytearray(cose.SIG1_HEAD)
    for part in (protected, external_aad, payload):
        out.extend(cbor.encode_head(cbor.MAJOR_BSTR, len(part)))
        out.extend(part)
    return bytes(out)


def find_manifest(head):
    """Where the signed manifest is in an image whose first bytes are head (up to
    fmt.MANIFEST_END_MAX of them, or the whole of a shorter file): (offset, length) of the
    manifest element's data, the COSE_Sign1, which head need not hold. Only the header and
    the element head are looked at; nothing is verified. OtaError when they are not an OTA
    header followed by a manifest element, with the reason the parser gives."""
    off = fmt.parse_header(head).length
    if len(head) < off + fmt.ELEM_SIZE:
        raise OtaError(TRUNCATED, "%d bytes, no element after the header" % len(head))
    tag, n = fmt.unpack_elem(head, off)
    if tag != fmt.TAG_MANIFEST:
        raise OtaError(MISSING_ELEMENT, "no signed manifest (0xF0A1) after the header, "
                       "tag 0x%04X instead" % tag)
    if n == 0 or n > fmt.MANIFEST_MAX:
        raise OtaError(BAD_ELEMENT, "manifest of %d bytes" % n)
    return off + fmt.ELEM_SIZE, n


def peek(head):
    """The manifest of an image whose first bytes are head (fmt.MANIFEST_END_MAX of them
    suffice), decoded and range-checked but not verified: for what only looks at an image
    (the emulation sizing its flash, tests); a device decides through the parser."""
    from agent.image.manifest import decode
    off, n = find_manifest(head)
    if len(head) < off + n:
        raise OtaError(TRUNCATED, "%d bytes, the manifest ends at %d" % (len(head), off + n))
    return decode(cose.parse_sign1(bytes(head[off:off + n])).payload)
