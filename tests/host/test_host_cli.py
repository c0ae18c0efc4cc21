"""The otatool command line, run as real subprocesses: exit codes 0 / 1 / 2 and messages."""
import hashlib
import io
import json
import os
import stat
import subprocess
import sys

import pytest

from agent.image import fmt
from agent.crypto.trust import KID_LEN
from host_tools import cli, keys, progress

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
OTATOOL = [os.path.join(BIN, "otatool")]
MODULE = [sys.executable, "-m", "host_tools"]
GBCS_ESME = os.path.join(ROOT, "tests", "fixtures", "gbcs", "rtds_esme_11x_image.bin")
SIGN_ARGS = ["--version", "0x0102", "--seq", "3", "--manufacturer", "0x1234",
             "--image-type", "1", "--hw-min", "1", "--hw-max", "0x0003"]


def run(cmd, *args, env=None):
    e = dict(os.environ)
    e.pop("OTATOOL_PROGRESS", None)
    e.update(env or {})
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=ROOT, env=e,
                          timeout=60)


def rejected(r, *needles):
    """Exit 1 with exactly one line "otatool: ..." on stderr."""
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("otatool: "), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    r = run(OTATOOL, "keygen", "--private", str(d / "k.pem"), "--public", str(d / "p.pem"),
            "--raw-public", str(d / "p.bin"))
    assert r.returncode == 0, r.stderr
    (d / "fw.bin").write_bytes(os.urandom(5000) + bytes(7000))
    return d


def test_keygen(work):
    k, p, raw = work / "k.pem", work / "p.pem", work / "p.bin"
    assert stat.S_IMODE(os.stat(k).st_mode) == 0o600
    assert k.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert p.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    priv = keys.load_private(str(k))
    point = keys.public_point(priv)
    assert raw.read_bytes() == point == keys.public_point(keys.load_public(str(p)))
    assert keys.public_point(keys.load_public(str(raw))) == point
    kid = hashlib.sha256(point).digest()[:KID_LEN]
    assert keys.key_id(point) == kid


def test_keygen_prints_kid_and_refuses_overwrite(tmp_path):
    k, p = str(tmp_path / "a.pem"), str(tmp_path / "b.pem")
    r = run(MODULE, "keygen", "--private", k, "--public", p)
    assert r.returncode == 0 and r.stderr == ""
    kid = r.stdout.splitlines()[0].split()[-1]          # "key id       <hex>"
    assert kid == keys.key_id(keys.public_point(keys.load_public(p))).hex()
    before = open(k, "rb").read()
    rejected(run(OTATOOL, "keygen", "--private", k, "--public", str(tmp_path / "new.pem")),
             "exists", "--force")
    assert not os.path.exists(tmp_path / "new.pem")      # nothing written on refusal
    rejected(run(OTATOOL, "keygen", "--private", str(tmp_path / "n.pem"), "--public", p),
             "exists")
    assert not os.path.exists(tmp_path / "n.pem")
    assert open(k, "rb").read() == before
    os.chmod(k, 0o644)
    r = run(OTATOOL, "keygen", "--private", k, "--public", p, "--force")
    assert r.returncode == 0 and r.stdout.splitlines()[0].split()[-1] != kid
    assert open(k, "rb").read() != before
    assert stat.S_IMODE(os.stat(k).st_mode) == 0o600


@pytest.mark.parametrize("cmd", [OTATOOL, MODULE])
def test_sign_and_inspect(work, cmd):
    out = str(work / ("img%d.ota" % len(cmd)))
    r = run(cmd, "sign", "--key", str(work / "k.pem"), "--in", str(work / "fw.bin"),
            "--out", out, "--compress", "--sector-size", "1024", *SIGN_ARGS)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and out in r.stdout and "12 sectors of 1024" in r.stdout
    r = run(cmd, "inspect", "--json", out)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    m = info["manifest"]
    assert (m["version"], m["seq"], m["manufacturer"], m["hw_max"]) == (0x102, 3, 0x1234, 3)
    assert m["encoding"] == 1 and m["sector_size"] == 1024 and m["size"] == 12000
    assert m["sha256"] == hashlib.sha256((work / "fw.bin").read_bytes()).hexdigest()
    r = run(cmd, "inspect", out)
    assert r.returncode == 0 and "0xF0A2 sector table" in r.stdout


