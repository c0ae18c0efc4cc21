"""otatool deploy: put the agent on a board over its USB serial REPL.

  otatool deploy --board esp32|rp2|unix --port PORT [--public P.pem ...] [--dry-run]

Builds the board's .mpy files (host_tools.mpy, the board's -march), connects with mpremote's
serial transport (raw REPL, no soft reset: an rp2 board's main.py must not run its boot
selector for a deploy), asks the board for the size and SHA-256 of every file it already
holds, copies only the ones that differ, writes the trusted public keys to ota/keys.bin
(65-byte points, boards/trust.py reads them), then imports the agent and the board adapter
on the board and runs the adapter's probe() (for example: is the ota_journal partition
there, does the filesystem stay off the OTA regions). Paths on the board are relative to
its working directory, the root on a real board.
"""
import ast
import hashlib
import os
import sys

from host_tools import mpy
from host_tools.cli import InputError, fail, EXIT_OK, EXIT_REJECTED

KEYS_PATH = "ota/keys.bin"
# files copied under another name: board -> [(source relative to the repository, target)]
EXTRA = {"rp2": [("boards/rp2/main.py", "main.py")]}

_HASH_SCRIPT = """import os,hashlib,binascii
def _ota_h(p):
    try:
        n=os.stat(p)[6]
    except OSError:
        return None
    h=hashlib.sha256()
    b=bytearray(512)
    m=memoryview(b)
    with open(p,'rb') as f:
        while True:
            k=f.readinto(b)
            if not k:
                break
            h.update(m[:k])
    return (n,binascii.hexlify(h.digest()).decode())
print(repr([_ota_h(p) for p in %r]))
"""

_CHECK_SCRIPT = """import sys
for _k in list(sys.modules):
    if _k.split('.')[0] in ('agent','hal','boards'):
        del sys.modules[_k]
import agent, agent.update
from boards.%s import board as _b
print('agent', agent.__version__)
print(_b.probe())
"""


def port_path(port):
    """mpremote's shorthands: a0 -> /dev/ttyACM0, u0 -> /dev/ttyUSB0, c0 -> COM0."""
    short = {"a": "/dev/ttyACM", "u": "/dev/ttyUSB", "c": "COM"}
    if len(port) >= 2 and port[0] in short and port[1:].isdigit():
        return short[port[0]] + port[1:]
    return port


def key_bytes(paths):
    from host_tools.argtypes import public_points
    return b"".join(public_points(paths))


def plan(board, outdir, public=()):
    """[(remote path, bytes)] of everything the board gets, and the .mpy sizes."""
    sizes = mpy.build(outdir, arch=mpy.BOARDS[board][0], board=board)
    files = []
    for rel in sorted(sizes):
        with open(os.path.join(outdir, rel), "rb") as f:
            files.append((rel.replace(os.sep, "/"), f.read()))
    for src, dst in EXTRA.get(board, ()):
        with open(os.path.join(mpy.ROOT, src), "rb") as f:
            files.append((dst, f.read()))
    if public:
        files.append((KEYS_PATH, key_bytes(public)))
    return files, sizes


def remote_state(transport, paths):
    """[(size, sha256 hex) or None] of the paths on the board."""
    out = transport.exec(_HASH_SCRIPT % (list(paths),))
    got = ast.literal_eval(out.decode().strip().splitlines()[-1])
    if len(got) != len(paths):
        raise InputError("the board answered %d hashes for %d files" % (len(got), len(paths)))
    return got


def _dirs(paths):
    out = []
    for p in paths:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in out:
                out.append(d)
    return out


