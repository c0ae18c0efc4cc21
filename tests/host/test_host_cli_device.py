"""otatool device as a real process (the device on real MicroPython, real UDP on loopback):
every bad input fails before the device starts, or with the device's own reason, in one
line; signals reach the device process; "no answer from the server" has its own exit code."""
import os
import random
import signal
import subprocess
import time

import pytest

from host_tools.lab import Lab, free_udp_port
from tests.host.clirun import OTATOOL, env, help_entries, rejected, run, usage

FLASH_SIZE = None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    global FLASH_SIZE
    from boards.unix.layout import layout
    FLASH_SIZE = layout().size
    lab = Lab(str(tmp_path_factory.mktemp("cli_device")))
    lab.keygen("dev")
    lab.keygen("other")
    rnd = random.Random(9)
    for name, size in (("v1", 8 * 1024), ("v2", 12 * 1024)):
        with open(lab.path(name + ".bin"), "wb") as f:
            f.write(rnd.randbytes(size))
    lab.sign(lab.path("v1.bin"), "v1.ota", 1, 1)
    lab.sign(lab.path("v2.bin"), "v2.ota", 2, 2)
    lab.sign(lab.path("v1.bin"), "evil.ota", 1, 1, key="other")
    return lab


def device(lab, *args, flash="dev.flash", server=None, timeout=60, **kw):
    where = ["--server", server] if server else []
    return run("device", "--flash", flash, "--public", "dev_pub.pem", *where, *args,
               cwd=lab.dir, timeout=timeout, **kw)


def gone(lab, name):
    return not os.path.exists(lab.path(name))


def test_help_shows_defaults_and_exit_codes():
    r = run("device", "--help")
    assert r.returncode == 0
    h = help_entries(r.stdout)     # (every option has help: test_host_cli_options)
    assert "(default: 4m)" in h["--heap SIZE"] and "(default: 48)" in h["--block BYTES"]
    assert "(default: 60)" in h["--stall SECONDS"]
    assert "no answer from the server" in r.stdout and "otatool device --flash" in r.stdout


def test_factory_not_an_ota_image(lab):
    r = device(lab, "--factory", "v1.bin", server="127.0.0.1:9")
    rejected(r, "v1.bin is not an OTA image: E1 bad magic number")
    assert gone(lab, "dev.flash")


def test_flash_is_a_directory(lab):
    os.makedirs(lab.path("adir"), exist_ok=True)
    r = device(lab, "--factory", "v1.ota", flash="adir", server="127.0.0.1:9")
    rejected(r, "adir is a directory, not a flash file")


def test_flash_of_the_wrong_size(lab):
    with open(lab.path("small.flash"), "wb") as f:
        f.write(b"\xff" * 4096)
    r = device(lab, flash="small.flash", server="127.0.0.1:9")
    rejected(r, "small.flash holds 4096 bytes, not %d" % FLASH_SIZE)


def test_private_key_given_as_public(lab):
    r = run("device", "--flash", "dev.flash", "--public", "dev_priv.pem", "--factory",
            "v1.ota", "--server", "127.0.0.1:9", cwd=lab.dir)
    rejected(r, "dev_priv.pem is a private key")
    assert gone(lab, "dev.flash")


def test_missing_public_key(lab):
    r = run("device", "--flash", "dev.flash", "--public", "nope.pem", "--factory", "v1.ota",
            "--server", "127.0.0.1:9", cwd=lab.dir)
    rejected(r, "nope.pem: No such file or directory")


@pytest.mark.parametrize("value,reason", [
    ("127.0.0.1", "the port is missing"),
    ("127.0.0.1:99999", "port must be between 1 and 65535"),
    ("127.0.0.1:0", "port must be between 1 and 65535"),
    (":4000", "the host is missing"),
])
def test_server_address_is_a_usage_error(lab, value, reason):
    usage(device(lab, "--factory", "v1.ota", server=value), "--server", reason)
    assert gone(lab, "dev.flash")


def test_unknown_host(lab):
    r = device(lab, "--factory", "v1.ota", server="no-such-host.invalid:4000")
    rejected(r, "unknown host no-such-host.invalid")
    assert gone(lab, "dev.flash")


def test_missing_serial_device(lab):
    r = run("device", "--flash", "dev.flash", "--public", "dev_pub.pem", "--factory", "v1.ota",
            "--serial", "/dev/no-such-tty", cwd=lab.dir)
    rejected(r, "/dev/no-such-tty: no such serial device")
    r = run("device", "--flash", "dev.flash", "--public", "dev_pub.pem", "--factory", "v1.ota",
            "--serial", lab.path("v1.ota"), cwd=lab.dir)
    rejected(r, "not a serial device")
    assert gone(lab, "dev.flash")