def test_sign_with_supplier(work):
    out = str(work / "sup.ota")
    r = run(OTATOOL, "sign", "--key", str(work / "k.pem"), "--in", str(work / "fw.bin"),
            "--out", out, "--supplier-key", str(work / "k.pem"), "--force-replace",
            "--header-string", "hello", "--stack-version", "0x10", *SIGN_ARGS)
    assert r.returncode == 0, r.stderr
    data = open(out, "rb").read()
    assert data[-66:-64] == b"\x01\x40"
    mi = hashlib.sha256(data[60:-66]).hexdigest()
    assert ("manufacturer image sha256 " + mi) in r.stdout
    assert keys.verify(keys.load_public(str(work / "p.pem")), data[-64:], data[60:-66])
    h = fmt.parse_header(data)
    assert h.header_string.rstrip(b"\0") == b"hello" and h.stack_version == 0x10


def test_inspect_gbcs_via_cli():
    r = run(OTATOOL, "inspect", "--json", GBCS_ESME)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["manufacturer_image_sha256"].startswith("7542f475")
    assert info["trailer"]["force_replace"] == 0


def sign_cmd(work, *extra, out="bad.ota"):
    args = ["sign", "--key", str(work / "k.pem"), "--in", str(work / "fw.bin"),
            "--out", str(work / out)] + SIGN_ARGS
    return run(OTATOOL, *(args + list(extra)))


@pytest.mark.parametrize("extra,needle", [
    (["--sector-size", "3000"], "power of two"),
    (["--sector-size", "128"], "power of two"),
    (["--hw-min", "9"], "hw min 0x0009 above hw max"),
    (["--header-string", "h" * 33], "header string"),
    (["--force-replace"], "supplier key"),
])
def test_sign_rejects_invalid_input(work, extra, needle):
    rejected(sign_cmd(work, *extra), needle)
    assert not os.path.exists(work / "bad.ota")
    assert not os.path.exists(work / "bad.ota.tmp")


def test_sign_rejects_bad_files(work, tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "junk.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n")
    base = ["--out", str(tmp_path / "o.ota")] + SIGN_ARGS
    rejected(run(OTATOOL, "sign", "--key", str(work / "k.pem"),
                 "--in", str(tmp_path / "missing.bin"), *base),
             "missing.bin", "No such file")
    rejected(run(OTATOOL, "sign", "--key", str(work / "k.pem"),
                 "--in", str(tmp_path / "empty.bin"), *base), "firmware is empty")
    rejected(run(OTATOOL, "sign", "--key", str(tmp_path / "junk.pem"),
                 "--in", str(work / "fw.bin"), *base), "junk.pem", "not a PEM private key")
    rejected(run(OTATOOL, "sign", "--key", str(work / "p.pem"),
                 "--in", str(work / "fw.bin"), *base), "not a PEM private key")
    rejected(run(OTATOOL, "sign", "--key", str(work / "k.pem"), "--in", str(work / "fw.bin"),
                 "--out", str(tmp_path / "no" / "dir.ota"), *SIGN_ARGS),
             "dir.ota: No such file")
    assert set(os.listdir(tmp_path)) == {"empty.bin", "junk.pem"}


