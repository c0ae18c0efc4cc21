"""otatool sign on the command line: output rules, compression fallback, size checks, the
HSM flow (--digest-out / --signature-in), encrypted keys, certificates, --json, help."""
import hashlib
import json
import os
import shutil
import subprocess
import time

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed, decode_dss_signature, encode_dss_signature)

from agent.image import fmt
from host_tools import argtypes, cli, keys
from tests.host.test_host_cli import OTATOOL, SIGN_ARGS, rejected, run
from tests.host.test_host_keys import certificate
from tests.host.test_host_sign import check_image, parse

PARAMS = dict(version=0x0102, seq=3, manufacturer=0x1234, image_type=1, hw_min=1, hw_max=3)


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    d = tmp_path_factory.mktemp("signcli")
    key = keys.generate()
    keys.write_keypair(str(d / "k.pem"), str(d / "p.pem"), key=key, raw_path=str(d / "p.bin"))
    (d / "cert.pem").write_bytes(certificate(key))
    (d / "cert.der").write_bytes(certificate(key, der=True))
    (d / "fw.bin").write_bytes(os.urandom(5000) + bytes(7000))     # compresses
    (d / "noise.bin").write_bytes(os.urandom(9000))                # does not
    return d, key


def sign(d, *extra, key="k.pem", fw="fw.bin", env=None):
    args = ["sign", "--in", str(d / fw)] + list(SIGN_ARGS)
    if key is not None:
        args += ["--key", str(d / key)]
    return run(OTATOOL, *(args + [str(a) for a in extra]), env=env)


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stderr)
    return r


def image(path):
    return open(str(path), "rb").read()


def manifest_sig(img):
    _, elems, _, _, _ = parse(img)
    return cbor2.loads(elems[fmt.TAG_MANIFEST]).value[3]


# -- outputs ----------------------------------------------------------------------------

def test_out_equal_to_in_refused(kit, tmp_path):
    d, _ = kit
    fw = tmp_path / "fw.bin"
    shutil.copy(str(d / "fw.bin"), str(fw))
    os.symlink(str(fw), str(tmp_path / "alias.bin"))
    before = fw.read_bytes()
    for out in (fw, tmp_path / "alias.bin", tmp_path / "." / "fw.bin"):
        for force in ([], ["--force"]):
            r = run(OTATOOL, "sign", "--key", str(d / "k.pem"), "--in", str(fw), "--out",
                    str(out), *SIGN_ARGS, *force)
            rejected(r, "would overwrite an input")
    r = run(OTATOOL, "sign", "--key", str(d / "k.pem"), "--in", str(fw), "--out",
            str(d / "k.pem"), "--force", "--json", *SIGN_ARGS)
    rejected(r, "k.pem")
    assert json.loads(r.stdout)["code"] == "output-is-input"
    assert fw.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["alias.bin", "fw.bin"]


def test_existing_output_needs_force(kit, tmp_path):
    d, key = kit
    out = tmp_path / "img.ota"
    out.write_bytes(b"precious")
    rejected(sign(d, "--out", out), "img.ota exists", "--force")
    assert out.read_bytes() == b"precious"
    ok(sign(d, "--out", out, "--force"))
    check_image(image(out), (d / "fw.bin").read_bytes(), key.public_key(), **PARAMS)
    assert os.listdir(tmp_path) == ["img.ota"]


def test_failure_leaves_no_output(kit, tmp_path):
    d, _ = kit
    out = tmp_path / "img.ota"
    rejected(sign(d, "--out", out, "--hw-min", "9"), "hw min")
    rejected(sign(d, "--out", out, key="p.pem"), "not a PEM private key")
    rejected(sign(d, "--out", out, "--supplier-key", d / "nothing.pem"), "No such file")
    assert os.listdir(tmp_path) == []


# -- compression -------------------------------------------------------------------------

def test_compress_falls_back_to_raw(kit, tmp_path):
    d, key = kit
    r = ok(sign(d, "--out", tmp_path / "n.ota", "--compress", fw="noise.bin"))
    assert "raw payload 9000 -> 9000 bytes" in r.stdout
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("compression:")]
    assert len(line) == 1 and "signed raw" in line[0]
    fw = (d / "noise.bin").read_bytes()
    check_image(image(tmp_path / "n.ota"), fw, key.public_key(), compress=False, **PARAMS)
    r = ok(sign(d, "--out", tmp_path / "j.ota", "--compress", "--json", fw="noise.bin"))
    obj = json.loads(r.stdout)
    assert obj["encoding"] == "raw" and obj["compress_fallback"] is True
    assert obj["encoded_size"] == 9000 and obj["size"] == os.path.getsize(tmp_path / "j.ota")
    # compressible firmware stays deflated, and says nothing about a fallback
    r = ok(sign(d, "--out", tmp_path / "z.ota", "--compress"))
    assert "deflate payload 12000 ->" in r.stdout and "compression:" not in r.stdout
    check_image(image(tmp_path / "z.ota"), (d / "fw.bin").read_bytes(), key.public_key(),
                compress=True, **PARAMS)
    assert os.path.getsize(tmp_path / "z.ota") < os.path.getsize(d / "fw.bin")