@pytest.mark.parametrize("opt,value,reason", [
    ("--heap", "1k", "heap must be between 2m and 1g bytes, not 1k"),
    ("--heap", "lots", "not a size"),
    ("--block", "0", "block size must be between 1 and 255, not 0"),
    ("--block", "256", "block size must be between 1 and 255"),
    ("--stall", "0", "stall timeout must be more than 0"),
    ("--stall", "-1", "stall timeout must be more than 0 s, not -1"),
    ("--hw", "0x10000", "hardware version must be between 0 and 65535"),
    ("--max-boots", "0", "boot count must be between 1 and 1000"),
    ("--wait-cap", "0", "wait cap must be between 1 and 86400, not 0"),
    ("--wait-cap", "86401", "wait cap must be between 1 and 86400"),
    ("--ieee", "88:77:66:55", "an IEEE address is 16 hex digits"),
    ("--ieee", "887766554433221", "an IEEE address is 16 hex digits"),
    ("--ieee", "88776655443322zz", "an IEEE address is 16 hex digits"),
    ("--ieee", "887:766:55:44:33:22:11:00", "an IEEE address is 16 hex digits"),
])
def test_option_ranges(lab, opt, value, reason):
    usage(device(lab, "--factory", "v1.ota", opt, value, server="127.0.0.1:9"), opt, reason)
    assert gone(lab, "dev.flash")


def test_blank_flash_without_factory(lab):
    rejected(device(lab, server="127.0.0.1:9"), "dev.flash does not exist",
             "needs --factory")
    with open(lab.path("blank.flash"), "wb") as f:     # exists, never provisioned
        f.write(b"\xff" * FLASH_SIZE)
    r = device(lab, flash="blank.flash", server="127.0.0.1:9")
    rejected(r, "E86 slot empty: the flash blank.flash is blank",
             "give --factory IMG.ota")


def test_device_refusal_is_its_reason_code(lab):
    """A factory image signed by a key the device does not trust: the device's own
    reason, and no flash file left behind by the failed first boot."""
    r = device(lab, "--factory", "evil.ota", server="127.0.0.1:9")
    rejected(r, "E25 unknown signing key id")
    assert gone(lab, "dev.flash")


def test_no_answer_from_the_server(lab):
    port = free_udp_port()
    t0 = time.monotonic()
    r = device(lab, "--factory", "v1.ota", "--once", "--stall", "2", flash="quiet.flash",
               server="127.0.0.1:%d" % port)
    took = time.monotonic() - t0
    line = rejected(r, "no answer from the server at 127.0.0.1:%d" % port, code=3)
    assert "stall timeout 2 s" in line
    assert took < 20, took
    assert "provisioned version 0x00000001" in r.stdout     # it did start and provision
    # without --once too: a server never heard from ends the run the same way
    r = device(lab, "--stall", "1", flash="quiet.flash", server="127.0.0.1:%d" % port)
    rejected(r, "no answer from the server", code=3)


