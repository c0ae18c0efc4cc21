"""otatool device: the emulated device on a laptop.

Runs the agent with the unix board (a flash file and an emulated bootloader) on the real
MicroPython interpreter (or CPython with --python). A reboot is the process ending and
starting again over the same flash file, as a device's reset would.

Every option and file is checked here before the device process starts; the device's own
refusals come out as "otatool: E<code> <text>: <detail>". Exit codes: 0 done; 1 refused
(one line on stderr); 2 usage; 3 no answer from the server; 130 interrupted (Ctrl-C);
143 terminated (SIGTERM). Signals are passed on to the device process.
"""
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

from host_tools import argtypes as T
from host_tools.cli import InputError, fail

REBOOT = 3               # the device process asks to be started again (a reset)
CHILD_REFUSED = 1        # ... printed its reason on stderr
CHILD_NO_ANSWER = 4      # ... heard nothing from the server (boards/unix/run.py)
CHILD_INTERRUPTED = 130
EXIT_NO_ANSWER = 3       # otatool device: no answer from the server
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
HEAP_MIN = 2 << 20       # the flash file is held in the heap, with the agent's code
WAIT_CAP_S = 600         # the client's cap on a WAIT_FOR_DATA wait (agent.zcl.client.Client)

EXAMPLE = """examples:
  otatool device --flash dev.flash --public pub.pem --factory v1.ota --server 127.0.0.1:4000
  otatool device --flash dev.flash --public pub.pem --server 127.0.0.1:4000 --once --stall 10
"""


def register(sub):
    p = sub.add_parser("device", help="run the emulated device (unix board)",
                       description=__doc__.split("\n\n", 1)[1], epilog=EXAMPLE,
                       formatter_class=T.HelpFormatter)
    p.add_argument("--flash", required=True, metavar="FILE",
                   help="the device's flash file, created erased when missing (then "
                        "--factory is needed)")
    p.add_argument("--public", action="append", required=True, metavar="P.pem",
                   help="trusted public key (PEM, DER or raw point); repeat for more")
    p.add_argument("--factory", metavar="FACTORY.ota",
                   help="signed image installed first on a blank flash")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", metavar="HOST:PORT", type=T.host_port(),
                       help="the update server's UDP address")
    where.add_argument("--serial", metavar="DEV", help="a serial line (tty) to the server")
    p.add_argument("--python", action="store_true",
                   help="run under CPython instead of MicroPython")
    p.add_argument("--target", choices=("unix", "mcu"), default="unix",
                   help="unix: MicroPython's unix port; mcu: the Cortex-M3 firmware under "
                        "QEMU (make mcu), flash in its RAM outside the heap, the link on its "
                        "UART (--serial pty: a new pseudo-terminal); its heap is 1 MiB")
    p.add_argument("--heap", metavar="SIZE", default="4m",
                   type=T.size(HEAP_MIN, 1 << 30, "heap"),
                   help="MicroPython heap, e.g. 4m (the emulated flash lives in it too)")
    p.add_argument("--hw", type=T.integer(0, 0xFFFF, "hardware version"),
                   help="hardware version, 0..0xFFFF (default: the image's lowest)")
    p.add_argument("--block", type=T.integer(1, 255, "block size"), default=48,
                   metavar="BYTES", help="block size to request, 1..255")
    p.add_argument("--once", action="store_true", help="stop after one update session")
    p.add_argument("--unhealthy", action="store_true",
                   help="the application health check fails on a trial boot")
    p.add_argument("--stall", type=T.duration(0, 86400, what="stall timeout"), default=60,
                   metavar="SECONDS",
                   help="give a session up after this long without progress or answer")
    p.add_argument("--max-boots", type=T.integer(1, 1000, "boot count"), default=20,
                   metavar="N", help="stop after this many resets")
    p.add_argument("--ieee", type=ieee_address, metavar="ADDR",
                   help="the device's IEEE address, 16 hex digits, most significant first "
                        "(colons allowed: 00:0d:6f:00:0a:90:11:22); an image addressed to "
                        "another device is refused (default: none, every addressed image is)")
    p.add_argument("--wait-cap", type=T.integer(1, 86400, "wait cap"), default=WAIT_CAP_S,
                   metavar="SECONDS",
                   help="longest wait, 1..86400 s, a server's WAIT_FOR_DATA answer is "
                        "honoured for (a longer one is cut to it)")
    p.set_defaults(func=run_device, parser_error=p.error)


