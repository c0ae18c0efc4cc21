"""otatool serve as a real process on real UDP (loopback): options checked with their ranges
before anything is served, bad files rejected in one line, Ctrl-C exits 130; and the
progress bars (tqdm): a resumed download's rate, lines above the bar."""
import io
import os
import random
import signal
import socket
import subprocess
import time

import pytest

from agent.zcl import frames as zcl
from host_tools import progress
from host_tools.lab import Lab, free_udp_port
from tests.host.clirun import OTATOOL, ROOT, env, help_entries, rejected, run, usage


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("cli_serve")))
    lab.keygen("dev")
    with open(lab.path("v2.bin"), "wb") as f:
        f.write(random.Random(3).randbytes(20000))
    lab.sign(lab.path("v2.bin"), "v2.ota", 2, 2)
    return lab


def serve(lab, *args, udp=None, timeout=30):
    udp = udp or "127.0.0.1:%d" % free_udp_port()
    return run("serve", "--image", "v2.ota", "--udp", udp, *args, cwd=lab.dir,
               timeout=timeout)


def test_help_shows_defaults_and_exit_codes():
    r = run("serve", "--help")
    assert r.returncode == 0
    h = help_entries(r.stdout)     # (every option has help: test_host_cli_options)
    assert "(default: 0.0)" in h["--drop P"] and "(default: 2.0)" in h["--linger SECONDS"]
    assert "(default: now)" in h["--activate now|at:TIME|relative:S|command"]
    assert "otatool serve --image" in r.stdout and "130 interrupted" in r.stdout


@pytest.mark.parametrize("args,reason", [
    (("--udp", "127.0.0.1:99999"), "port must be between 1 and 65535, not 99999"),
    (("--udp", "127.0.0.1"), "the port is missing"),
    (("--block-size", "0"), "block size must be between 1 and 255, not 0"),
    (("--block-size", "300"), "block size must be between 1 and 255, not 300"),
    (("--drop", "1.5"), "probability must be between 0 and 1, not 1.5"),
    (("--dup", "-0.1"), "probability must be between 0 and 1"),
    (("--corrupt", "nan"), "not a finite number"),
    (("--timeout", "-1"), "timeout must be more than 0 s, not -1"),
    (("--timeout", "0"), "timeout must be more than 0"),
    (("--linger", "2h"), "linger must be at most 3600 s"),
    (("--activate", "relative:-5"), "relative:SECONDS must be between 0 and"),
    (("--activate", "at:tomorrow"), "YYYY-MM-DDTHH:MM:SSZ"),
    (("--activate", "soon"), "expected now, command, relative:SECONDS or at:ISO-TIME"),
    (("--rate-bps", "0"), "bit rate must be between 1000 and 100000000, not 0"),
    (("--delay", "-5"), "delay must be between 0 and 60000"),
    (("--wait-seconds", "0"), "wait must be between 1 and 3600"),
    (("--abort-at", "0x100000000"), "offset must be between 0 and 4294967295"),
    (("--exit-when", "done"), "invalid choice"),
])
def test_option_ranges(lab, args, reason):
    opt = args[0]
    if opt == "--udp":
        r = run("serve", "--image", "v2.ota", *args, cwd=lab.dir)
    else:
        r = serve(lab, *args)
    usage(r, opt, reason)


def test_bad_image_and_no_log_left(lab):
    with open(lab.path("fw.bin"), "wb") as f:
        f.write(os.urandom(3000))
    r = run("serve", "--image", "fw.bin", "--udp", "127.0.0.1:%d" % free_udp_port(),
            "--json-log", "log.jsonl", cwd=lab.dir)
    rejected(r, "fw.bin is not an OTA image: E1 bad magic number")
    assert not os.path.exists(lab.path("log.jsonl"))
    rejected(run("serve", "--image", "nope.ota", "--udp", "127.0.0.1:4000", cwd=lab.dir),
             "nope.ota: No such file or directory")
    rejected(run("serve", "--image", ".", "--udp", "127.0.0.1:4000", cwd=lab.dir),
             ". is a directory")


def test_log_in_a_missing_directory(lab):
    r = serve(lab, "--json-log", "no/such/dir/log.jsonl", "--timeout", "1")
    rejected(r, "no such directory for the log file")


def test_address_in_use_and_missing_serial(lab):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        r = serve(lab, "--timeout", "1", udp="127.0.0.1:%d" % s.getsockname()[1])
        rejected(r, "cannot listen on 127.0.0.1:%d" % s.getsockname()[1], "in use")
    finally:
        s.close()
    r = run("serve", "--image", "v2.ota", "--serial", "/dev/no-such-tty", cwd=lab.dir)
    rejected(r, "/dev/no-such-tty: no such serial device")


