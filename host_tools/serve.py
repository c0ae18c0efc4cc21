"""otatool serve: run the update server (the Hub) on UDP or a serial line."""
import calendar
import sys
import time

from host_tools.cli import InputError, number
from host_tools.server import Faults, Hub, Image, ZIGBEE_EPOCH


def register(sub):
    p = sub.add_parser("serve", help="update server playing the Communications Hub",
                       description="ZigBee OTA Upgrade cluster server over UDP or serial.")
    p.add_argument("--image", action="append", required=True, metavar="IMG.ota")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--udp", metavar="HOST:PORT")
    where.add_argument("--serial", metavar="DEV")
    p.add_argument("--block-size", type=number, help="largest block served (bytes)")
    p.add_argument("--activate", default="now",
                   help="now | at:ISO-8601 UTC | relative:SECONDS | command")
    p.add_argument("--drop", type=float, default=0.0, help="probability a frame is lost")
    p.add_argument("--dup", type=float, default=0.0, help="probability a frame is doubled")
    p.add_argument("--corrupt", type=float, default=0.0, help="probability of a bit flip")
    p.add_argument("--reorder", type=float, default=0.0, help="probability a frame is late")
    p.add_argument("--delay", type=number, default=0, metavar="MS")
    p.add_argument("--wait-for-data", type=number, default=0, metavar="N",
                   help="answer the first N block requests with WAIT_FOR_DATA")
    p.add_argument("--wait-seconds", type=number, default=2)
    p.add_argument("--abort-at", type=number, metavar="OFFSET")
    p.add_argument("--rate-bps", type=number, help="emulate the HAN bit rate, e.g. 250000")
    p.add_argument("--plain", action="store_true",
                   help="behave as a plain ZCL OTA server: 50-byte blocks, no "
                        "manufacturer-specific commands")
    p.add_argument("--seed", type=number)
    p.add_argument("--json-log", metavar="FILE")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    p.add_argument("--linger", type=float, default=2.0,
                   help="seconds to keep serving after --exit-when is met")
    p.add_argument("--exit-when", choices=("confirmed", "ended", "rejected"),
                   help="stop when a device confirms the update / ends a download / "
                        "rejects an image")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_serve)


def parse_activate(text):
    if text in ("now", "command"):
        return (text, 0)
    kind, _, val = text.partition(":")
    if kind == "relative":
        try:
            return ("relative", int(val))
        except ValueError:
            raise InputError("bad --activate %r" % text)
    if kind == "at":
        try:
            t = time.strptime(val.rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise InputError("bad --activate time %r (use YYYY-MM-DDTHH:MM:SSZ)" % val)
        return ("at", calendar.timegm(t) - ZIGBEE_EPOCH)
    raise InputError("bad --activate %r" % text)


def open_link(args):
    from host_tools.link import UdpServerLink, SerialLink
    if args.udp:
        host, _, port = args.udp.rpartition(":")
        try:
            return UdpServerLink(host or "127.0.0.1", int(port))
        except (ValueError, OSError) as e:
            raise InputError("cannot listen on %s: %s" % (args.udp, e))
    try:
        return SerialLink(args.serial)
    except OSError as e:
        raise InputError("cannot open %s: %s" % (args.serial, e))


def until_for(mode):
    if mode == "confirmed":
        return lambda hub: any(a["code"] == "0x8F43" for d in hub.devices.values()
                               for a in d.alerts)
    if mode == "ended":
        return lambda hub: any(d.outcome for d in hub.devices.values())
    if mode == "rejected":
        return lambda hub: any(d.outcome == "invalid_image" for d in hub.devices.values())
    return None


def run_serve(args):
    from host_tools.progress import Progress
    images = [Image(p) for p in args.image]
    faults = Faults(args.drop, args.dup, args.corrupt, args.reorder, args.delay,
                    args.wait_for_data, args.wait_seconds, args.abort_at, args.seed)
    link = open_link(args)
    log = open(args.json_log, "a") if args.json_log else None

    def echo(rec):
        if not args.quiet:
            extra = " ".join("%s=%s" % (k, v) for k, v in rec.items()
                             if k not in ("t", "device", "event") and v not in (None, ""))
            print("[%8.3f] %s %s %s" % (rec["t"], rec["device"], rec["event"], extra),
                  file=sys.stderr, flush=True)
    hub = Hub(images, link, args.block_size, parse_activate(args.activate), faults,
              args.rate_bps, log, args.plain,
              progress=None if args.quiet else (lambda total, label: Progress(total, label)),
              echo=echo)
    if not args.quiet:
        where = args.udp and "udp %s:%d" % link.address[:2] or args.serial
        print("serving %d image(s) on %s" % (len(images), where), file=sys.stderr, flush=True)
    try:
        ok = hub.serve(args.timeout, until_for(args.exit_when), args.linger)
    except KeyboardInterrupt:
        ok = True
    finally:
        link.close()
        if log:
            log.close()
    if args.exit_when and not ok:
        print("otatool: timed out before a device %s" % args.exit_when, file=sys.stderr)
        return 1
    return 0
