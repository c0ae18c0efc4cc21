"""The inspector: what any ZigBee OTA Upgrade File holds (header, sub-elements, GBCS trailer,
manifest) as a JSON-ready dict. The inspect command (host_tools/inspect.py) prints it.

Works on this project's images, on GBCS images whose Manufacturer Image is opaque, on
vendor files with other sub-elements or bytes after the image, and on the vendor wrappers
zigpy unwraps (an IKEA signed container, a Legrand size-prefixed file, a Third Reality
hashed file): the wrapper is shown and the ZigBee OTA file inside it is inspected.

Our elements are named only when their content decodes as ours: the manifest when it is a
COSE_Sign1 whose payload is a CBOR map, the sector table when the manifest's digest of it
matches. Other elements are opaque, labelled with what zigpy and zigbee-herdsman call them.
The file format is read through agent/image/fmt.py, the manifest's keys come from
agent/image/manifest.py and the COSE labels from agent/crypto/cose.py.
"""
import datetime
import hashlib
import json
import math
import struct

import cbor2

from agent.crypto import cose
from agent.errors import OtaError, BAD_TABLE as E_BAD_TABLE
from agent.image import fmt
from agent.image import manifest as mf

TAG_NAMES = {
    fmt.TAG_PAYLOAD: "upgrade image",
    0x0001: "ECDSA signature (suite 1)",
    0x0002: "ECDSA signing certificate (suite 1)",
    0x0003: "image integrity code",
    0x0004: "picture data",
    0x0005: "ECDSA signature (suite 2)",
    0x0006: "ECDSA signing certificate (suite 2)",
}
# Manufacturer-specific tags other parsers give a meaning (shown on opaque elements).
VENDOR_TAGS = {
    0xF000: "Telink AES: zigbee-herdsman TelinkAES, zigpy Telink encrypted",
    0xFFBE: "IKEA: zigbee-herdsman IkeaUnknown2",
    0xFFBF: "IKEA: zigbee-herdsman IkeaUnknown1",
}
MANIFEST_NAME = "manifest"
TABLE_NAME = "sector table"
MANIFEST_NAMES = {
    mf.M_FORMAT: "format", mf.M_SEQ: "seq", mf.M_VERSION: "version",
    mf.M_MANUFACTURER: "manufacturer", mf.M_IMAGE_TYPE: "image_type",
    mf.M_HW_MIN: "hw_min", mf.M_HW_MAX: "hw_max", mf.M_SIZE: "size",
    mf.M_SHA256: "sha256", mf.M_CRC32: "crc32", mf.M_ENCODING: "encoding",
    mf.M_ENC_SIZE: "enc_size", mf.M_SECTOR: "sector_size",
    mf.M_TABLE_SHA256: "table_sha256", mf.M_KID: "kid", mf.M_BASE_SIZE: "base_size",
    mf.M_BASE_SHA256: "base_sha256", mf.M_BASE_VERSION: "base_version",
    mf.M_CHUNK_MAX: "chunk_max", mf.M_WINDOW: "window_bits",
}
ENCODING_NAMES = {fmt.ENC_RAW: "raw", fmt.ENC_DEFLATE: "deflate", fmt.ENC_DELTA: "delta"}
# the device takes ES256 only; the others (IANA COSE Algorithms) are named when they are seen
COSE_ALG_NAMES = {cose.ALG_ES256: "ES256", -35: "ES384", -36: "ES512", -8: "EdDSA"}
OPAQUE = "opaque"
_DEPTH_MAX = 32        # deeper CBOR nesting is shown as a marker
_INT_DIGITS = 64       # larger integers are shown in hex (no decimal conversion limit)

_MAGIC_BYTES = struct.pack("<I", fmt.OTA_MAGIC)
# Vendor wrappers, as zigpy (zigpy/ota/image.py, parse_ota_image) recognises them:
#   Legrand:       u32 LE size of the OTA file | OTA file | 17-byte suffix (1 + 16 bytes)
#   Third Reality: 152-byte header: SHA-512 of everything from byte 64 at byte 0, u32 LE
#                  at byte 68 = file size - 64 | OTA file
#   IKEA:          "NGIS" | ... | u32 LE offset at 16 | u32 LE length at 20 | ... the OTA
#                  file at offset, then the container's signature after it
LEGRAND_EXTRA = 21
LEGRAND_SUFFIX = 17
TR_HEADER = 152
IKEA_MAGIC = b"NGIS"
IKEA_HEAD = 24


