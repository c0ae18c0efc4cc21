"""otatool inspect (host_tools.imageinfo, host_tools.inspect): our images, the GBCS fixtures,
vendor-like files."""
import hashlib
import json
import os
import struct

import pytest

from agent.image import fmt
from agent.image import pack
from agent.image import manifest as mf
from agent.errors import OtaError, BAD_MAGIC, BAD_HEADER_LENGTH
from host_tools import imagebuild, imageinfo, keys
from host_tools import inspect as ins

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
    b = imagebuild.build(fw, key, **PARAMS)
    img = b.tobytes()
    info = roundtrip(imageinfo.inspect_bytes(img))
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
    b = imagebuild.build(fw, key, compress=True, supplier_key=supplier, force_replace=True,
                         **PARAMS)
    img = b.tobytes()
    info = imageinfo.inspect_bytes(img)
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
    info = roundtrip(imageinfo.inspect_bytes(data))
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
    info = roundtrip(imageinfo.inspect_bytes(gbcs("rtds_ppmid_11x_image.bin")))
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
    elems = (fmt.pack_elem(0x0000, 1000) + bytes(range(250)) * 4
             + fmt.pack_elem(0x0003, 16) + b"\x11" * 16
             + fmt.pack_elem(0x0100, 3) + b"abc")
    h.total_size = fmt.header_length(fmt.FC_SECURITY) + len(elems) + total_delta
    return pack.pack_header(h) + elems + extra


def test_vendor_file_with_trailing_bytes():
    data = vendor_file(extra=b"\xff" * 10)
    info = imageinfo.inspect_bytes(data)
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
    info = imageinfo.inspect_bytes(data)
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
    elem = fmt.pack_elem(0x0000, 5) + b"hello"
    trailer = fmt.pack_trailer(0, b"\x5a" * 64)
    h.total_size = fmt.header_length(fmt.FC_DEST | fmt.FC_HW) + len(elem) + len(trailer)
    data = pack.pack_header(h) + elem + trailer
    info = imageinfo.inspect_bytes(data)
    assert info["header"]["upgrade_file_destination"] == "0001020304050607"
    assert info["header"]["header_length"] == 68
    assert info["trailer"]["signature"] == "5a" * 64
    assert len(info["elements"]) == 1 and info["warnings"] == []
    assert info["manufacturer_image_sha256"] == hashlib.sha256(elem).hexdigest()


def test_truncated_file(key):
    img = imagebuild.build_image(b"z" * 5000, key, **PARAMS)
    info = imageinfo.inspect_bytes(img[:3000])
    assert any("truncated" in w for w in info["errors"])
    assert [e["name"] for e in info["elements"]] == ["manifest", "sector table", "opaque"]
    assert info["manifest"]["seq"] == 9


def test_broken_manifest_is_a_warning(key):
    img = bytearray(imagebuild.build_image(b"z" * 100, key, **PARAMS))
    img[60 + 6] = 0xFF          # first byte of the COSE_Sign1: a CBOR break, not tag 18
    info = imageinfo.inspect_bytes(bytes(img))
    assert info["manifest"] is None
    assert [e["name"] for e in info["elements"]][0] == "opaque"
    assert any("is not a manifest of ours" in w for w in info["warnings"])


def test_duplicate_element_warning():
    elem = fmt.pack_elem(0x0000, 2) + b"ab"
    h = fmt.Header()
    h.total_size = fmt.HDR_SIZE + 2 * len(elem)
    info = imageinfo.inspect_bytes(pack.pack_header(h) + elem + elem)
    assert info["warnings"] == ["duplicate sub-element 0x0000"]


def test_bad_headers_raise():
    with pytest.raises(OtaError) as e:
        imageinfo.inspect_bytes(b"\x00" * 100)
    assert e.value.reason == BAD_MAGIC
    with pytest.raises(OtaError) as e:
        imageinfo.inspect_bytes(gbcs("rtds_ppmid_11x_image.bin")[:40])
    assert e.value.reason == BAD_HEADER_LENGTH


def test_inspect_file_and_text(tmp_path, key):
    p = tmp_path / "x.ota"
    p.write_bytes(imagebuild.build_image(b"q" * 10, key, **PARAMS))
    info = imageinfo.inspect_file(str(p))
    assert info["file"] == str(p)
    text = ins.format_text(info)
    for needle in ("manufacturer      0x1234", "file version      0x00020003",
                   "hardware          0x0002..0x0005", "0xF0A1 manifest", "seq               9"):
        assert needle in text


# -- vendor wrappers, as zigpy reads them; vendor elements; any CBOR value ----------------

import datetime  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import cbor2  # noqa: E402

