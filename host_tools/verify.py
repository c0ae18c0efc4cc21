"""otatool verify: would a device accept this image file?

The decision is the device's own: the file goes through the agent's factory-install path into
an emulated device (hal.imagecheck), in this process (CPython), or with --as-device in the
real MicroPython interpreter running the compiled device code (build/mpy).
Exit 0 with one line (version, seq, key id, Manufacturer Image SHA-256, installed size,
encoding); 1 with "otatool: E<code> <reason>" on stderr; 2 on usage errors.
"""
import binascii
import os
import shutil
import subprocess
import sys

from host_tools import keys
from host_tools.cli import InputError, fail, number

MICROPYTHON_ENV = "OTATOOL_MICROPYTHON"  # path of the interpreter --as-device runs
_HEAP_MIN = 8 << 20      # MicroPython heap for --as-device, at least
_HEAP_MAX = 1 << 30


def register(sub):
    p = sub.add_parser("verify", help="check an image as a device would",
                       description="Check an image file exactly as a device does: stream it "
                                   "through the agent into an emulated device (parse, "
                                   "signatures, policy, write, verify from flash). "
                                   "Numbers are decimal or 0x-hex.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--public", required=True, action="append", metavar="P.pem",
                   help="a trusted signing key (PEM, DER or raw point); repeat for more")
    p.add_argument("--supplier-public", metavar="S.pem",
                   help="supplier key: a valid GBCS trailer signed by it is required")
    p.add_argument("--hw", type=number, metavar="N",
                   help="the device's hardware version (default: the header's minimum)")
    p.add_argument("--seq", type=number, default=0, metavar="N",
                   help="the device's anti-rollback sequence number (default 0)")
    p.add_argument("--block", type=number, default=1024, metavar="N",
                   help="bytes fed to the device at a time (default 1024)")
    p.add_argument("--as-device", action="store_true",
                   help="run the check in the MicroPython interpreter on the .mpy device code")
    p.set_defaults(func=run_verify)


def _point(path):
    return keys.public_point(keys.load_public(path))


def _check_args(args):
    if args.block < 1 or args.block > 1 << 20:
        raise InputError("block size %d out of range 1..%d" % (args.block, 1 << 20))
    if args.hw is not None and args.hw > 0xFFFF:
        raise InputError("hardware version %d out of range 0..65535" % args.hw)
    if args.seq > 0xFFFFFFFF:
        raise InputError("sequence number %d out of range" % args.seq)
    pubs = [_point(p) for p in args.public]
    sup = _point(args.supplier_public) if args.supplier_public else None
    size = os.path.getsize(args.file)
    with open(args.file, "rb"):
        pass
    return pubs, sup, size


def run_verify(args):
    pubs, sup, size = _check_args(args)
    if args.as_device:
        return _as_device(args, pubs, sup, size)
    from hal import imagecheck
    from host_tools.progress import Progress

    with open(args.file, "rb") as f, Progress(size, "verify") as bar:
        read = imagecheck.file_reader(f, args.block)

        def tracked(off, n):
            bar.update(off)
            return read(off, n)
        info = imagecheck.check_image(tracked, size, pubs, sup, args.hw, args.seq, args.block)
    print(imagecheck.summary(info))
    return 0


def micropython():
    """The MicroPython interpreter: $OTATOOL_MICROPYTHON, the one next to this Python, or
    micropython on PATH; None when there is none."""
    exe = os.environ.get(MICROPYTHON_ENV)
    if exe:
        return exe
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(exe):
        return exe
    return shutil.which("micropython")


def _heap(args, size):
    """Heap for the interpreter: room for two slots of the installed payload."""
    from hal import imagecheck
    with open(args.file, "rb") as f:
        m = imagecheck._peek(imagecheck.file_reader(f, 4096), size)[3]
    need = 4 * max(size, m.size if m is not None else 0) + _HEAP_MIN
    return min(need, _HEAP_MAX)


def _as_device(args, pubs, sup, size):
    from host_tools import mpy

    exe = micropython()
    if exe is None:
        return fail("--as-device: no MicroPython interpreter (set %s)" % MICROPYTHON_ENV)
    out = os.path.join(mpy.ROOT, "build", "mpy")
    mpy.build(out)
    cmd = [exe, "-X", "heapsize=%d" % _heap(args, size), "-m", "hal.imagecheck",
           os.path.abspath(args.file)]
    cmd += [binascii.hexlify(p).decode() for p in pubs]
    if sup is not None:
        cmd += ["-s", binascii.hexlify(sup).decode()]
    if args.hw is not None:
        cmd += ["-w", str(args.hw)]
    cmd += ["-q", str(args.seq), "-b", str(args.block)]
    env = dict(os.environ)
    env["MICROPYPATH"] = out
    # run from the .mpy tree, so nothing is imported from source
    r = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    line = lines[-1] if lines else ""
    if r.returncode == 0 and line.startswith("OK "):
        print(line)
        return 0
    if r.returncode == 1 and line.startswith("E"):
        return fail(line)
    err = r.stderr.strip().splitlines()
    why = err[-1] if err else line or "no output"
    return fail("--as-device: %s exited %d: %s" % (os.path.basename(exe), r.returncode, why))
