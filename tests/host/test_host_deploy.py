"""otatool deploy end to end: the real mpremote against the MicroPython unix port running
its REPL on a pseudo-terminal (the "board"; its filesystem is a temporary directory), plus
the build and packaging files deploy relies on (mpy --board, package.json, manifests)."""
import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
import tty

import pytest

from host_tools import keys, mpy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
OTATOOL = [os.path.join(BIN, "otatool")]
MICROPYTHON = os.path.join(BIN, "micropython")
MPREMOTE = os.path.join(BIN, "mpremote")


class PtyBoard:
    """micropython's REPL on one pty pair, bridged to a second pair whose slave is the
    serial port the host tools open (a process on a pty slave cannot share it)."""

    def __init__(self, cwd):
        self.cwd = cwd
        self.ma, sa = pty.openpty()
        self.mb, sb = pty.openpty()
        tty.setraw(sa)
        tty.setraw(sb)
        self.proc = subprocess.Popen([MICROPYTHON], stdin=sa, stdout=sa, stderr=sa, cwd=cwd,
                                     close_fds=True)
        os.close(sa)
        self._sb = sb
        self.port = os.ttyname(sb)
        self._stop = False
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self):
        while not self._stop and self.proc.poll() is None:
            r, _w, _x = select.select([self.ma, self.mb], [], [], 0.1)
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    time.sleep(0.01)
                    continue
                os.write(self.mb if fd == self.ma else self.ma, data)

    def close(self):
        self._stop = True
        self.proc.kill()
        self.proc.wait()
        self._t.join(2)
        for fd in (self.ma, self.mb, self._sb):
            os.close(fd)


@pytest.fixture
def board(tmp_path):
    b = PtyBoard(str(tmp_path))
    yield b
    b.close()


