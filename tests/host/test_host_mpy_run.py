"""host_tools.mpy.run_module: MicroPython runs a module's main() with the agent loaded from
the .mpy build, even from the repository's root, where `-m` would put the source tree first
on the path and the agent would be compiled from source in the device's heap (what
`otatool device`, the power-cut campaign under MicroPython and the heap bench rely on)."""
import os
import subprocess
import sys

from host_tools import mpy

MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")


def test_run_module_loads_the_build_from_the_repository_root(tmp_path):
    out = str(tmp_path / "mpy")
    mpy.build(out)
    with open(str(tmp_path / "probe.py"), "w") as f:
        f.write("import sys\n"
                "def main(argv):\n"
                "    import agent.update\n"
                "    print(agent.update.__file__, ' '.join(argv))\n"
                "    return 7\n"
                "if __name__ == '__main__':\n"
                "    sys.exit(main(sys.argv[1:]))\n")
    env = dict(os.environ, MICROPYPATH=os.pathsep.join((out, str(tmp_path))))

    def run(how):
        return subprocess.run([MICROPYTHON] + how + ["a", "--b"], cwd=mpy.ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    r = run(mpy.run_module("probe"))
    assert r.returncode == 7, r.stderr   # main's return is the exit code
    where, args = r.stdout.split(" ", 1)
    assert where.endswith(os.path.join("agent", "update.mpy")) and where.startswith(out)
    assert args.strip() == "a --b"
    # what run_module avoids: -m from the root imports the source tree
    r = run(["-m", "probe"])
    assert r.stdout.split(" ", 1)[0] == os.path.join("agent", "update.py")
