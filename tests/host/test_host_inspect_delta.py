"""otatool inspect, verify and state on delta images: the old image a delta needs, each
sector's mode (compact for a big table), the bytes against a raw image; verify with and
without the old image."""
import hashlib
import json

import pytest

from agent.image import fmt
from host_tools import deltaimage
from host_tools.imageinfo import ENCODING_NAMES
from tests.host.clirun import rejected, run, usage
from tests.host.test_host_delta import _firmware
from tests.host.test_host_sign import parse
from tests.host.test_host_sign_delta import ok, release_pair, sign


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    d = tmp_path_factory.mktemp("inspectdelta")
    release_pair(d, 3)
    ok(sign(d, "old.bin", "old.ota", "1", "--compress"))
    ok(sign(d, "new.bin", "d.ota", "2", "--delta-from", d / "old.ota"))
    # 64 sectors of 256 bytes, every other one changed: 64 runs of modes
    many = bytearray(_firmware(5, 64 * 256))
    (d / "many_old.bin").write_bytes(bytes(many))
    for k in range(1, 64, 2):
        many[k * 256 + 7] ^= 0x5A
    (d / "many_new.bin").write_bytes(bytes(many))
    ok(sign(d, "many_new.bin", "many.ota", "2", "--sector-size", "256", "--delta-from",
            d / "many_old.bin", "--base-version", "1"))
    return d


def inspect_json(path):
    r = ok(run("inspect", "--json", path))
    return json.loads(r.stdout)


def test_inspect_json_names_the_old_image_and_each_sector(kit):
    d = kit
    old, new = (d / "old.bin").read_bytes(), (d / "new.bin").read_bytes()
    info = inspect_json(d / "d.ota")
    m = info["manifest"]
    assert m["encoding"] == fmt.ENC_DELTA
    assert (m["base_size"], m["base_sha256"], m["base_version"]) == \
        (len(old), hashlib.sha256(old).hexdigest(), 1)
    dl = info["delta"]
    assert dl["base"] == {"size": len(old), "sha256": hashlib.sha256(old).hexdigest(),
                          "version": 1}
    n = fmt.sector_count(len(new), 4096)
    assert len(dl["sectors"]) == n and sum(dl["counts"].values()) == n
    # the chunks follow each other from 0 to the encoded size; copies have none
    _h, elems, _o, _t, _e = parse((d / "d.ota").read_bytes())
    pos = 0
    for s in dl["sectors"]:
        if s["mode"] == "copy":
            assert s["length"] == 0 and s["offset"] + 4096 <= len(old)
        else:
            assert s["offset"] == pos and s["length"] > 0
            pos += s["length"]
    assert pos == m["enc_size"] == len(elems[fmt.TAG_PAYLOAD]) == sum(dl["bytes"].values())
    assert dl["sent"] == len(elems[fmt.TAG_TABLE]) + len(elems[fmt.TAG_PAYLOAD])
    assert dl["saved_vs_raw"] == len(new) + n * fmt.TABLE_RAW_SIZE - dl["sent"] > 0
    assert info["ok"] and not info["warnings"]
    # the manifest bounds a chunk by the longest: what a device makes its chunk buffer for
    assert m["chunk_max"] == max(s["length"] for s in dl["sectors"]) < fmt.chunk_cap(4096)
    z = inspect_json(d / "old.ota")["manifest"]
    assert z["encoding"] == fmt.ENC_DEFLATE and 0 < z["chunk_max"] <= fmt.chunk_cap(4096)


def test_inspect_text(kit):
    d = kit
    r = ok(run("inspect", d / "d.ota"))
    text = r.stdout
    info = inspect_json(d / "d.ota")["delta"]
    assert "  encoding          2 (delta)" in text
    assert "  base_version      0x00000001" in text
    assert "  chunk_max         %d\n" % inspect_json(d / "d.ota")["manifest"]["chunk_max"] in text
    assert ("delta               needs the old image version 0x00000001: 30000 bytes, sha256 %s"
            % info["base"]["sha256"]) in text
    counts = ", ".join("%s %d" % kv for kv in info["counts"].items())
    assert "  sectors           %d of 4096 bytes: %s" % (len(info["sectors"]), counts) in text
    modes = [ln for ln in text.splitlines() if ln.startswith("  modes ")]
    assert modes and modes[0].split(None, 1)[1].startswith(deltaimage.runs(info["sectors"])[0])
    assert "%d saved" % info["saved_vs_raw"] in text


