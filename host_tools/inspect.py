"""Inspect any ZigBee OTA Upgrade File: header, sub-elements, GBCS trailer, manifest.

Works on this project's images, on GBCS images whose Manufacturer Image is opaque, on
vendor files with other sub-elements or bytes after the image, and on the vendor wrappers
zigpy unwraps (an IKEA signed container, a Legrand size-prefixed file, a Third Reality
hashed file): the wrapper is shown and the ZigBee OTA file inside it is inspected.

Our elements are named only when their content decodes as ours: the manifest when it is a
COSE_Sign1 whose payload is a CBOR map, the sector table when the manifest's digest of it
matches. Other elements are opaque, labelled with what zigpy and zigbee-herdsman call them.
"""
import datetime
import hashlib
import json
import math
import struct

import cbor2

from agent.image import fmt

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
    fmt.M_FORMAT: "format", fmt.M_SEQ: "seq", fmt.M_VERSION: "version",
    fmt.M_MANUFACTURER: "manufacturer", fmt.M_IMAGE_TYPE: "image_type",
    fmt.M_HW_MIN: "hw_min", fmt.M_HW_MAX: "hw_max", fmt.M_SIZE: "size",
    fmt.M_SHA256: "sha256", fmt.M_CRC32: "crc32", fmt.M_ENCODING: "encoding",
    fmt.M_ENC_SIZE: "enc_size", fmt.M_SECTOR: "sector_size",
    fmt.M_TABLE_SHA256: "table_sha256", fmt.M_KID: "kid",
}
ENCODING_NAMES = {fmt.ENC_RAW: "raw", fmt.ENC_DEFLATE: "deflate"}
COSE_ALG_NAMES = {-7: "ES256", -35: "ES384", -36: "ES512", -8: "EdDSA"}
COSE_SIGN1_TAG = 18
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


def _int(v):
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
        tag, length = struct.unpack_from(fmt.ELEM_FMT, data, off)
        if off + fmt.ELEM_SIZE + length > end:
            break
        out.append((tag, length, off))
        off += fmt.ELEM_SIZE + length
    return out, off


def _trailer_at(data, off):
    return data[off] in (0, 1) and data[off + 1] == fmt.TRAILER_SIG_LEN


def decode_manifest(cose):
    """The COSE_Sign1 manifest as a dict with named keys (bytes as hex). ValueError (or
    any decoding error) when cose is not a tagged COSE_Sign1 whose payload is a CBOR map."""
    obj = cbor2.loads(bytes(cose))
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != COSE_SIGN1_TAG:
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
    for k in sorted(m, key=lambda x: (0, x, "") if _int(x) is not None else (1, 0, repr(x))):
        if _int(k) is not None and k in MANIFEST_NAMES:
            out[MANIFEST_NAMES[k]] = _json_value(m[k])
        else:
            other[_key_text(k)] = _json_value(m[k])
    if other:
        out["other"] = other
    alg = _json_value(prot.get(1))
    out["cose"] = {
        "alg": alg,
        "alg_name": COSE_ALG_NAMES.get(alg) if _int(alg) is not None else None,
        "kid": _json_value(prot.get(4)),
        "unprotected": _json_value(unprotected),
        "signature": _json_value(sig),
        "length": len(cose),
    }
    return out


def _name_elements(data, elements, warnings):
    """Name each element: ours only when it decodes as ours, others by their ZigBee tag,
    or opaque with what other parsers call the tag. Returns the decoded manifest or None."""
    manifest = None
    for e in elements:
        if e["tag"] == fmt.TAG_MANIFEST and manifest is None:
            cose = data[e["data_offset"]:e["data_offset"] + e["length"]]
            try:
                manifest = decode_manifest(cose)
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
    n = len(data)
    h = fmt.parse_header(data)
    warnings = []
    errors = []
    total = h.total_size
    if h.length <= total <= n:
        end = total
        if total < n:
            warnings.append("%d trailing bytes after the total image size %d" % (n - total, total))
    else:
        end = n
        if total > n:
            errors.append("file truncated: %d of %d bytes (total image size)" % (n, total))
        else:
            errors.append("total image size %d is below the header length %d"
                          % (total, h.length))

    walked, stop = walk_elements(data, h.length, end)
    trailer_off = None
    if walked and end - stop == fmt.TRAILER_SIZE and _trailer_at(data, stop):
        trailer_off = stop
    elif not walked and end - h.length >= fmt.TRAILER_SIZE and \
            _trailer_at(data, end - fmt.TRAILER_SIZE):
        trailer_off = end - fmt.TRAILER_SIZE
    mi_end = trailer_off if trailer_off is not None else end

    elements = []
    for tag, length, off in walked:
        elements.append({"tag": tag, "name": OPAQUE, "length": length,
                         "offset": off, "data_offset": off + fmt.ELEM_SIZE})
    if stop < mi_end:
        if walked and not errors:
            errors.append("%d bytes at offset %d do not parse as a sub-element"
                          % (mi_end - stop, stop))
        elements.append({"tag": None, "name": OPAQUE, "length": mi_end - stop,
                         "offset": stop, "data_offset": stop})

    seen = set()
    for e in elements:
        if e["tag"] is not None:
            if e["tag"] in seen:
                warnings.append("duplicate sub-element 0x%04X" % e["tag"])
            seen.add(e["tag"])

    manifest = _name_elements(data, elements, warnings)

    trailer = None
    if trailer_off is not None:
        force, sig = fmt.parse_trailer(data[trailer_off:trailer_off + fmt.TRAILER_SIZE])
        trailer = {"force_replace": force, "signature": sig.hex(), "offset": trailer_off}

    mi = memoryview(data)[h.length:mi_end]
    return {
        "file_size": outer,
        "wrapper": wrapper.as_dict() if wrapper is not None else None,
        "header": _header(h),
        "manufacturer_image": {"offset": h.length, "length": len(mi)},
        "manufacturer_image_sha256": hashlib.sha256(mi).hexdigest(),
        "elements": elements,
        "manifest": manifest,
        "trailer": trailer,
        "errors": errors,
        "warnings": warnings,
    }