class Wrapper:
    """A vendor wrapper around a ZigBee OTA file: kind, a one-line description, and where
    the OTA file is inside it."""

    def __init__(self, kind, text, offset, length, size):
        self.kind = kind
        self.text = text
        self.offset = offset
        self.length = length
        self.size = size

    def as_dict(self):
        return {"kind": self.kind, "description": self.text, "offset": self.offset,
                "length": self.length, "prefix_length": self.offset,
                "suffix_length": self.size - self.offset - self.length}


def find_wrapper(head, size, sha512_from_64=None):
    """The vendor wrapper of a file of size bytes whose first bytes are head (at least
    IKEA_HEAD, or all of a shorter file); None when the file is a plain ZigBee OTA file or
    no wrapper fits. sha512_from_64() gives the SHA-512 of the file from byte 64 (only asked
    for when a Third Reality header fits). Raises ValueError for a wrapper that is cut."""
    if head[:4] == _MAGIC_BYTES:
        return None
    if len(head) >= 8 and int.from_bytes(head[0:4], "little") + LEGRAND_EXTRA == size \
            and head[4:8] == _MAGIC_BYTES:
        return Wrapper("legrand", "Legrand size-prefixed file", 4, size - LEGRAND_EXTRA, size)
    if size > TR_HEADER and len(head) >= 72 and \
            int.from_bytes(head[68:72], "little") + 64 == size and \
            head[TR_HEADER:TR_HEADER + 4] == _MAGIC_BYTES and \
            sha512_from_64 is not None and head[:64] == sha512_from_64():
        return Wrapper("thirdreality", "Third Reality hashed file", TR_HEADER,
                       size - TR_HEADER, size)
    if head[:4] == IKEA_MAGIC:
        if size <= IKEA_HEAD or len(head) < IKEA_HEAD:
            raise ValueError("IKEA container of %d bytes: shorter than its %d-byte header"
                             % (size, IKEA_HEAD))
        off = int.from_bytes(head[16:20], "little")
        n = int.from_bytes(head[20:24], "little")
        if size <= off + n:
            raise ValueError("IKEA container of %d bytes: its OTA file (%d bytes at offset "
                             "%d) does not fit" % (size, n, off))
        return Wrapper("ikea", "IKEA signed container (NGIS)", off, n, size)
    return None


def _json_value(v, depth=0):
    """Any decoded CBOR value as a JSON-ready value: bytes as hex, tags as {"tag", "value"},
    sets as lists, dates as ISO text, undefined and simple values by name, anything else as
    its text."""
    if depth > _DEPTH_MAX:
        return "(nested deeper than %d)" % _DEPTH_MAX
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        if abs(v) >= 10 ** _INT_DIGITS:
            return ("-0x%x" % -v) if v < 0 else ("0x%x" % v)
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, cbor2.CBORSimpleValue):   # a tuple subclass: before tuples
        return {"simple": v.value}
    if isinstance(v, dict):
        return {_key_text(k): _json_value(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x, depth + 1) for x in v]
    if isinstance(v, (set, frozenset)):
        return {"set": sorted((_json_value(x, depth + 1) for x in v), key=repr)}
    if isinstance(v, cbor2.CBORTag):
        return {"tag": v.tag, "value": _json_value(v.value, depth + 1)}
    if v is cbor2.undefined:
        return "undefined"
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    try:
        return str(v)
    except Exception:  # a value whose text fails is still shown
        return type(v).__name__


def _key_text(k):
    if isinstance(k, str):
        return k
    v = _json_value(k, _DEPTH_MAX)
    return v if isinstance(v, str) else json.dumps(v)


def plain_int(v):
    """v when it is a plain integer, else None."""
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _header(h):
    text = bytes(h.header_string).rstrip(b"\x00").decode("utf-8", "replace")
    return {
        "magic": fmt.OTA_MAGIC,
        "header_version": fmt.HEADER_VERSION,
        "header_length": h.length,
        "field_control": h.field_control,
        "manufacturer_code": h.manufacturer,
        "image_type": h.image_type,
        "file_version": h.file_version,
        "stack_version": h.stack_version,
        "header_string": text,
        "total_image_size": h.total_size,
        "security_credential_version": h.security_version,
        "upgrade_file_destination": h.destination.hex() if h.destination is not None else None,
        "hw_min": h.hw_min,
        "hw_max": h.hw_max,
    }