def test_inspect_rejects_non_ota(work, tmp_path):
    line = rejected(run(OTATOOL, "inspect", str(work / "fw.bin")), "E1 bad magic number")
    assert line.startswith("otatool: E1 ")
    (tmp_path / "short.bin").write_bytes(open(GBCS_ESME, "rb").read()[:20])
    rejected(run(MODULE, "inspect", str(tmp_path / "short.bin")), "E3 ")
    rejected(run(OTATOOL, "inspect", str(tmp_path / "nothing.ota")), "No such file")


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["sign"],
    ["sign", "--key", "k.pem", "--in", "f", "--out", "o", "--version", "twelve",
     "--seq", "1", "--manufacturer", "1", "--image-type", "1", "--hw-min", "1", "--hw-max", "1"],
    ["sign", "--key", "k.pem", "--in", "f", "--out", "o", "--version", "-1",
     "--seq", "1", "--manufacturer", "1", "--image-type", "1", "--hw-min", "1", "--hw-max", "1"],
    ["sign", "--key", "k.pem", "--in", "f", "--out", "o", "--version", "0x100000000",
     "--seq", "1", "--manufacturer", "1", "--image-type", "1", "--hw-min", "1", "--hw-max", "1"],
    ["sign", "--key", "k.pem", "--in", "f", "--out", "o", "--version", "1",
     "--seq", "1", "--manufacturer", "0x10000", "--image-type", "1", "--hw-min", "1",
     "--hw-max", "1"],
    ["inspect"],
    ["inspect", "a", "--bogus"],
    ["keygen", "--private", "x.pem"],
])
def test_usage_errors_exit_2(args):
    r = run(OTATOOL, *args)
    assert r.returncode == 2, (args, r.returncode, r.stderr)
    assert "usage: otatool" in r.stderr and r.stdout == ""


def test_help_exits_0():
    r = run(MODULE, "--help")
    assert r.returncode == 0
    for name in ("keygen", "sign", "inspect"):
        assert name in r.stdout


def test_progress_bar_when_forced(work):
    r = run(OTATOOL, "--progress", "sign", "--key", str(work / "k.pem"), "--in",
            str(work / "fw.bin"), "--out", str(work / "p.ota"), *SIGN_ARGS)
    assert r.returncode == 0
    assert "sign [" in r.stderr and "100%" in r.stderr and r.stderr.endswith("\n")
    r = run(OTATOOL, "sign", "--key", str(work / "k.pem"), "--in", str(work / "fw.bin"),
            "--out", str(work / "p.ota"), "--force", *SIGN_ARGS, env={"OTATOOL_PROGRESS": "1"})
    assert "100%" in r.stderr
    r = run(OTATOOL, "--no-progress", "sign", "--key", str(work / "k.pem"), "--in",
            str(work / "fw.bin"), "--out", str(work / "p.ota"), "--force", *SIGN_ARGS,
            env={"OTATOOL_PROGRESS": "1"})
    assert r.returncode == 0 and r.stderr == ""


# In-process checks of the framework pieces.

def test_number_parser():
    assert cli.number("4096") == 4096 and cli.number("0x1000") == 4096
    assert cli.number("0XFFFF") == 0xFFFF and cli.number("1_000") == 1000
    for bad in ("", "0x", "-1", "0x-1", "1e3", "0o17", "ten"):
        with pytest.raises(Exception):
            cli.number(bad)


