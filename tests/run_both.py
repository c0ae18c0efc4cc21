"""make test: run pytest (CPython), then the device tests under MicroPython; both count."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail = []
    for line in p.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        tail = (tail + [line.strip()])[-5:]
    return p.wait(), tail


def count(tail, pattern):
    for line in reversed(tail):
        m = re.search(pattern, line)
        if m:
            return int(m.group(1))
    return 0


def main():
    rc1, tail1 = run([sys.executable, "-m", "pytest", "tests"] + sys.argv[1:])
    rc2, tail2 = run([os.path.join(BIN, "micropython"), "-X", "heapsize=16M", "tests/mprun.py"])
    cp_pass = count(tail1, r"(\d+) passed")
    cp_fail = count(tail1, r"(\d+) failed") + count(tail1, r"(\d+) error")
    mp_pass = count(tail2, r"(\d+) passed")
    mp_fail = count(tail2, r"(\d+) failed")
    # skipped: could not run under that interpreter, with the reason shown; never passed
    cp_skip = count(tail1, r"(\d+) skipped")
    mp_skip = count(tail2, r"micropython: .* (\d+) skipped")
    print("")
    print("CPython (pytest):  %d passed, %d failed, %d skipped" % (cp_pass, cp_fail, cp_skip))
    print("MicroPython:       %d passed, %d failed, %d skipped" % (mp_pass, mp_fail, mp_skip))
    ok = rc1 == 0 and rc2 == 0 and cp_pass > 0 and mp_pass > 0
    print("total: %d passed, %d failed, %d skipped" % (
        cp_pass + mp_pass, cp_fail + mp_fail + (0 if ok else (cp_fail + mp_fail == 0)),
        cp_skip + mp_skip))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
