"""Host ends of the device links (CPython only): a UDP server socket and the serial framing.

Both links share one shape, so an update server can use either:
    recv(timeout) -> (frame, addr)   frame bytes, or (None, None) after timeout seconds
    send(frame, addr)                answer to the address a request came from
    close()
The serial framing is the device's own codec (hal/serial.py: crc16, frame_into, Deframer),
wrapped here for byte strings.
"""
import os
import select
import socket
import stat
import termios
import time
import tty

from hal import serial as _codec
from hal.serial import MAX_FRAME


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
    out = bytearray(2 * len(payload) + 6)
    return bytes(out[:_codec.frame_into(out, payload)])


class Deframer:
    """Splits a received byte stream into frames; drops (and counts) bad ones."""

    def __init__(self, max_frame=MAX_FRAME):
        self.max_frame = max_frame
        self._d = _codec.Deframer(max_frame)

    @property
    def bad_frames(self):
        return self._d.bad_frames

    def feed(self, data):
        """Take received bytes; return the list of good frames they completed."""
        d = self._d
        frames = []
        for c in data:
            n = d.feed(c)
            if n:
                frames.append(bytes(d.buf[:n]))
        return frames


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

