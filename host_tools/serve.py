"""otatool serve: run the update server (the Hub) on UDP or a serial line.

A ZigBee OTA Upgrade cluster server: it offers each device the newest image that fits its
manufacturer code, image type and hardware version, serves blocks, schedules activation,
acknowledges alerts and logs every request. Full and delta images of a release are served
together: a device that runs a delta's old version gets the delta, any other the full image,
and so does a device that refused the delta (its log line says why). Fault options make the
link lossy for tests.
Exit codes: 0 done (or --exit-when met); 1 a bad input, or --timeout passed before
--exit-when was met; 2 usage; 130 interrupted (Ctrl-C).
"""
import os
import sys

from host_tools import argtypes as T
from host_tools.cli import InputError
from host_tools.server import Faults, Hub, Image

EXAMPLE = """examples:
  otatool serve --image v2.ota --udp 127.0.0.1:4000
  otatool serve --image v2.ota --udp 127.0.0.1:4000 --rate-bps 250000 --drop 0.2 \\
      --activate command --exit-when confirmed --timeout 10m
  otatool serve --image v3.ota --image v3-from-v2.ota --udp 127.0.0.1:4000
"""


def register(sub):
    p = sub.add_parser("serve", help="update server playing the Communications Hub",
                       description=__doc__.split("\n\n", 1)[1], epilog=EXAMPLE,
                       formatter_class=T.HelpFormatter)
    p.add_argument("--image", action="append", required=True, metavar="IMG.ota",
                   help="a signed image to offer, full or delta; repeat for more")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--udp", metavar="HOST:PORT", type=T.host_port(),
                       help="listen on this UDP address (port 1..65535)")
    where.add_argument("--serial", metavar="DEV", help="serve on this serial line (a tty)")
    p.add_argument("--block-size", type=T.integer(1, 255, "block size"), metavar="BYTES",
                   help="largest block served, 1..255 (default: what the device asks)")
    p.add_argument("--activate", type=T.activation, default="now",
                   metavar="now|at:TIME|relative:S|command",
                   help="activation: at once, at a UTC time (at:2030-01-01T00:00:00Z), "
                        "SECONDS after the download, or on an Activate Image command")
    for name, what in (("drop", "a frame is lost"), ("dup", "a frame is sent twice"),
                       ("corrupt", "a frame gets a bit flipped"),
                       ("reorder", "a frame is held back behind the next")):
        p.add_argument("--" + name, type=T.probability, default=0.0, metavar="P",
                       help="probability that %s, 0..1" % what)
    p.add_argument("--delay", type=T.integer(0, 60000, "delay"), default=0, metavar="MS",
                   help="extra delay before each frame sent, 0..60000 ms")
    p.add_argument("--wait-for-data", type=T.integer(0, 1000000, "count"), default=0,
                   metavar="N", help="answer the first N block requests with WAIT_FOR_DATA")
    p.add_argument("--wait-seconds", type=T.integer(1, 3600, "wait"), default=2,
                   metavar="S", help="the delay WAIT_FOR_DATA asks for, 1..3600 s")
    p.add_argument("--abort-at", type=T.integer(0, T.U32, "offset"), metavar="OFFSET",
                   help="answer ABORT to the first block request at or past OFFSET")
    p.add_argument("--rate-bps", type=T.integer(1000, 100000000, "bit rate"), metavar="BPS",
                   help="emulate the HAN's bit rate, 1000..100000000, e.g. 250000 "
                        "(default: as fast as the link goes)")
    p.add_argument("--no-page", action="store_true",
                   help="a block-only server: refuse Image Page Requests")
    p.add_argument("--notify", action="store_true",
                   help="send each device an Image Notify once it has been quiet a second")
    p.add_argument("--plain", action="store_true",
                   help="behave as a plain ZCL OTA server: 50-byte blocks, no "
                        "manufacturer-specific commands")
    p.add_argument("--seed", type=T.integer(0, 2 ** 64 - 1, "seed"), metavar="N",
                   help="seed of the fault generator (default: a fresh one)")
    p.add_argument("--json-log", metavar="FILE", help="append every event as JSON lines")
    p.add_argument("--timeout", type=T.duration(0, 30 * 86400, what="timeout"),
                   metavar="SECONDS", help="stop after this long (default: never)")
    p.add_argument("--linger", type=T.duration(0, 3600, allow_zero=True, what="linger"),
                   default=2.0, metavar="SECONDS",
                   help="keep serving this long after --exit-when is met")
    p.add_argument("--exit-when", choices=("confirmed", "ended", "rejected"),
                   help="stop when a device confirms the update / ends a download / "
                        "rejects an image")
    p.add_argument("--quiet", action="store_true", help="no log lines or bars on stderr")
    p.set_defaults(func=run_serve)


def load_images(paths):
    images = []
    for p in paths:
        T.read_image(p)
        images.append(Image(p))
    return images


def check_log(path):
    """The JSON log is appended to: it must be a file in a directory that exists."""
    if os.path.isdir(path):
        raise InputError("%s is a directory, not a log file" % path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise InputError("%s: no such directory for the log file" % parent)


def open_link(args):
    from host_tools.link import UdpServerLink, SerialLink, check_tty
    if args.udp:
        host, port = args.udp
        try:
            return UdpServerLink(host, port)
        except OSError as e:
            raise InputError("cannot listen on %s:%d: %s" % (host, port, e.strerror or e))
    why = check_tty(args.serial)
    if why:
        raise InputError("%s: %s" % (args.serial, why))
    try:
        return SerialLink(args.serial)
    except OSError as e:
        raise InputError("cannot open %s: %s" % (args.serial, e.strerror or e))


def until_for(mode):
    """--exit-when: the Hub's test for it, or None."""
    return None if mode is None else (lambda hub: hub.seen(mode))


def run_serve(args):
    from host_tools import progress
    images = load_images(args.image)
    if args.json_log:
        check_log(args.json_log)
    faults = Faults(args.drop, args.dup, args.corrupt, args.reorder, args.delay,
                    args.wait_for_data, args.wait_seconds, args.abort_at, args.seed)
    link = open_link(args)
    try:
        log = open(args.json_log, "a") if args.json_log else None
    except OSError as e:
        link.close()
        raise InputError("%s: %s" % (args.json_log, e.strerror or e))

    def echo(rec):
        if not args.quiet and rec["event"] not in ("block", "page"):   # those: the bar
            extra = " ".join("%s=%s" % (k, v) for k, v in rec.items()
                             if k not in ("t", "device", "event") and v not in (None, ""))
            progress.write("[%8.3f] %s %s %s" % (rec["t"], rec["device"], rec["event"], extra),
                           sys.stderr)
    hub = Hub(images, link, args.block_size, args.activate, faults, args.rate_bps, log,
              args.plain,
              progress=None if args.quiet else (
                  lambda total, label: progress.Progress(total, label)),
              echo=echo)
    hub.pages = not args.no_page
    hub.notify = args.notify
    if not args.quiet:
        where = "udp %s:%d" % link.address[:2] if args.udp else args.serial
        progress.write("serving %d image(s) on %s" % (len(images), where), sys.stderr)
    try:
        ok = hub.serve(args.timeout, until_for(args.exit_when), args.linger)
    finally:
        hub.close()
        link.close()
        if log:
            log.close()
    if args.exit_when and not ok:
        print("otatool: timed out before a device %s" % args.exit_when, file=sys.stderr)
        return 1
    return 0
