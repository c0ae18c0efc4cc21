"""otatool sign --delta-from: a delta against the image the devices run, from its OTA file
(raw or deflate) or its firmware binary; what sign reports; the errors."""
import hashlib
import json

import cbor2
import pytest

from agent.image import fmt
from agent.image import manifest as mf
from host_tools import deltaimage, keys
from tests.host.clirun import rejected, run, usage
from tests.host.test_host_delta import _firmware, _release
from tests.host.test_host_sign import parse

PRODUCT = ["--seq", "2", "--manufacturer", "0x1234", "--image-type", "1", "--hw-min", "1",
           "--hw-max", "3"]


def release_pair(d, seed):
    """Two key pairs (k, k2) and two releases of code-like firmware (old.bin, new.bin) in d."""
    keys.write_keypair(str(d / "k.pem"), str(d / "p.pem"))
    keys.write_keypair(str(d / "k2.pem"), str(d / "p2.pem"))
    old = _firmware(seed, 30000)
    (d / "old.bin").write_bytes(old)
    (d / "new.bin").write_bytes(_release(old, seed + 1))


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    d = tmp_path_factory.mktemp("signdelta")
    release_pair(d, 1)
    ok(sign(d, "old.bin", "old.ota", "1"))
    ok(sign(d, "old.bin", "oldz.ota", "1", "--compress"))
    ok(sign(d, "old.bin", "old2.ota", "1", key="k2.pem"))
    ok(run("sign", "--key", d / "k.pem", "--in", d / "old.bin", "--out", d / "other.ota",
           "--version", "1", "--seq", "2", "--manufacturer", "0x4321", "--image-type", "1",
           "--hw-min", "1", "--hw-max", "3"))
    return d


def sign(d, fw, out, version, *extra, key="k.pem"):
    return run("sign", "--key", d / key, "--in", d / fw, "--out", d / out, "--version",
               version, *PRODUCT, *extra)


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def manifest_of(img):
    _h, elems, _o, _t, _e = parse(img)
    return cbor2.loads(cbor2.loads(elems[fmt.TAG_MANIFEST]).value[2]), elems


def test_from_the_ota_file(kit):
    d = kit
    r = ok(sign(d, "new.bin", "d.ota", "2", "--delta-from", d / "old.ota", "--json"))
    res = json.loads(r.stdout)
    old, new = (d / "old.bin").read_bytes(), (d / "new.bin").read_bytes()
    img = (d / "d.ota").read_bytes()
    m, elems = manifest_of(img)
    assert res["encoding"] == "delta" and m[mf.M_ENCODING] == fmt.ENC_DELTA
    assert res["base"] == {"from": str(d / "old.ota"), "kind": "image", "version": 1,
                           "size": len(old), "sha256": hashlib.sha256(old).hexdigest(),
                           "kid": m[mf.M_KID].hex(), "signature_checked": True}
    assert (m[mf.M_BASE_SIZE], m[mf.M_BASE_SHA256], m[mf.M_BASE_VERSION]) == \
        (len(old), hashlib.sha256(old).digest(), 1)
    n = fmt.sector_count(len(new), 4096)
    assert res["sectors"] == n and sum(res["modes"].values()) == n
    assert res["modes"]["copy"] > 0 and res["modes"]["delta"] > 0
    # the bytes on air are the table and payload elements; saved against the other two
    sent = len(elems[fmt.TAG_TABLE]) + len(elems[fmt.TAG_PAYLOAD])
    assert res["bytes_sent"] == sent == n * fmt.TABLE_DELTA_SIZE + m[mf.M_ENC_SIZE]
    assert res["raw_bytes"] == len(new) + n * fmt.TABLE_RAW_SIZE
    assert res["saved_vs_raw"] == res["raw_bytes"] - sent > 0
    assert res["saved_vs_deflate"] == res["deflate_bytes"] - sent > 0
    assert res["size"] == len(img)
    # the delta makes the new payload from the old one, sector by sector
    parts = deltaimage.split(img, "d.ota")
    assert deltaimage.rebuild(parts.manifest, parts.table, parts.payload, old) == new


