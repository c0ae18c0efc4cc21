"""make test-mcu: the device tests inside MicroPython's Cortex-M3 firmware under QEMU.

  python tests/mcutier.py [--config romfs|frozen|all] [-k SUBSTRING] [tests/device/test_x.py ...]

Two configurations, each test module in a fresh emulator:
  romfs   firmware without the agent, 64 KiB heap, the agent as .mpy run from a ROMFS image
  frozen  firmware with the agent frozen in, 32 KiB heap
The device code, the tests (compiled by the firmware's own mpy-cross) and their data go into
one ROMFS image (build/mcu/tests.romfs, or under $MCUTIER_WORK); tests/mcurun.py runs them on the device. Skipped
tests are listed with their reason and never counted as passed. Exit 1 on any failure.
"""
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from host_tools import mcu  # noqa: E402


CONFIGS = {
    # name: (firmware, heap bytes, sys.path on the device)
    "romfs": ("bare", 64 * 1024, ["/rom/lib", "/rom/tests"]),
    "frozen": ("agent", 32 * 1024, [".frozen", "/rom/tests", "/rom/lib"]),
}
# where the device-side tests and their kits live (flat on the device, in /rom/tests)
TEST_DIRS = ("tests/kit", "tests/device", "tests/scenario")
BUDGET = 60


# MCUTIER_WORK: another folder for the image and its tree (runs side by side)
WORK = os.environ.get("MCUTIER_WORK") or mcu.BUILD


def build_rom(out=os.path.join(WORK, "tests.romfs")):
    """The ROMFS image of device code, tests and test data; returns its path."""
    tree = os.path.join(WORK, "rom-tests")
    shutil.rmtree(tree, ignore_errors=True)
    for rel in mcu.romfs_sources():
        mcu.compile_to(os.path.join(ROOT, rel), os.path.join(tree, "lib", rel[:-3] + ".mpy"))
    for d in TEST_DIRS:
        tdir = os.path.join(ROOT, d)
        for f in sorted(os.listdir(tdir)):
            if f.endswith(".py"):
                mcu.compile_to(os.path.join(tdir, f),
                               os.path.join(tree, "tests", f[:-3] + ".mpy"))
    mcu.compile_to(os.path.join(ROOT, "tests", "mcurun.py"),
                   os.path.join(tree, "tests", "mcurun.mpy"))
    for d in ("build/testdata", "tests/fixtures"):
        shutil.copytree(os.path.join(ROOT, d), os.path.join(tree, d),
                        ignore=shutil.ignore_patterns(".stamp", "README.md", "*_priv.pem"))
    mcu.romfs(tree, out)
    return out


def modules(args):
    if args:
        return [a.rsplit("/", 1)[-1][:-3] if a.endswith(".py") else a for a in args]
    return sorted(f[:-3] for d in TEST_DIRS for f in os.listdir(os.path.join(ROOT, d))
                  if f.startswith("test_") and f.endswith(".py"))


def run_module(config, mod, rom, pattern, budget):
    """Lines PASS/FAIL/SKIP and the text of one module's run. A test that runs longer than
    budget seconds of wall time is skipped (the emulator restarted past it)."""
    kind, heap, path = CONFIGS[config]
    done = []
    lines = []
    text = ""
    while True:
        code = "import sys\nsys.path[:] = %r\nimport mcurun\nmcurun.main([%r], %r, %r)\n" % (
            path, mod, pattern, done)
        current = None
        with mcu.Mcu(mcu.firmware(kind), heap=heap, rom=rom) as m:
            try:
                m.raw()
                m.write(code.encode() + b"\x04")
                m.read_until(b"OK", 30)
                while True:
                    chunk = m.read_until(b"\n", budget if current else 60, b"\x04")
                    end = b"\x04" in chunk
                    line = chunk.split(b"\x04")[0].decode(errors="replace").strip()
                    if line.startswith("START "):
                        current = line[6:]
                        done.append(current)
                    elif line:
                        text += line + "\n"
                        if line.split(" ", 1)[0] in ("PASS", "FAIL", "SKIP"):
                            lines.append(line)
                            current = None
                    if end:
                        m.buf = chunk.split(b"\x04", 1)[1] + m.buf
                        err = m.read_until(b"\x04", 30)[:-1].decode(errors="replace")
                        if err.strip():
                            text += err
                            lines.append("FAIL %s (runner)" % mod)
                        return lines, text
            except mcu.McuError as e:
                if current is None:
                    lines.append("FAIL %s (emulator: %s)" % (mod, e))
                    return lines, text
                lines.append("SKIP %s: ran over the %d s budget of wall time on the "
                             "emulator" % (current, budget))


def run_config(config, mods, rom, pattern, verbose, budget):
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
    skips = []
    kind, heap, _ = CONFIGS[config]
    print("-- Cortex-M3, %s: %s firmware, %d KiB heap" % (config, kind, heap // 1024), flush=True)
    t0 = time.monotonic()
    for mod in mods:
        t1 = time.monotonic()
        lines, text = run_module(config, mod, rom, pattern, budget)
        c = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        for ln in lines:
            word = ln.split(" ", 1)[0]
            if word in c:
                c[word] += 1
                if word == "SKIP":
                    skips.append(ln[5:])
        for k in c:
            counts[k] += c[k]
        status = "ok" if not c["FAIL"] else "FAILED"
        print("%-28s %-6s %3d passed %3d failed %3d skipped  %5.1f s" % (
            mod, status, c["PASS"], c["FAIL"], c["SKIP"], time.monotonic() - t1), flush=True)
        if c["FAIL"] or verbose:
            for ln in text.splitlines():
                if not ln.startswith(("PASS ", "SKIP ")) or verbose:
                    print("    " + ln.rstrip())
            for ln in lines:
                if ln.startswith("FAIL "):
                    print("    " + ln)
    for s in skips:
        print("skipped %s" % s)
    print("mcu %s: %d passed, %d failed, %d skipped (%.0f s)" % (
        config, counts["PASS"], counts["FAIL"], counts["SKIP"], time.monotonic() - t0),
        flush=True)
    return counts


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python tests/mcutier.py")
    ap.add_argument("tests", nargs="*")
    ap.add_argument("--config", choices=("romfs", "frozen", "all"), default="all")
    ap.add_argument("-k", dest="pattern")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--budget", type=int, default=BUDGET,
                    help="seconds of wall time one test may take on the emulator")
    a = ap.parse_args(argv)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    why = mcu.unavailable()
    if why:
        print("Cortex-M tier: not run: %s" % why)
        return 1
    for kind in ("bare", "agent"):
        if not os.path.exists(mcu.firmware(kind)):
            print("Cortex-M tier: no firmware %s (make mcu)" % mcu.firmware(kind))
            return 1
    rom = build_rom()
    configs = ("romfs", "frozen") if a.config == "all" else (a.config,)
    totals = {}
    for c in configs:
        totals[c] = run_config(c, modules(a.tests), rom, a.pattern, a.verbose, a.budget)
    print("")
    for c in configs:
        n = totals[c]
        print("Cortex-M3 (%s):%s %d passed, %d failed, %d skipped" % (
            c, " " * (7 - len(c)), n["PASS"], n["FAIL"], n["SKIP"]))
    bad = sum(n["FAIL"] for n in totals.values())
    good = all(n["PASS"] > 0 for n in totals.values())
    return 0 if good and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
