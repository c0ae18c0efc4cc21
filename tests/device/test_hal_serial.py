# Serial framing (CRC-16, escaping, the deframer, resync) on in-memory streams; the UDP
# transport is test_hal_udp.py's (it needs sockets, which a port may lack). The host end
# (host_tools/link.py) uses this codec; tests/host/test_host_links.py checks both ends.
import os
import struct

from hal import serial as ser
from hal.serial import SerialTransport, Deframer, crc16, frame_into, FLAG, ESC
from hal.clock import SystemClock
from agent.zcl import frames as zcl, server as zcl_server
from agent.errors import BAD_FRAME, LINK_IO
from tutil import raises, eq


def crc_bitwise(data):
    # CRC-16/X-25 one bit at a time, straight from its parameters
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


class Pipe:
    """A byte stream: write() appends, readinto() takes what is there (0 when empty)."""

    def __init__(self, wsize=0):
        self.data = bytearray()
        self.wsize = wsize  # > 0: write at most this many bytes per call
        self.closed = False

    def write(self, b):
        n = len(b) if not self.wsize else min(self.wsize, len(b))
        self.data += bytes(b[:n])
        return n

    def readinto(self, b):
        n = min(len(b), len(self.data))
        b[:n] = self.data[:n]
        self.data = self.data[n:]
        return n

    def close(self):
        self.closed = True


class BrokenStream(Pipe):
    def write(self, b):
        raise OSError(5)

    def readinto(self, b):
        raise OSError(5)


def frame(data):
    out = bytearray(2 * len(data) + 6)
    return bytes(out[:frame_into(out, data)])


def test_crc_check_value():
    eq(crc16(b"123456789"), 0x906E)
    eq(crc16(b""), 0x0000)
    eq(crc16(b"123456789xyz", 9), 0x906E)
    eq(struct.calcsize(ser.CRC_FMT), ser.CRC_SIZE)
    assert ser.MAX_FRAME >= zcl.FRAME_MAX


def test_crc_matches_bitwise_definition():
    import hashlib
    noise = b"".join(hashlib.sha256(bytes((i,))).digest() for i in range(4))[:100]
    samples = [bytes(range(256)), b"\x00", b"\xff" * 7, b"\x7e\x7d\x20", noise]
    if hasattr(os, "urandom"):  # the Cortex-M port has none
        samples.append(os.urandom(100))
    for s in samples:
        eq(crc16(s), crc_bitwise(s), repr(s[:8]))
    eq(crc16(bytearray(samples[0])), crc16(memoryview(samples[0])))


def test_frame_layout_with_escapes():
    data = b"\x7e\x01\x7d\x5e\x20"
    crc = crc16(data)
    lo, hi = crc & 0xFF, crc >> 8
    body = b"\x7d\x5e\x01\x7d\x5d\x5e\x20"
    tail = b""
    for c in (lo, hi):
        tail += bytes((ESC, c ^ 0x20)) if c in (FLAG, ESC) else bytes((c,))
    eq(frame(data), b"\x7e" + body + tail + b"\x7e")
    # no flag or escape byte survives inside a frame
    for k in (0, 1, 100):
        w = frame(bytes((0x7E, 0x7D)) * k)
        assert FLAG not in w[1:-1]
        assert len(w) >= 2 + 4 * k + 2


def _deframe(d, data):
    """Feed data to deframer d a byte at a time; the frames it completes."""
    return [bytes(d.buf[:n]) for n in map(d.feed, data) if n]


def test_deframer_one_byte_at_a_time():
    d = Deframer(16)
    buf = d.buf
    eq(len(buf), 16 + ser.CRC_SIZE, "one buffer: the largest frame and its CRC")
    w = frame(b"\x7e\x7d\x00abc")
    got = [d.feed(c) for c in w]
    eq(got, [0] * (len(w) - 1) + [6], "a length only at the closing flag")
    eq(bytes(d.buf[:6]), b"\x7e\x7d\x00abc", "unescaped, without the CRC")
    eq(_deframe(d, frame(bytes(16)) + frame(bytes(17)) + frame(b"end")), [bytes(16), b"end"],
       "max_frame fits, one more byte is dropped")
    eq(d.bad_frames, 1, "the long one counted")
    eq(d.buf is buf, True, "no buffer allocated after the first")


def test_deframer_counts_what_it_drops():
    d = Deframer()
    good = frame(b"\x01\x02\x03")
    bad = bytearray(good)
    bad[2] ^= 0x10
    stream = (b"noise before any flag\x7d" + good + bad + b"\x7e\x7e\x7e" + b"\x7eab\x7d\x7e"
              + b"\x7e\x01\x02\x7e" + good)
    eq(_deframe(d, stream), [b"\x01\x02\x03"] * 2, "good frames only")
    eq(d.bad_frames, 3, "bad CRC, abort, too short; idle flags and leading noise are free")