OTATOOL = os.path.join(os.path.dirname(sys.executable), "otatool")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def otatool(*args):
    return subprocess.run([OTATOOL] + [str(a) for a in args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=dict(os.environ, OTATOOL_PROGRESS="0"))


def ikea(ota, offset=48, sig=b"\x5a" * 64):
    """An IKEA signed container: "NGIS", the OTA file's offset and length at 16 and 20,
    the OTA file, the container's signature after it."""
    head = bytearray(offset)
    head[0:4] = b"NGIS"
    struct.pack_into("<II", head, 16, offset, len(ota))
    return bytes(head) + ota + sig


def legrand(ota):
    """A Legrand file: the OTA file's length as u32 LE, the file, a 17-byte suffix."""
    return struct.pack("<I", len(ota)) + ota + b"\x01" + bytes(range(16))


def thirdreality(ota):
    """A Third Reality file: 152-byte header with SHA-512 of bytes 64.. at 0 and the file
    size - 64 at 68, then the OTA file."""
    head = bytearray(152)
    struct.pack_into("<I", head, 68, 152 + len(ota) - 64)
    data = bytearray(head + ota)
    data[0:64] = hashlib.sha512(bytes(data[64:])).digest()
    return bytes(data)


WRAPPERS = {"ikea": ikea, "legrand": legrand, "thirdreality": thirdreality}


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_vendor_wrappers_read_as_zigpy_does(kind, tmp_path, key):
    from zigpy.ota.image import parse_ota_image
    ota = vendor_file()
    data = WRAPPERS[kind](ota)
    info = roundtrip(imageinfo.inspect_bytes(data))
    w = info["wrapper"]
    assert w["kind"] == kind and w["length"] == len(ota)
    assert data[w["offset"]:w["offset"] + w["length"]] == ota
    assert info["file_size"] == len(data) and info["errors"] == []
    zimg, rest = parse_ota_image(data)
    assert info["header"]["manufacturer_code"] == zimg.header.manufacturer_id
    assert info["header"]["image_type"] == zimg.header.image_type
    assert [e["tag"] for e in info["elements"]] == [int(e.tag_id) for e in zimg.subelements]
    assert [e["length"] for e in info["elements"]] == [len(e.data) for e in zimg.subelements]
    p = tmp_path / ("v." + kind)
    p.write_bytes(data)
    r = otatool("inspect", p)
    assert r.returncode == 0 and "wrapper" in r.stdout and w["description"] in r.stdout
    # a device takes none of them: one line naming the wrapper
    pub = tmp_path / "p.pem"
    from cryptography.hazmat.primitives import serialization as ser
    pub.write_bytes(key.public_key().public_bytes(ser.Encoding.PEM,
                                                  ser.PublicFormat.SubjectPublicKeyInfo))
    r = otatool("verify", "--public", pub, p)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1
    assert r.stderr.startswith("otatool: E1 not a ZigBee OTA file: a ") and \
        w["description"] in r.stderr


def test_wrapped_signed_image_and_cut_container(tmp_path, key):
    img = imagebuild.build_image(b"w" * 3000, key, **PARAMS)
    info = imageinfo.inspect_bytes(ikea(img))
    assert info["manifest"]["seq"] == 9 and info["wrapper"]["suffix_length"] == 64
    assert [e["name"] for e in info["elements"]] == ["manifest", "sector table",
                                                     "upgrade image"]
    cut = ikea(img)[:48 + len(img)]        # no signature after the OTA file: zigpy refuses
    with pytest.raises(ValueError):
        imageinfo.inspect_bytes(cut)
    p = tmp_path / "cut.ota"
    p.write_bytes(cut)
    r = otatool("inspect", p)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "IKEA container" in r.stderr
    r = otatool("inspect", "--json", p)
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False


def test_vendor_file_without_manifest_clear_reason(tmp_path, key):
    p = tmp_path / "vendor.ota"
    p.write_bytes(vendor_file())
    pub = tmp_path / "p.pem"
    from cryptography.hazmat.primitives import serialization as ser
    pub.write_bytes(key.public_key().public_bytes(ser.Encoding.PEM,
                                                  ser.PublicFormat.SubjectPublicKeyInfo))
    r = otatool("verify", "--public", pub, p)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("otatool: E10 not signed for this device: no manifest ")
    assert "0x0000, upgrade image" in r.stderr and "before its predecessor" not in r.stderr
    r = otatool("verify", "--public", pub, "--json", p)
    assert json.loads(r.stdout)["code"] == 10


def _file_with(elems):
    h = fmt.Header()
    body = b"".join(fmt.pack_elem(t, len(d)) + d for t, d in elems)
    h.total_size = fmt.HDR_SIZE + len(body)
    return pack.pack_header(h) + body


def test_other_vendors_elements_are_opaque_and_labelled():
    data = _file_with([(0xF000, b"\x00\x00" + os.urandom(40)), (0xFFBF, b"abc"),
                       (0xF123, b"zz"), (0x0000, b"fw")])
    info = imageinfo.inspect_bytes(data)
    names = [(e["tag"], e["name"], e.get("known_as")) for e in info["elements"]]
    assert names[0][:2] == (0xF000, "opaque") and "Telink" in names[0][2]
    assert names[1][:2] == (0xFFBF, "opaque") and "IKEA" in names[1][2]
    assert names[2] == (0xF123, "opaque", "manufacturer-specific")
    assert names[3] == (0x0000, "upgrade image", None)
    assert "opaque (Telink AES" in ins.format_text(info)


def test_our_tags_named_only_when_they_decode(key):
    """Our tag values (from agent.image.fmt) with foreign content are opaque; a table that does
    not match the manifest's digest is not called a sector table."""
    junk = _file_with([(fmt.TAG_MANIFEST, b"\xa1\x01\x02"), (fmt.TAG_TABLE, b"\x00" * 8)])
    info = imageinfo.inspect_bytes(junk)
    assert [e["name"] for e in info["elements"]] == ["opaque", "opaque"]
    assert info["manifest"] is None
    b = imagebuild.build(b"t" * 5000, key, **PARAMS)
    img = bytearray(b.tobytes())
    t = img.index(fmt.pack_elem(fmt.TAG_TABLE, len(b.table)))
    img[t + 6] ^= 0xFF
    info = imageinfo.inspect_bytes(bytes(img))
    assert [e["name"] for e in info["elements"]] == ["manifest", "opaque", "upgrade image"]


def _with_manifest(key, extra):
    """Our signed image whose manifest map holds extra entries (re-encoded, signature not
    redone: inspect shows, it does not judge)."""
    b = imagebuild.build(b"c" * 100, key, **PARAMS)
    m = dict(b.manifest)
    m.update(extra)
    cose = cbor2.loads(b.cose)
    cose.value[2] = cbor2.dumps(m, datetime_as_timestamp=False, timezone=datetime.timezone.utc)
    new = cbor2.dumps(cose)
    img = b.tobytes()
    hl = fmt.parse_header(img).length
    body = fmt.pack_elem(fmt.TAG_MANIFEST, len(new)) + new + \
        img[hl + 6 + len(b.cose):]
    h = fmt.parse_header(img)
    h.total_size = hl + len(body)
    return pack.pack_header(h) + body


def test_any_cbor_value_prints(key, tmp_path):
    values = {
        mf.M_ENCODING: [1, 2],
        mf.M_VERSION: {"a": {1, 2}},
        mf.M_KID: cbor2.undefined,
        100: datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        101: frozenset([b"x", 3]),
        102: cbor2.CBORSimpleValue(99),
        103: float("nan"),
        104: 1 << 20000,
        105: cbor2.CBORTag(999, [None, True]),
        (1, 2): "tuple key",
    }
    data = _with_manifest(key, values)
    info = imageinfo.inspect_bytes(data)
    m = info["manifest"]
    assert m["encoding"] == [1, 2] and m["kid"] == "undefined"
    assert m["other"]["100"] == "2020-01-02T03:04:05+00:00"
    assert m["other"]["102"] == {"simple": 99} and m["other"]["103"] == "nan"
    assert m["other"]["104"].startswith("0x1000")
    assert m["other"]["105"] == {"tag": 999, "value": [None, True]}
    json.loads(json.dumps(info, allow_nan=False))
    text = ins.format_text(info)
    assert "encoding          [1, 2]" in text
    p = tmp_path / "odd.ota"
    p.write_bytes(data)
    for args in (("inspect", p), ("inspect", "--json", p), ("-v", "inspect", p)):
        r = otatool(*args)
        assert r.returncode == 0 and r.stderr == "", (args, r.stderr)


def test_truncated_file_exits_1(tmp_path, key):
    img = imagebuild.build_image(b"z" * 5000, key, **PARAMS)
    p = tmp_path / "t.ota"
    p.write_bytes(img[:3000])
    r = otatool("inspect", p)
    assert r.returncode == 1 and "error: file truncated" in r.stdout
    assert r.stderr == "otatool: file truncated: 3000 of %d bytes (total image size)\n" \
        % len(img)
    r = otatool("inspect", "--json", p)
    info = json.loads(r.stdout)
    assert r.returncode == 1 and info["ok"] is False and info["errors"]
    p.write_bytes(img)
    assert otatool("inspect", p).returncode == 0