def deploy(board, port, public=(), dry_run=False, out=None, outdir=None):
    """Returns (copied, up_to_date, probe line or None)."""
    from mpremote.transport import TransportError, TransportExecError
    from mpremote.transport_serial import SerialTransport
    from host_tools.progress import Progress
    out = out or sys.stdout
    outdir = outdir or mpy.build_dir("mpy-" + board)
    files, sizes = plan(board, outdir, public)
    out.write("deploy: %d files for %s, %d bytes of .mpy\n"
              % (len(files), board, sum(sizes.values())))
    try:
        t = SerialTransport(port_path(port), baudrate=115200)
    except TransportError as e:
        raise InputError("cannot open %s: %s" % (port, e))
    probe = None
    try:
        t.enter_raw_repl(soft_reset=False)
        have = remote_state(t, [p for p, _d in files])
        todo = []
        for (path, data), h in zip(files, have):
            if h is not None and h[0] == len(data) and h[1] == hashlib.sha256(data).hexdigest():
                continue
            todo.append((path, data))
        same = len(files) - len(todo)
        for path, data in todo:
            out.write("%s %s (%d bytes)\n" % ("would copy" if dry_run else "copy", path,
                                               len(data)))
        if dry_run:
            out.write("deploy: %d to copy, %d up to date (dry run)\n" % (len(todo), same))
            return len(todo), same, None
        if todo:
            t.exec("import os")
            for d in _dirs([p for p, _d in todo]):
                t.exec("try:\n os.mkdir(%r)\nexcept OSError:\n pass" % d)
            with Progress(sum(len(d) for _p, d in todo), "deploy") as bar:
                for path, data in todo:
                    t.fs_writefile(path, data)
                    bar.advance(len(data))
        got = remote_state(t, [p for p, _d in todo])
        for (path, data), h in zip(todo, got):
            if h is None or h[1] != hashlib.sha256(data).hexdigest():
                raise InputError("%s did not verify on the board" % path)
        try:
            lines = t.exec(_CHECK_SCRIPT % board).decode().strip().splitlines()
        except TransportExecError as e:
            err = e.error_output.strip().splitlines()
            raise InputError("the agent does not start on the board: %s"
                             % (err[-1] if err else e))
        probe = lines[-1] if lines else ""
        out.write("deploy: %d copied, %d up to date\n" % (len(todo), same))
        out.write("deploy: %s\n" % probe)
        return len(todo), same, probe
    except TransportError as e:
        raise InputError("%s: %s" % (port, e))
    finally:
        try:
            if t.in_raw_repl:
                t.exit_raw_repl()
        finally:
            t.close()


def check_port(port):
    """A port named by a path must be a serial device (checked before the build)."""
    from host_tools.link import check_tty
    path = port_path(port)
    if path.startswith("/"):
        why = check_tty(path)
        if why:
            raise InputError("cannot open %s: %s" % (path, why))


def run(args):
    try:
        key_bytes(args.public or ())
        check_port(args.port)
        deploy(args.board, args.port, args.public or (), args.dry_run)
    except InputError as e:
        return fail(str(e))
    return EXIT_OK


EXAMPLE = """examples:
  otatool deploy --board esp32 --port /dev/ttyUSB0 --public pub.pem
  otatool deploy --board rp2 --port a0 --public pub.pem --dry-run
"""


def register(sub):
    from host_tools.argtypes import HelpFormatter
    p = sub.add_parser("deploy", help="copy the agent onto a board over its serial REPL",
                       description="Builds the board's .mpy files and copies what differs "
                                   "onto the board with mpremote,\nwith the trusted public keys;"
                                   " then imports the agent on the board.\n\nExit codes: 0 done;"
                                   " 1 a bad input or the board refused; 2 usage; 130 "
                                   "interrupted.",
                       epilog=EXAMPLE, formatter_class=HelpFormatter)
    p.add_argument("--board", required=True, choices=sorted(mpy.BOARDS),
                   help="the board's adapter")
    p.add_argument("--port", required=True,
                   help="serial device (/dev/ttyACM0, COM3, or mpremote's a0, u0, c0)")
    p.add_argument("--public", action="append", metavar="P.pem",
                   help="trusted public key (PEM, DER or raw point); repeat for more")
    p.add_argument("--dry-run", action="store_true",
                   help="compare with the board and list what would be copied")
    p.set_defaults(func=run)
