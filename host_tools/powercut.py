"""otatool powercut: the power-cut campaign over the emulated board.

Runs one clean update on emulated strict NOR flash to count its flash operations per
phase, then cuts power after every one of them (and, with --tear, during every one), reboots
the emulated device, drives it to the end and checks that it always boots a valid, signed
image, never loses its confirmed image, resumes a download from its checkpoint and does not
wear a sector beyond one extra erase per cut. The engine is hal/sim/powercut.py, the same code
under CPython (default) or the real MicroPython interpreter (--micropython).
"""
import json
import os
import subprocess
import sys
import time

from host_tools import argtypes as T
from host_tools.cli import InputError

PHASES = ("download", "verify", "activate", "confirm", "revert")
EXIT_CODES = """

Exit codes: 0 every check held; 1 a bad input, or a check failed (the first failure on
stderr); 2 usage; 130 interrupted."""


EXAMPLE = """examples:
  otatool powercut --image v2.ota --from v1.ota --public pub.pem --phase download --tear
  otatool powercut --image v2-delta.ota --from v1.ota --public pub.pem --tear
  otatool powercut --image v2.ota --public pub.pem --alignment 1,4,8,16 --erased 0xff,0x00 \\
      --random-cuts 5 --seeds 20 --json
"""


def _delta_needs_its_base(update, factory, args):
    # a delta is installed over the image it was made against: the factory image must be it
    from agent.image import fmt, pack
    m = pack.peek(update[:fmt.MANIFEST_END_MAX])
    if m.encoding != fmt.ENC_DELTA:
        return
    if not args.factory:
        raise InputError("%s is a delta against version %d: give that image with --from"
                         % (args.image, m.base_version))
    f = pack.peek(factory[:fmt.MANIFEST_END_MAX])
    if (f.size, f.sha256, f.version) != (m.base_size, m.base_sha256, m.base_version):
        raise InputError("%s is a delta against version %d, not %s (version %d)"
                         % (args.image, m.base_version, args.factory, f.version))


def register(sub):
    p = sub.add_parser("powercut", help="power-cut campaign on the emulated device",
                       description=__doc__.split("\n\n", 1)[1] + EXIT_CODES, epilog=EXAMPLE,
                       formatter_class=T.HelpFormatter)
    p.add_argument("--image", required=True, metavar="IMG.ota",
                   help="the update (a signed image)")
    p.add_argument("--public", required=True, action="append", metavar="P.pem",
                   help="trusted public key; repeat for more (PEM with --micropython)")
    p.add_argument("--from", dest="factory", metavar="OLD.ota",
                   help="factory image the device runs first (default: the update itself; "
                        "a delta's old image)")
    p.add_argument("--phase", default="all", choices=PHASES + ("all",),
                   help="the phase whose flash operations are cut")
    p.add_argument("--tear", action="store_true",
                   help="also tear every operation (power lost part-way through it)")
    p.add_argument("--alignment", default="1", metavar="LIST",
                   type=T.int_list((1, 2, 4, 8, 16), "alignment"),
                   help="flash write units to run, from 1, 2, 4, 8, 16, e.g. 1,4,8,16")
    p.add_argument("--erased", default="0xff", metavar="LIST",
                   type=T.int_list((0xFF, 0x00), "erased value", hexa=True),
                   help="erased byte values to run, e.g. 0xff,0x00")
    p.add_argument("--sector-size", type=T.power_of_two(256, 65536, "sector size"),
                   default=4096, metavar="BYTES",
                   help="flash sector size, a power of two 256..65536 (CPython only)")
    p.add_argument("--random-cuts", type=T.integer(0, 100, "cut count"), default=0,
                   metavar="K", help="up to K cuts in one update, at pseudo-random "
                                     "operations (needs --seeds)")
    p.add_argument("--seeds", type=T.integer(0, 100000, "seed count"), default=0,
                   metavar="N", help="random runs (with --random-cuts)")
    p.add_argument("--micropython", action="store_true",
                   help="run the campaign under the real MicroPython interpreter")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_powercut, usage_error=p.error)