def test_round_trip_all_byte_values():
    p = Pipe()
    t = SerialTransport(p)
    buf = bytearray(300)
    payloads = [bytes(range(256))[:ser.MAX_FRAME], b"\x7e" * 40, b"\x7d\x7e\x7d", b"abc",
                zcl_server.build(zcl_server.encode_block_response, 1, 0x1234, 7, 1, 0,
                                 bytes(range(200)))]
    for d in payloads:
        t.send(d)
        n = t.recv(buf, 0)
        eq(bytes(buf[:n]), d)
    eq(t.recv(buf, 0), 0)
    eq(t.bad_frames, 0)
    t.send(memoryview(b"xxhellox")[2:7])
    eq(bytes(buf[:t.recv(buf, 0)]), b"hello")


def test_frames_back_to_back_and_shared_flags():
    p = Pipe()
    t = SerialTransport(p)
    a, b, c = frame(b"one"), frame(b"two"), frame(b"three")
    p.data += a + b + b[-1:] * 5 + c[1:]   # c shares b's closing flag
    buf = bytearray(64)
    got = []
    for _ in range(4):
        n = t.recv(buf, 0)
        if n:
            got.append(bytes(buf[:n]))
    eq(got, [b"one", b"two", b"three"])
    eq(t.bad_frames, 0)


def test_resync_after_garbage():
    p = Pipe()
    t = SerialTransport(p)
    buf = bytearray(64)
    good = frame(b"\x19\x01\x05\x95")
    # garbage before any flag is ignored; garbage between frames is a bad frame
    p.data += b"\x00\x7d\xff\x13 noise" + good + b"\x01\x02\x7d\x03" + good
    eq(bytes(buf[:t.recv(buf, 0)]), b"\x19\x01\x05\x95")
    eq(bytes(buf[:t.recv(buf, 0)]), b"\x19\x01\x05\x95")
    eq(t.bad_frames, 1)
    # a half frame, cut off, then a whole one
    p.data += good[:5] + good
    eq(bytes(buf[:t.recv(buf, 0)]), b"\x19\x01\x05\x95")
    eq(t.bad_frames, 2)
    # a frame split over several reads
    for i in range(len(good)):
        p.data += good[i:i + 1]
        n = t.recv(buf, 0)
        eq(n, 4 if i == len(good) - 1 else 0)


def test_bad_crc_dropped():
    p = Pipe()
    t = SerialTransport(p)
    buf = bytearray(64)
    good = frame(b"payload")
    for i in range(1, len(good) - 1):
        bad = bytearray(good)
        bad[i] ^= 0x01
        p.data += bad
        eq(t.recv(buf, 0), 0, "bit flip at %d" % i)
    # every flip was dropped and counted; the next good frame still gets through
    assert t.bad_frames >= len(good) - 2
    before = t.bad_frames
    p.data += good
    eq(bytes(buf[:t.recv(buf, 0)]), b"payload")
    eq(t.bad_frames, before)


def test_abort_short_and_overlong_frames():
    p = Pipe()
    t = SerialTransport(p, 16)
    buf = bytearray(64)
    p.data += b"\x7eabc\x7d\x7e"                # aborted by 7D 7E
    p.data += b"\x7e\x01\x02\x7e"               # too short to hold a CRC
    p.data += frame(bytes(17))                  # longer than max_frame
    p.data += frame(b"ok")
    eq(bytes(buf[:t.recv(buf, 0)]), b"ok")
    eq(t.bad_frames, 3)
    # a whole, correct frame aborted before its closing flag is still dropped
    w = frame(b"hello")
    p.data += w[:-1] + b"\x7d\x7e"
    # and so is a full-size correct frame followed by one byte too many
    w = frame(b"0123456789abcdef")
    p.data += w[:-1] + b"!" + w[-1:]
    eq(t.recv(buf, 0), 0)
    eq(t.bad_frames, 5)
    t.bad_frames = 3
    raises(BAD_FRAME, t.send, bytes(17))
    t.send(bytes(16))
    small = bytearray(8)
    eq(t.recv(small, 0), 0)                     # does not fit the caller's buffer
    eq(t.bad_frames, 4)


def test_partial_writes_and_errors():
    p = Pipe(3)
    t = SerialTransport(p)
    t.send(b"\x7e" * 20)
    buf = bytearray(64)
    eq(bytes(buf[:t.recv(buf, 0)]), b"\x7e" * 20)
    t = SerialTransport(BrokenStream())
    raises(LINK_IO, t.send, b"abc")
    raises(LINK_IO, t.recv, buf, 0)
    t.close()
    assert t.stream.closed


def test_recv_timeout():
    t = SerialTransport(Pipe())
    clk = SystemClock()
    t0 = clk.ticks_ms()
    eq(t.recv(bytearray(10), 30), 0)
    assert clk.ticks_diff(clk.ticks_ms(), t0) >= 30

