"""Host ends of the device links (CPython only): a UDP server socket and the serial framing.

Both links share one shape, so an update server can use either:
    recv(timeout) -> (frame, addr)   frame bytes, or (None, None) after timeout seconds
    send(frame, addr)                answer to the address a request came from
    close()
The serial framing is the one hal/serial.py defines (constants imported from there); the
CRC-16 is computed by crcmod.
"""
import os
import select
import socket
import stat
import termios
import time
import tty

import crcmod.predefined

from hal.serial import FLAG, ESC, ESC_XOR, CRC_NAME, CRC_SIZE, MAX_FRAME

_crc16 = crcmod.predefined.mkCrcFun(CRC_NAME)


def crc16(data):
    """The framing's CRC-16, by crcmod."""
    return _crc16(bytes(data))


class UdpServerLink:
    """A UDP socket bound to (host, port); port 0 picks a free one (see .address)."""

    def __init__(self, host="127.0.0.1", port=0):
        info = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
        self.sock = socket.socket(info[0], socket.SOCK_DGRAM)
        self.sock.bind(info[4])
        self.address = self.sock.getsockname()

    def recv(self, timeout=None):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return None, None
        data, addr = self.sock.recvfrom(65535)
        return data, addr

    def send(self, frame, addr):
        self.sock.sendto(bytes(frame), addr)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def frame_bytes(payload):
    """The wire form of one ZCL frame: FLAG | escaped(payload | CRC-16 LE) | FLAG."""
    body = bytes(payload) + crc16(payload).to_bytes(CRC_SIZE, "little")
    out = bytearray([FLAG])
    for c in body:
        if c in (FLAG, ESC):
            out += bytes((ESC, c ^ ESC_XOR))
        else:
            out.append(c)
    out.append(FLAG)
    return bytes(out)


class Deframer:
    """Splits a received byte stream into frames; drops (and counts) bad ones."""

    def __init__(self, max_frame=MAX_FRAME):
        self.max_frame = max_frame
        self.bad_frames = 0
        self._cur = None        # None: hunting for the first flag
        self._esc = False
        self._dropping = False

    def feed(self, data):
        """Take received bytes; return the list of good frames they completed."""
        frames = []
        for c in data:
            if c == FLAG:
                cur, esc, drop = self._cur, self._esc, self._dropping
                self._cur, self._esc, self._dropping = bytearray(), False, False
                if cur is None or (not cur and not esc and not drop):
                    continue
                if esc or drop or len(cur) <= CRC_SIZE:
                    self.bad_frames += 1
                elif crc16(cur[:-CRC_SIZE]) != int.from_bytes(cur[-CRC_SIZE:], "little"):
                    self.bad_frames += 1
                else:
                    frames.append(bytes(cur[:-CRC_SIZE]))
            elif self._cur is None or self._dropping:
                continue
            elif self._esc:
                self._esc = False
                self._add(c ^ ESC_XOR)
            elif c == ESC:
                self._esc = True
            else:
                self._add(c)
        return frames

    def _add(self, c):
        if len(self._cur) >= self.max_frame + CRC_SIZE:
            self._dropping = True
        else:
            self._cur.append(c)


def check_tty(path):
    """None if path is a tty this process can open for reading and writing; else the reason,
    in a few words."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such serial device"
    except OSError as e:
        return e.strerror or str(e)
    if not stat.S_ISCHR(st.st_mode):
        return "not a serial device (a tty)"
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        return e.strerror or str(e)
    try:
        return None if os.isatty(fd) else "not a serial device (a tty)"
    finally:
        os.close(fd)


def set_raw(fd):
    """Put a tty in raw mode: no echo, no line editing, 8-bit clean."""
    tty.setraw(fd, termios.TCSANOW)


def open_pty():
    """A pseudo-terminal pair in raw mode: (master_fd, slave_fd, slave_path).

    Keep slave_fd open while the other side uses slave_path: when the last slave
    descriptor closes, reads on the master fail with EIO."""
    master, slave = os.openpty()
    set_raw(master)
    set_raw(slave)
    return master, slave, os.ttyname(slave)


class SerialLink:
    """The host end of a serial link on a tty path or an open file descriptor."""

    def __init__(self, path_or_fd, max_frame=MAX_FRAME):
        if isinstance(path_or_fd, int):
            self.fd = path_or_fd
            self._own = False
        else:
            self.fd = os.open(path_or_fd, os.O_RDWR | os.O_NOCTTY)
            self._own = True
            set_raw(self.fd)
        self.deframer = Deframer(max_frame)
        self._pending = []
        self._poller = select.poll()
        self._poller.register(self.fd, select.POLLIN)

    @property
    def bad_frames(self):
        return self.deframer.bad_frames

    def recv(self, timeout=None):
        """(frame, None), or (None, None) when no good frame arrives within timeout s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._poller.poll(None if wait is None else int(wait * 1000)):
                return None, None
            try:
                data = os.read(self.fd, 4096)
            except OSError:  # EIO on a pty master while no slave is open
                data = b""
            if not data:
                if wait is not None and wait <= 0:
                    return None, None
                time.sleep(0.02 if wait is None else min(wait, 0.02))
                continue
            self._pending.extend(self.deframer.feed(data))
        return self._pending.pop(0), None

    def send(self, frame, addr=None):
        data = memoryview(frame_bytes(frame))
        while data:
            n = os.write(self.fd, data)
            data = data[n:]

    def write_raw(self, data):
        """Send bytes as they are (line noise in tests)."""
        os.write(self.fd, bytes(data))

    def close(self):
        if self._own:
            os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