# -- checks before the device process starts -------------------------------------------------

def ieee_address(text):
    """An IEEE address: 16 hex digits, or 8 pairs of them separated by colons; returned as
    the 16 digits."""
    import argparse
    import re
    t = text.strip()
    if not (re.fullmatch(r"[0-9A-Fa-f]{16}", t) or
            re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){7}", t)):
        raise argparse.ArgumentTypeError("an IEEE address is 16 hex digits (colons allowed "
                                         "between pairs), not %r" % text)
    return t.replace(":", "").lower()


def _flash_size():
    from boards.unix.layout import layout
    return layout().size


def check_flash(path, factory):
    """The flash file: an existing one must be a writable file of the board's size; a
    missing one must be creatable, and a blank device needs a factory image."""
    size = _flash_size()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise InputError("%s: no such directory for the flash file" % parent)
        if not os.access(parent, os.W_OK):
            raise InputError("%s: cannot create the flash file here (permission denied)"
                             % parent)
        if not factory:
            raise InputError("%s does not exist: a blank device needs --factory IMG.ota"
                             % path)
        return False
    if stat.S_ISDIR(st.st_mode):
        raise InputError("%s is a directory, not a flash file" % path)
    if not stat.S_ISREG(st.st_mode):
        raise InputError("%s is not a regular file" % path)
    if st.st_size != size:
        raise InputError("%s holds %d bytes, not %d: not a flash file of the unix board"
                         % (path, st.st_size, size))
    if not os.access(path, os.R_OK | os.W_OK):
        raise InputError("%s: the flash file must be readable and writable" % path)
    return True


def resolve(host, port):
    """The numeric address of HOST, for the device process (which then resolves nothing)."""
    try:
        info = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise InputError("unknown host %s: %s" % (host, e.strerror or e))
    fam, addr = info[0][0], info[0][4][0]
    return ("[%s]:%d" if fam == socket.AF_INET6 else "%s:%d") % (addr, port)


def check_serial(path):
    from host_tools.link import check_tty
    why = check_tty(path)
    if why:
        raise InputError("%s: %s" % (path, why))


def device_args(args):
    """The device process's options, after every check."""
    existed = check_flash(args.flash, args.factory)
    points = T.public_points(args.public)
    if args.factory:
        T.read_image(args.factory)
    dev = ["--flash", args.flash, "--block", str(args.block), "--stall", repr(args.stall)]
    for pt in points:
        dev += ["--point", pt.hex()]
    if args.server:
        dev += ["--server", resolve(*args.server)]
    else:
        check_serial(args.serial)
        dev += ["--serial", args.serial]
    if args.factory:
        dev += ["--factory", args.factory]
    if args.hw is not None:
        dev += ["--hw", str(args.hw)]
    if args.ieee is not None:
        dev += ["--ieee", args.ieee]
    dev += ["--wait-cap", str(args.wait_cap)]
    for flag in ("once", "unhealthy"):
        if getattr(args, flag):
            dev.append("--" + flag)
    return dev, existed