def test_big_table_is_shown_compactly(kit):
    d = kit
    info = inspect_json(d / "many.ota")["delta"]
    assert info["counts"]["copy"] == 32 and len(info["sectors"]) == 64
    items = deltaimage.runs(info["sectors"])
    assert len(items) == 64 and items[0] == "0 copy"
    text = ok(run("inspect", d / "many.ota")).stdout
    assert "... 16 more runs (-v or --json: every sector)" in text
    assert items[47] in text and ", " + items[48] + "," not in text
    full = ok(run("-v", "inspect", d / "many.ota")).stdout
    assert "more runs" not in full and items[63] in full


def test_runs():
    s = [{"mode": m, "length": n, "offset": 0} for m, n in
         (("copy", 0), ("copy", 0), ("delta", 12), ("copy", 0), ("raw", 256), ("copy", 0),
          ("copy", 0), ("copy", 0))]
    assert deltaimage.runs(s) == ["0-1 copy", "2 delta 12", "3 copy", "4 raw 256", "5-7 copy"]


def test_verify_without_the_old_image_says_the_payload_was_not_checked(kit):
    d = kit
    r = ok(run("verify", "--public", d / "p.pem", d / "d.ota"))
    lines = r.stdout.splitlines()
    assert lines[0].startswith("OK version=0x00000002 seq=2 ")
    assert "encoding=delta base_version=0x00000001 payload=not-checked" in lines[0]
    assert lines[1].startswith("payload not checked") and "--base" in lines[1]
    res = json.loads(ok(run("verify", "--json", "--public", d / "p.pem", d / "d.ota")).stdout)
    assert res["encoding"] == "delta" and res["payload_checked"] is False
    assert res["base_version"] == 1 and "not checked" in res["note"]


def test_verify_with_the_old_image(kit):
    d = kit
    for base in ("old.ota", "old.bin"):
        r = ok(run("verify", "--json", "--public", d / "p.pem", "--base", d / base, d / "d.ota"))
        res = json.loads(r.stdout)
        assert res["payload_checked"] is True and res["note"] is None
        assert res["mi_sha256"] == inspect_json(d / "d.ota")["manufacturer_image_sha256"]


def test_verify_refusals(kit, tmp_path):
    d = kit
    # another old image: the device's reason, base mismatch
    r = run("verify", "--json", "--public", d / "p.pem", "--base", d / "new.bin", d / "d.ota")
    rejected(r, "E66")
    assert json.loads(r.stdout)["code"] == 66
    # a key the device does not trust
    rejected(run("verify", "--public", d / "p2.pem", d / "d.ota"), "E25")
    # a chunk changed: its digest no longer matches
    img = bytearray((d / "d.ota").read_bytes())
    _h, elems, _o, _t, end = parse(bytes(img))
    img[end - 3] ^= 0xFF   # in the payload element's last chunk
    (tmp_path / "bad.ota").write_bytes(bytes(img))
    rejected(run("verify", "--public", d / "p.pem", tmp_path / "bad.ota"), "E62", "digest")
    # --base is for a delta; --as-device cannot hold the old image
    usage(run("verify", "--public", d / "p.pem", "--base", d / "old.bin", d / "old.ota"),
          "not a delta image")
    usage(run("verify", "--as-device", "--public", d / "p.pem", d / "d.ota"), "--as-device")


def test_verify_reports_a_full_image_as_before(kit):
    d = kit
    r = ok(run("verify", "--public", d / "p.pem", d / "old.ota"))
    assert r.stdout.strip().endswith("encoding=deflate") and len(r.stdout.splitlines()) == 1


def test_encoding_names():
    assert [ENCODING_NAMES[e] for e in (fmt.ENC_RAW, fmt.ENC_DEFLATE, fmt.ENC_DELTA)] == \
        ["raw", "deflate", "delta"]


def test_verify_refuses_a_chunk_past_the_manifests_bound():
    # tests/datagen/gen_core.py's images whose manifests bound a chunk one byte below their
    # longest: the device's reason (E61, malformed sector table), at the longest chunk
    from tests.host.test_host_cli_device import _testdata
    pub = _testdata("core_pub.bin")
    for name, more in (("core_v2z_short.ota", ()),
                       ("core_v2d_short.ota", ("--base", _testdata("core_v1.ota")))):
        m = deltaimage.split(open(_testdata(name), "rb").read(), name).manifest
        line = rejected(run("verify", "--public", pub, *more, _testdata(name)), "E61", "chunk")
        assert line.endswith("+%d" % (m.chunk_max + 1)), line
