# Runs the device-side tests under the real MicroPython interpreter.
#
#   micropython -X heapsize=16M tests/mprun.py [-k SUBSTRING] [tests/device/test_x.py ...]
#
# The device code is imported from build/mpy (compiled by mpy-cross; MPRUN_MPY names another
# such folder), never from source.
# Each test module is imported and each function whose name starts with "test_" is called;
# a test passes when it returns, and is skipped, not passed, when it raises tutil.Skip (it
# cannot run under this interpreter): "skipped <test>: <reason>". The last line is
# "micropython: N passed, M failed, K skipped".
import gc
import sys
import os

TEST_DIRS = ("tests/device", "tests/scenario")  # unit tests of each module, then scenarios
sys.path[:] = [os.getenv("MPRUN_MPY") or "build/mpy", "tests/kit", "tests/device", "tests/scenario", ".frozen"]


def _modules(args):
    if args:
        out = []
        for a in args:
            name = a.rsplit("/", 1)[-1]
            if name.endswith(".py"):
                name = name[:-3]
            out.append(name)
        return out
    out = []
    for d in TEST_DIRS:
        out += sorted(f[:-3] for f in os.listdir(d) if f.startswith("test_") and f.endswith(".py"))
    return out


def main(argv):
    pattern = None
    args = []
    i = 0
    while i < len(argv):
        if argv[i] == "-k":
            pattern = argv[i + 1]
            i += 2
        else:
            args.append(argv[i])
            i += 1
    import agent
    if not agent.__file__.endswith(".mpy"):
        print("mprun: agent imported from %s, not from .mpy" % agent.__file__)
        return 1
    from tutil import Skip
    passed = failed = skipped = 0
    failures = []
    for modname in _modules(args):
        try:
            mod = __import__(modname)
        except Exception as e:
            print("ERROR importing %s:" % modname)
            sys.print_exception(e)
            failed += 1
            failures.append(modname)
            continue
        gc.collect()
        names = sorted(n for n in dir(mod) if n.startswith("test_"))
        for n in names:
            full = modname + "::" + n
            if pattern and pattern not in full:
                continue
            fn = getattr(mod, n)
            try:
                fn()
            except (KeyboardInterrupt, SystemExit):
                raise
            except Skip as e:
                print("skipped %s: %s" % (full, e.args[0] if e.args else ""))
                skipped += 1
                continue
            except BaseException as e:  # PowerCut and Reboot are BaseExceptions
                print("FAIL", full)
                sys.print_exception(e)
                failed += 1
                failures.append(full)
                continue
            passed += 1
        print("%-40s ok" % modname)
    for f in failures:
        print("FAILED", f)
    print("micropython: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