def walk_elements(data, start, end):
    """Sub-elements in data[start:end] while they fit: ([(tag, length, offset)], end of walk)."""
    out = []
    off = start
    while off + fmt.ELEM_SIZE <= end:
        tag, length = fmt.unpack_elem(data, off)
        if off + fmt.ELEM_SIZE + length > end:
            break
        out.append((tag, length, off))
        off += fmt.ELEM_SIZE + length
    return out, off


def _trailer_at(data, off):
    """The GBCS trailer at data[off:], (force_replace, signature), or None when the bytes
    there are not one."""
    try:
        return fmt.parse_trailer(data[off:off + fmt.TRAILER_SIZE])
    except OtaError:
        return None


def decode_manifest(cose_bytes):
    """The COSE_Sign1 manifest as a dict with named keys (bytes as hex). ValueError (or
    any decoding error) when cose_bytes is not a tagged COSE_Sign1 whose payload is a CBOR map."""
    obj = cbor2.loads(bytes(cose_bytes))
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != cose.TAG_SIGN1:
        raise ValueError("not a tagged COSE_Sign1")
    if not isinstance(obj.value, (list, tuple)) or len(obj.value) != 4:
        raise ValueError("COSE_Sign1 is not an array of 4")
    protected, unprotected, payload, sig = obj.value
    if not isinstance(protected, bytes) or not isinstance(payload, bytes):
        raise ValueError("COSE_Sign1 protected header or payload is not a bstr")
    prot = cbor2.loads(protected) if protected else {}
    m = cbor2.loads(payload)
    if not isinstance(m, dict) or not isinstance(prot, dict):
        raise ValueError("manifest is not a CBOR map")
    out = {}
    other = {}
    for k in sorted(m, key=lambda x: (0, x, "") if plain_int(x) is not None else (1, 0, repr(x))):
        if plain_int(k) is not None and k in MANIFEST_NAMES:
            out[MANIFEST_NAMES[k]] = _json_value(m[k])
        else:
            other[_key_text(k)] = _json_value(m[k])
    if other:
        out["other"] = other
    alg = _json_value(prot.get(cose.H_ALG))
    out["cose"] = {
        "alg": alg,
        "alg_name": COSE_ALG_NAMES.get(alg) if plain_int(alg) is not None else None,
        "kid": _json_value(prot.get(cose.H_KID)),
        "unprotected": _json_value(unprotected),
        "signature": _json_value(sig),
        "length": len(cose_bytes),
    }
    return out


def _name_elements(data, elements, warnings):
    """Name each element: ours only when it decodes as ours, others by their ZigBee tag,
    or opaque with what other parsers call the tag. Returns the decoded manifest or None."""
    manifest = None
    for e in elements:
        if e["tag"] == fmt.TAG_MANIFEST and manifest is None:
            try:
                manifest = decode_manifest(data[e["data_offset"]:e["data_offset"] + e["length"]])
                e["name"] = MANIFEST_NAME
                continue
            except Exception as ex:  # any malformed CBOR is reported, never raised
                warnings.append("element 0x%04X is not a manifest of ours: %s"
                                % (e["tag"], str(ex) or type(ex).__name__))
        if e["tag"] == fmt.TAG_TABLE and manifest is not None:
            want = manifest.get("table_sha256")
            got = hashlib.sha256(data[e["data_offset"]:e["data_offset"] + e["length"]])
            if want == got.hexdigest():
                e["name"] = TABLE_NAME
                continue
        if e["tag"] in TAG_NAMES:
            e["name"] = TAG_NAMES[e["tag"]]
        elif e["tag"] is not None and e["tag"] in VENDOR_TAGS:
            e["name"] = OPAQUE
            e["known_as"] = VENDOR_TAGS[e["tag"]]
        elif e["tag"] is not None and e["tag"] >= 0xF000:
            e["name"] = OPAQUE
            e["known_as"] = "manufacturer-specific"
        elif e["tag"] is not None:
            e["name"] = "unknown"
        else:
            e["name"] = OPAQUE
    return manifest


