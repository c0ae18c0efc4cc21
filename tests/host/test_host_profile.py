"""Product profiles (host_tools.profile) with sign and verify; verify plays the profile's
device, slot size included, and sizes its memory from the profile alone."""
import json
import os
import struct
import subprocess
import sys

import cbor2
import pytest

from agent.image import fmt
from agent.image import manifest as mf
from agent.errors import OtaError
from host_tools import keys, profile, imagebuild as sign
from host_tools.cli import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OTATOOL = os.path.join(os.path.dirname(sys.executable), "otatool")
PROFILE = """
manufacturer = 0x1234
image_type = 0x0001
hw_min = 1
hw_max = 3
sector_size = 4096
slot_size = 0x40000
key = "k.pem"
public = ["p.pem"]
"""


def otatool(*args, cwd=ROOT):
    return subprocess.run([OTATOOL] + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env=dict(os.environ, OTATOOL_PROGRESS="0"))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("profile")
    k = keys.generate()
    from cryptography.hazmat.primitives import serialization as ser
    (d / "k.pem").write_bytes(k.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                              ser.NoEncryption()))
    (d / "p.pem").write_bytes(k.public_key().public_bytes(
        ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))
    (d / "product.toml").write_text(PROFILE)
    (d / "fw100k.bin").write_bytes(os.urandom(100_000))
    (d / "fw3m.bin").write_bytes(os.urandom(3_000_000))
    return d


def test_load_resolves_paths_and_checks(work):
    p = profile.load(str(work / "product.toml"))
    assert p.get("manufacturer") == 0x1234 and p.get("slot_size") == 0x40000
    assert p.get("key") == str(work / "k.pem") and p.get("public") == [str(work / "p.pem")]
    bad = {
        "colour = 1": "unknown key 'colour'",
        "manufacturer = 0x10000": "manufacturer 65536 out of range",
        "manufacturer = \"acme\"": "manufacturer must be an integer",
        "sector_size = 3000": "not a power of two",
        "slot_size = 0x10000000": "slot_size 268435456 out of range",
        "hw_min = 5\nhw_max = 2": "hw_min 5 is above hw_max 2",
        "key = 7": "key must be a file path",
        "manufacturer = = 1": "not a TOML profile",
    }
    for text, why in bad.items():
        f = work / "bad.toml"
        f.write_text(text)
        with pytest.raises(InputError) as e:
            profile.load(str(f))
        assert why in str(e.value), (text, str(e.value))
        r = otatool("verify", "--profile", f, work / "x.ota")
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and why in r.stderr


def test_sign_and_verify_with_profile_only(work):
    r = otatool("sign", "--profile", work / "product.toml", "--in", work / "fw100k.bin",
                "--out", work / "v3.ota", "--version", 3, "--seq", 3, "--force")
    assert r.returncode == 0, r.stderr
    img = open(work / "v3.ota", "rb").read()
    h = fmt.parse_header(img)
    assert (h.manufacturer, h.image_type, h.hw_min, h.hw_max) == (0x1234, 1, 1, 3)
    r = otatool("verify", "--profile", work / "product.toml", work / "v3.ota")
    assert r.returncode == 0 and r.stdout.startswith("OK version=0x00000003 seq=3 "), r.stderr
    # flags override the profile: another manufacturer refuses the image
    r = otatool("verify", "--profile", work / "product.toml", "--manufacturer", "0x4321",
                work / "v3.ota")
    assert r.returncode == 1 and r.stderr.startswith("otatool: E40 ")
    r = otatool("verify", "--profile", work / "product.toml", "--seq", 4, work / "v3.ota")
    assert r.returncode == 1 and r.stderr.startswith("otatool: E43 ")
    # relative key paths resolve against the profile's directory, not the working directory
    r = otatool("verify", "--profile", "product.toml", "v3.ota", cwd=work)
    assert r.returncode == 0, r.stderr


def test_slot_size_decides(work):
    """A 3 MB image: refused by the default device (512 KiB slots) and by the profile's
    (256 KiB), accepted by a device whose slots hold it."""
    r = otatool("sign", "--profile", work / "product.toml", "--in", work / "fw3m.bin",
                "--out", work / "big.ota", "--version", 4, "--seq", 4, "--force")
    assert r.returncode == 0, r.stderr
    r = otatool("verify", "--public", work / "p.pem", work / "big.ota")
    assert r.returncode == 1 and r.stderr.startswith("otatool: E44 image larger than the slot")
    assert "3000000 > " in r.stderr
    r = otatool("verify", "--profile", work / "product.toml", "--json", work / "big.ota")
    assert r.returncode == 1 and json.loads(r.stdout) == {
        "ok": False, "code": 44, "reason": r.stderr.strip()[len("otatool: "):]}
    r = otatool("verify", "--profile", work / "product.toml", "--slot-size", "4m", "--json",
                work / "big.ota")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["ok"] and res["size"] == 3_000_000 and res["device"]["slot_size"] == 4 << 20
    assert res["device"]["capacity"] >= 3_000_000


