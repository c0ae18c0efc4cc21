"""host_tools/bench_delta.py's Cortex-M release pairs: the commits they name, what they say
changed, and a pair that cannot be built reported as not measured (no firmware is built here)."""
import os
import random
import re
import subprocess

import pytest

from host_tools import bench_delta as B
from host_tools import mcu


def _git(*args):
    return subprocess.run(["git"] + list(args), cwd=mcu.ROOT, capture_output=True, text=True)


def _shallow():
    r = _git("rev-parse", "--is-shallow-repository")
    return r.returncode != 0 or r.stdout.strip() == "true"


@pytest.mark.parametrize("old,new,kind,what", B.FIRMWARE_PAIRS)
def test_pair_commits_and_changes(old, new, kind, what):
    if _shallow():
        pytest.skip("a shallow clone or no git: the pairs' commits are not here")
    assert B.resolve(old) == old and B.resolve(new) == new
    # new is a later state of the same line
    assert _git("merge-base", "--is-ancestor", old, new).returncode == 0
    m = re.match(r"(\d+) agent commits, (\d+) files: ", what)
    assert m, what
    commits = _git("rev-list", "--count", "%s..%s" % (old, new), "--",
                   *B.FIRMWARE_TREES).stdout.strip()
    files = _git("diff", "--name-only", old, new, "--", *B.FIRMWARE_TREES).stdout.split()
    assert (int(m.group(1)), int(m.group(2))) == (int(commits), len(files))
    assert kind in ("patch", "minor")
    # each commit has the freeze manifest the firmware is built from
    assert _git("cat-file", "-e", "%s:%s" % (old, mcu.FIRMWARES["agent"])).returncode == 0
    assert _git("cat-file", "-e", "%s:%s" % (new, mcu.FIRMWARES["agent"])).returncode == 0


def test_pairs_ordered_and_one_minor():
    kinds = [p[2] for p in B.FIRMWARE_PAIRS]
    assert "minor" in kinds
    for (_o0, n0, _k0, _w0), (o1, _n1, _k1, _w1) in zip(B.FIRMWARE_PAIRS, B.FIRMWARE_PAIRS[1:]):
        assert n0 == o1


def test_unknown_commit_refused():
    with pytest.raises(B.PairError, match="not in this clone"):
        B.resolve("0" * 40)


def test_no_source_is_not_measured(tmp_path, monkeypatch):
    monkeypatch.setattr(mcu, "SRC", str(tmp_path / "micropython"))
    monkeypatch.delenv("MICROPYTHON_SRC", raising=False)
    old, new, kind, what = B.FIRMWARE_PAIRS[0]
    why = B.firmware_unavailable()
    assert why and ("make mcu" in why or "missing" in why)
    row = B.run_firmware_pair(str(tmp_path), old, new, kind, what)
    assert row["measured"] is False and row["why"] == why
    assert "ratio" not in row and "delta_bytes" not in row
    assert not os.listdir(str(tmp_path))      # nothing built, nothing cached
    (fig, result, target, met, how, _cmd), = B.rows({"pairs": [row]}, "cmd")
    assert result == "not measured" and met is None and how == why
    assert "(minor)" in fig and target == "<= %.2f" % B.TARGET_MINOR


def test_no_toolchain_is_not_measured(tmp_path, monkeypatch):
    monkeypatch.setattr(mcu, "missing_packages", lambda: ["gcc-arm-none-eabi"])
    why = B.firmware_unavailable()
    assert why.startswith("missing gcc-arm-none-eabi") and "apt-get install" in why
    row = B.run_firmware_pair(str(tmp_path), *B.FIRMWARE_PAIRS[1])
    assert row == dict(row, measured=False, why=why)


def test_cached_firmware_measured(tmp_path, monkeypatch):
    # a build cached in the work folder is measured without the toolchain
    monkeypatch.setattr(mcu, "missing_packages", lambda: ["gcc-arm-none-eabi"])
    r = random.Random(15)
    old = bytes(r.randrange(256) for _ in range(5 * B.SECTOR + 100))
    new = bytearray(old)
    new[3 * B.SECTOR + 7:3 * B.SECTOR + 7] = b"\x01\x02\x03"   # an insertion shifts the rest
    o, n, kind, what = B.FIRMWARE_PAIRS[0]
    for commit, data in ((o, old), (n, bytes(new))):
        with open(str(tmp_path / ("mcu-fw-%s.bin" % commit[:12])), "wb") as f:
            f.write(data)
    row = B.run_firmware_pair(str(tmp_path), o, n, kind, what)
    assert row["measured"] is True
    assert (row["old_bytes"], row["new_bytes"]) == (len(old), len(new))
    assert sum(row["modes"].values()) == -(-len(new) // B.SECTOR)
    assert row["modes"].get("copy", 0) >= 3        # the sectors before the insertion
    assert row["delta_blocks"] == -(-row["delta_bytes"] // B.BLOCK)
    assert row["ratio"] == row["delta_bytes"] / float(row["deflate_bytes"]) < 0.35
    (_fig, result, _t, met, how, _c), = B.rows({"pairs": [row]}, "cmd")
    assert met is True and result.startswith("%.3f (" % row["ratio"])
    assert "agent of %s -> %s frozen" % (o[:7], n[:7]) in how
    # the longest chunk (what a device's chunk buffer is made for), at most the delta bytes
    assert 0 < row["chunk_max"] <= min(row["delta_bytes"], B.SECTOR + 1)
    assert "longest chunk %d B" % row["chunk_max"] in how


def test_firmware_built_into_a_work_folder_not_there_yet(tmp_path, monkeypatch):
    # a fresh clone has no bench/work: the build makes it before objcopy writes there (the
    # toolchain's steps stand in here: make does nothing, objcopy copies the elf, and like
    # the real one makes no folder)
    if _shallow():
        pytest.skip("a shallow clone or no git: the pairs' commits are not here")
    monkeypatch.setattr(B, "firmware_unavailable", lambda: None)
    monkeypatch.setattr(B, "_source", lambda log: str(tmp_path / "micropython"))
    monkeypatch.setattr(B, "FW_BUILD", str(tmp_path / "fw"))
    ran = []

    def run(cmd, log, cwd=None, env=None):
        ran.append(cmd[0])
        if cmd[0] == "make":
            os.makedirs(str(tmp_path / "fw" / "build"), exist_ok=True)
            with open(str(tmp_path / "fw" / "build" / "firmware.elf"), "wb") as f:
                f.write(b"elf of " + env["MICROPY_GIT_HASH"].encode())
        else:
            if not os.path.isdir(os.path.dirname(cmd[-1])):
                raise mcu.McuError("%s: no such folder" % cmd[-1])
            with open(cmd[-2], "rb") as src, open(cmd[-1], "wb") as dst:
                dst.write(src.read())
    monkeypatch.setattr(mcu, "_run", run)
    work = str(tmp_path / "bench" / "work")
    commit = B.FIRMWARE_PAIRS[0][0]
    out = B.firmware(work, commit)
    assert ran == ["make", "arm-none-eabi-objcopy"]
    assert out == os.path.join(work, "mcu-fw-%s.bin" % commit[:12])
    with open(out, "rb") as f:
        assert f.read() == b"elf of " + commit[:10].encode()
    assert B.firmware(work, commit) == out and len(ran) == 2   # cached: not built again