def _extent(h, n, errors, warnings):
    """Where the image ends in a file of n bytes whose header is h, and what is wrong
    with its total image size."""
    total = h.total_size
    if h.length <= total <= n:
        if total < n:
            warnings.append("%d trailing bytes after the total image size %d" % (n - total, total))
        return total
    if total > n:
        errors.append("file truncated: %d of %d bytes (total image size)" % (n, total))
    else:
        errors.append("total image size %d is below the header length %d" % (total, h.length))
    return n


def _layout(data, start, end, errors):
    """The sub-elements of data[start:end] (bytes that are none make one opaque element),
    the GBCS trailer after them (a dict, or None) and where the Manufacturer Image ends."""
    walked, stop = walk_elements(data, start, end)
    found = off = None
    if walked and end - stop == fmt.TRAILER_SIZE:
        off = stop
    elif not walked and end - start >= fmt.TRAILER_SIZE:
        off = end - fmt.TRAILER_SIZE
    if off is not None:
        found = _trailer_at(data, off)
    mi_end = off if found is not None else end
    elements = [{"tag": tag, "name": OPAQUE, "length": length, "offset": at,
                 "data_offset": at + fmt.ELEM_SIZE} for tag, length, at in walked]
    if stop < mi_end:
        if walked and not errors:
            errors.append("%d bytes at offset %d do not parse as a sub-element"
                          % (mi_end - stop, stop))
        elements.append({"tag": None, "name": OPAQUE, "length": mi_end - stop,
                         "offset": stop, "data_offset": stop})
    trailer = None
    if found is not None:
        trailer = {"force_replace": found[0], "signature": found[1].hex(), "offset": off}
    return elements, trailer, mi_end


def _duplicates(elements, warnings):
    seen = set()
    for e in elements:
        if e["tag"] is not None:
            if e["tag"] in seen:
                warnings.append("duplicate sub-element 0x%04X" % e["tag"])
            seen.add(e["tag"])


def _delta(data, elements, manifest, warnings):
    """A delta image's old image, sector modes and bytes (host_tools.deltaimage.summary),
    when the manifest says delta and the sector table is the one it signs; else None."""
    if manifest is None or manifest.get("encoding") != fmt.ENC_DELTA:
        return None
    parts = dict((e["name"], data[e["data_offset"]:e["data_offset"] + e["length"]])
                 for e in elements if e["name"] in (MANIFEST_NAME, TABLE_NAME))
    if TABLE_NAME not in parts:
        return None
    from host_tools import deltaimage
    try:
        m = mf.decode(cose.parse_sign1(parts[MANIFEST_NAME]).payload)
        if len(parts[TABLE_NAME]) != m.table_size:
            raise OtaError(E_BAD_TABLE, "%d bytes, %d sectors" % (len(parts[TABLE_NAME]),
                                                                  m.sectors))
        return deltaimage.summary(m, parts[TABLE_NAME])
    except OtaError as e:
        warnings.append("delta sector table not shown: %s" % e)
        return None


def inspect_bytes(data):
    """Everything inspect shows, as a JSON-ready dict. Raises OtaError on a bad header and
    ValueError on a vendor wrapper that is cut short. "errors" lists what makes the file
    unusable as it is (truncated, bytes that are no sub-element); "warnings" the rest."""
    data = bytes(data)
    wrapper = find_wrapper(data[:TR_HEADER + 8], len(data),
                           lambda: hashlib.sha512(data[64:]).digest())
    outer = len(data)
    if wrapper is not None:
        data = data[wrapper.offset:wrapper.offset + wrapper.length]
    h = fmt.parse_header(data)
    warnings = []
    errors = []
    end = _extent(h, len(data), errors, warnings)
    elements, trailer, mi_end = _layout(data, h.length, end, errors)
    _duplicates(elements, warnings)
    manifest = _name_elements(data, elements, warnings)
    mi = memoryview(data)[h.length:mi_end]
    delta = _delta(data, elements, manifest, warnings)
    return {
        "file_size": outer,
        "wrapper": wrapper.as_dict() if wrapper is not None else None,
        "header": _header(h),
        "manufacturer_image": {"offset": h.length, "length": len(mi)},
        "manufacturer_image_sha256": hashlib.sha256(mi).hexdigest(),
        "elements": elements,
        "manifest": manifest,
        "delta": delta,
        "trailer": trailer,
        "errors": errors,
        "warnings": warnings,
    }


def inspect_file(path):
    with open(path, "rb") as f:
        info = inspect_bytes(f.read())
    info["file"] = path
    return info
