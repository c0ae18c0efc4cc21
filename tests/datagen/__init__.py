"""Test data made on the host (CPython) for the device-side tests.

Each module here named gen_*.py has generate(outdir) which writes files into outdir.
Device tests (under both interpreters) read them through tutil.read_data().
"""
import importlib
import os
import pkgutil


def generate_all(outdir, force=False):
    os.makedirs(outdir, exist_ok=True)
    stamp = os.path.join(outdir, ".stamp")
    if os.path.exists(stamp) and not force:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("gen_"):
            importlib.import_module(__name__ + "." + info.name).generate(outdir)
    with open(stamp, "w") as f:
        f.write("ok\n")
