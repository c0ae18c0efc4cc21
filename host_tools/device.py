"""otatool device: the emulated device on a laptop.

Runs the agent with the unix board (a flash file and an emulated bootloader) on the real
MicroPython interpreter (or CPython with --python). A reboot is the process ending and
starting again over the same flash file, as a device's reset would.
"""
import os
import subprocess
import sys
import time

from host_tools.cli import InputError, number

REBOOT = 3


def register(sub):
    p = sub.add_parser("device", help="run the emulated device (unix board)",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--flash", required=True, metavar="FILE", help="flash image file")
    p.add_argument("--public", action="append", required=True, metavar="P.pem")
    p.add_argument("--factory", metavar="FACTORY.ota", help="first image for a blank flash")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", metavar="HOST:PORT")
    where.add_argument("--serial", metavar="DEV")
    p.add_argument("--python", action="store_true", help="run under CPython")
    p.add_argument("--heap", metavar="SIZE", default="4m",
                   help="MicroPython heap (the emulated flash lives in it too)")
    p.add_argument("--hw", type=number, help="hardware version (default: the image's lowest)")
    p.add_argument("--block", type=number, default=48, help="block size to request")
    p.add_argument("--once", action="store_true", help="stop after one update session")
    p.add_argument("--unhealthy", action="store_true",
                   help="the application health check fails on a trial boot")
    p.add_argument("--stall", type=number, default=60, help="stall timeout, seconds")
    p.add_argument("--max-boots", type=number, default=20)
    p.set_defaults(func=run_device)


def command(args):
    from host_tools.mpy import ROOT, build
    dev_args = ["--flash", args.flash, "--block", str(args.block), "--stall", str(args.stall)]
    for k in args.public:
        dev_args += ["--key", k]
    for name in ("factory", "server", "serial", "hw"):
        v = getattr(args, name)
        if v is not None:
            dev_args += ["--" + name, str(v)]
    for flag in ("once", "unhealthy"):
        if getattr(args, flag):
            dev_args.append("--" + flag)
    if args.python:
        return [sys.executable, "-m", "boards.unix.run"] + dev_args, dict(os.environ,
                                                                           PYTHONPATH=ROOT)
    out = os.path.join(ROOT, "build", "mpy")
    build(out)
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    env = dict(os.environ, MICROPYPATH=out)
    return [mp if os.path.exists(mp) else "micropython", "-X", "heapsize=" + args.heap,
            "-m", "boards.unix.run"] + dev_args, env


def run_device(args):
    for p in args.public + ([args.factory] if args.factory else []):
        if not os.path.exists(p):
            raise InputError("no such file: %s" % p)
    cmd, env = command(args)
    for boot in range(args.max_boots):
        t0 = time.monotonic()
        rc = subprocess.call(cmd, env=env)
        if rc != REBOOT:
            if rc not in (0,):
                print("otatool: device stopped with status %d" % rc, file=sys.stderr)
                return 1
            return 0
        print("device: -- reset (%.1f s) --" % (time.monotonic() - t0), flush=True)
    print("otatool: device rebooted %d times" % args.max_boots, file=sys.stderr)
    return 1
