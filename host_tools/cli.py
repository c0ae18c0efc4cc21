"""otatool: the command line of the host tools.

Each command lives in its own module, which provides register(subparsers); register adds
the subcommand's parser and sets func=<callable(args) -> exit code>.

Exit codes: 0 success; 1 rejected or invalid input, with one line "otatool: <reason>" on
stderr; 2 usage error (argparse).
"""
import argparse
import importlib
import os
import sys

# Modules providing the subcommands, in the order of the help text.
COMMAND_MODULES = ("keys", "sign", "inspect", "verify", "powercut", "serve", "device", "deploy",
                   "bench")

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


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


def build_parser():
    ap = argparse.ArgumentParser(
        prog="otatool",
        description="Host tools for the OTA agent: keys, signed ZigBee OTA images.")
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


def _one_line(text):
    return " ".join(str(text).split())


def fail(reason):
    """Report a rejection on stderr (one line) and return exit code 1."""
    sys.stderr.write("otatool: %s\n" % _one_line(reason))
    sys.stderr.flush()
    return EXIT_REJECTED


def _os_error(e):
    if e.filename is not None and e.strerror:
        return "%s: %s" % (e.filename, e.strerror)
    return e.strerror or str(e) or e.__class__.__name__


def main(argv=None):
    from agent.errors import OtaError
    from host_tools import progress

    args = build_parser().parse_args(argv)
    if args.progress is not None:
        progress.force(args.progress)
    try:
        rc = args.func(args)
    except OtaError as e:
        return fail(str(e))
    except InputError as e:
        return fail(str(e))
    except BrokenPipeError:
        # the reader of stdout went away (otatool inspect ... | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_REJECTED
    except OSError as e:
        return fail(_os_error(e))
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    return EXIT_OK if rc is None else rc
