# Serial-line transport: one ZCL frame per HDLC-like frame, checked by a CRC-16. The codec
# (crc16, frame_into, Deframer) is the only one: host_tools/link.py uses it for the host end.
#
# On the wire:   FLAG | escaped(ZCL frame | CRC-16) | FLAG
#   FLAG 0x7E opens and closes a frame; consecutive flags are idle fill.
#   Inside a frame 0x7E and 0x7D are sent as 0x7D, byte XOR 0x20 (RFC 1662 escaping);
#   0x7D 0x7E aborts the frame. Bytes before the first flag are ignored.
#   CRC-16/X-25 (also CRC-16/IBM-SDLC, ISO-HDLC; the FCS-16 of RFC 1662): polynomial
#   0x1021 reflected, init 0xFFFF, final XOR 0xFFFF, check value 0x906E over "123456789"
#   ("x-25" in crcmod.predefined); computed over the unescaped ZCL frame, sent low byte
#   first (CRC_FMT).
# A frame with a bad CRC, an abort, a frame too long for the receive buffer or a frame of
# two bytes or less is dropped and counted in bad_frames; the receiver resyncs on the next
# flag. A frame longer than the caller's buffer is dropped and counted by recv().
#
# Transport interface (hal/udp.py has the same):
#   send(data)              send one ZCL frame (bytes, bytearray or memoryview)
#   recv(buf, timeout_ms)   receive one frame into buf, return its length; 0 on timeout
#   close()
# I/O errors are OtaError(LINK_IO).
import select
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.errors import OtaError, BAD_FRAME, LINK_IO
from hal.clock import SystemClock

FLAG = const(0x7E)
ESC = const(0x7D)
_ESC_XOR = const(0x20)
CRC_FMT = "<H"
#   H    CRC-16/X-25 of the ZCL frame
CRC_SIZE = const(2)
MAX_FRAME = const(280)      # default largest ZCL frame (agent.zcl.frames.FRAME_MAX is 274)

# CRC-16/X-25 by nibbles: entry i is the reflected CRC of the 4-bit value i (poly 0x8408);
# a constant of the code, not a tuple built at import.
_T = const((0x0000, 0x1081, 0x2102, 0x3183, 0x4204, 0x5285, 0x6306, 0x7387,
      0x8408, 0x9489, 0xA50A, 0xB58B, 0xC60C, 0xD68D, 0xE70E, 0xF78F))

_HUNT = const(0)   # waiting for the first flag
_IN = const(1)     # inside a frame
_ESC = const(2)    # inside a frame, after an escape byte
_DROP = const(3)   # frame overran the buffer or was aborted: skip to the next flag
_CHUNK = const(32)


def crc16(data, n=-1):
    """CRC-16/X-25 of data[:n] (all of data when n < 0)."""
    if n < 0:
        n = len(data)
    t = _T
    crc = 0xFFFF
    for i in range(n):
        crc ^= data[i]
        crc = (crc >> 4) ^ t[crc & 15]
        crc = (crc >> 4) ^ t[crc & 15]
    return crc ^ 0xFFFF


def _esc(out, j, c):
    if c == FLAG or c == ESC:
        out[j] = ESC
        out[j + 1] = c ^ _ESC_XOR
        return j + 2
    out[j] = c
    return j + 1


def frame_into(out, data, n=-1):
    """Write the wire form of data[:n] into out (2 * n + 6 bytes suffice); return its length."""
    if n < 0:
        n = len(data)
    crc = crc16(data, n)
    out[0] = FLAG
    j = 1
    for i in range(n):
        j = _esc(out, j, data[i])
    j = _esc(out, j, crc & 0xFF)
    j = _esc(out, j, crc >> 8)
    out[j] = FLAG
    return j + 1


class Deframer:
    """The receiving half of the codec: bytes in, one good frame at a time out, in its own
    buffer of max_frame + CRC_SIZE bytes (allocated once)."""

    def __init__(self, max_frame=MAX_FRAME):
        self.buf = bytearray(max_frame + CRC_SIZE)
        self.bad_frames = 0
        self._n = 0
        self._state = _HUNT

    def feed(self, c):
        """Take one received byte; return the length of a complete good frame (then in
        buf) or 0."""
        st = self._state
        if c == FLAG:
            n = self._n
            self._n = 0
            self._state = _IN
            if st == _HUNT or (n == 0 and st == _IN):
                return 0
            if st != _IN or n <= CRC_SIZE:
                self.bad_frames += 1
                return 0
            rx = self.buf
            if crc16(rx, n - CRC_SIZE) != rx[n - 2] | (rx[n - 1] << 8):
                self.bad_frames += 1
                return 0
            return n - CRC_SIZE
        if st == _HUNT or st == _DROP:
            return 0
        if c == ESC and st == _IN:
            self._state = _ESC
            return 0
        if st == _ESC:
            c ^= _ESC_XOR
            self._state = _IN
        if self._n >= len(self.buf):
            self._state = _DROP
            return 0
        self.buf[self._n] = c
        self._n += 1
        return 0


