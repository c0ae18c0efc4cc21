# The signed manifest: its keys, decoding, consistency with the OTA header, and device policy.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent import errors as E
from agent.errors import OtaError
from agent.image import fmt
from agent.crypto.trust import KID_LEN

# Manifest: CBOR map with small integer keys, the payload of the COSE_Sign1 (tag 18) in the
# manifest element (fmt.TAG_MANIFEST). The keys by name (M_FORMAT ... M_KID, FORMAT_VERSION),
# for the host tools and the tests, are agent/image/pack.py's, which no device loads; this
# module hands them on (__getattr__ below), as it does peek().
_FORMAT_VERSION = const(1)
_M_FORMAT = const(1)        # uint: format version, 1
_M_SEQ = const(2)           # uint: sequence number (anti-rollback counter)
_M_VERSION = const(3)       # uint: firmware version, equal to the header's file version
_M_MANUFACTURER = const(4)  # uint: manufacturer code
_M_IMAGE_TYPE = const(5)    # uint: image type
_M_HW_MIN = const(6)        # uint: lowest hardware version supported
_M_HW_MAX = const(7)        # uint: highest hardware version supported
_M_SIZE = const(8)          # uint: installed payload size in bytes
_M_SHA256 = const(9)        # bstr 32: SHA-256 of the installed payload
_M_CRC32 = const(10)        # uint: CRC-32 of the installed payload
_M_ENCODING = const(11)     # uint: fmt.ENC_RAW, fmt.ENC_DEFLATE or fmt.ENC_DELTA
_M_ENC_SIZE = const(12)     # uint: length of the payload element's data
_M_SECTOR = const(13)       # uint: sector size the table and encoding use
_M_TABLE_SHA256 = const(14) # bstr 32: SHA-256 of the sector table element's data
_M_KID = const(15)          # bstr KID_LEN: key id of the signing key
_M_BASE_SIZE = const(16)    # uint: delta only: installed payload size of the old image
_M_BASE_SHA256 = const(17)  # bstr 32: delta only: SHA-256 of the old installed payload
_M_BASE_VERSION = const(18) # uint: delta only: the old image's firmware version
_M_CHUNK_MAX = const(19)    # uint: deflate and delta, optional: the longest chunk's length
_M_WINDOW = const(20)       # uint: deflate and delta, optional: the chunks' window, in bits


def __getattr__(name):
    # the names only the host tools and the tests use (the keys by name, peek), from the
    # host-only agent/image/pack.py; on a device, which has no pack.py, they do not exist
    try:
        from agent.image import pack
    except ImportError:
        raise AttributeError(name)
    return getattr(pack, name)

