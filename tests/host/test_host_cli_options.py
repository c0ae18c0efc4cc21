"""otatool powercut, deploy and bench as real processes: options checked with their ranges
(exit 2) and files checked (exit 1, one line) before any work; help with defaults and an
example for every running command."""
import os
import random

import pytest

from host_tools.lab import Lab
from tests.host.clirun import help_entries, rejected, run, usage


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("cli_options")))
    lab.keygen("dev")
    rnd = random.Random(4)
    for name, size in (("v1", 6000), ("v2", 9000)):
        with open(lab.path(name + ".bin"), "wb") as f:
            f.write(rnd.randbytes(size))
    lab.sign(lab.path("v1.bin"), "v1.ota", 1, 1)
    lab.sign(lab.path("v2.bin"), "v2.ota", 2, 2)
    return lab


@pytest.mark.parametrize("command", ["device", "serve", "powercut", "deploy", "bench"])
def test_help_of_every_running_command(command):
    r = run(command, "--help")
    assert r.returncode == 0, r.stderr
    for spec, text in help_entries(r.stdout).items():
        assert text, "%s: option without help: %s" % (command, spec)
    assert "otatool %s " % command in r.stdout.split("example", 1)[1]
    assert "Exit codes" in r.stdout or "exit codes" in r.stdout.lower()


def powercut(lab, *args):
    return run("powercut", "--image", "v2.ota", "--from", "v1.ota", "--public", "dev_pub.pem",
               *args, cwd=lab.dir)


@pytest.mark.parametrize("args,opt,reason", [
    (("--alignment", "3"), "--alignment", "alignment 3: use 1, 2, 4, 8, 16"),
    (("--alignment", ","), "--alignment", "empty alignment list"),
    (("--erased", "0x0f"), "--erased", "erased value 0x0f: use 0xff, 0x00"),
    (("--sector-size", "3000"), "--sector-size", "must be a power of two"),
    (("--sector-size", "128"), "--sector-size", "between 256 and 64k"),
    (("--random-cuts", "101"), "--random-cuts", "between 0 and 100"),
    (("--phase", "boot"), "--phase", "invalid choice"),
    (("--random-cuts", "3"), "", "--random-cuts needs --seeds"),
    (("--seeds", "3"), "", "--seeds needs --random-cuts"),
    (("--micropython", "--sector-size", "8192"), "", "works only without --micropython"),
])
def test_powercut_option_ranges(lab, args, opt, reason):
    usage(powercut(lab, *args), opt, reason)


def test_powercut_bad_files(lab):
    rejected(run("powercut", "--image", "v2.bin", "--public", "dev_pub.pem", cwd=lab.dir),
             "v2.bin is not an OTA image: E1 bad magic number")
    rejected(run("powercut", "--image", "v2.ota", "--public", "dev_priv.pem", cwd=lab.dir),
             "dev_priv.pem is a private key")
    with open(lab.path("cut.ota"), "wb") as f:
        f.write(open(lab.path("v2.ota"), "rb").read()[:-10])
    rejected(run("powercut", "--image", "cut.ota", "--public", "dev_pub.pem", cwd=lab.dir),
             "cut.ota: the header says")


def test_powercut_runs(lab):
    r = powercut(lab, "--phase", "confirm", "--alignment", "1,4", "--erased", "0xff,0")
    assert r.returncode == 0, r.stderr
    assert "write size  4, erased 0x00" in r.stdout and "bricked 0" in r.stdout


def test_deploy_checks_before_building(lab):
    usage(run("deploy", "--board", "pic", "--port", "x"), "--board", "invalid choice")
    rejected(run("deploy", "--board", "unix", "--port", "/dev/no-such-tty", cwd=lab.dir),
             "cannot open /dev/no-such-tty: no such serial device")
    rejected(run("deploy", "--board", "unix", "--port", lab.path("v1.ota"), cwd=lab.dir),
             "not a serial device")
    rejected(run("deploy", "--board", "esp32", "--port", "/dev/null", "--public",
                 "dev_priv.pem", cwd=lab.dir), "dev_priv.pem is a private key")


def test_bench_checks_before_measuring(lab):
    usage(run("bench", "--only", "speed"), "--only", "invalid choice")
    r = run("bench", "--only", "size", "--out", "no/such/dir/r.json", cwd=lab.dir)
    rejected(r, "no/such/dir/r.json: not a file in an existing directory")
    assert not os.path.exists(lab.path("no"))


def test_powercut_of_a_delta_needs_its_old_image(lab):
    lab.sign(lab.path("v2.bin"), "v2d.ota", 2, 2, extra=("--delta-from", "v1.ota"))
    rejected(run("powercut", "--image", "v2d.ota", "--public", "dev_pub.pem", cwd=lab.dir),
             "v2d.ota is a delta against version 1: give that image with --from")
    rejected(run("powercut", "--image", "v2d.ota", "--from", "v2.ota", "--public",
                 "dev_pub.pem", cwd=lab.dir),
             "v2d.ota is a delta against version 1, not v2.ota (version 2)")
    r = run("powercut", "--image", "v2d.ota", "--from", "v1.ota", "--public", "dev_pub.pem",
            "--phase", "download", "--tear", cwd=lab.dir)
    assert r.returncode == 0, r.stderr
    assert "bricked 0" in r.stdout and "resumed from zero 0" in r.stdout, r.stdout