# -- input size ---------------------------------------------------------------------------

def test_too_large_input_refused_before_reading(kit, tmp_path):
    d, _ = kit
    big = tmp_path / "big.bin"
    with open(str(big), "wb") as f:
        f.truncate(1 << 32)                      # sparse: 4 GiB that take no disk
    t0 = time.monotonic()
    r = sign(d, "--out", tmp_path / "o.ota", "--json", fw=big)
    took = time.monotonic() - t0
    rejected(r, "big.bin is 4294967296 bytes", "at most")
    assert json.loads(r.stdout)["code"] == "too-large"
    assert took < 10                              # reading 4 GiB would take far longer
    assert os.listdir(tmp_path) == ["big.bin"]


def test_input_that_is_not_a_regular_file(kit, tmp_path):
    d, _ = kit
    rejected(sign(d, "--out", tmp_path / "o.ota", fw="/dev/zero"), "not a regular file")
    rejected(sign(d, "--out", tmp_path / "o.ota", fw=tmp_path), "not a regular file")
    (tmp_path / "empty.bin").write_bytes(b"")
    rejected(sign(d, "--out", tmp_path / "o.ota", fw=tmp_path / "empty.bin"),
             "firmware is empty")
    assert os.listdir(tmp_path) == ["empty.bin"]


# -- the HSM flow ------------------------------------------------------------------------

def hsm_sign(key, digest, high_s=None):
    """What an HSM does with the digest: ECDSA P-256 over a prehashed SHA-256; optionally
    forced to the high-s (or low-s) form of the signature."""
    r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
    if high_s is not None and (s > keys.HALF_N) != high_s:
        s = keys.N - s
    return r, s


def test_hsm_flow_digest_then_signature(kit, tmp_path):
    d, key = kit
    dg = tmp_path / "img.digest"
    r = ok(sign(d, "--public", d / "p.pem", "--digest-out", dg, key=None))
    digest = dg.read_bytes()
    assert len(digest) == 32 and digest.hex() in r.stdout
    assert os.listdir(tmp_path) == ["img.digest"]                 # the digest and nothing else
    # the digest is the SHA-256 of the COSE Sig_structure of the image's manifest
    ok(sign(d, "--out", tmp_path / "ref.ota"))
    ref = image(tmp_path / "ref.ota")
    hdr, elems, _, _, _ = parse(ref)
    protected, _, payload, _ = cbor2.loads(elems[fmt.TAG_MANIFEST]).value
    assert hashlib.sha256(cbor2.dumps(["Signature1", protected, hdr, payload])).digest() == digest

    r_, s_ = hsm_sign(key, digest, high_s=True)
    forms = {"raw_high": r_.to_bytes(32, "big") + s_.to_bytes(32, "big"),
             "der_high": encode_dss_signature(r_, s_),
             "der_low": encode_dss_signature(r_, keys.N - s_),
             "hex_high": (r_.to_bytes(32, "big") + s_.to_bytes(32, "big")).hex().encode()}
    images = {}
    fw = (d / "fw.bin").read_bytes()
    for name, sig in forms.items():
        (tmp_path / (name + ".sig")).write_bytes(sig)
        out = tmp_path / (name + ".ota")
        r = ok(sign(d, "--public", d / "p.pem", "--signature-in", tmp_path / (name + ".sig"),
                    "--out", out, key=None))
        assert ("written as low s" in r.stdout) == name.endswith("high")
        images[name] = image(out)
        check_image(images[name], fw, key.public_key(), **PARAMS)
        assert int.from_bytes(manifest_sig(images[name])[32:], "big") <= keys.HALF_N
    # every form of one signature gives one image: its identity is not malleable
    assert len(set(images.values())) == 1
    assert images["raw_high"][:len(hdr)] == ref[:len(hdr)]