def test_window_of_a_delta(kit):
    # a delta's chunks are deflated in a 1 KiB window by default (host_tools.delta
    # DELTA_WBITS: what a device's decoder makes), the manifest's key 20; --window sets
    # another, up to the sector's; the chunks decode in the window named (rebuild)
    d = kit
    old, new = (d / "old.bin").read_bytes(), (d / "new.bin").read_bytes()
    for extra, bits in (((), 10), (("--window", "4096"), 12), (("--window", "512"), 9)):
        ok(sign(d, "new.bin", "dw.ota", "2", "--delta-from", d / "old.ota", "--force", *extra))
        parts = deltaimage.split((d / "dw.ota").read_bytes(), "dw.ota")
        m = parts.manifest
        assert m.wbits == bits, extra
        assert deltaimage.rebuild(m, parts.table, parts.payload, old) == new
        assert m.chunk_max == max(e[2] for e in deltaimage.entries(m, parts.table))


def test_window_refused(kit):
    d = kit
    for bad in ("768", "256", "8192"):
        r = sign(d, "new.bin", "dw.ota", "2", "--delta-from", d / "old.ota", "--force",
                 "--window", bad)
        assert r.returncode != 0 and "window" in r.stderr, (bad, r.stderr)
    usage(sign(d, "new.bin", "dw.ota", "2", "--force", "--window", "1024"),
          "--compress or --delta-from")


def test_text_report(kit):
    d = kit
    r = ok(sign(d, "new.bin", "dt.ota", "2", "--delta-from", d / "old.ota"))
    lines = r.stdout.splitlines()
    assert "delta payload %d -> " % len((d / "new.bin").read_bytes()) in lines[0]
    assert lines[1].startswith("old image: version 0x00000001, 30000 bytes, sha256 %s"
                               % hashlib.sha256((d / "old.bin").read_bytes()).hexdigest())
    assert "its signature verified with the signing key" in lines[1]
    assert lines[2].startswith("sectors: copy ")
    assert lines[3].startswith("on air (payload and table): delta ")
    assert "per-sector deflate" in lines[3] and "raw" in lines[3]


def test_deflate_image_and_binary_give_the_same_delta(kit):
    d = kit
    ok(sign(d, "new.bin", "dz.ota", "2", "--delta-from", d / "oldz.ota"))
    ok(sign(d, "new.bin", "db.ota", "2", "--delta-from", d / "old.bin", "--base-version", "1"))
    ma, ea = manifest_of((d / "dz.ota").read_bytes())
    mb, eb = manifest_of((d / "db.ota").read_bytes())
    assert ea[fmt.TAG_TABLE] == eb[fmt.TAG_TABLE] and ea[fmt.TAG_PAYLOAD] == eb[fmt.TAG_PAYLOAD]
    assert ma == mb


def test_binary_report(kit):
    d = kit
    r = ok(sign(d, "new.bin", "dbj.ota", "2", "--delta-from", d / "old.bin", "--base-version",
                "0x10", "--json"))
    res = json.loads(r.stdout)
    assert res["base"]["kind"] == "binary" and res["base"]["version"] == 16
    assert res["base"]["signature_checked"] is None and res["base"]["kid"] is None
    m, _ = manifest_of((d / "dbj.ota").read_bytes())
    assert m[mf.M_BASE_VERSION] == 16


def test_old_image_of_another_key_is_named(kit):
    d = kit
    r = ok(sign(d, "new.bin", "dk.ota", "2", "--delta-from", d / "old2.ota"))
    assert "not the signing key: its signature not checked" in r.stdout


def test_old_image_with_a_bad_signature_refused(kit, tmp_path):
    d = kit
    img = bytearray((d / "old.ota").read_bytes())
    _h, elems, _o, _t, _e = parse(bytes(img))
    man = elems[fmt.TAG_MANIFEST]
    at = bytes(img).index(man) + len(man) - 5   # inside the signature's s
    img[at] ^= 0x01
    (tmp_path / "bad.ota").write_bytes(bytes(img))
    r = sign(d, "new.bin", tmp_path / "x.ota", "2", "--delta-from", tmp_path / "bad.ota")
    rejected(r, "bad.ota", "does not verify")
    assert not (tmp_path / "x.ota").exists()


