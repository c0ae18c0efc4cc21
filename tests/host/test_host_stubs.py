"""The board adapters type-checked with mypy against MicroPython's published stubs
(micropython-esp32-stubs, micropython-rp2-stubs on PyPI): the esp32.Partition, rp2.Flash and
vfs.AbstractBlockDev calls the adapters make exist with those arguments on the real port.

The two stub packages hold modules of the same names (machine, esp32/rp2, vfs, the
stdlib), so each is installed into its own directory under build/stubs/ (pip --target, once)
and used as mypy's typeshed and search path. The adapters name the port's types in type
comments under `if MYPY:` (never run on a device; mypy reads it through always_true)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STUBS = {
    "esp32": "micropython-esp32-stubs==1.29.0.post1",
    "rp2": "micropython-rp2-stubs==1.29.0.post1",
}
CONFIG = """[mypy]
check_untyped_defs = True
follow_imports = silent
follow_imports_for_stubs = True
no_site_packages = True
always_true = MYPY
"""


def stubs(board):
    d = os.path.join(ROOT, "build", "stubs", board)
    if not os.path.exists(os.path.join(d, "stdlib", "VERSIONS")):
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", "--target", d, STUBS[board]],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
    return d


def mypy(board, paths, tmp_path):
    d = stubs(board)
    cfg = tmp_path / "mypy.ini"
    cfg.write_text(CONFIG)
    env = dict(os.environ, MYPYPATH=d)
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(cfg), "--custom-typeshed-dir", d,
           "--no-error-summary", "--cache-dir", os.path.join(ROOT, "build", "mypy-" + board),
           "--exclude", r"manifest\.py$"] + paths
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


@pytest.mark.parametrize("board", sorted(STUBS))
def test_board_adapter_checks_against_the_port_stubs(board, tmp_path):
    r = mypy(board, ["boards/bdev.py", "boards/trust.py", "boards/" + board], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("board,code,needle", [
    ("esp32", "import esp32\nesp32.Partition.find(1, 0xFF, lbl='x')\n", "lbl"),
    ("esp32", "import esp32\nesp32.Partition.set_boot_partition()\n", "set_boot_partition"),
    ("rp2", "import rp2\nrp2.Flash().erase(0)\n", "erase"),
])
def test_the_checker_sees_the_stubs(board, code, needle, tmp_path):
    # a call the port does not have must fail the same check
    src = tmp_path / "wrong.py"
    src.write_text(code)
    r = mypy(board, [str(src)], tmp_path)
    assert r.returncode == 1 and needle in r.stdout, r.stdout + r.stderr
