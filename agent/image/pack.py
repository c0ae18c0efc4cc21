# The writing side of the image format (agent/image/fmt.py declares it): what only the host
# tools and the tests write or read, kept off every device (host_tools/mpy.py HOST_ONLY,
# agent/package.json): the OTA header a signer writes, sector table entries, and the
# Sig_structure a signer signs (a device hashes it piece by piece:
# agent.crypto.cose.sig_structure_digest). Runs under MicroPython too, for the tests.
import struct

from agent.image import fmt
from agent.crypto import cbor, cose


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


def pack_entry(encoding, crc, off=0, length=0, digest=b""):
    """One sector table entry: raw, the sector's CRC-32 alone; deflate, with its chunk's
    offset, length and fmt.CHUNK_DIGEST-byte digest."""
    if encoding == fmt.ENC_RAW:
        return struct.pack(fmt.TABLE_RAW_FMT, crc)
    return struct.pack(fmt.TABLE_DEFLATE_FMT, crc, off, length, digest)


def unpack_entry(encoding, buf, k):
    """Sector k's entry of a sector table held in buf: (crc32, chunk offset, chunk length,
    chunk digest); a raw entry has no chunk: (crc32, 0, 0, b"")."""
    if encoding == fmt.ENC_RAW:
        return (struct.unpack_from(fmt.TABLE_RAW_FMT, buf, k * fmt.TABLE_RAW_SIZE)[0], 0, 0,
                b"")
    return struct.unpack_from(fmt.TABLE_DEFLATE_FMT, buf, k * fmt.TABLE_DEFLATE_SIZE)


def sig_structure(protected, external_aad, payload):
    """The CBOR Sig_structure for COSE_Sign1: ["Signature1", protected, aad, payload]."""
    out = bytearray(cose.SIG1_HEAD)
    for part in (protected, external_aad, payload):
        out.extend(cbor.encode_head(cbor.MAJOR_BSTR, len(part)))
        out.extend(part)
    return bytes(out)
