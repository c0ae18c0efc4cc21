"""The code a device loads (host_tools.mpy.device_modules / device_sizes): what it counts,
that the Cortex-M bench and `otatool bench --only size` report the same figure, and that it
stays under its ceiling (host_tools.mpy.DEVICE_CEILING) while it is over its 40 KiB budget
(host_tools.mpy.DEVICE_BUDGET, which `otatool bench` reports as met or not)."""
import os
import shutil
import subprocess
import sys

import pytest

from host_tools import mpy

ROOT = mpy.ROOT


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mpy-device"))
    return out, {link: mpy.device_sizes(out, link) for link in mpy.LINKS}


def test_device_modules_are_the_agent_less_host_only_and_the_hal_it_imports():
    mods = mpy.device_modules()
    assert "agent/update.py" in mods and "agent/zcl/pager.py" in mods
    assert "agent/crypto/sha256v.py" in mods  # native code a device runs counts too
    for host in mpy.HOST_ONLY:
        assert host.startswith("agent/") and host not in mods
    assert not [m for m in mods if m.startswith(("boards/", "hal/sim/", "tests/"))]
    hal = sorted(m for m in mods if m.startswith("hal/"))
    assert hal == sorted(mpy.DEVICE_HAL + ("hal/udp.py",))
    assert "hal/serial.py" in mpy.device_modules("hal/serial.py")
    assert "hal/udp.py" not in mpy.device_modules("hal/serial.py")
    with pytest.raises(ValueError):
        mpy.device_modules("hal/sim/nor.py")
    # every agent module a device installs (package.json) is counted, nothing else of agent/
    import json
    with open(os.path.join(ROOT, "agent", "package.json")) as f:
        installed = sorted(d for d, _s in json.load(f)["urls"] if d.startswith("agent/"))
    assert installed == sorted(m for m in mods if m.startswith("agent/"))


def test_device_sizes_are_the_o3_build(built):
    out, sizes = built
    udp = sizes["hal/udp.py"]
    assert sorted(udp) == sorted(m[:-3] + ".mpy" for m in mpy.device_modules())
    for k, v in udp.items():
        assert v == os.path.getsize(os.path.join(out, k)), k
    with open(os.path.join(out, ".opt")) as f:
        assert f.read().strip() == str(mpy.OPT) == "3"
    # -O3 leaves out line numbers: the same module compiled without -O is larger
    plain = os.path.join(out, "plain.mpy")
    subprocess.run([mpy.mpy_cross(), "-o", plain, os.path.join(ROOT, "agent", "update.py")],
                   check=True)
    assert os.path.getsize(plain) > udp["agent/update.mpy"]
    os.remove(plain)


def test_device_code_within_ceiling(built):
    """A regression past the ceiling (72 KiB of .mpy, with either link) fails here."""
    _out, sizes = built
    for link, s in sizes.items():
        total = sum(s.values())
        top = sorted(s.items(), key=lambda kv: -kv[1])[:5]
        assert total <= mpy.DEVICE_CEILING == 72 * 1024, (link, total, top)


def test_bench_figures_are_the_same_function(built):
    from host_tools import bench_mcu
    _out, sizes = built
    assert bench_mcu.mpy_bytes_device() == sum(sizes["hal/serial.py"].values())


def test_cli_device_report(tmp_path):
    r = subprocess.run([sys.executable, "-m", "host_tools.mpy", "--device", "--out",
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert "agent/update.mpy" in r.stdout and "hal/udp.mpy" in r.stdout
    assert "hal/serial.mpy" not in r.stdout and "server.mpy" not in r.stdout
    assert lines[-1].split()[0] == str(mpy.DEVICE_BUDGET) and "budget" in lines[-1]
    r = subprocess.run([sys.executable, "-m", "host_tools.mpy", "--device", "--board", "rp2"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "--device" in r.stderr


def test_device_modules_alone_import_and_refuse_with_code_and_detail(built, tmp_path):
    """MicroPython with only the device's .mpy files (no host-only module on its path):
    every module imports, and an OtaError reads E<code>: <detail>, its text left out."""
    out, sizes = built
    for k in sizes["hal/udp.py"]:
        os.makedirs(os.path.dirname(str(tmp_path / k)), exist_ok=True)
        shutil.copyfile(os.path.join(out, k), str(tmp_path / k))
    native = [m[:-3].replace("/", ".") for m in mpy.NATIVE]
    mods = [m[:-3].replace("/", ".") for m in mpy.device_modules()]
    mods = [m[:-9] if m.endswith(".__init__") else m for m in mods if m not in native]
    code = ("import sys\nsys.path[:] = [%r]\n" % str(tmp_path)
            + "".join("import %s\n" % m for m in mods)
            + "from agent.errors import OtaError, message, SECTOR_CRC\n"
            "print(repr(message(SECTOR_CRC)))\n"
            "print(OtaError(SECTOR_CRC, 'sector 5'))\nprint(OtaError(SECTOR_CRC))\n"
            "from agent.crypto.sha256r import Sha256\n"
            "print(Sha256().digest() == __import__('hashlib').sha256(b'').digest())\n")
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    r = subprocess.run([mp, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split("\n")[:4] == ["''", "E62: sector 5", "E62", "True"], r.stdout
    # the host (and the tests) have the texts
    from agent.errors import OtaError, SECTOR_CRC
    assert str(OtaError(SECTOR_CRC, "sector 5")) == "E62 sector CRC-32 mismatch: sector 5"