def _children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d))
    return out


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig,code,group", [
    (signal.SIGINT, 130, True),       # Ctrl-C on a terminal: the whole process group
    (signal.SIGINT, 130, False),      # kill -INT to otatool alone
    (signal.SIGTERM, 143, False),
    (signal.SIGTERM, 143, "twice"),   # timeout(1): to otatool, then to its group
])
def test_signals_reach_the_device(lab, sig, code, group):
    name = "sig%d%s.flash" % (sig, group)
    p = subprocess.Popen(OTATOOL + ["device", "--flash", name, "--public", "dev_pub.pem",
                                    "--factory", "v1.ota", "--server",
                                    "127.0.0.1:%d" % free_udp_port()],
                         cwd=lab.dir, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    end = time.monotonic() + 30
    child = []
    while time.monotonic() < end and not child:
        time.sleep(0.2)
        # the device process runs once the first (provisioning) boot has reset
        if os.path.exists(lab.path(name)):
            child = [c for c in _children_of(p.pid) if _alive(c)]
    assert child, "the device process did not start"
    time.sleep(1.0)
    child = [c for c in _children_of(p.pid) if _alive(c)]
    assert child
    if group == "twice":
        p.send_signal(sig)
        os.killpg(p.pid, sig)
    elif group:
        os.killpg(p.pid, sig)
    else:
        p.send_signal(sig)
    out, err = p.communicate(timeout=20)
    assert p.returncode == code, (p.returncode, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    time.sleep(0.3)
    assert not any(_alive(c) for c in child), "the device process was left running"


def test_update_with_device_progress(lab):
    """A whole update over real UDP, the bar forced on: the device's bar shows a rate and
    the time left, and log lines stay whole lines above it."""
    srv = lab.serve(["v2.ota"], "--exit-when", "confirmed", "--timeout", 60, "--linger",
                    "0.5", "--rate-bps", 40000)
    r = device(lab, "--factory", "v1.ota", "--once", flash="up.flash",
               server="127.0.0.1:%d" % srv.port, OTATOOL_PROGRESS="1")
    srv.wait(lambda s: s.proc.poll() is not None, 15)
    assert r.returncode == 0, r.stderr
    assert "health check passed: confirmed" in r.stdout
    bars = [f for f in r.stderr.splitlines() if f.startswith("device [")]  # \r and \n
    assert bars, r.stderr
    assert any("ETA" in b and "KiB/s" in b for b in bars), bars
    assert bars[-1].rstrip().endswith("/s") and "100%" in bars[-1]   # done: full, no ETA
    for line in r.stdout.splitlines():
        assert line.startswith("device: "), line


def test_resumed_download_shows_its_real_rate(lab):
    """Power cut mid-download, then the device again with its bar: the bar starts at the
    checkpoint, and the jump to it is not counted as bytes just received (the link is
    limited to 40 kbit/s, about 4.9 KiB/s of frames)."""
    size = os.path.getsize(lab.path("v2.ota"))
    # block requests only: a block sent is then a block the device asked for, so half the
    # image sent means its first sector is checkpointed (a page is sent ahead of the device)
    srv = lab.serve(["v2.ota"], "--exit-when", "confirmed", "--timeout", 90, "--linger",
                    "0.5", "--rate-bps", 40000, "--no-page")
    first = lab.device(srv, "cut.flash", "v1.ota", "--once", log="cut.log")
    assert srv.wait(lambda s: any(b["offset"] > size * 0.5 for b in s.events("block")),
                    60), lab.device_log("cut.log")
    lab.power_cut(first)
    r = device(lab, "--once", flash="cut.flash", server="127.0.0.1:%d" % srv.port,
               OTATOOL_PROGRESS="1")
    srv.wait(lambda s: s.proc.poll() is not None, 15)
    assert r.returncode == 0, r.stderr
    bars = [f for f in r.stderr.splitlines() if f.startswith("device [")]
    assert bars, r.stderr
    assert int(bars[0].split("]")[1].split("%")[0]) >= 25, bars[0]    # from the checkpoint
    rates = [float(b.split("  ")[-2 if "ETA" in b else -1].split()[0]) for b in bars
             if "KiB/s" in b]
    assert rates and max(rates) < 8.0, bars


def _testdata(name):
    from tutil import read_data
    read_data(name)     # built by make build/testdata/.stamp; fails clearly when missing
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "build", "testdata", name)


def test_ieee_address_reaches_the_device(lab):
    """Images whose OTA header names an upgrade file destination (tests/datagen
    gen_hardening: 11 22 .. 88 in header order, 88:77:..:11 written most significant
    first): the device refuses one for another address with its reason, in one line, and
    installs the one for its own."""
    me, other = _testdata("hard_to_me.ota"), _testdata("hard_to_other.ota")
    key = _testdata("hard_pub.bin")

    def dev(factory, *opts, flash="addr.flash", port=9):
        return run("device", "--flash", flash, "--public", key, "--factory", factory,
                   "--server", "127.0.0.1:%d" % port, "--once", "--stall", "1", *opts,
                   cwd=lab.dir, timeout=60)

    line = rejected(dev(other, "--ieee", "88:77:66:55:44:33:22:11"),
                    "upgrade file destination differs")
    assert line.startswith("otatool: E"), line
    assert gone(lab, "addr.flash")
    # no address given: an addressed image is refused as well
    rejected(dev(me), "upgrade file destination differs")
    assert gone(lab, "addr.flash")
    # its own address, written without colons: provisioned, then no server answers
    r = dev(me, "--ieee", "8877665544332211", port=free_udp_port())
    rejected(r, "no answer from the server", code=3)
    assert "provisioned version 0x00000002" in r.stdout, r.stdout
    # the Cortex-M firmware's device program takes neither option
    usage(dev(me, "--target", "mcu", "--ieee", "8877665544332211"),
          "--ieee and --wait-cap apply to --target unix only")


def test_wait_cap_reaches_the_client(lab):
    """A server asking for an hour's wait before the first block: with --wait-cap 1 the
    device waits one second and the update completes."""
    srv = lab.serve(["v2.ota"], "--no-page", "--wait-for-data", 1, "--wait-seconds", 3600,
                    "--exit-when", "confirmed", "--timeout", 60, "--linger", "0.5")
    t0 = time.monotonic()
    r = device(lab, "--factory", "v1.ota", "--once", "--wait-cap", "1", flash="cap.flash",
               server="127.0.0.1:%d" % srv.port)
    took = time.monotonic() - t0
    srv.wait(lambda s: s.proc.poll() is not None, 15)
    assert r.returncode == 0, r.stderr
    assert "server: wait 3600 s, capped at 1 s" in r.stdout, r.stdout
    assert "health check passed: confirmed" in r.stdout
    assert took < 40, took