@pytest.fixture(scope="module")
def pub(tmp_path_factory):
    d = tmp_path_factory.mktemp("deploykeys")
    k = keys.generate()
    path = d / "p.pem"
    from cryptography.hazmat.primitives import serialization
    path.write_bytes(k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(path), keys.public_point(k.public_key())


def otatool(*args):
    env = dict(os.environ, OTATOOL_PROGRESS="0")
    return subprocess.run(OTATOOL + list(args), capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def on_board(cwd, code):
    """Run code in a fresh MicroPython whose working directory is the board's."""
    return subprocess.run([MICROPYTHON, "-c", code], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def test_deploy_copies_then_skips(board, pub):
    r = otatool("deploy", "--board", "unix", "--port", board.port, "--public", pub[0])
    assert r.returncode == 0, r.stdout + r.stderr
    files = mpy.board_sources("unix")
    n = len(list(files))
    assert "deploy: %d copied, 0 up to date" % (n + 1) in r.stdout, r.stdout
    assert "deploy: unix:" in r.stdout
    for rel in ("agent/update.mpy", "hal/bootrec.mpy", "boards/unix/board.mpy",
                "boards/bdev.mpy"):
        assert os.path.getsize(os.path.join(board.cwd, rel)) > 0, rel
    assert not os.path.exists(os.path.join(board.cwd, "boards", "esp32"))
    assert not os.path.exists(os.path.join(board.cwd, "agent", "update.py"))
    with open(os.path.join(board.cwd, "ota", "keys.bin"), "rb") as f:
        assert f.read() == pub[1]
    # the same again: nothing to copy
    r = otatool("deploy", "--board", "unix", "--port", board.port, "--public", pub[0])
    assert r.returncode == 0, r.stderr
    assert "deploy: 0 copied, %d up to date" % (n + 1) in r.stdout, r.stdout
    assert "copy " not in r.stdout
    # one file changed on the board: only it is copied back
    with open(os.path.join(board.cwd, "agent", "image", "fmt.mpy"), "r+b") as f:
        f.seek(20)
        f.write(b"\x00\x01")
    r = otatool("deploy", "--board", "unix", "--port", board.port, "--public", pub[0])
    assert r.returncode == 0, r.stderr
    assert "copy agent/image/fmt.mpy" in r.stdout and "deploy: 1 copied" in r.stdout, r.stdout


def test_deployed_agent_runs_on_its_own(board, pub):
    r = otatool("deploy", "--board", "unix", "--port", board.port, "--public", pub[0])
    assert r.returncode == 0, r.stderr
    code = ("import agent.update\nfrom boards import trust\nfrom boards.unix.board import "
            "make_board\nb = make_board('dev.flash')\nprint(agent.update.__file__, "
            "len(trust.load()), b.power_on())")
    p = on_board(board.cwd, code)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split() == ["agent/update.mpy", "1", "0"], p.stdout
    assert os.path.getsize(os.path.join(board.cwd, "dev.flash")) == \
        __import__("boards.unix.layout", fromlist=["layout"]).layout().size


def test_dry_run_writes_nothing(board):
    r = otatool("deploy", "--board", "unix", "--port", board.port, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "would copy agent/update.mpy" in r.stdout
    assert os.listdir(board.cwd) == []


def test_broken_agent_on_board_is_reported(board):
    r = otatool("deploy", "--board", "unix", "--port", board.port)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(board.cwd, "agent", "update.mpy"), "wb") as f:
        f.write(b"garbage")
    os.remove(os.path.join(board.cwd, "agent", "image", "fmt.mpy"))
    # deploy repairs it
    r = otatool("deploy", "--board", "unix", "--port", board.port)
    assert r.returncode == 0, r.stderr
    assert "deploy: 2 copied" in r.stdout


def test_rejected_inputs():
    r = otatool("deploy", "--board", "unix", "--port", "/dev/nonexistent-ota-port")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("otatool: cannot open"), r.stderr
    r = otatool("deploy", "--board", "unix", "--port", "/dev/null", "--public", "/nonexistent.pem")
    assert r.returncode == 1 and "nonexistent.pem" in r.stderr
    r = otatool("deploy", "--board", "pic", "--port", "x")
    assert r.returncode == 2
    r = otatool("deploy", "--board", "unix")
    assert r.returncode == 2


def test_port_shorthands():
    from host_tools.deploy import port_path
    assert port_path("a0") == "/dev/ttyACM0"
    assert port_path("u12") == "/dev/ttyUSB12"
    assert port_path("c3") == "COM3"
    assert port_path("/dev/pts/4") == "/dev/pts/4"


def test_mip_package_json_installs_the_agent(board):
    r = subprocess.run([MPREMOTE, "connect", board.port, "resume", "mip", "install",
                        "--target", "lib", os.path.join(ROOT, "agent", "package.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    p = on_board(board.cwd, "import sys\nsys.path.insert(0, 'lib')\nimport agent.update, "
                            "hal.bootrec, boards.trust\nprint(agent.update.__file__)")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "lib/agent/update.py"


def test_package_json_lists_the_agent():
    with open(os.path.join(ROOT, "agent", "package.json")) as f:
        pkg = json.load(f)
    dests = [d for d, _s in pkg["urls"]]
    # every agent module but the host-only ones (the server side of the ZCL codec, ...),
    # which devices never use
    agent = sorted(os.path.relpath(os.path.join(b, f), ROOT).replace(os.sep, "/")
                   for b, _d, fs in os.walk(os.path.join(ROOT, "agent")) for f in fs
                   if f.endswith(".py"))
    agent = [a for a in agent if a not in mpy.HOST_ONLY]
    assert "agent/zcl/server.py" not in agent
    assert sorted(d for d in dests if d.startswith("agent/")) == agent
    for dest, src in pkg["urls"]:
        path = os.path.normpath(os.path.join(ROOT, "agent", src))
        assert os.path.relpath(path, ROOT) == dest, (dest, src)
        assert os.path.exists(path), src
    assert pkg["version"]


class _Manifest:
    """MicroPython's manifest functions, recording the frozen files."""

    def __init__(self):
        self.files = []
        self.port = []

    def run(self, path):
        here = os.path.dirname(path)
        env = {}

        def rel(p, base="."):
            return os.path.normpath(os.path.join(here, base, p))

        def include(p):
            if "$(" in p:
                self.port.append(p)
            else:
                self.run(rel(p))

        def package(name, files=None, base_path=".", opt=None):
            root = rel(name, base_path)
            if files is None:
                files = [f for f in os.listdir(root) if f.endswith(".py")]
            for f in files:
                self.files.append(os.path.relpath(os.path.join(root, f), ROOT))

        def module(name, base_path=".", opt=None):
            self.files.append(os.path.relpath(rel(name, base_path), ROOT))

        def freeze(p, script=None, opt=None):
            self.port.append(p)

        def require(name, **kw):
            self.port.append(name)

        env.update(include=include, package=package, module=module, freeze=freeze,
                   require=require)
        with open(path) as f:
            exec(compile(f.read(), path, "exec"), env)


def test_freeze_manifest_is_what_package_json_installs():
    """boards/manifest_agent.py (every board's firmware includes it) freezes exactly the files
    agent/package.json installs with mip: one list of what a device runs, two ways to ship it."""
    m = _Manifest()
    m.run(os.path.join(ROOT, "boards", "manifest_agent.py"))
    with open(os.path.join(ROOT, "agent", "package.json")) as f:
        pkg = json.load(f)
    frozen = sorted(f.replace(os.sep, "/") for f in m.files)
    assert len(set(frozen)) == len(frozen), "frozen twice"
    assert frozen == sorted(d for d, _s in pkg["urls"])
    assert "agent/zcl/server.py" not in frozen


@pytest.mark.parametrize("board", sorted(mpy.BOARDS))
def test_manifests_freeze_what_the_board_imports(board):
    m = _Manifest()
    m.run(os.path.join(ROOT, "boards", board, "manifest.py"))
    for f in m.files:
        assert os.path.exists(os.path.join(ROOT, f)), f
    assert len(set(m.files)) == len(m.files), "frozen twice"
    mods = set(f.replace(os.sep, "/") for f in m.files)
    need = set(r.replace(os.sep, "/") for r in mpy.board_sources(board))
    need -= {"hal/sim/imagecheck.py", "hal/sim/powercut.py"} if board != "unix" else set()
    need = {n for n in need if not n.startswith("hal/") or n in mods or
            n[4:] in ("__init__.py", "flash.py", "boot.py", "clock.py", "bootrec.py")}
    missing = sorted(need - mods)
    assert not missing, missing
    assert m.port, "the port's own modules are kept"
    if board == "rp2":
        assert "boards/rp2/_boot.py" in mods


def test_mpy_board_builds(tmp_path):
    plain = mpy.build(str(tmp_path / "all"))
    assert "agent/update.mpy" in plain and "boards/rp2/bundle.mpy" in plain
    assert not any(k.startswith("boards/") and k.endswith(("manifest.mpy", "manifest_agent.mpy",
                   "main.mpy", "_boot.mpy")) for k in plain)
    assert "agent/image/manifest.mpy" in plain
    for board, (arch, skip) in mpy.BOARDS.items():
        out = tmp_path / board
        sizes = mpy.build(str(out), arch=arch, board=board)
        assert "boards/%s/board.mpy" % board in sizes
        assert not [k for k in sizes if k.startswith("boards/") and k.count("/") > 1
                    and not k.startswith("boards/%s/" % board)]
        for s in skip:
            if s.endswith("/"):
                assert not [k for k in sizes if k.startswith(s)], s
            else:
                assert s[:-3] + ".mpy" not in sizes
        # the agent is bytecode only: mpy-cross records an arch only for native code, so
        # the .mpy files of every board are the same bytes and load on any port
        with open(out / "agent" / "update.mpy", "rb") as f:
            mine = f.read()
        with open(tmp_path / "all" / "agent" / "update.mpy", "rb") as f:
            assert mine == f.read(), board
        with open(out / ".march") as f:
            assert f.read().strip() == (arch or "")
    # a different -march in the same directory rebuilds everything
    before = os.path.getmtime(tmp_path / "esp32" / "agent" / "update.mpy")
    time.sleep(0.02)
    mpy.build(str(tmp_path / "esp32"), arch="xtensa", board="esp32")
    assert os.path.getmtime(tmp_path / "esp32" / "agent" / "update.mpy") > before
    with open(tmp_path / "esp32" / ".march") as f:
        assert f.read().strip() == "xtensa"


def test_mpy_cli_reports_sizes(tmp_path):
    r = subprocess.run([sys.executable, "-m", "host_tools.mpy", "--board", "rp2", "--out",
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "boards/rp2/bundle.mpy" in r.stdout and "agent/ total" in r.stdout
    assert r.stdout.strip().splitlines()[-1].endswith("modules)")
    r = subprocess.run([sys.executable, "-m", "host_tools.mpy", "--out", str(tmp_path / "q"),
                        "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout == ""