class SerialTransport:
    """Frames over a byte stream with readinto/write: machine.UART, or on the unix port and
    CPython a tty or pty opened with open_tty(). Streams select.poll cannot wait on are
    read directly (readinto returning 0 or None means nothing yet)."""

    def __init__(self, stream, max_frame=MAX_FRAME):
        self.stream = stream
        self.deframer = Deframer(max_frame)
        self._max = max_frame
        self._rxmv = memoryview(self.deframer.buf)
        self._tx = bytearray(2 * (max_frame + CRC_SIZE) + 2)
        self._txmv = memoryview(self._tx)
        self._chunk = bytearray(_CHUNK)
        self._chunkmv = memoryview(self._chunk)
        self._one = self._chunkmv[0:1]
        self._pos = self._end = 0
        self._clock = SystemClock()
        self._any = hasattr(stream, "any")
        p = select.poll()
        try:
            p.register(stream, select.POLLIN)
            p.poll(0)
        except (OSError, TypeError, ValueError, AttributeError):
            p = None
        self._poll = p
        self._ipoll = hasattr(p, "ipoll")

    @property
    def bad_frames(self):
        """Frames dropped: bad CRC, aborted, too short or too long (the deframer's count)."""
        return self.deframer.bad_frames

    @bad_frames.setter
    def bad_frames(self, n):
        self.deframer.bad_frames = n

    def _ready(self, ms):
        # wait up to ms for input; ipoll (MicroPython) allocates nothing
        if self._ipoll:
            for _ in self._poll.ipoll(ms):
                return True
            return False
        return bool(self._poll.poll(ms))

    def send(self, data):
        n = len(data)
        if n > self._max:
            raise OtaError(BAD_FRAME, "frame of %d bytes" % n)
        m = frame_into(self._tx, data, n)
        mv = self._txmv
        off = 0
        idle = 0
        try:
            while off < m:
                w = self.stream.write(mv[off:m])
                if w:
                    off += w
                    idle = 0
                else:
                    idle += 1
                    if idle > 1000:
                        raise OtaError(LINK_IO, "serial write stalled")
                    self._clock.sleep_ms(1)
        except OSError as e:
            raise OtaError(LINK_IO, "serial write: %s" % e)

    def _fill(self, left):
        # Read what is available into the chunk buffer, waiting at most left ms.
        k = _CHUNK
        s = self.stream
        try:
            if self._poll is not None:
                if not self._ready(left if left > 0 else 0):
                    return 0
                # a file's readinto waits for the whole buffer: one byte per poll
                k = max(1, min(s.any(), _CHUNK)) if self._any else 1
            mv = self._chunkmv
            r = s.readinto(mv if k == _CHUNK else (self._one if k == 1 else mv[:k]))
        except OSError as e:
            raise OtaError(LINK_IO, "serial read: %s" % e)
        if not r:
            if left > 0:
                self._clock.sleep_ms(1)
            return 0
        self._pos = 0
        self._end = r
        return r

    def recv(self, buf, timeout_ms):
        clk = self._clock
        dec = self.deframer
        chunk = self._chunk
        t0 = clk.ticks_ms()
        while True:
            pos = self._pos  # in locals while bytes are fed: stored once a frame
            end = self._end
            while pos < end:
                n = dec.feed(chunk[pos])
                pos += 1
                if n:
                    if n > len(buf):
                        dec.bad_frames += 1
                        continue
                    self._pos = pos
                    buf[0:n] = self._rxmv[0:n]
                    return n
            self._pos = pos
            left = timeout_ms - clk.ticks_diff(clk.ticks_ms(), t0)
            if not self._fill(left) and left <= 0:
                return 0

    def close(self):
        if self._poll is not None:
            try:
                self._poll.unregister(self.stream)
            except (OSError, KeyError, ValueError):
                pass
        self.stream.close()


def open_tty(path):
    """Open a tty or pty device for SerialTransport: unbuffered, raw mode where termios
    exists (unix port, CPython)."""
    try:
        f = open(path, "r+b", buffering=0)
    except TypeError:
        f = open(path, "r+b")
    try:
        import termios
        if hasattr(termios, "setraw"):
            termios.setraw(f.fileno())
        else:
            import tty
            tty.setraw(f.fileno())
    except ImportError:
        pass
    return f