def test_timeout_before_exit_when(lab):
    t0 = time.monotonic()
    r = serve(lab, "--exit-when", "confirmed", "--timeout", "0.5", "--quiet")
    rejected(r, "timed out before a device confirmed")
    assert time.monotonic() - t0 < 10
    assert serve(lab, "--timeout", "0.3", "--quiet").returncode == 0


def _query(port, image):
    """A Query Next Image over real UDP for the image's device, running version 1; the
    status of the answer."""
    from agent.image import fmt
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    buf = bytearray(zcl.FRAME_MAX)
    with open(image, "rb") as f:
        h = fmt.parse_header(f.read(fmt.HDR_MAX))
    n = zcl.encode_query_next(buf, 7, h.manufacturer, h.image_type, 1, 2)
    for _ in range(20):
        s.sendto(bytes(buf[:n]), ("127.0.0.1", port))
        try:
            data, _a = s.recvfrom(512)
        except socket.timeout:
            continue
        s.close()
        return zcl.decode(data, len(data)).status
    s.close()
    return None


@pytest.mark.parametrize("exit_when", ["confirmed", None])
def test_ctrl_c_exits_130(lab, exit_when):
    port = free_udp_port()
    cmd = OTATOOL + ["serve", "--image", "v2.ota", "--udp", "127.0.0.1:%d" % port]
    if exit_when:
        cmd += ["--exit-when", exit_when]
    p = subprocess.Popen(cmd, cwd=lab.dir, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert _query(port, lab.path("v2.ota")) == zcl.S_SUCCESS      # it serves: an image is offered
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, (p.returncode, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "serving 1 image(s) on udp 127.0.0.1:%d" % port in err
    assert "query running=1 offered=2" in err


# -- the bars, in process -----------------------------------------------------------------

class FakeTty(io.StringIO):
    def isatty(self):
        return True


def _clocked(bar, clock):
    b = bar._bar
    b._time = lambda: clock[0]
    b.start_t = b.last_print_t = clock[0]


def _frames(text):
    return [f for f in text.replace("\n", "\r").split("\r") if f.strip()]


def test_rate_after_a_resume_is_the_real_one():
    """A download resumed at 100 KiB that then moves 1 KiB a second shows about 1 KiB/s,
    and the time left from that rate, not the checkpoint's bytes counted as just sent."""
    tty = FakeTty()
    clock = [1000.0]
    bar = progress.Progress(200 * 1024, "dev", stream=tty, show=True)
    _clocked(bar, clock)
    bar.update(1024)
    bar.skip(100 * 1024)                  # the device jumped to its checkpoint
    for _ in range(10):
        clock[0] += 1.0
        bar.update(bar.done + 1024)
    last = _frames(tty.getvalue())[-1]
    assert "1.0 KiB/s" in last, last
    assert "ETA 01:" in last, last            # ~89 KiB left at 1 KiB/s: about 1.5 minutes
    # the server's bar goes through skip() when a device's requests jump forward
    from host_tools.server import Hub, Image

    class Link:
        def send(self, data, addr):
            pass
    bars = []

    def make(total, label):
        p = progress.Progress(total, label, stream=FakeTty(), show=True)
        bars.append(p)
        return p
    img = Image(os.path.join(ROOT, "build", "testdata", "core_v2.ota"))
    hub = Hub([img], Link(), progress=make)
    buf = bytearray(zcl.FRAME_MAX)
    for off in (0, 48, 8000, 8048):
        n = zcl.encode_block_request(buf, 1, img.manufacturer, img.image_type, img.version,
                                     off, 48)
        hub.handle(bytes(buf[:n]), ("127.0.0.1", 1))
    b = bars[0]
    assert b.done == 8096 and b._bar.initial == 8000 - 96


def test_lines_print_above_the_bar():
    tty = FakeTty()
    bar = progress.Progress(1000, "job", stream=tty, show=True)
    bar.update(500)
    progress.write("a log line", tty)
    bar.update(600)
    bar.close()
    text = tty.getvalue()
    assert "\ra log line\n" in text or text.count("a log line\n") == 1
    before, after = text.split("a log line\n")
    assert after.lstrip("\r").startswith("job [")          # the bar is drawn again below
    assert not before.rstrip(" ").endswith("%")             # the line was not glued to it
    assert text.endswith("\n") and "100%" in _frames(text)[-1]


def test_progress_off_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv("OTATOOL_PROGRESS", raising=False)
    progress.force(None)
    quiet = io.StringIO()
    with progress.Progress(10, "x", stream=quiet) as p:
        p.update(5)
    assert quiet.getvalue() == "" and not p.enabled
