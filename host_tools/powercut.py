"""otatool powercut: the power-cut campaign over the emulated board.

Runs one clean update on emulated strict NOR flash to count its flash operations per
phase, then cuts power after every one of them (and, with --tear, during every one), reboots
the emulated device, drives it to the end and checks that it always boots a valid, signed
image, never loses its confirmed image, resumes a download from its checkpoint and does not
wear a sector beyond one extra erase per cut. The engine is hal/powercut.py, the same code
under CPython (default) or the real MicroPython interpreter (--micropython).
"""
import json
import os
import subprocess
import sys
import time

from host_tools.cli import InputError, number

PHASES = ("download", "verify", "activate", "confirm", "revert")


def register(sub):
    p = sub.add_parser("powercut", help="power-cut campaign on the emulated device",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--image", required=True, help="the update (signed image)")
    p.add_argument("--public", required=True, action="append", metavar="P.pem",
                   help="trusted public key (repeatable)")
    p.add_argument("--from", dest="factory", metavar="OLD.ota",
                   help="factory image the device runs first (default: the update itself)")
    p.add_argument("--phase", default="all", choices=PHASES + ("all",))
    p.add_argument("--tear", action="store_true", help="also tear every operation")
    p.add_argument("--alignment", default="1", help="write sizes, e.g. 1,4,8,16")
    p.add_argument("--erased", default="0xff", help="erased values, e.g. 0xff,0x00")
    p.add_argument("--sector-size", type=number, default=4096)
    p.add_argument("--random-cuts", type=number, default=0, metavar="K",
                   help="up to K cuts in one update, at pseudo-random operations")
    p.add_argument("--seeds", type=number, default=0, metavar="N", help="random runs")
    p.add_argument("--micropython", action="store_true",
                   help="run the campaign under the real MicroPython interpreter")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_powercut)


def _list(text, what, base=10):
    try:
        out = [int(x, base) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError("bad %s list %r" % (what, text))
    if not out:
        raise InputError("empty %s list" % what)
    return out


def run_powercut(args):
    from agent.keys import point
    from host_tools import keys as hk
    from host_tools.progress import Progress
    from hal import powercut

    aligns = _list(args.alignment, "alignment")
    for a in aligns:
        if a not in (1, 2, 4, 8, 16):
            raise InputError("alignment %d: use 1, 2, 4, 8 or 16" % a)
    erased = _list(args.erased, "erased value", 0)
    for e in erased:
        if e not in (0xFF, 0x00):
            raise InputError("erased value 0x%X: use 0xff or 0x00" % e)
    if args.random_cuts and not args.seeds:
        raise InputError("--random-cuts needs --seeds")
    phases = PHASES if args.phase == "all" else (args.phase,)
    update = _read(args.image)
    factory = _read(args.factory) if args.factory else update
    keys = [point(hk.public_point(hk.load_public(p))) for p in args.public]
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


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _under_micropython(args, phases, aligns, erased):
    from host_tools.mpy import build, build_dir
    out = build_dir("mpy")
    build(out)
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    env = dict(os.environ, MICROPYPATH=out)
    cmd = [mp if os.path.exists(mp) else "micropython", "-X", "heapsize=64M", "-m",
           "hal.powercut", args.image, args.factory or args.image, ",".join(args.public),
           ",".join(phases), "1" if args.tear else "0", ",".join(map(str, aligns)),
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