def test_usage_errors(work):
    assert otatool("verify", work / "big.ota").returncode == 2          # no key anywhere
    assert otatool("verify", "--public", work / "p.pem", "--slot-size", "100",
                   work / "big.ota").returncode == 2
    assert otatool("verify", "--public", work / "p.pem", "--sector-size", "3000",
                   work / "big.ota").returncode == 2
    r = otatool("verify", "--public", work / "p.pem", "--slot-size", "0x10000",
                "--sector-size", "0x1000", "--meta-size", "0x10000", work / "big.ota")
    assert r.returncode == 1 and "no room beside its" in r.stderr
    r = otatool("sign", "--in", work / "fw100k.bin", "--out", work / "x.ota", "--version", 1,
                "--seq", 1, "--key", work / "k.pem")
    assert r.returncode == 2 and "--manufacturer" in r.stderr


def _lying_image(key, claimed_size):
    """A 1-sector image whose manifest was changed after signing to claim claimed_size
    bytes (so unverified input says it is huge)."""
    b = sign.build(b"x" * 100, key, 1, 1, 0x1234, 1, 0, 5)
    img = bytearray(b.tobytes())
    m = dict(b.manifest)
    m[mf.M_SIZE] = claimed_size
    payload = cbor2.dumps(m)
    cose = cbor2.loads(b.cose)
    cose.value[2] = payload
    new = cbor2.dumps(cose)
    hl = fmt.parse_header(img).length
    out = img[:hl] + struct.pack(fmt.ELEM_FMT, fmt.TAG_MANIFEST, len(new)) + new + \
        img[hl + 6 + len(b.cose):]
    return bytes(out)


def test_memory_bounded_by_profile_not_by_the_file(work, monkeypatch):
    """The emulated flash is the profile's layout whatever the manifest claims."""
    from hal.sim import nor, imagecheck
    key = keys.load_private(str(work / "k.pem"))
    sizes = []
    real = nor.NorFlash.__init__

    def record(self, size, *a, **kw):
        sizes.append(size)
        return real(self, size, *a, **kw)
    monkeypatch.setattr(nor.NorFlash, "__init__", record)
    pub = keys.public_point(keys.load_public(str(work / "p.pem")))
    lay = profile.device_layout()
    for claim in (0xFFFFFFFF, 1 << 30, 178 << 20):
        img = _lying_image(key, claim)
        assert len(img) < 1000
        with pytest.raises(OtaError):
            imagecheck.check_image(lambda o, n: img[o:o + n], len(img), [pub], layout=lay)
        assert sizes[-1] == lay.size
    assert max(sizes) == lay.size < 2 << 20
    # --as-device: the heap follows the profile, never the file
    from host_tools import verify
    assert verify.heap_for(lay) == lay.size + (8 << 20)
    big = profile.device_layout(4096, profile.SLOT_MAX)
    assert verify.heap_for(big) <= 2 * profile.SLOT_MAX + (8 << 20) + 2 * 4096 * 2


def test_as_device_heap_and_layout_from_profile(work, tmp_path):
    """The MicroPython command line carries the profile's layout and a heap sized by it."""
    log = tmp_path / "argv.log"
    real = os.path.join(os.path.dirname(sys.executable), "micropython")
    w = tmp_path / "mp.sh"
    w.write_text('#!/bin/sh\necho "$@" >> %s\nexec %s "$@"\n' % (log, real))
    w.chmod(0o755)
    img = _lying_image(keys.load_private(str(work / "k.pem")), 1 << 30)
    (tmp_path / "lie.ota").write_bytes(img)
    r = subprocess.run([OTATOOL, "verify", "--profile", str(work / "product.toml"),
                        "--as-device", str(tmp_path / "lie.ota")], capture_output=True,
                       text=True, cwd=ROOT, timeout=300,
                       env=dict(os.environ, OTATOOL_MICROPYTHON=str(w), OTATOOL_PROGRESS="0"))
    assert r.returncode == 1 and r.stderr.startswith("otatool: E"), r.stderr
    argv = log.read_text().split()
    lay = profile.device_layout(4096, 0x40000)
    assert "heapsize=%d" % (lay.size + (8 << 20)) in argv
    assert argv[argv.index("-l") + 1] == "4096,%d,%d" % (lay.slot_size, lay.meta_size)