class Manifest:
    """The fields of a manifest map, with types and ranges checked."""

    def __init__(self, m):
        if not isinstance(m, dict):
            raise OtaError(E.BAD_MANIFEST, "not a map")
        fv = m.get(_M_FORMAT)
        if fv != _FORMAT_VERSION or isinstance(fv, bool):  # CBOR true is not the uint 1
            raise OtaError(E.UNSUPPORTED_FORMAT, "format %r" % (fv,))
        self.seq = _uint(m, _M_SEQ, 0xFFFFFFFF)
        self.version = _uint(m, _M_VERSION, 0xFFFFFFFF)
        self.manufacturer = _uint(m, _M_MANUFACTURER, 0xFFFF)
        self.image_type = _uint(m, _M_IMAGE_TYPE, 0xFFFF)
        self.hw_min = _uint(m, _M_HW_MIN, 0xFFFF)
        self.hw_max = _uint(m, _M_HW_MAX, 0xFFFF)
        self.size = _uint(m, _M_SIZE, 0xFFFFFFFF)
        self.sha256 = _bytes(m, _M_SHA256, 32)
        self.crc32 = _uint(m, _M_CRC32, 0xFFFFFFFF)
        self.encoding = _uint(m, _M_ENCODING, 0xFF)
        self.enc_size = _uint(m, _M_ENC_SIZE, 0xFFFFFFFF)
        self.sector = _uint(m, _M_SECTOR, fmt.MAX_SECTOR)
        self.table_sha256 = _bytes(m, _M_TABLE_SHA256, 32)
        self.kid = _bytes(m, _M_KID, KID_LEN)
        s = self.sector
        if s < fmt.MIN_SECTOR or s & (s - 1):
            raise OtaError(E.BAD_SECTOR_SIZE, "%d" % s)
        if self.hw_min > self.hw_max:
            raise OtaError(E.BAD_MANIFEST, "hardware range %d..%d" % (self.hw_min, self.hw_max))
        if self.size == 0:
            raise OtaError(E.BAD_MANIFEST, "empty payload")
        if self.encoding == fmt.ENC_RAW:
            if self.enc_size != self.size:
                raise OtaError(E.BAD_ENCODING, "raw payload of %d bytes, encoded %d"
                               % (self.size, self.enc_size))
        elif self.encoding != fmt.ENC_DEFLATE and self.encoding != fmt.ENC_DELTA:
            raise OtaError(E.BAD_ENCODING, "encoding %d" % self.encoding)
        # a delta names the image it is made against: the device must be running it
        self.base_size = self.base_sha256 = self.base_version = None
        if self.encoding == fmt.ENC_DELTA:
            self.base_size = _uint(m, _M_BASE_SIZE, 0xFFFFFFFF)
            self.base_sha256 = _bytes(m, _M_BASE_SHA256, 32)
            self.base_version = _uint(m, _M_BASE_VERSION, 0xFFFFFFFF)
        elif _M_BASE_SIZE in m or _M_BASE_SHA256 in m or _M_BASE_VERSION in m:
            raise OtaError(E.BAD_MANIFEST, "old image named by a full image")
        # what a device's chunk decoder is made for before the table is known: the bytes
        # of one chunk (its source), the longest chunk's as the signer measured it, and the
        # window of the chunks' raw deflate streams (bits); without the keys, the bound for
        # the sector size and the window covering a sector. No table entry may have a
        # longer chunk.
        self.chunk_max = self.wbits = 0
        if self.encoding != fmt.ENC_RAW:
            self.chunk_max = _opt(m, _M_CHUNK_MAX, 1, fmt.chunk_cap(s))
            self.wbits = _opt(m, _M_WINDOW, 9, fmt.deflate_wbits(s))
            if not self.wbits or not self.chunk_max:
                raise OtaError(E.BAD_MANIFEST, "field %d" % (_M_WINDOW if self.chunk_max
                                                            else _M_CHUNK_MAX))
        elif _M_CHUNK_MAX in m or _M_WINDOW in m:
            raise OtaError(E.BAD_MANIFEST, "chunk length or window of a raw image")
        self.sectors = fmt.sector_count(self.size, s)
        self.table_size = self.sectors * fmt.table_entry_size(self.encoding)

    def check_header(self, h):
        """The manifest must describe the same image as the OTA header it was signed with."""
        if (h.file_version != self.version or h.manufacturer != self.manufacturer
                or h.image_type != self.image_type or h.hw_min != self.hw_min
                or h.hw_max != self.hw_max):
            raise OtaError(E.HEADER_MISMATCH, "version/manufacturer/type/hardware differ")

    def check_policy(self, p):
        """Compatibility and anti-rollback against the device (a Policy)."""
        if self.manufacturer != p.manufacturer:
            raise OtaError(E.WRONG_MANUFACTURER, "0x%04X, device 0x%04X"
                           % (self.manufacturer, p.manufacturer))
        if self.image_type != p.image_type:
            raise OtaError(E.WRONG_IMAGE_TYPE, "0x%04X, device 0x%04X"
                           % (self.image_type, p.image_type))
        if not self.hw_min <= p.hw_version <= self.hw_max:
            raise OtaError(E.WRONG_HARDWARE, "%d..%d, device %d"
                           % (self.hw_min, self.hw_max, p.hw_version))
        if self.seq < p.seq:
            raise OtaError(E.ROLLBACK, "seq %d < %d" % (self.seq, p.seq))
        if self.size > p.max_size:
            raise OtaError(E.TOO_LARGE, "%d > %d bytes" % (self.size, p.max_size))
        if p.table_max and self.table_size > p.table_max:
            raise OtaError(E.TOO_LARGE, "sector table %d > %d bytes" % (self.table_size, p.table_max))
        if self.sector % p.sector_size:
            raise OtaError(E.BAD_SECTOR_SIZE, "%d is not a multiple of the flash sector %d"
                           % (self.sector, p.sector_size))
        # a deflate or delta sector is erased whole before it is written: the last one must end in
        # the payload area, not in the meta area after it (raw sectors are erased a flash
        # sector at a time, so size <= max_size suffices)
        if self.encoding != fmt.ENC_RAW and self.sectors * self.sector > p.max_size:
            raise OtaError(E.LAYOUT_NO_FIT, "%d sectors of %d bytes, payload area %d bytes"
                           % (self.sectors, self.sector, p.max_size))


class Policy:
    """What a device accepts. seq is the device's stored anti-rollback counter."""

    def __init__(self, trust, manufacturer, image_type, hw_version, seq=0,
                 max_size=0xFFFFFFFF, sector_size=fmt.MIN_SECTOR, table_max=0,
                 supplier_key=None, ieee=None):
        self.trust = trust
        self.manufacturer = manufacturer
        self.image_type = image_type
        self.hw_version = hw_version
        self.seq = seq
        self.max_size = max_size
        self.sector_size = sector_size
        self.table_max = table_max
        self.supplier_key = supplier_key  # 64-byte x||y: trailer required and checked
        self.ieee = ieee  # 8 bytes as in the OTA header: an image with an upgrade file
                          # destination must name it (None: addressed images are refused)


def _uint(m, k, top):
    v = m.get(k)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > top:
        raise OtaError(E.BAD_MANIFEST, "field %d" % k)
    return v


def _bytes(m, k, n):
    v = m.get(k)
    if not isinstance(v, bytes) or len(v) != n:
        raise OtaError(E.BAD_MANIFEST, "field %d" % k)
    return v


def _opt(m, k, lo, top):
    # the optional uint k of the map m, from lo to top (top when absent); 0 when it is not
    v = m.get(k, top)
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > top:
        return 0
    return v


def sector_of(payload):
    """(sector size, encoding, longest chunk, window bits) the manifest map in payload (CBOR
    bytes, not verified) gives a compressed or delta image, else (0, 0, 0, 0): for sizing
    buffers before its signature is checked, and for nothing else."""
    from agent.crypto import cbor
    try:
        m = cbor.decode(payload)
    except OtaError:
        return 0, 0, 0, 0
    e = m.get(_M_ENCODING) if isinstance(m, dict) else None
    if not e or not isinstance(e, int):
        return 0, 0, 0, 0
    s = m.get(_M_SECTOR)
    if not isinstance(s, int) or s < fmt.MIN_SECTOR or s > fmt.MAX_SECTOR or s & (s - 1):
        return 0, 0, 0, 0
    c = _opt(m, _M_CHUNK_MAX, 1, fmt.chunk_cap(s))
    w = _opt(m, _M_WINDOW, 9, fmt.deflate_wbits(s))
    return (s, e, c, w) if c and w else (0, 0, 0, 0)


def decode(payload):
    """The Manifest in a COSE_Sign1's payload (CBOR bytes), its fields checked."""
    from agent.crypto import cbor
    return Manifest(cbor.decode(payload))

