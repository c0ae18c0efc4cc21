"""Running otatool as a real process in the CLI tests: exit codes and the one-line reason."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OTATOOL = [os.path.join(os.path.dirname(sys.executable), "otatool")]


def env(**extra):
    e = dict(os.environ, PYTHONPATH=ROOT)
    e.pop("OTATOOL_PROGRESS", None)
    e.update(extra)
    return e


def run(*args, cwd=None, timeout=60, **extra):
    return subprocess.run(OTATOOL + [str(a) for a in args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env(**extra), timeout=timeout)


def rejected(r, *needles, code=1):
    """Exit `code` with exactly one line "otatool: ..." on stderr holding every needle."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "FATAL" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("otatool: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def usage(r, *needles):
    """Exit 2 (argparse): the usage and one line "otatool CMD: error: ..." last."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("otatool ") and ": error: " in last, r.stderr
    for n in needles:
        assert n in last, (n, last)
    return last


def help_entries(text):
    """{option spec: its help text} of an argparse help text; asserts an example is shown."""
    assert "\nexample" in text, text
    body = text.split("options:", 1)[1].split("\nexample", 1)[0]
    out = {}
    spec = None
    for line in body.splitlines():
        if line.startswith("  -"):
            parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            spec = parts[0]
            out[spec] = parts[1] if len(parts) > 1 else ""
        elif spec and line.strip():
            out[spec] = (out[spec] + " " + line.strip()).strip()
    return out