def test_hsm_flow_with_openssl_and_a_certificate(kit, tmp_path):
    d, key = kit
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    dg = tmp_path / "d.bin"
    ok(sign(d, "--public", d / "cert.pem", "--digest-out", dg, key=None))
    subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", str(d / "k.pem"), "-in", str(dg),
                    "-out", str(tmp_path / "s.der")], check=True, capture_output=True,
                   timeout=60)
    out = tmp_path / "img.ota"
    r = ok(sign(d, "--public", d / "cert.der", "--signature-in", tmp_path / "s.der",
                "--out", out, "--json", key=None))
    obj = json.loads(r.stdout)
    assert obj["ok"] and obj["external_signature"] and obj["out"] == str(out)
    check_image(image(out), (d / "fw.bin").read_bytes(), key.public_key(), **PARAMS)


def test_hsm_flow_with_a_supplier_trailer(kit, tmp_path):
    """The first run needs only the supplier key's name (the header counts the trailer), not
    its password; the second signs the trailer."""
    d, key = kit
    supplier = keys.generate()
    (tmp_path / "s.pem").write_bytes(keys.private_pem(supplier, b"sup"))
    dg = tmp_path / "d.bin"
    r = subprocess.run(OTATOOL + ["sign", "--in", str(d / "fw.bin"), "--public", str(d / "p.pem"),
                                  "--digest-out", str(dg), "--supplier-key",
                                  str(tmp_path / "s.pem")] + SIGN_ARGS,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r_, s_ = hsm_sign(key, dg.read_bytes())
    (tmp_path / "m.sig").write_bytes(encode_dss_signature(r_, s_))
    out = tmp_path / "img.ota"
    ok(sign(d, "--public", d / "p.pem", "--signature-in", tmp_path / "m.sig", "--out", out,
            "--supplier-key", tmp_path / "s.pem", "--supplier-password-env", "SUP",
            key=None, env={"SUP": "sup"}))
    img = image(out)
    check_image(img, (d / "fw.bin").read_bytes(), key.public_key(), **PARAMS)
    assert keys.verify(supplier.public_key(), img[-64:], img[60:-66])
    # without the supplier key in the first run the header differs: the signature does not fit
    rejected(sign(d, "--public", d / "p.pem", "--signature-in", tmp_path / "m.sig", "--out",
                  tmp_path / "x.ota", key=None), "does not verify")


def test_hsm_signature_that_does_not_match_is_refused(kit, tmp_path):
    d, key = kit
    dg = tmp_path / "d.bin"
    ok(sign(d, "--public", d / "p.bin", "--digest-out", dg, key=None))
    other = keys.generate()
    r, s = hsm_sign(other, dg.read_bytes())
    (tmp_path / "other.sig").write_bytes(encode_dss_signature(r, s))
    r, s = hsm_sign(key, dg.read_bytes())
    (tmp_path / "good.sig").write_bytes(encode_dss_signature(r, s))
    out = tmp_path / "img.ota"
    res = sign(d, "--public", d / "p.bin", "--signature-in", tmp_path / "other.sig", "--out",
               out, "--json", key=None)
    rejected(res, "does not verify")
    assert json.loads(res.stdout)["code"] == "signature-mismatch"
    # the right signature, but the image differs from the one the digest was made for
    rejected(sign(d, "--public", d / "p.bin", "--signature-in", tmp_path / "good.sig",
                  "--out", out, "--seq", "4", key=None), "does not verify")
    (tmp_path / "junk.sig").write_bytes(b"\x30\x02junk")
    res = sign(d, "--public", d / "p.bin", "--signature-in", tmp_path / "junk.sig", "--out",
               out, "--json", key=None)
    rejected(res, "junk.sig", "not a P-256 signature")
    assert json.loads(res.stdout)["code"] == "bad-signature"
    assert sorted(os.listdir(tmp_path)) == ["d.bin", "good.sig", "junk.sig", "other.sig"]


def test_digest_out_follows_the_output_rules(kit, tmp_path):
    d, _ = kit
    dg = tmp_path / "d.bin"
    dg.write_bytes(b"old")
    rejected(sign(d, "--digest-out", dg), "exists")
    assert dg.read_bytes() == b"old"
    ok(sign(d, "--digest-out", dg, "--force"))                  # --key gives the public key
    assert len(dg.read_bytes()) == 32
    rejected(sign(d, "--digest-out", d / "fw.bin", "--force"), "would overwrite an input")


@pytest.mark.parametrize("extra,needle", [
    (["--public", "p.pem", "--out", "o.ota"], "--digest-out or --signature-in"),
    (["--key", "k.pem", "--public", "p.pem", "--out", "o.ota"], "one of --key or --public"),
    (["--out", "o.ota"], "one of --key or --public"),
    (["--key", "k.pem", "--digest-out", "d", "--signature-in", "s", "--out", "o"],
     "two separate steps"),
    (["--key", "k.pem", "--digest-out", "d", "--out", "o.ota"], "drop --out"),
    (["--key", "k.pem"], "--out"),
    (["--key", "k.pem", "--out", "o.ota", "--seq", "0x1_0000_0000"], "u32"),
    (["--key", "k.pem", "--out", "o.ota", "--hw-max", "70000"], "u16"),
])
def test_usage_errors(kit, extra, needle):
    d, _ = kit
    args = ["sign", "--in", str(d / "fw.bin")] + SIGN_ARGS + extra
    r = run(OTATOOL, *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "usage: otatool sign" in r.stderr and needle in r.stderr and r.stdout == ""


# -- encrypted keys ------------------------------------------------------------------------

def test_encrypted_signing_and_supplier_keys(kit, tmp_path):
    d, key = kit
    supplier = keys.generate()
    (tmp_path / "k.pem").write_bytes(keys.private_pem(key, b"maker pw"))
    (tmp_path / "s.pem").write_bytes(keys.private_pem(supplier, b"supplier pw"))
    env = {"MAKER_PW": "maker pw", "SUP_PW": "supplier pw"}
    out = tmp_path / "img.ota"
    base = ["--key", str(tmp_path / "k.pem"), "--password-env", "MAKER_PW"]
    ok(run(OTATOOL, "sign", "--in", str(d / "fw.bin"), "--out", str(out), *SIGN_ARGS, *base,
           "--supplier-key", str(tmp_path / "s.pem"), "--supplier-password-env", "SUP_PW",
           env=env))
    img = image(out)
    check_image(img, (d / "fw.bin").read_bytes(), key.public_key(), **PARAMS)
    assert keys.verify(supplier.public_key(), img[-64:], img[60:-66])
    assert int.from_bytes(img[-32:], "big") <= keys.HALF_N
    os.remove(str(out))
    rejected(run(OTATOOL, "sign", "--in", str(d / "fw.bin"), "--out", str(out), *SIGN_ARGS,
                 *base, env={"MAKER_PW": "wrong"}), "k.pem: wrong password")
    res = subprocess.run(OTATOOL + ["sign", "--in", str(d / "fw.bin"), "--out", str(out),
                                    "--key", str(tmp_path / "k.pem"), "--json"] + SIGN_ARGS,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    rejected(res, "needs a password", "--password-env")
    assert json.loads(res.stdout)["code"] == "password-missing"
    rejected(run(OTATOOL, "sign", "--in", str(d / "fw.bin"), "--out", str(out), *SIGN_ARGS,
                 *base, "--supplier-key", str(tmp_path / "s.pem"), "--supplier-password-env",
                 "NOT_SET_ANYWHERE", env=env), "NOT_SET_ANYWHERE is not set")
    assert sorted(os.listdir(tmp_path)) == ["k.pem", "s.pem"]


# -- JSON and help ---------------------------------------------------------------------------

def test_sign_json_result(kit, tmp_path):
    d, key = kit
    out = tmp_path / "img.ota"
    r = ok(sign(d, "--out", out, "--json"))
    obj = json.loads(r.stdout)
    img = image(out)
    assert obj["ok"] is True and obj["out"] == str(out) and obj["size"] == len(img)
    assert obj["kid"] == keys.key_id(keys.public_point(key)).hex()
    assert obj["manufacturer_image_sha256"] == hashlib.sha256(img[60:]).hexdigest()
    assert (obj["version"], obj["seq"], obj["sectors"], obj["encoding"]) == \
        (0x102, 3, 3, "raw")
    r = sign(d, "--out", out, "--json")
    line = rejected(r, "exists")
    assert json.loads(r.stdout) == {"ok": False, "code": "output-exists",
                                    "reason": line[len("otatool: "):]}


def test_every_option_shows_its_default_and_each_command_an_example():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in ("keygen", "getpub", "sign"):
        p = subs.choices[name]
        fmt_ = argtypes.HelpFormatter(p.prog)
        for action in p._actions:
            if not action.option_strings or action.help == "show this help message and exit" \
                    or action.dest == "profile":          # host_tools.profile's own option
                continue
            text = fmt_._get_help_string(action)
            assert "default" in text or "required" in text, (name, action.option_strings)
        assert "example" in p.format_help() and ("otatool " + name) in p.epilog