def run_powercut(args):
    from agent.crypto.trust import point
    from host_tools.progress import Progress
    from hal.sim import powercut

    aligns, erased = args.alignment, args.erased
    if args.random_cuts and not args.seeds:
        args.usage_error("--random-cuts needs --seeds")
    if args.seeds and not args.random_cuts:
        args.usage_error("--seeds needs --random-cuts")
    if args.micropython and args.sector_size != 4096:
        args.usage_error("--sector-size works only without --micropython")
    phases = PHASES if args.phase == "all" else (args.phase,)
    update = T.read_image(args.image)
    factory = T.read_image(args.factory) if args.factory else update
    _delta_needs_its_base(update, factory, args)
    keys = [point(p) for p in T.public_points(args.public)]
    if args.micropython:
        for p in args.public:
            if not T.read_input(p, "a public key", 64).startswith(b"-----BEGIN PUBLIC KEY"):
                raise InputError("%s: --micropython takes PEM public keys" % p)
    t0 = time.monotonic()
    if args.micropython:
        res = _under_micropython(args, phases, aligns, erased)
    else:
        per = powercut.count_points(update, factory, keys, phases, args.tear, args.sector_size)
        total = (per + args.seeds) * len(aligns) * len(erased)
        with Progress(total, "powercut", unit="runs") as bar:
            res = powercut.run(update, factory, keys, phases, args.tear, aligns, erased,
                               args.random_cuts, args.seeds, args.sector_size,
                               progress=bar.advance)
    res["seconds"] = round(time.monotonic() - t0, 1)
    res["interpreter"] = "micropython" if args.micropython else "cpython"
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        _summary(res)
    bad = res["bricked"] + res["lost_confirmed_image"] + res["resumed_from_zero"] + res["resumed_behind"] \
        + res["extra_erases"]
    if bad:
        print("otatool: campaign failed: %s" % "; ".join(res["failures"][:1]), file=sys.stderr)
        return 1
    return 0


def _under_micropython(args, phases, aligns, erased):
    from host_tools.mpy import build, build_dir, run_module
    out = build_dir("mpy")
    build(out)
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    env = dict(os.environ, MICROPYPATH=out)
    cmd = [mp if os.path.exists(mp) else "micropython", "-X", "heapsize=64M"] \
        + run_module("hal.sim.powercut") \
        + [args.image, args.factory or args.image, ",".join(args.public), ",".join(phases),
           "1" if args.tear else "0", ",".join(map(str, aligns)),
           ",".join(str(e) for e in erased), str(args.random_cuts), str(args.seeds)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        lines = (r.stderr or r.stdout).strip().splitlines()
        raise InputError("micropython: %s" % (lines[-1] if lines else "failed"))
    return json.loads(r.stdout.strip().splitlines()[-1])


def _summary(res):
    print("power-cut campaign (%s, %.1f s)" % (res["interpreter"], res["seconds"]))
    for c in res["configs"]:
        cl = c["clean"]
        print("  write size %2d, erased 0x%02X: ops %s; cuts %d, torn %d; slot erases %d "
              "(minimum %d); journal %d records of %d bytes, %d erases"
              % (c["write_size"], c["erased"], c["ops"], c["cut_points"], c["torn_points"],
                 cl["slot_erases"], cl["min_erases"], cl["journal_records"],
                 cl["journal_record_bytes"], cl["journal_erases"]))
    print("cut points %d, torn points %d, runs %d" % (res["cut_points"], res["torn_points"],
                                                      res["runs"]))
    print("bricked %d, lost confirmed image %d, resumed from zero %d, max extra erases %d "
          "per cut" % (res["bricked"], res["lost_confirmed_image"], res["resumed_from_zero"],
                       res["max_extra_erases"]))
    for f in res["failures"][:10]:
        print("  " + f)
