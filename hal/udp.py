# UDP transport: each datagram carries exactly one ZCL frame and nothing else.
#
# Same interface as hal/serial.py: send(data), recv(buf, timeout_ms) -> n (0 on timeout),
# close(). Runs on CPython, the MicroPython unix port (addresses are raw sockaddr bytes
# there) and lwIP ports. With only_server (the default; also an attribute, settable any
# time), datagrams whose source is not the server address are dropped and counted in
# `ignored`; a datagram larger than the caller's buffer is dropped and counted in
# `bad_frames`. I/O errors are OtaError(LINK_IO).
import socket
import select

from agent.errors import OtaError, LINK_IO
from hal.clock import SystemClock

_EAGAIN = (11, 35)  # EAGAIN on Linux, on BSD and macOS


def _addr(host, port):
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
    for a in ai:
        if a[1] == socket.SOCK_DGRAM:
            return a[0], a[-1]
    return ai[0][0], ai[0][-1]


class UdpTransport:
    def __init__(self, server_host, server_port, local_port=0, only_server=True,
                 max_frame=280):
        # max_frame: largest datagram accepted (agent.zcl.frames.FRAME_MAX is 274)
        family, self.server = _addr(server_host, server_port)
        self.only_server = only_server
        self.ignored = 0
        self.bad_frames = 0
        self._clock = SystemClock()
        any_host = "::" if family == getattr(socket, "AF_INET6", -1) else "0.0.0.0"
        s = socket.socket(family, socket.SOCK_DGRAM)
        self._sock = s
        try:
            s.bind(_addr(any_host, local_port)[1])
            s.setblocking(False)
        except OSError as e:
            s.close()
            raise OtaError(LINK_IO, "udp bind: %s" % e)
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)
        # CPython receives without allocating; MicroPython has recvfrom only
        self._rxbuf = bytearray(max_frame + 1)
        self._into = hasattr(s, "recvfrom_into")

    def send(self, data):
        try:
            self._sock.sendto(data, self.server)
        except OSError as e:
            raise OtaError(LINK_IO, "udp send: %s" % e)

    def _take(self):
        # One datagram: (length, source address, bytes-like holding it); None if none.
        s = self._sock
        try:
            if self._into:
                n, a = s.recvfrom_into(self._rxbuf)
                return n, a, self._rxbuf
            d, a = s.recvfrom(len(self._rxbuf))
            return len(d), a, d
        except OSError as e:
            if e.args and e.args[0] in _EAGAIN:
                return None
            raise OtaError(LINK_IO, "udp recv: %s" % e)

    def recv(self, buf, timeout_ms):
        clk = self._clock
        t0 = clk.ticks_ms()
        while True:
            left = timeout_ms - clk.ticks_diff(clk.ticks_ms(), t0)
            if not self._poll.poll(left if left > 0 else 0):
                return 0
            got = self._take()
            if got is None:
                continue
            n, a, d = got
            if self.only_server and a != self.server:
                self.ignored += 1
            elif n > len(buf) or n >= len(self._rxbuf):
                self.bad_frames += 1
            else:
                buf[0:n] = d if n == len(d) else memoryview(d)[0:n]
                return n

    def close(self):
        self._poll.unregister(self._sock)
        self._sock.close()
