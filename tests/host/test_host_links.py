"""Host link ends against the device transports: the one serial codec (hal/serial.py, which
host_tools/link.py wraps) against the framing written out from its description with crcmod's
CRC-16, then real UDP sockets and a real pseudo-terminal with the device side running under
MicroPython."""
import hashlib
import os
import socket
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings, strategies as st

import crcmod.predefined

from agent.zcl import frames as zcl, server as zcl_server
from hal import serial as dser
from hal.serial import SerialTransport, open_tty
from hal.udp import UdpTransport
from host_tools.link import Deframer, SerialLink, UdpServerLink, frame_bytes, open_pty
from host_tools.mpy import build

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(os.path.dirname(sys.executable), "micropython")
MFR = 0x1234
IMAGE = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(1000)) + b"\x7e\x7d" * 50
CRC16 = crcmod.predefined.mkCrcFun("x-25")  # the framing's CRC, not the device's code


def spec_frame(data):
    """The wire form as hal/serial.py describes it: flags, CRC-16 low byte first, 7D and 7E
    escaped as 7D, byte XOR 0x20."""
    body = bytes(data) + CRC16(bytes(data)).to_bytes(2, "little")
    return b"\x7e" + body.replace(b"\x7d", b"\x7d\x5d").replace(b"\x7e", b"\x7d\x5e") + b"\x7e"


@pytest.fixture(scope="module")
def mpy_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mpy")
    build(str(out))
    return str(out)


def run_device(mpy_dir, tmp_path, body, *args):
    """Start a MicroPython process running body with the device code from mpy_dir."""
    script = tmp_path / "device.py"
    script.write_text("import sys\nsys.path[:] = [%r]\n" % mpy_dir + textwrap.dedent(body))
    return subprocess.Popen([MICROPYTHON, str(script)] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc):
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return dict(line.split(" ", 1) for line in out.strip().splitlines())


def serve(link_, frames, addr_of=lambda a: a, before_reply=None):
    """Play a small OTA server: answer `frames` requests; returns what it saw."""
    seen = []
    buf = bytearray(zcl.FRAME_MAX)
    for _ in range(frames):
        req, addr = link_.recv(10)
        assert req is not None, "device went quiet after %d frames" % len(seen)
        f = zcl_server.parse(req, MFR)
        seen.append(f)
        if before_reply:
            before_reply(addr, f)
        if f.command == zcl.CMD_QUERY_NEXT:
            n = zcl_server.encode_query_next_response(buf, f.seq, zcl.S_SUCCESS, f.manufacturer,
                                                      f.image_type, f.file_version + 1, len(IMAGE))
        elif f.command == zcl.CMD_BLOCK_REQ:
            n = zcl_server.encode_block_response(buf, f.seq, f.manufacturer, f.image_type,
                                                 f.file_version, f.offset,
                                                 IMAGE[f.offset:f.offset + f.max_size])
        elif f.command == zcl.CMD_ALERT:
            n = zcl_server.encode_alert_ack(buf, f.seq, MFR, f.alert_seq)
        else:
            raise AssertionError("unexpected command 0x%02X" % f.command)
        link_.send(bytes(buf[:n]), addr)
    return seen


# The device side of the exchange; same code on CPython and MicroPython.
DEVICE_OTA = """
import binascii
import hashlib
from agent.zcl import frames as zcl

def fetch(t, block):
    buf = bytearray(zcl.FRAME_MAX)
    mv = memoryview(buf)
    f = zcl.Frame()
    n = zcl.encode_query_next(buf, 1, 0x1234, 7, 0x10)
    t.send(mv[:n])
    zcl.decode(buf, t.recv(buf, 5000), f, 0x1234)
    size = f.image_size
    h = hashlib.sha256()
    off = 0
    seq = 2
    while off < size:
        n = zcl.encode_block_request(buf, seq, 0x1234, 7, 0x11, off, block)
        t.send(mv[:n])
        n = t.recv(buf, 5000)
        zcl.decode(buf, n, f, 0x1234)
        if f.command != zcl.CMD_BLOCK_RSP or f.offset != off or f.seq != seq & 0xFF:
            raise ValueError("bad response")
        h.update(mv[f.data_off:f.data_off + f.data_len])
        off += f.data_len
        seq += 1
    digest = h.digest()
    n = zcl.encode_alert(buf, seq, 0x1234, 77, 0x8F72, 0, digest, 0x11)
    t.send(mv[:n])
    zcl.decode(buf, t.recv(buf, 5000), f, 0x1234)
    print("size", size)
    print("sha256", binascii.hexlify(digest).decode())
    print("ack", f.alert_seq)
"""


def test_crcmod_agrees_with_device_crc():
    assert CRC16(b"123456789") == dser.crc16(b"123456789") == 0x906E


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=dser.MAX_FRAME))
def test_host_and_device_framing_agree(data):
    assert CRC16(data) == dser.crc16(data)
    out = bytearray(2 * len(data) + 6)
    wire = frame_bytes(data)
    assert bytes(out[:dser.frame_into(out, data)]) == wire == spec_frame(data)
    assert Deframer().feed(wire) == ([data] if data else [])  # an empty frame is dropped


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=80), max_size=5), st.binary(max_size=40))
def test_device_reads_host_frames_after_noise(frames, noise):
    pipe = _Pipe()
    t = SerialTransport(pipe)
    pipe.data += noise + b"".join(frame_bytes(f) for f in frames)
    buf = bytearray(dser.MAX_FRAME)
    got = []
    while True:
        n = t.recv(buf, 0)
        if not n:
            break
        got.append(bytes(buf[:n]))
    # every frame starts with a flag, which ends whatever the noise left half-done
    assert got == frames