def inspect_file(path):
    with open(path, "rb") as f:
        info = inspect_bytes(f.read())
    info["file"] = path
    return info


def _hex(v, digits):
    return ("0x%0" + str(digits) + "X") % v if _int(v) is not None else _text(v)


def _text(v):
    """A JSON-ready value as one short line of text."""
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


def format_text(info, verbose=False, data=None):
    """A human-readable report of inspect_bytes(). verbose (with the file's bytes in
    data): the first bytes of each element too."""
    hd = info["header"]
    out = []
    add = out.append
    if "file" in info:
        add("file                %s (%d bytes)" % (info["file"], info["file_size"]))
    w = info.get("wrapper")
    if w is not None:
        add("wrapper             %s: OTA file at offset %d, %d bytes; %d bytes after it"
            % (w["description"], w["offset"], w["length"], w["suffix_length"]))
    add("OTA header          version 0x%04X, %d bytes, field control 0x%04X"
        % (hd["header_version"], hd["header_length"], hd["field_control"]))
    add("  manufacturer      %s" % _hex(hd["manufacturer_code"], 4))
    add("  image type        %s" % _hex(hd["image_type"], 4))
    add("  file version      %s" % _hex(hd["file_version"], 8))
    add("  stack version     %d" % hd["stack_version"])
    add("  header string     %r" % hd["header_string"])
    add("  total image size  %d" % hd["total_image_size"])
    if hd["hw_min"] is not None:
        add("  hardware          %s..%s" % (_hex(hd["hw_min"], 4), _hex(hd["hw_max"], 4)))
    if hd["security_credential_version"] is not None:
        add("  security cred.    %d" % hd["security_credential_version"])
    if hd["upgrade_file_destination"] is not None:
        add("  destination       %s" % hd["upgrade_file_destination"])
    mi = info["manufacturer_image"]
    add("manufacturer image  offset %d, %d bytes" % (mi["offset"], mi["length"]))
    add("  sha256            %s" % info["manufacturer_image_sha256"])
    for e in info["elements"]:
        tag = "------" if e["tag"] is None else "0x%04X" % e["tag"]
        name = e["name"]
        if e.get("known_as"):
            name += " (%s)" % e["known_as"]
        add("  %s %-22s offset %d, %d bytes" % (tag, name, e["offset"], e["length"]))
        if verbose and data is not None:
            first = data[e["data_offset"]:e["data_offset"] + min(e["length"], 16)]
            add("         first bytes %s" % bytes(first).hex())
    m = info["manifest"]
    if m is not None:
        c = m["cose"]
        add("manifest            %d bytes, COSE_Sign1 alg %s, key id %s"
            % (c["length"], c["alg_name"] or _text(c["alg"]), _text(c["kid"])))
        for k, v in m.items():
            if k == "cose":
                continue
            if k == "encoding" and _int(v) is not None:
                v = "%s (%s)" % (v, ENCODING_NAMES.get(v, "unknown"))
            elif k in ("version", "crc32"):
                v = _hex(v, 8)
            elif k in ("manufacturer", "image_type", "hw_min", "hw_max"):
                v = _hex(v, 4)
            add("  %-17s %s" % (k, _text(v)))
    t = info["trailer"]
    if t is not None:
        add("GBCS trailer        offset %d, force-replace %d" % (t["offset"], t["force_replace"]))
        add("  signature         %s" % t["signature"])
    else:
        add("GBCS trailer        none")
    for w in info["errors"]:
        add("error: %s" % w)
    for w in info["warnings"]:
        add("warning: %s" % w)
    return "\n".join(out)


EXAMPLES = """examples:
  otatool inspect fw-v2.ota
  otatool inspect --json fw-v2.ota | jq .manifest.seq
  otatool inspect ikea-bulb.ota.signed      # shows the IKEA wrapper and the file inside

exit status: 0 a readable ZigBee OTA file; 1 an unreadable, truncated or malformed one
(the report is still printed; the reason is on stderr)."""


def register(sub):
    p = sub.add_parser("inspect", help="show the contents of a ZigBee OTA file",
                       description="Show the header, sub-elements, GBCS trailer, manifest and "
                                   "Manufacturer Image SHA-256\nof any ZigBee OTA file, and "
                                   "the vendor wrapper around it (IKEA, Legrand,\nThird "
                                   "Reality) when there is one.",
                       epilog=EXAMPLES)
    p.add_argument("file", metavar="FILE", help="the file to inspect")
    p.add_argument("--json", action="store_true",
                   help="print JSON (on a rejected file: {\"ok\": false, \"code\", "
                        "\"reason\"})")
    p.set_defaults(func=run_inspect)


def run_inspect(args):
    from host_tools import cli
    with open(args.file, "rb") as f:
        data = f.read()
    try:
        info = inspect_bytes(data)
    except ValueError as e:  # a cut vendor wrapper
        return cli.reject(args, str(e))
    info["file"] = args.file
    info["ok"] = not info["errors"]
    if args.json:
        cli.out(json.dumps(info, indent=2))
    else:
        cli.out(format_text(info, cli.verbosity() > 0, data))
    if info["errors"]:
        return cli.fail(info["errors"][0])
    return 0
