"""otatool verify, run as real subprocesses: in-process (CPython) and --as-device (the
MicroPython interpreter on the compiled device code) must give the same answers."""
import json
import os
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
OTATOOL = os.path.join(BIN, "otatool")
DATA = os.path.join(ROOT, "build", "testdata")
GBCS = os.path.join(ROOT, "tests", "fixtures", "gbcs")


def data(name):
    return os.path.join(DATA, name)


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("OTATOOL_PROGRESS", None)
    e.pop("OTATOOL_MICROPYTHON", None)
    e.update(env or {})
    return subprocess.run([OTATOOL, "verify"] + [str(a) for a in args], capture_output=True,
                          text=True, cwd=ROOT, env=e, timeout=120)


def accepted(r):
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    return dict(w.split("=", 1) for w in lines[0].split()[1:])


def rejected(r, code):
    """Exit 1 with exactly one line "otatool: E<code> ..." on stderr; returns the line."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("otatool: E%d " % code), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def index():
    with open(data("images.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Damaged copies of img_raw.ota / img_deflate.ota: name -> (path, reason)."""
    d = tmp_path_factory.mktemp("verify")
    raw = bytearray(open(data("img_raw.ota"), "rb").read())
    z = bytearray(open(data("img_deflate.ota"), "rb").read())
    out = {}

    def put(name, b, reason):
        p = d / name
        p.write_bytes(bytes(b))
        out[name] = (p, reason)
    b = bytearray(raw)
    b[-5000] ^= 0x04
    put("payload_flip.ota", b, 62)
    b = bytearray(raw)
    b[14] ^= 0x01                                  # file version: covered by the signature
    put("version_flip.ota", b, 26)
    b = bytearray(raw)
    b[0] = 0x1F
    put("bad_magic.ota", b, 1)
    put("truncated.ota", raw[:-100], 5)
    put("appended.ota", raw + b"\x00", 11)
    b = bytearray(z)
    b[len(z) // 2] ^= 0xFF
    put("deflate_chunk.ota", b, 62)
    return out


def test_good_images(index):
    for name in ("img_raw.ota", "img_deflate.ota", "img_small_sector.ota", "img_odd.ota"):
        want = index["images"][name]
        # a device whose flash sector is the image's (512 bytes for img_small_sector)
        dev = ("--sector-size", "512") if name == "img_small_sector.ota" else ()
        got = accepted(run(data(name), "--public", data("dev_pub.pem"), *dev))
        assert got == {"version": "0x%08X" % want["version"], "seq": str(want["seq"]),
                       "kid": want["kid"], "mi_sha256": want["mi_sha256"],
                       "size": str(want["payload_size"]),
                       "encoding": "deflate" if want["compress"] else "raw"}, name


def test_supplier_trailer(index):
    sup = ("--supplier-public", data("supplier_pub.pem"))
    got = accepted(run(data("img_supplier.ota"), "--public", data("dev_pub.pem"), *sup))
    assert got["mi_sha256"] == index["images"]["img_supplier.ota"]["mi_sha256"]
    rejected(run(data("img_raw.ota"), "--public", data("dev_pub.pem"), *sup), 28)
    # signed by another supplier key
    line = rejected(run(data("img_supplier.ota"), "--public", data("dev_pub.pem"),
                        "--supplier-public", data("other_pub.pem")), 29)
    assert line == "otatool: E29 supplier signature invalid"


def test_keys_hw_and_seq():
    img = data("img_raw.ota")
    line = rejected(run(img, "--public", data("other_pub.pem")), 25)
    assert "unknown signing key id" in line
    accepted(run(img, "--public", data("other_pub.pem"), "--public", data("dev_pub.bin")))
    accepted(run(img, "--public", data("dev_pub.pem"), "--hw", "3", "--seq", "5"))
    rejected(run(img, "--public", data("dev_pub.pem"), "--hw", "4"), 42)
    rejected(run(img, "--public", data("dev_pub.pem"), "--seq", "6"), 43)


def test_tampered_copies_rejected_with_one_line(bad):
    for name, (path, reason) in sorted(bad.items()):
        rejected(run(path, "--public", data("dev_pub.pem")), reason)
    line = rejected(run(bad["version_flip.ota"][0], "--public", data("dev_pub.pem")), 26)
    assert line == "otatool: E26 manifest signature invalid"


def test_block_sizes_agree(bad):
    for block in ("1", "61", "0x1000"):
        accepted(run(data("img_deflate.ota"), "--public", data("dev_pub.pem"), "--block", block))
        rejected(run(bad["payload_flip.ota"][0], "--public", data("dev_pub.pem"),
                     "--block", block), 62)


def test_gbcs_fixtures_rejected_clearly():
    # real GBCS images: a ZigBee OTA header and an opaque Manufacturer Image, no manifest;
    # its first bytes read as a sub-element head with a tag that is not ours
    for name in ("rtds_ppmid_11x_image.bin", "rtds_esme_11x_image.bin"):
        for extra in ((), ("--as-device",)):
            line = rejected(run(os.path.join(GBCS, name), "--public", data("dev_pub.pem"),
                                *extra), 10)
            assert "no signed manifest (0xF0A1) after the header, tag 0x7243" in line, line


def test_usage_and_input_errors(tmp_path):
    assert run(data("img_raw.ota")).returncode == 2                   # no --public
    assert run("--public", data("dev_pub.pem")).returncode == 2      # no FILE
    assert run(data("img_raw.ota"), "--public", data("dev_pub.pem"),
               "--seq", "x").returncode == 2
    r = run(tmp_path / "missing.ota", "--public", data("dev_pub.pem"))
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "missing.ota" in r.stderr
    r = run(data("img_raw.ota"), "--public", data("img_raw.ota"))
    assert r.returncode == 1 and "not a public key" in r.stderr
    r = run(data("img_raw.ota"), "--public", data("dev_pub.pem"), "--block", "0")
    assert r.returncode == 2 and "block size" in r.stderr


def _wrapper(tmp_path, body):
    w = tmp_path / "mp.sh"
    w.write_text("#!/bin/sh\n" + body + "\n")
    w.chmod(w.stat().st_mode | stat.S_IEXEC)
    return str(w)


def test_as_device_agrees_and_runs_micropython(tmp_path, bad):
    real = os.path.join(BIN, "micropython")
    log = tmp_path / "argv.log"
    mp = _wrapper(tmp_path, 'echo "$@" >> %s\nexec %s "$@"' % (log, real))
    env = {"OTATOOL_MICROPYTHON": mp}
    sup = ("--supplier-public", data("supplier_pub.pem"))
    cases = [(data("img_raw.ota"), ()), (data("img_deflate.ota"), ("--block", "61")),
             (data("img_supplier.ota"), sup), (data("img_raw.ota"), sup),
             (data("img_other_key.ota"), ()), (data("img_raw.ota"), ("--hw", "9"))]
    cases += [(p, ()) for p, _ in sorted(bad.values())]
    for img, extra in cases:
        args = (img, "--public", data("dev_pub.pem")) + extra
        here = run(*args)
        dev = run(*(args + ("--as-device",)), env=env)
        assert (dev.returncode, dev.stdout, dev.stderr) == \
            (here.returncode, here.stdout, here.stderr), (img, extra)
    calls = log.read_text().splitlines()
    assert len(calls) == len(cases)
    assert all(" -m hal.sim.imagecheck " in c for c in calls)
    # the device code ran from its compiled form
    assert os.path.exists(os.path.join(ROOT, "build", "mpy", "hal", "sim", "imagecheck.mpy"))


def test_as_device_without_a_working_interpreter(tmp_path):
    args = (data("img_raw.ota"), "--public", data("dev_pub.pem"), "--as-device")
    r = run(*args, env={"OTATOOL_MICROPYTHON": _wrapper(tmp_path, "echo boom >&2; exit 3")})
    assert r.returncode == 1 and r.stderr.splitlines() == \
        ["otatool: --as-device: mp.sh exited 3: boom"]
    r = run(*args, env={"OTATOOL_MICROPYTHON": str(tmp_path / "nothing")})
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1


def device_cli(interpreter, *args):
    """python/micropython -m hal.sim.imagecheck ARGS; MicroPython from the compiled tree."""
    from host_tools import mpy
    out = os.path.join(ROOT, "build", "mpy")
    if interpreter == "micropython":
        mpy.build(out)
        cmd, cwd = [os.path.join(BIN, "micropython")], out
    else:
        cmd, cwd = [sys.executable], ROOT
    env = dict(os.environ, MICROPYPATH=out)
    return subprocess.run(cmd + ["-m", "hal.sim.imagecheck"] + [str(a) for a in args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


@pytest.mark.parametrize("interpreter", ["micropython", "python"])
def test_device_command_line(interpreter, index):
    want = index["images"]["img_supplier.ota"]
    line = "OK version=0x%08X seq=%d kid=%s mi_sha256=%s size=%d encoding=raw" % (
        want["version"], want["seq"], want["kid"], want["mi_sha256"], want["payload_size"])
    with open(data("dev_pub.bin"), "rb") as f:
        hexkey = f.read().hex()
    for key in (data("dev_pub.pem"), data("dev_pub.bin"), hexkey):
        r = device_cli(interpreter, data("img_supplier.ota"), data("other_pub.pem"), key,
                       "-s", data("supplier_pub.pem"), "-b", "100")
        assert (r.returncode, r.stdout) == (0, line + "\n"), r.stderr
    r = device_cli(interpreter, data("img_raw.ota"), data("other_pub.pem"))
    assert (r.returncode, r.stdout) == (1, "E25 unknown signing key id: %s\n" % want["kid"])
    r = device_cli(interpreter, data("img_raw.ota"), data("dev_pub.pem"), "-q", "6")
    assert r.returncode == 1 and r.stdout.startswith("E43 ")
    assert device_cli(interpreter, data("img_raw.ota")).returncode == 2
    assert device_cli(interpreter, data("img_raw.ota"), hexkey, "-x", "1").returncode == 2


@pytest.mark.parametrize("interpreter", ["micropython", "python"])
def test_device_command_line_layout(interpreter, index):
    """-l SECTOR,SLOT,META: the device's own flash; a payload larger than its slot is E44,
    a malformed layout a usage error, a device of another manufacturer (-m) E40."""
    big = data("img_big.ota")          # 256 KiB payload
    r = device_cli(interpreter, big, data("dev_pub.pem"), "-l", "4096,139264,8192")
    assert r.returncode == 1 and r.stdout.startswith("E44 image larger than the slot"), r.stdout
    r = device_cli(interpreter, big, data("dev_pub.pem"), "-l", "4096,532480,16384")
    assert r.returncode == 0 and r.stdout.startswith("OK "), r.stdout + r.stderr
    assert device_cli(interpreter, big, data("dev_pub.pem"), "-l", "4096,x").returncode == 2
    r = device_cli(interpreter, big, data("dev_pub.pem"), "-l", "4096,532480,16384",
                   "-m", "1", "-t", "1")
    assert r.returncode == 1 and r.stdout.startswith("E40 "), r.stdout


def test_as_device_agrees_on_the_profile_device(index):
    """In-process and --as-device give the same answer for the same device layout."""
    big = data("img_big.ota")
    for slot, want in (("139264", 1), ("532480", 0)):
        a = run(big, "--public", data("dev_pub.pem"), "--slot-size", slot)
        b = run(big, "--public", data("dev_pub.pem"), "--slot-size", slot, "--as-device")
        assert a.returncode == b.returncode == want, (a.stderr, b.stderr)
        assert a.stdout == b.stdout and a.stderr == b.stderr