def test_host_deframer_drops_and_resyncs():
    d = Deframer(max_frame=16)
    good = frame_bytes(b"\x19\x01\x05\x95")
    bad = bytearray(good)
    bad[3] ^= 0x40
    stream = (b"junk\x7d" + good + bytes(bad) + b"\x7eab\x7d\x7e" + frame_bytes(bytes(17))
              + b"\x7e\x01\x7e" + good)
    assert d.feed(stream[:7]) == []
    assert d.feed(stream[7:]) == [b"\x19\x01\x05\x95", b"\x19\x01\x05\x95"]
    assert d.bad_frames == 4  # bad CRC, abort, too long, too short


class _Pipe:
    def __init__(self):
        self.data = bytearray()

    def write(self, b):
        self.data += bytes(b)
        return len(b)

    def readinto(self, b):
        n = min(len(b), len(self.data))
        b[:n] = self.data[:n]
        del self.data[:n]
        return n

    def close(self):
        pass


def _run_cpython_device(t, block):
    ns = {}
    exec(DEVICE_OTA, ns)
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns["fetch"](t, block)
    return dict(line.split(" ", 1) for line in out.getvalue().strip().splitlines())


def _expect(result):
    assert result == {"size": str(len(IMAGE)), "sha256": hashlib.sha256(IMAGE).hexdigest(),
                      "ack": "77"}


def test_udp_cpython_device_against_server_link():
    import threading
    with UdpServerLink("127.0.0.1", 0) as srv:
        t = UdpTransport(*srv.address)
        seen = []
        th = threading.Thread(target=lambda: seen.extend(serve(srv, 2 + (len(IMAGE) + 49) // 50)))
        th.start()
        try:
            _expect(_run_cpython_device(t, 50))
        finally:
            th.join(20)
            t.close()
        assert seen[-1].command == zcl.CMD_ALERT and seen[-1].digest == hashlib.sha256(
            IMAGE).digest() and seen[-1].extra == 0x11


def test_udp_micropython_device_against_server_link(mpy_dir, tmp_path):
    stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def interfere(addr, f):
        if f.seq == 3:  # a datagram from another address must be ignored
            stray.sendto(zcl_server.build(zcl_server.encode_block_status, f.seq, zcl.S_ABORT),
                         addr)

    with UdpServerLink("127.0.0.1", 0) as srv:
        proc = run_device(mpy_dir, tmp_path, DEVICE_OTA + """
from hal.udp import UdpTransport
t = UdpTransport(sys.argv[1], int(sys.argv[2]))
fetch(t, 63)
print("ignored", t.ignored)
t.close()
""", *srv.address)
        try:
            seen = serve(srv, 2 + (len(IMAGE) + 62) // 63, before_reply=interfere)
        finally:
            result = finish(proc)
            stray.close()
    assert result.pop("ignored") == "1"
    _expect(result)
    assert [f.command for f in seen[:3]] == [1, 3, 3]
    assert seen[1].max_size == 63 and seen[2].offset == 63


def test_serial_cpython_device_over_pty():
    master, slave, path = open_pty()
    try:
        dev = SerialTransport(open_tty(path))
        host = SerialLink(master)
        host.write_raw(b"\x00\x7d\x7eline noise\x7e")      # garbage: dropped, counted
        host.send(zcl_server.build(zcl_server.encode_block_status, 1, zcl.S_ABORT))
        buf = bytearray(zcl.FRAME_MAX)
        n = dev.recv(buf, 2000)
        assert zcl_server.parse(bytes(buf[:n])).status == zcl.S_ABORT
        assert dev.bad_frames == 1
        req = zcl_server.build(zcl.encode_block_request, 9, MFR, 0x7E7D, 0x7D7E7D7E, 0x7E, 0x7D)
        dev.send(req)
        got, addr = host.recv(2)
        assert (got, addr) == (req, None)
        assert host.recv(0.05) == (None, None)
        dev.close()
    finally:
        os.close(master)
        os.close(slave)


def test_serial_micropython_device_over_pty(mpy_dir, tmp_path):
    master, slave, path = open_pty()
    try:
        host = SerialLink(master)
        proc = run_device(mpy_dir, tmp_path, DEVICE_OTA + """
from hal.serial import SerialTransport, open_tty
t = SerialTransport(open_tty(sys.argv[1]))
fetch(t, 48)
print("bad", t.bad_frames)
t.close()
""", path)

        def interfere(addr, f):
            if f.seq == 4:  # noise, then a corrupted copy of the answer: two bad frames
                host.write_raw(b"\x55\xaa\x7d")
                wire = bytearray(frame_bytes(zcl_server.build(zcl_server.encode_block_status, 4,
                                                              0x95)))
                wire[2] ^= 0x01
                host.write_raw(wire)

        try:
            seen = serve(host, 2 + (len(IMAGE) + 47) // 48, before_reply=interfere)
        finally:
            result = finish(proc)
        assert host.bad_frames == 0
    finally:
        os.close(master)
        os.close(slave)
    assert result.pop("bad") == "2"
    _expect(result)
    assert seen[0].command == zcl.CMD_QUERY_NEXT and seen[-1].alert_code == 0x8F72