def command(args, dev_args):
    from host_tools.mpy import ROOT, build, build_dir, run_module
    if args.python:
        return [sys.executable, "-m", "boards.unix.run"] + dev_args, dict(
            os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    out = build_dir("mpy")
    build(out)
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    env = dict(os.environ, MICROPYPATH=out)
    return [mp if os.path.exists(mp) else "micropython", "-X", "heapsize=%d" % args.heap] \
        + run_module("boards.unix.run") + dev_args, env


# -- running it ----------------------------------------------------------------------------

class Terminated(Exception):
    """SIGTERM reached otatool device."""


def _on_term(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a second one (timeout(1) sends two)
    raise Terminated()                              # must not cut the clean-up short


def _die_with_parent():
    """In the device process (Linux): SIGTERM when otatool itself dies, even by SIGKILL."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Boot:
    """One run of the device process: its output lines shown (progress lines drive a bar),
    its stderr kept for the reason of a refusal."""

    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1,
                                     preexec_fn=_die_with_parent if sys.platform.startswith(
                                         "linux") else None)
        self.err = []
        self.bar = None
        self._got = 0
        self._t = threading.Thread(target=self._read_err, daemon=True)
        self._t.start()

    def _read_err(self):
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    def run(self):
        from host_tools import progress
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("progress "):
                self._progress(line)
                continue
            if line.startswith("device: session:"):
                self._close(line.split(":", 2)[2].split()[0] in ("held", "activate"))
            elif line.startswith("device: reset"):
                self._close()
            progress.write(line, sys.stdout)
        self._close()
        rc = self.proc.wait()
        self._t.join(5)
        return rc

    def _progress(self, line):
        """"progress OFFSET SIZE RECEIVED": an advance beyond the bytes received (the jump
        to a checkpoint on resume) moves the bar without counting in its rate."""
        from host_tools.progress import Progress
        try:
            pos, size, got = (int(x) for x in line.split()[1:4])
        except ValueError:
            return
        if self.bar is None:
            self.bar = Progress(size, "device", initial=pos)
        else:
            jump = (pos - self.bar.done) - (got - self._got)
            if jump > 0:
                self.bar.skip(self.bar.done + jump)
        self._got = got
        self.bar.update(pos)

    def _close(self, ok=False):
        """End the bar: full when the download completed, else taken down."""
        if self.bar is not None:
            self.bar.close(ok)
            self.bar = None

    def stop(self, sig):
        """Pass the signal on; wait a little, then kill."""
        self._close()
        p = self.proc
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            except ProcessLookupError:
                pass

    def reason(self):
        lines = [ln for ln in self.err if ln.strip()]
        if not lines:
            return None
        if any("Traceback" in ln or ln.startswith("FATAL") for ln in lines):
            return "the device process failed: %s" % lines[-1]
        return lines[-1]


def run_mcu(args):
    """--target mcu: the device inside the Cortex-M3 firmware (host_tools/mcu_device.py)."""
    from host_tools import mcu_device
    return mcu_device.run(args)


def run_device(args):
    if args.target == "mcu":
        if args.ieee is not None or args.wait_cap != WAIT_CAP_S:
            args.parser_error("--ieee and --wait-cap apply to --target unix only")
        return run_mcu(args)
    dev_args, existed = device_args(args)
    cmd, env = command(args, dev_args)
    old_term = signal.signal(signal.SIGTERM, _on_term)
    booted = False
    boot = None
    try:
        for _ in range(args.max_boots):
            t0 = time.monotonic()
            boot = Boot(cmd, env)
            rc = boot.run()
            if rc == REBOOT:
                booted = True
                print("device: -- reset (%.1f s) --" % (time.monotonic() - t0), flush=True)
                continue
            if rc == 0:
                return 0
            if rc == CHILD_NO_ANSWER:
                where = args.serial or "%s:%d" % args.server
                fail("no answer from the server at %s (stall timeout %g s)"
                     % (where, args.stall))
                return EXIT_NO_ANSWER
            if rc in (CHILD_INTERRUPTED, -signal.SIGINT):
                sys.stderr.write("\n")
                return EXIT_INTERRUPTED
            if not booted and not existed and os.path.exists(args.flash):
                os.remove(args.flash)   # nothing was installed: leave no flash file behind
            why = boot.reason()
            if rc == CHILD_REFUSED and why:
                return fail(why)
            return fail(why or "the device process stopped with status %d" % rc)
        return fail("the device reset %d times (--max-boots)" % args.max_boots)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C waits for the clean-up
        try:
            if boot is not None:
                boot.stop(signal.SIGINT)
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except Terminated:
        if boot is not None:
            boot.stop(signal.SIGTERM)
        return EXIT_TERMINATED
    except BaseException:      # e.g. stdout closed under us: never leave the device running
        if boot is not None:
            boot.stop(signal.SIGTERM)
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)
