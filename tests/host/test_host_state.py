"""otatool state: a device's flash read back (unix flash file, rp2 and ESP32 dumps)."""
import json
import os
import struct
import subprocess
import sys

import pytest

from agent.alerts import ALERT_VERIFY_OK
from agent.update import Config, Device
from agent.crypto.trust import Trust
from hal.sim.clock import FakeClock
from host_tools import imageinfo as ins
from host_tools import state as stt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "device"))
import boardkit  # noqa: E402
import devkit  # noqa: E402
from tutil import read_data  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OTATOOL = os.path.join(os.path.dirname(sys.executable), "otatool")


def otatool(*args):
    return subprocess.run([OTATOOL] + [str(a) for a in args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env=dict(os.environ, OTATOOL_PROGRESS="0"))


def one_line_failure(r, needle):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("otatool: ") and needle in lines[0], r.stderr


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """A unix flash file: v1 installed and confirmed in slot 0, v2 downloaded into slot 1
    and held (its 0x8F72 alert not acknowledged)."""
    from boards.unix.board import make_board
    path = str(tmp_path_factory.mktemp("state") / "dev.flash")
    board = make_board(path, clock=FakeClock(1000))
    board.power_on()
    cfg = Config(Trust([read_data("core_pub.bin")]), devkit.MAN, devkit.TYPE, devkit.HW)
    dev = Device(board, cfg)
    dev.start()
    devkit.provision(dev, read_data("core_v1.ota"))
    board.flash.close()
    board = make_board(path, clock=FakeClock(2000))
    board.power_on()
    dev = Device(board, cfg)
    dev.start()
    devkit.download(dev, read_data("core_v2.ota"), 48, None)
    board.flash.close()
    return path


def test_unix_flash_json(held):
    r = otatool("state", "--json", held)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["board"] == "unix"
    v1 = ins.inspect_bytes(read_data("core_v1.ota"))
    v2 = ins.inspect_bytes(read_data("core_v2.ota"))
    s0, s1 = st["slots"]
    assert s0["state"] == s1["state"] == "image"
    assert s0["version"] == v1["manifest"]["version"] and s0["seq"] == v1["manifest"]["seq"]
    assert s1["version"] == v2["manifest"]["version"] and s1["seq"] == v2["manifest"]["seq"]
    assert s0["crc_ok"] and s1["crc_ok"]
    assert s1["payload_sha256"] == v2["manifest"]["sha256"]
    j = st["journal"]
    assert j["phase"] == "held" and j["slot"] == 1
    assert j["held_version"] == v2["manifest"]["version"]
    assert j["device_seq"] == v1["manifest"]["seq"]
    assert j["mi_sha256"] == v2["manufacturer_image_sha256"]
    codes = [a["code"] for a in j["alerts"]]
    assert ALERT_VERIFY_OK in codes
    assert st["boot"]["confirmed_slot"] == 0 and st["boot"]["pending_slot"] is None
    assert st["ok"] is True


def test_unix_flash_text_and_damage(held, tmp_path):
    r = otatool("state", held)
    assert r.returncode == 0 and r.stderr == ""
    v2 = ins.inspect_bytes(read_data("core_v2.ota"))
    assert "phase held" in r.stdout and v2["manufacturer_image_sha256"] in r.stdout
    assert "0x8F72 verification successful" in r.stdout
    assert "journal record" not in r.stdout
    v = otatool("-v", "state", held)
    assert v.returncode == 0 and "journal record" in v.stdout and "payload sha256" in v.stdout
    q = otatool("-q", "state", held)
    assert q.returncode == 0 and q.stdout == "" and q.stderr == ""
    # one payload byte of slot 0 changed: the boot-time CRC check fails, reported as such
    from boards.unix import layout as L
    lay = L.layout()
    data = bytearray(open(held, "rb").read())
    data[lay.slot_off[0] + 10] ^= 0x01
    bad = tmp_path / "bad.flash"
    bad.write_bytes(bytes(data))
    st = stt.read_state(str(bad))
    assert st["slots"][0]["crc_ok"] is False and st["slots"][1]["crc_ok"] is True
    assert "CRC-32 BAD" in stt.format_text(st)
    # reading never writes
    assert open(held, "rb").read() != bytes(data)


def test_not_a_flash_file(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(1000))
    one_line_failure(otatool("state", junk), "cannot tell the board from the file")
    one_line_failure(otatool("state", "--board", "unix", junk), "not a unix board flash file")
    r = otatool("state", "--json", junk)
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False
    one_line_failure(otatool("state", tmp_path / "missing.flash"), "missing.flash")
    one_line_failure(otatool("state", tmp_path), "is a directory")
    one_line_failure(otatool("state", "--board", "rp2", junk), "not an rp2 storage region")
    one_line_failure(otatool("state", "--board", "esp32", junk), "no ESP-IDF partition table")
    assert otatool("state", "--board", "nrf", junk).returncode == 2
    assert otatool("state", "--slot-size", "8192", junk).returncode == 2


def test_rp2_dump(tmp_path):
    r = boardkit.BoardRig("rp2")
    r.provision()
    dump = tmp_path / "rp2.bin"
    dump.write_bytes(bytes(r.dev_flash.nor._mem))
    res = otatool("state", "--json", "--board", "rp2", "--slot-size", boardkit.RP2_SLOT, dump)
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    want = ins.inspect_bytes(read_data(r.images[0]))["manifest"]
    s0 = st["slots"][0]
    assert (s0["state"], s0["version"], s0["seq"]) == ("image", want["version"], want["seq"])
    assert st["slots"][1]["state"] == "empty"
    assert st["journal"]["phase"] == "idle" and st["boot"]["confirmed_slot"] == 0


def esp32_dump(rig, path):
    """The stand-in chip's whole flash with its partition table at 0x8000 (esptool
    read_flash of a real board has it; the stand-in keeps its table apart)."""
    import fake_esp32
    data = bytearray(rig.chip.flash._mem)
    off = stt.ESP_TABLE
    for label, ptype, sub, poff, size in fake_esp32.TABLE:
        struct.pack_into(stt.ESP_ENTRY, data, off, stt.ESP_MAGIC, ptype, sub, poff, size,
                         label.encode(), 0)
        off += stt.ESP_ENTRY_SIZE
    path.write_bytes(bytes(data))
    return data


def test_esp32_dump_with_partition_table(tmp_path):
    r = boardkit.BoardRig("esp32")
    r.provision()
    dump = tmp_path / "esp32.bin"
    data = esp32_dump(r, dump)
    res = otatool("state", "--json", dump)        # the partition table says esp32
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    assert st["board"] == "esp32"
    assert json.loads(otatool("state", "--json", "--board", "esp32", dump).stdout) == st
    want = ins.inspect_bytes(read_data(r.images[0]))["manifest"]
    s0 = st["slots"][0]
    assert (s0["state"], s0["version"], s0["seq"]) == ("image", want["version"], want["seq"])
    assert s0["offset"] == 0x10000 and st["slots"][1]["offset"] == 0x30000
    assert st["journal"]["phase"] == "idle"
    assert stt.esp_partitions(bytes(data))["ota_journal"][2] == 0x50000


# -- a live board: the real mpremote against the board harness of test_host_deploy.py ------

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_host_deploy import PtyBoard  # noqa: E402


@pytest.fixture
def board(tmp_path):
    b = PtyBoard(str(tmp_path / "board"))
    yield b
    b.close()


def _without(st, *keys):
    return {k: v for k, v in st.items() if k not in keys}


def _files(root):
    out = {}
    for d, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = (os.stat(p).st_mtime_ns, f.read())
    return out


@pytest.fixture
def board_dir(tmp_path):
    d = tmp_path / "board"
    d.mkdir()
    return d


def test_live_board_reads_as_its_flash_file(board_dir, board, held):
    r = otatool("deploy", "--board", "unix", "--port", board.port)
    assert r.returncode == 0, r.stdout + r.stderr
    data = open(held, "rb").read()
    (board_dir / "dev.flash").write_bytes(data)
    # slot 0's payload damaged in a second flash file: the board's own CRC-32 check says so
    from boards.unix import layout as L
    bad = bytearray(data)
    bad[L.layout().slot_off[0] + 10] ^= 0x01
    (board_dir / "bad.flash").write_bytes(bytes(bad))
    before = _files(str(board_dir))
    for name in ("dev.flash", "bad.flash"):
        path = str(board_dir / name)
        extra = [] if name == "dev.flash" else ["--board-flash", name]
        live = otatool("state", "--json", "--port", board.port, *extra)
        assert live.returncode == 0, live.stderr
        ref = otatool("state", "--json", path)
        assert ref.returncode == 0, ref.stderr
        got, want = json.loads(live.stdout), json.loads(ref.stdout)
        assert (got["port"], got["flash"], got["board"]) == (board.port, name, "unix")
        assert _without(got, "port", "flash") == _without(want, "file")
        assert got["slots"][0]["crc_ok"] is (name == "dev.flash")
        for verbose in ([], ["-v"]):
            live = otatool(*verbose, "state", "--port", board.port, "--board", "unix", *extra)
            ref = otatool(*verbose, "state", path)
            assert live.returncode == ref.returncode == 0, live.stderr
            head, *rest = live.stdout.splitlines()
            assert head.split() == ["device", board.port, "(unix", "board,",
                                    str(len(data)), "bytes)"], head
            assert rest == ref.stdout.splitlines()[1:]
            assert "phase held" in live.stdout
    # nothing on the board changed, no file appeared
    assert _files(str(board_dir)) == before


def test_live_board_failures(board_dir, board, tmp_path):
    # no agent on the board
    one_line_failure(otatool("state", "--port", board.port), "the agent is not installed")
    r = otatool("state", "--json", "--port", board.port)
    assert r.returncode == 1 and json.loads(r.stdout)["ok"] is False
    # the agent, but no flash file of that name
    assert otatool("deploy", "--board", "unix", "--port", board.port).returncode == 0
    one_line_failure(otatool("state", "--port", board.port, "--board-flash", "none.flash"),
                     "no flash file none.flash")
    one_line_failure(otatool("state", "--port", board.port, "--board", "rp2"),
                     "no board adapter of rp2")
    assert not (board_dir / "dev.flash").exists()
    # no such port; a terminal nobody answers on
    one_line_failure(otatool("state", "--port", tmp_path / "no-such-tty"), "no such serial")
    import pty
    m, s = pty.openpty()
    try:
        one_line_failure(otatool("state", "--port", os.ttyname(s)), "does not answer")
    finally:
        os.close(m)
        os.close(s)
    # usage
    assert otatool("state").returncode == 2
    assert otatool("state", "--port", board.port, tmp_path / "x.flash").returncode == 2
    assert otatool("state", "--board-flash", "d.flash", tmp_path / "x.flash").returncode == 2
    assert otatool("state", "--port", board.port, "--slot-size", "8192").returncode == 2


def _answer(script, modules):
    """What the --port snippet prints, run here with the port's modules stood in for."""
    import contextlib
    import io
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(script, {})
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return out.getvalue()


def test_live_snippet_on_esp32_and_rp2_adapters(tmp_path):
    """The snippet through the esp32 and rp2 adapters (over the stand-in chips of the board
    tests) decodes to what the flash dump of the same board gives, and writes nothing."""
    import types
    r = boardkit.BoardRig("esp32")
    r.provision()
    mem = r.chip.flash._mem
    before = bytes(mem)
    esp = types.SimpleNamespace(flash_size=lambda: len(mem))
    text = _answer(stt.live_script(), {"esp32": r.chip.module, "machine": r.chip.machine,
                                       "esp": esp})
    assert bytes(mem) == before
    got = stt.from_answer(text, {"port": "p"})
    dump = tmp_path / "esp32.bin"
    esp32_dump(r, dump)
    want = stt.read_state(str(dump))
    assert got["board"] == "esp32" and got["slots"][0]["state"] == "image"
    assert got["slots"][0]["offset"] == 0x10000 and got["slots"][0]["crc_ok"] is True
    assert _without(got, "port") == _without(want, "file")
    assert stt.format_text(got).splitlines()[1:] == stt.format_text(want).splitlines()[1:]

    r = boardkit.BoardRig("rp2")
    r.provision()
    mem = r.dev_flash.nor._mem
    before = bytes(mem)
    rp2 = types.SimpleNamespace(Flash=lambda: r.dev_flash)
    text = _answer(stt.live_script("rp2", slot_size=boardkit.RP2_SLOT),
                   {"rp2": rp2, "machine": r.machine})
    assert bytes(mem) == before
    got = stt.from_answer(text, {"port": "p"})
    dump = tmp_path / "rp2.bin"
    dump.write_bytes(before)
    want = stt.read_state(str(dump), "rp2", boardkit.RP2_SLOT)
    assert got["board"] == "rp2" and got["slots"][0]["state"] == "image"
    assert got["slots"][1]["state"] == "empty"
    assert _without(got, "port") == _without(want, "file")
    # a slot's payload damaged: the board's verdict is what the dump's check finds
    slot0 = want["slots"][0]["offset"]
    mem[slot0 + 5] ^= 0x01
    got = stt.from_answer(_answer(stt.live_script("rp2", slot_size=boardkit.RP2_SLOT),
                                  {"rp2": rp2, "machine": r.machine}), {"port": "p"})
    assert got["slots"][0]["crc_ok"] is False
    assert got["slots"][0]["crc_reason"].startswith("E"), got["slots"][0]
    dump.write_bytes(bytes(mem))
    assert _without(got, "port") == _without(stt.read_state(str(dump), "rp2",
                                                            boardkit.RP2_SLOT), "file")
    # an answer that is not a state report
    with pytest.raises(stt.InputError, match="not a state report"):
        stt.from_answer("=B rp2 4096\n", {})
    with pytest.raises(stt.InputError, match="the agent is not installed"):
        stt.from_answer("=X the agent is not installed on the board\n", {})


def test_unix_flash_with_a_delta_held(tmp_path):
    # v1 installed, then core_v2d (a delta against v1) downloaded and held: the slot reads
    # as a delta image whose payload is the release the delta makes, and passes its CRC-32
    from boards.unix.board import make_board
    path = str(tmp_path / "delta.flash")
    cfg = Config(Trust([read_data("core_pub.bin")]), devkit.MAN, devkit.TYPE, devkit.HW)
    for t, img in ((1000, "core_v1.ota"), (2000, "core_v2d.ota")):
        board = make_board(path, clock=FakeClock(t))
        board.power_on()
        dev = Device(board, cfg)
        dev.start()
        if t == 1000:
            devkit.provision(dev, read_data(img))
        else:
            devkit.download(dev, read_data(img), 48, None)
        board.flash.close()
    r = otatool("state", "--json", path)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    s0, s1 = st["slots"]
    assert (s0["encoding"], s1["encoding"]) == ("raw", "delta"), st["slots"]
    want = ins.inspect_bytes(read_data("core_v2d.ota"))["manifest"]
    assert s1["version"] == want["version"] and s1["payload_sha256"] == want["sha256"]
    assert s1["size"] == len(read_data("core_v2d.bin")) and s1["crc_ok"]
    assert st["journal"]["phase"] == "held" and st["ok"] is True
    r = otatool("state", path)
    line = "%d bytes delta" % len(read_data("core_v2d.bin"))
    assert r.returncode == 0 and line in r.stdout, r.stdout
