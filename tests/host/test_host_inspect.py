"""otatool inspect (host_tools.inspect): our images, the GBCS fixtures, vendor-like files."""
import hashlib
import json
import os
import struct

import pytest

from agent import fmt
from agent.errors import OtaError, BAD_MAGIC, BAD_HEADER_LENGTH
from host_tools import inspect as ins
from host_tools import keys, sign

GBCS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "gbcs")
MI_SHA = "7542f475e3f12eae887d81e32c46d313741d67076b13caec2f82e00ba5e1bb36"
PARAMS = dict(version=0x00020003, seq=9, manufacturer=0x1234, image_type=1, hw_min=2, hw_max=5)


@pytest.fixture(scope="module")
def key():
    return keys.generate()


def gbcs(name):
    with open(os.path.join(GBCS, name), "rb") as f:
        return f.read()


def roundtrip(info):
    """inspect output must survive JSON as it is."""
    return json.loads(json.dumps(info))


def test_our_raw_image(key):
    fw = bytes(range(256)) * 40
    b = sign.build(fw, key, **PARAMS)
    img = b.tobytes()
    info = roundtrip(ins.inspect_bytes(img))
    h = info["header"]
    assert h["manufacturer_code"] == 0x1234 and h["image_type"] == 1
    assert h["file_version"] == 0x00020003 and h["header_length"] == 60
    assert h["total_image_size"] == len(img) and h["field_control"] == 4
    assert (h["hw_min"], h["hw_max"]) == (2, 5)
    assert h["header_string"] == "ota-agent v0x00020003"
    assert h["stack_version"] == 2 and h["header_version"] == 0x0100
    assert [e["tag"] for e in info["elements"]] == [0xF0A1, 0xF0A2, 0x0000]
    assert [e["name"] for e in info["elements"]] == ["manifest", "sector table", "upgrade image"]
    e0, e1, e2 = info["elements"]
    assert e0["offset"] == 60 and e1["offset"] == 60 + 6 + e0["length"]
    assert e2["length"] == len(fw) and e2["offset"] + 6 + e2["length"] == len(img)
    m = info["manifest"]
    assert m["seq"] == 9 and m["version"] == 0x00020003 and m["format"] == 1
    assert m["manufacturer"] == 0x1234 and m["image_type"] == 1
    assert (m["hw_min"], m["hw_max"]) == (2, 5)
    assert m["size"] == len(fw) and m["enc_size"] == len(fw) and m["encoding"] == 0
    assert m["sha256"] == hashlib.sha256(fw).hexdigest()
    assert m["table_sha256"] == hashlib.sha256(b.table).hexdigest()
    assert m["kid"] == b.kid.hex() == m["cose"]["kid"]
    assert m["cose"]["alg"] == -7 and m["cose"]["alg_name"] == "ES256"
    assert len(m["cose"]["signature"]) == 128 and m["cose"]["length"] == len(b.cose)
    assert m["sector_size"] == 4096 and "other" not in m
    assert info["trailer"] is None and info["warnings"] == []
    assert info["manufacturer_image_sha256"] == hashlib.sha256(img[60:]).hexdigest()
    assert info["manufacturer_image"] == {"offset": 60, "length": len(img) - 60}


def test_our_deflate_and_supplier_image(key):
    supplier = keys.generate()
    fw = b"\x00" * 9000 + os.urandom(3000)
    b = sign.build(fw, key, compress=True, supplier_key=supplier, force_replace=True, **PARAMS)
    img = b.tobytes()
    info = ins.inspect_bytes(img)
    assert info["manifest"]["encoding"] == 1
    assert info["manifest"]["enc_size"] == info["elements"][2]["length"] < len(fw)
    t = info["trailer"]
    assert t["force_replace"] == 1 and t["offset"] == len(img) - 66
    assert t["signature"] == img[-64:].hex()
    assert info["manufacturer_image_sha256"] == b.mi_sha256.hex()
    assert info["manufacturer_image"]["length"] == len(img) - 60 - 66
    assert len(info["elements"]) == 3 and info["warnings"] == []
    text = ins.format_text(info)
    assert "deflate" in text and "force-replace 1" in text and b.mi_sha256.hex() in text


def test_gbcs_esme_fixture():
    data = gbcs("rtds_esme_11x_image.bin")
    info = roundtrip(ins.inspect_bytes(data))
    h = info["header"]
    assert (h["manufacturer_code"], h["image_type"], h["file_version"]) == (0x121D, 0, 0xACDCACDC)
    assert (h["hw_min"], h["hw_max"]) == (0x1111, 0x1211)
    assert h["total_image_size"] == 361 == info["file_size"] and h["header_length"] == 60
    assert info["manufacturer_image_sha256"] == MI_SHA
    assert info["elements"] == [{"tag": None, "name": "opaque", "length": 235, "offset": 60,
                                 "data_offset": 60}]
    assert info["manifest"] is None
    t = info["trailer"]
    assert t["force_replace"] == 0 and t["offset"] == 295
    assert t["signature"] == data[-64:].hex()
    assert t["signature"].startswith("0eb4a9c7")
    assert info["warnings"] == []


def test_gbcs_ppmid_fixture():
    info = roundtrip(ins.inspect_bytes(gbcs("rtds_ppmid_11x_image.bin")))
    h = info["header"]
    assert (h["manufacturer_code"], h["image_type"], h["total_image_size"]) == (0x121D, 0x84, 295)
    assert h["header_string"].startswith("I am a GFI PPMID")
    assert info["manufacturer_image_sha256"] == MI_SHA
    assert info["trailer"] is None
    assert [e["name"] for e in info["elements"]] == ["opaque"]
    assert info["elements"][0]["length"] == 235
    assert info["warnings"] == []
    text = ins.format_text(info)
    assert MI_SHA in text and "GBCS trailer        none" in text and "0xACDCACDC" in text


