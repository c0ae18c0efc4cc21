"""Inspect any ZigBee OTA Upgrade File: header, sub-elements, GBCS trailer, manifest.

Works on this project's images, on GBCS images whose Manufacturer Image is opaque, and on
vendor files with other sub-elements or bytes after the image.
"""
import hashlib
import json
import struct

import cbor2

from agent import fmt

TAG_NAMES = {
    fmt.TAG_PAYLOAD: "upgrade image",
    0x0001: "ECDSA signature (suite 1)",
    0x0002: "ECDSA signing certificate (suite 1)",
    0x0003: "image integrity code",
    0x0004: "picture data",
    0x0005: "ECDSA signature (suite 2)",
    0x0006: "ECDSA signing certificate (suite 2)",
    fmt.TAG_MANIFEST: "manifest",
    fmt.TAG_TABLE: "sector table",
}
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
OPAQUE = "opaque"


def _json_value(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, cbor2.CBORTag):
        return {"tag": v.tag, "value": _json_value(v.value)}
    return v


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
    """The COSE_Sign1 manifest as a dict with named keys (bytes as hex)."""
    obj = cbor2.loads(bytes(cose))
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != 18:
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
    for k in sorted(m, key=lambda x: (0, x, "") if isinstance(x, int) else (1, 0, str(x))):
        if k in MANIFEST_NAMES:
            out[MANIFEST_NAMES[k]] = _json_value(m[k])
        else:
            other[str(k)] = _json_value(m[k])
    if other:
        out["other"] = other
    alg = prot.get(1)
    out["cose"] = {
        "alg": alg,
        "alg_name": COSE_ALG_NAMES.get(alg),
        "kid": _json_value(prot.get(4)),
        "unprotected": _json_value(unprotected),
        "signature": _json_value(sig),
        "length": len(cose),
    }
    return out


def inspect_bytes(data):
    """Everything inspect shows, as a JSON-ready dict. Raises OtaError on a bad header."""
    data = bytes(data)
    n = len(data)
    h = fmt.parse_header(data)
    warnings = []
    total = h.total_size
    if h.length <= total <= n:
        end = total
        if total < n:
            warnings.append("%d trailing bytes after the total image size %d" % (n - total, total))
    else:
        end = n
        if total > n:
            warnings.append("file truncated: %d of %d bytes (total image size)" % (n, total))
        else:
            warnings.append("total image size %d is below the header length %d"
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
        elements.append({"tag": tag, "name": TAG_NAMES.get(tag, "unknown"), "length": length,
                         "offset": off, "data_offset": off + fmt.ELEM_SIZE})
    if stop < mi_end:
        if walked:
            warnings.append("%d bytes at offset %d do not parse as a sub-element"
                            % (mi_end - stop, stop))
        elements.append({"tag": None, "name": OPAQUE, "length": mi_end - stop,
                         "offset": stop, "data_offset": stop})

    seen = set()
    for e in elements:
        if e["tag"] is not None:
            if e["tag"] in seen:
                warnings.append("duplicate sub-element 0x%04X" % e["tag"])
            seen.add(e["tag"])

    manifest = None
    for e in elements:
        if e["tag"] == fmt.TAG_MANIFEST:
            cose = data[e["data_offset"]:e["data_offset"] + e["length"]]
            try:
                manifest = decode_manifest(cose)
            except Exception as ex:  # any malformed CBOR is reported, not raised
                warnings.append("manifest does not decode: %s" % (str(ex) or type(ex).__name__))
            break

    trailer = None
    if trailer_off is not None:
        force, sig = fmt.parse_trailer(data[trailer_off:trailer_off + fmt.TRAILER_SIZE])
        trailer = {"force_replace": force, "signature": sig.hex(), "offset": trailer_off}

    mi = memoryview(data)[h.length:mi_end]
    return {
        "file_size": n,
        "header": _header(h),
        "manufacturer_image": {"offset": h.length, "length": len(mi)},
        "manufacturer_image_sha256": hashlib.sha256(mi).hexdigest(),
        "elements": elements,
        "manifest": manifest,
        "trailer": trailer,
        "warnings": warnings,
    }


def inspect_file(path):
    with open(path, "rb") as f:
        info = inspect_bytes(f.read())
    info["file"] = path
    return info


def _hex(v, digits):
    return ("0x%0" + str(digits) + "X") % v if isinstance(v, int) else str(v)


def format_text(info):
    """A human-readable report of inspect_bytes()."""
    hd = info["header"]
    out = []
    add = out.append
    if "file" in info:
        add("file                %s (%d bytes)" % (info["file"], info["file_size"]))
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
        add("  %s %-22s offset %d, %d bytes" % (tag, e["name"], e["offset"], e["length"]))
    m = info["manifest"]
    if m is not None:
        add("manifest            %d bytes, COSE_Sign1 alg %s, key id %s"
            % (m["cose"]["length"], m["cose"]["alg_name"] or m["cose"]["alg"], m["cose"]["kid"]))
        for k, v in m.items():
            if k == "cose":
                continue
            if k == "encoding":
                v = "%s (%s)" % (v, ENCODING_NAMES.get(v, "unknown"))
            elif k in ("version", "crc32"):
                v = _hex(v, 8)
            elif k in ("manufacturer", "image_type", "hw_min", "hw_max"):
                v = _hex(v, 4)
            add("  %-17s %s" % (k, v))
    t = info["trailer"]
    if t is not None:
        add("GBCS trailer        offset %d, force-replace %d" % (t["offset"], t["force_replace"]))
        add("  signature         %s" % t["signature"])
    else:
        add("GBCS trailer        none")
    for w in info["warnings"]:
        add("warning: %s" % w)
    return "\n".join(out)


def register(sub):
    p = sub.add_parser("inspect", help="show the contents of a ZigBee OTA file",
                       description="Show the header, sub-elements, GBCS trailer, manifest and "
                                   "Manufacturer Image SHA-256 of any ZigBee OTA file.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_inspect)


def run_inspect(args):
    info = inspect_file(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_text(info))
    return 0
