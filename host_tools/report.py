"""Results of otatool commands as JSON, and rejections with a reason code.

A command with --json prints one JSON object on stdout: {"ok": true, ...} on success, or
{"ok": false, "code": CODE, "reason": TEXT} when it rejects its input (exit 1; the one-line
"otatool: TEXT" still goes to stderr). CODE is a short kebab-case word for the host tools'
own rejections (Rejected.code), the integer reason code of a device rejection
(agent.errors), "io-error" for a file the system refused, "invalid-input" otherwise.
"""
import functools
import json
import sys

from host_tools.cli import InputError, _os_error


class Rejected(InputError):
    """An input the tools reject, with a reason code for --json."""

    def __init__(self, code, text):
        InputError.__init__(self, text)
        self.code = code


def failure(e):
    """The JSON object for a rejection e."""
    from agent.errors import OtaError
    if isinstance(e, OtaError):
        code = e.reason
    elif isinstance(e, OSError):
        code = "io-error"
    else:
        code = getattr(e, "code", None) or "invalid-input"
    text = _os_error(e) if isinstance(e, OSError) else str(e)
    return {"ok": False, "code": code, "reason": " ".join(text.split())}


def emit(obj):
    """Print a JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def add_output_options(p, json_help="print the result as JSON"):
    """--force and --json, as every command that writes files has them."""
    p.add_argument("--force", action="store_true",
                   help="overwrite existing output files (default: off, an existing one is "
                        "refused)")
    p.add_argument("--json", action="store_true",
                   help=json_help + ", with a reason code on failure (default: off)")


def json_command(func):
    """Wrap a command's run(args): with args.json, a rejection is also printed as JSON on
    stdout before it propagates to the command line (which reports it on stderr, exit 1)."""
    @functools.wraps(func)
    def run(args):
        from agent.errors import OtaError
        try:
            return func(args)
        except (InputError, OtaError, OSError) as e:
            if getattr(args, "json", False):
                emit(failure(e))
                args.json = False      # printed once: the command line adds only stderr
            raise
    return run