def test_binary_needs_base_version(kit, tmp_path):
    d = kit
    usage(sign(d, "new.bin", tmp_path / "x.ota", "2", "--delta-from", d / "old.bin"),
          "--base-version")
    usage(sign(d, "new.bin", tmp_path / "x.ota", "2", "--base-version", "1"), "--delta-from")
    assert not (tmp_path / "x.ota").exists()


def test_delta_of_a_delta_refused(kit, tmp_path):
    d = kit
    ok(sign(d, "new.bin", "dd.ota", "2", "--delta-from", d / "old.ota"))
    r = sign(d, "new.bin", tmp_path / "x.ota", "3", "--delta-from", d / "dd.ota", "--json")
    rejected(r, "dd.ota is a delta image (against version 0x00000001)")
    assert json.loads(r.stdout)["code"] == "delta-of-delta"


def test_other_product_refused(kit, tmp_path):
    d = kit
    r = sign(d, "new.bin", tmp_path / "x.ota", "2", "--delta-from", d / "other.ota")
    rejected(r, "other.ota", "manufacturer 0x4321")


def test_version_differs_from_the_files(kit, tmp_path):
    d = kit
    r = sign(d, "new.bin", tmp_path / "x.ota", "2", "--delta-from", d / "old.ota",
             "--base-version", "7")
    rejected(r, "--base-version 0x00000007", "version 0x00000001")


def test_unreadable_old_image(kit, tmp_path):
    d = kit
    rejected(sign(d, "new.bin", tmp_path / "x.ota", "2", "--delta-from", tmp_path / "none"),
             "none")
    rejected(sign(d, "new.bin", tmp_path / "x.ota", "2", "--delta-from", tmp_path),
             "directory")
    (tmp_path / "empty.bin").write_bytes(b"")
    rejected(sign(d, "new.bin", tmp_path / "x.ota", "2", "--delta-from",
                  tmp_path / "empty.bin", "--base-version", "1"), "empty")
    cut = (d / "old.ota").read_bytes()[:-100]
    (tmp_path / "cut.ota").write_bytes(cut)
    rejected(sign(d, "new.bin", tmp_path / "x.ota", "2", "--delta-from", tmp_path / "cut.ota"),
             "cut.ota", "the file has")
    assert not (tmp_path / "x.ota").exists()


def test_progress_is_shown(kit, tmp_path):
    d = kit
    r = ok(run("--progress", "sign", "--key", d / "k.pem", "--in", d / "new.bin", "--out",
               tmp_path / "x.ota", "--version", "2", *PRODUCT, "--delta-from", d / "old.ota"))
    assert "sign delta" in r.stderr and "100%" in r.stderr


def test_supplier_trailer_and_external_signer(kit, tmp_path):
    """The GBCS trailer and the HSM flow work for a delta as for a full image: the digest
    of --digest-out is the one --signature-in completes, and verify checks both."""
    d = kit
    keys.write_keypair(str(tmp_path / "s.pem"), str(tmp_path / "sp.pem"))
    ok(sign(d, "new.bin", tmp_path / "ds.ota", "2", "--delta-from", d / "old.ota",
            "--supplier-key", tmp_path / "s.pem"))
    r = ok(run("verify", "--public", d / "p.pem", "--supplier-public", tmp_path / "sp.pem",
               "--base", d / "old.bin", tmp_path / "ds.ota"))
    assert "encoding=delta" in r.stdout and "payload=checked" in r.stdout
    rejected(run("verify", "--public", d / "p.pem", "--supplier-public", d / "p2.pem",
                 tmp_path / "ds.ota"), "E29")
    hsm = ["sign", "--public", d / "p.pem", "--in", d / "new.bin", "--version", "2", *PRODUCT,
           "--delta-from", d / "old.ota"]
    ok(run(*hsm, "--digest-out", tmp_path / "dg"))
    sig = keys.sign_digest(keys.load_private(str(d / "k.pem")), (tmp_path / "dg").read_bytes())
    (tmp_path / "sig").write_bytes(sig)
    r = ok(run(*hsm, "--signature-in", tmp_path / "sig", "--out", tmp_path / "dh.ota"))
    assert "signature: from" in r.stdout and "old image: version 0x00000001" in r.stdout
    ok(run("verify", "--public", d / "p.pem", "--base", d / "old.ota", tmp_path / "dh.ota"))
