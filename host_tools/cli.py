"""otatool: the command line of the host tools.

Each command lives in its own module, which provides register(subparsers); register adds
the subcommand's parser and sets func=<callable(args) -> exit code>.

Exit codes: 0 success; 1 rejected or invalid input, with one line "otatool: <reason>" on
stderr (and with --json, {"ok": false, "code": N, "reason": ...} on stdout); 2 usage error
(argparse); 130 interrupted.

Global options: --version, -q (nothing on stdout, no progress bars), -v (more detail),
--progress / --no-progress.
"""
import argparse
import importlib
import json
import os
import sys

VERSION = "0.1.0"

# Modules providing the subcommands, in the order of the help text.
COMMAND_MODULES = ("keys", "sign", "inspect", "verify", "state", "powercut", "serve", "device",
                   "deploy", "bench")

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# An example for the help of each command whose module gives none (its epilog).
EXAMPLES = {
    "keygen": "otatool keygen --private release.pem --public release.pub",
    "sign": "otatool sign --profile product.toml --in fw.bin --out fw-v2.ota "
            "--version 0x00020000 --seq 2\n"
            "  otatool sign --key release.pem --in fw.bin --out fw-v2.ota --version 2 --seq 2 "
            "--manufacturer 0x1234 --image-type 1 --hw-min 1 --hw-max 3 --compress",
    "powercut": "otatool powercut --image fw-v2.ota --public release.pub --phase download "
                "--tear",
    "serve": "otatool serve --image fw-v2.ota --udp 127.0.0.1:4000 --rate-bps 250000",
    "device": "otatool device --flash dev.flash --public release.pub --server 127.0.0.1:4000",
    "deploy": "otatool deploy --board esp32 --port /dev/ttyUSB0 --public release.pub",
    "bench": "otatool bench --only p256 --markdown",
}

_verbosity = 0
class InputError(ValueError):
    """An input the tools reject: bad parameter, unreadable key, existing output file."""


def number(text):
    """argparse type: an unsigned integer in decimal or 0x-hex."""
    s = text.strip().replace("_", "")
    try:
        if s[:2].lower() == "0x":
            v = int(s[2:], 16)
        else:
            v = int(s, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("not a decimal or 0x-hex number: %r" % text)
    if v < 0:
        raise argparse.ArgumentTypeError("negative number: %r" % text)
    return v


class _Parser(argparse.ArgumentParser):
    """Every otatool parser: help shows each option's default and keeps examples as
    written; a command without an epilog gets its example from EXAMPLES."""

    def __init__(self, *a, **kw):
        from host_tools.argtypes import HelpFormatter
        kw.setdefault("formatter_class", HelpFormatter)
        prog = kw.get("prog") or ""
        name = prog.split()[-1] if prog else ""
        if kw.get("epilog") is None and name in EXAMPLES:
            kw["epilog"] = "example:\n  " + EXAMPLES[name]
        super().__init__(*a, **kw)


def build_parser():
    ap = _Parser(
        prog="otatool",
        description="Host tools for the OTA agent: keys, signed ZigBee OTA images, their "
                    "checks,\nthe update server, emulated devices.",
        epilog="examples:\n"
               "  otatool keygen --private release.pem --public release.pub\n"
               "  otatool sign --profile product.toml --in fw.bin --out fw.ota "
               "--version 2 --seq 2\n"
               "  otatool verify --profile product.toml fw.ota\n"
               "  otatool COMMAND --help     (each command's options and an example)")
    ap.add_argument("--version", action="version", version="otatool " + VERSION,
                    help="print the version and exit")
    v = ap.add_mutually_exclusive_group()
    v.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                   help="print nothing on stdout and no progress bars; the exit "
                                   "status and a one-line reason on stderr still tell")
    v.add_argument("-v", "--verbose", dest="verbosity", action="count",
                   help="more detail (inspect: first bytes of each element; verify: the "
                        "image and device in full; state: every record)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_const", const=True,
                   default=None, help="always show progress bars on stderr")
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   help="never show progress bars")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module("host_tools." + name).register(sub)
    return ap


def verbosity():
    """-1 quiet, 0 normal, 1 and more verbose."""
    return _verbosity


def out(text):
    """A line (or lines) of a command's report on stdout."""
    sys.stdout.write(text + "\n")


def _one_line(text):
    return " ".join(str(text).split())


def fail(reason):
    """Report a rejection on stderr (one line) and return exit code 1."""
    sys.stderr.write("otatool: %s\n" % _one_line(reason))
    sys.stderr.flush()
    return EXIT_REJECTED


def reject(args, reason, code=None):
    """fail(reason); with --json also {"ok": false, "code", "reason"} on stdout. code is
    the reason code (an agent.errors code) or None."""
    if getattr(args, "json", False):
        out(json.dumps({"ok": False, "code": code, "reason": _one_line(reason)}))
    return fail(reason)


def _os_error(e):
    if e.filename is not None and e.strerror:
        return "%s: %s" % (e.filename, e.strerror)
    return e.strerror or str(e) or e.__class__.__name__


def main(argv=None):
    global _verbosity
    from agent.errors import OtaError
    from host_tools import progress

    args = build_parser().parse_args(argv)
    _verbosity = args.verbosity or 0
    if args.progress is not None:
        progress.force(args.progress)
    stdout = sys.stdout
    if _verbosity < 0:
        progress.force(False)
        sys.stdout = open(os.devnull, "w")
    try:
        rc = args.func(args)
    except OtaError as e:
        return reject(args, str(e), e.reason)
    except InputError as e:
        return reject(args, str(e))
    except BrokenPipeError:
        # the reader of stdout went away (otatool inspect ... | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_REJECTED
    except OSError as e:
        return reject(args, _os_error(e))
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    finally:
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout
    return EXIT_OK if rc is None else rc