def vendor_file(extra=b"", total_delta=0):
    """A ZigBee OTA file as other vendors make them: other sub-elements, no manifest."""
    h = fmt.Header()
    h.manufacturer = 0x115F
    h.image_type = 0x2002
    h.file_version = 0x10
    h.header_string = b"vendor image"
    h.security_version = 1
    elems = (struct.pack(fmt.ELEM_FMT, 0x0000, 1000) + bytes(range(250)) * 4
             + struct.pack(fmt.ELEM_FMT, 0x0003, 16) + b"\x11" * 16
             + struct.pack(fmt.ELEM_FMT, 0x0100, 3) + b"abc")
    h.total_size = fmt.header_length(fmt.FC_SECURITY) + len(elems) + total_delta
    return fmt.pack_header(h) + elems + extra


def test_vendor_file_with_trailing_bytes():
    data = vendor_file(extra=b"\xff" * 10)
    info = ins.inspect_bytes(data)
    hl = fmt.HDR_SIZE + 1
    assert info["header"]["header_length"] == hl
    assert info["header"]["security_credential_version"] == 1
    assert info["header"]["hw_min"] is None
    assert [(e["tag"], e["name"], e["length"]) for e in info["elements"]] == [
        (0x0000, "upgrade image", 1000), (0x0003, "image integrity code", 16),
        (0x0100, "unknown", 3)]
    assert info["manifest"] is None and info["trailer"] is None
    assert info["warnings"] == ["10 trailing bytes after the total image size %d"
                                % (len(data) - 10)]
    assert info["manufacturer_image_sha256"] == hashlib.sha256(data[hl:-10]).hexdigest()


def test_vendor_file_bytes_that_do_not_parse():
    # total size covers 7 extra bytes: not a sub-element, not a trailer
    data = vendor_file(extra=b"\x01\x02\x03\x04\x05\x06\x07", total_delta=7)
    info = ins.inspect_bytes(data)
    assert [e["name"] for e in info["elements"]] == \
        ["upgrade image", "image integrity code", "unknown", "opaque"]
    assert info["elements"][-1]["length"] == 7
    assert info["warnings"] == [] and len(info["errors"]) == 1
    assert "do not parse" in info["errors"][0]
    assert info["manufacturer_image_sha256"] == hashlib.sha256(data[57:]).hexdigest()


def test_vendor_file_with_trailer_and_destination():
    h = fmt.Header()
    h.destination = bytes(range(8))
    h.hw_min, h.hw_max = 0, 0xFFFF
    elem = struct.pack(fmt.ELEM_FMT, 0x0000, 5) + b"hello"
    trailer = struct.pack(fmt.TRAILER_FMT, 0, 0x40, b"\x5a" * 64)
    h.total_size = fmt.header_length(fmt.FC_DEST | fmt.FC_HW) + len(elem) + len(trailer)
    data = fmt.pack_header(h) + elem + trailer
    info = ins.inspect_bytes(data)
    assert info["header"]["upgrade_file_destination"] == "0001020304050607"
    assert info["header"]["header_length"] == 68
    assert info["trailer"]["signature"] == "5a" * 64
    assert len(info["elements"]) == 1 and info["warnings"] == []
    assert info["manufacturer_image_sha256"] == hashlib.sha256(elem).hexdigest()


def test_truncated_file(key):
    img = sign.build_image(b"z" * 5000, key, **PARAMS)
    info = ins.inspect_bytes(img[:3000])
    assert any("truncated" in w for w in info["errors"])
    assert [e["name"] for e in info["elements"]] == ["manifest", "sector table", "opaque"]
    assert info["manifest"]["seq"] == 9


def test_broken_manifest_is_a_warning(key):
    img = bytearray(sign.build_image(b"z" * 100, key, **PARAMS))
    img[60 + 6] = 0xFF          # first byte of the COSE_Sign1: a CBOR break, not tag 18
    info = ins.inspect_bytes(bytes(img))
    assert info["manifest"] is None
    assert [e["name"] for e in info["elements"]][0] == "opaque"
    assert any("is not a manifest of ours" in w for w in info["warnings"])


def test_duplicate_element_warning():
    elem = struct.pack(fmt.ELEM_FMT, 0x0000, 2) + b"ab"
    h = fmt.Header()
    h.total_size = fmt.HDR_SIZE + 2 * len(elem)
    info = ins.inspect_bytes(fmt.pack_header(h) + elem + elem)
    assert info["warnings"] == ["duplicate sub-element 0x0000"]


def test_bad_headers_raise():
    with pytest.raises(OtaError) as e:
        ins.inspect_bytes(b"\x00" * 100)
    assert e.value.reason == BAD_MAGIC
    with pytest.raises(OtaError) as e:
        ins.inspect_bytes(gbcs("rtds_ppmid_11x_image.bin")[:40])
    assert e.value.reason == BAD_HEADER_LENGTH


def test_inspect_file_and_text(tmp_path, key):
    p = tmp_path / "x.ota"
    p.write_bytes(sign.build_image(b"q" * 10, key, **PARAMS))
    info = ins.inspect_file(str(p))
    assert info["file"] == str(p)
    text = ins.format_text(info)
    for needle in ("manufacturer      0x1234", "file version      0x00020003",
                   "hardware          0x0002..0x0005", "0xF0A1 manifest", "seq               9"):
        assert needle in text