def test_main_in_process(capsys, work):
    assert cli.main(["inspect", GBCS_ESME]) == 0
    assert "7542f475" in capsys.readouterr().out
    assert cli.main(["inspect", str(work / "fw.bin")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otatool: E1 bad magic number") and err.count("\n") == 1
    with pytest.raises(SystemExit) as e:
        cli.main([])
    assert e.value.code == 2


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_behaviour(monkeypatch):
    monkeypatch.delenv("OTATOOL_PROGRESS", raising=False)
    progress.force(None)
    quiet = io.StringIO()
    with progress.Progress(100, "x", stream=quiet) as p:     # not a tty: nothing
        p.update(50)
    assert quiet.getvalue() == ""
    tty = FakeTty()
    with progress.Progress(100, "x", stream=tty) as p:       # a tty, but quick: nothing
        p.update(50)
    assert tty.getvalue() == ""
    tty = FakeTty()
    p = progress.Progress(1 << 20, "job", stream=tty)
    p.start -= 5                                              # pretend it has run 5 s
    p.update(1 << 19)
    assert tty.getvalue().startswith("\rjob [") and " 50%" in tty.getvalue()
    p.close(ok=False)                                         # failure erases the line
    assert tty.getvalue().endswith("\r") and "\n" not in tty.getvalue()
    forced = io.StringIO()
    with progress.Progress(3, "n", stream=forced, unit="files", show=True) as p:
        p.advance(1)
    assert forced.getvalue().endswith("100%  3/3 files\n")
    monkeypatch.setenv("OTATOOL_PROGRESS", "1")
    assert progress.Progress(1, stream=io.StringIO()).enabled
    progress.force(False)
    try:
        assert not progress.Progress(1, stream=FakeTty()).enabled
    finally:
        progress.force(None)


# -- global options, help texts, --json everywhere, the README's reference ----------------

import argparse  # noqa: E402


def _subparsers():
    ap = cli.build_parser()
    for a in ap._actions:
        if isinstance(a, argparse._SubParsersAction):
            return ap, a.choices
    raise AssertionError("no subcommands")


def test_version():
    r = run(OTATOOL, "--version")
    assert r.returncode == 0 and r.stdout == "otatool %s\n" % cli.VERSION
    assert run(MODULE, "--version").stdout == r.stdout


def test_every_option_has_help_default_and_example():
    ap, subs = _subparsers()
    assert set(subs) >= {"keygen", "sign", "inspect", "verify", "state", "serve", "device",
                         "powercut", "deploy", "bench"}
    for name, p in [("otatool", ap)] + sorted(subs.items()):
        text = " ".join(p.format_help().split())
        assert p.epilog and ("otatool " + name if name != "otatool" else "otatool ") in \
            p.epilog, name
        for act in p._actions:
            if isinstance(act, (argparse._SubParsersAction,)):
                continue
            assert act.help and act.help != argparse.SUPPRESS, (name, act.option_strings)
            d = act.default
            shown = d is not None and d is not False and d != [] and act.option_strings \
                and not isinstance(act, (argparse._HelpAction, argparse._VersionAction))
            if shown:
                assert "(default: %s)" % d in text or "default" in act.help, \
                    (name, act.option_strings, d)


def test_quiet_and_verbose(tmp_path):
    r = run(OTATOOL, "-q", "inspect", GBCS_ESME)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    cut = tmp_path / "cut.bin"
    cut.write_bytes(open(GBCS_ESME, "rb").read()[:200])
    r = run(OTATOOL, "-q", "inspect", cut)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.startswith("otatool: file truncated")
    r = run(OTATOOL, "-v", "inspect", GBCS_ESME)
    assert r.returncode == 0 and "first bytes" in r.stdout
    assert "first bytes" not in run(OTATOOL, "inspect", GBCS_ESME).stdout
    assert run(OTATOOL, "-q", "-v", "inspect", GBCS_ESME).returncode == 2


def test_json_failures_carry_the_reason_code(tmp_path):
    junk = tmp_path / "junk.ota"
    junk.write_bytes(b"\x00" * 100)
    r = run(OTATOOL, "inspect", "--json", junk)
    assert r.returncode == 1 and json.loads(r.stdout) == {
        "ok": False, "code": 1, "reason": "E1 bad magic number: 0x00000000"}
    assert r.stderr == "otatool: E1 bad magic number: 0x00000000\n"
    pub = os.path.join(ROOT, "build", "testdata", "dev_pub.pem")
    r = run(OTATOOL, "verify", "--json", "--public", pub, junk)
    assert r.returncode == 1 and json.loads(r.stdout)["code"] == 1
    r = run(OTATOOL, "verify", "--json", "--public", pub, tmp_path / "missing.ota")
    res = json.loads(r.stdout)
    assert r.returncode == 1 and res["ok"] is False and res["code"] is None
    assert "missing.ota" in res["reason"]
    r = run(OTATOOL, "state", "--json", junk)
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False


def test_readme_reference_matches_help():
    from host_tools import helpdoc
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    ref = helpdoc.reference()
    assert helpdoc.splice(text, ref) == text, \
        "README.md's command reference is stale: run python -m host_tools.helpdoc"
    _ap, subs = _subparsers()
    for name in subs:
        assert "### otatool %s\n" % name in text
    r = run(MODULE[:1] + ["-m", "host_tools.helpdoc", "--check"])
    assert r.returncode == 0, r.stderr
    stale = text.replace("show the contents of a ZigBee OTA file", "show a file")
    with pytest.raises(AssertionError):
        assert helpdoc.splice(stale, ref) == stale
