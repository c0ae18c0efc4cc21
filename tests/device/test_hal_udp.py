# The UDP transport on loopback: one frame per datagram, other senders ignored. Needs
# sockets: on a port without them (the Cortex-M tier) the module is skipped at import.
import os
import socket

from hal.udp import UdpTransport
from agent.zcl import frames as zcl, server as zcl_server
from agent.errors import OtaError
from tutil import eq


def _port():
    return 20000 + (os.urandom(2)[0] << 8 | os.urandom(1)[0]) % 30000


def _server():
    for _ in range(20):
        port = _port()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            return s, port
        except OSError:
            s.close()
    raise AssertionError("no free port")


def _device(port):
    for _ in range(20):
        local = _port()
        try:
            return UdpTransport("127.0.0.1", port, local), local
        except OtaError:
            pass
    raise AssertionError("no free port")


def test_udp_one_frame_per_datagram():
    srv, port = _server()
    dev, local = _device(port)
    try:
        srv.settimeout(2)
        req = zcl_server.build(zcl.encode_query_next, 1, 0x1234, 7, 3)
        dev.send(req)
        dev.send(memoryview(req)[0:3])
        data, addr = srv.recvfrom(1000)
        eq(data, req)
        eq(srv.recvfrom(1000)[0], req[:3])
        rsp = zcl_server.build(zcl_server.encode_query_next_response, 1, 0x98)
        srv.sendto(rsp, addr)
        buf = bytearray(zcl.FRAME_MAX)
        n = dev.recv(buf, 2000)
        eq(bytes(buf[:n]), rsp)
        eq(dev.recv(buf, 20), 0)
        # too large for the caller's buffer: dropped and counted
        srv.sendto(bytes(20), addr)
        eq(dev.recv(bytearray(10), 500), 0)
        eq(dev.bad_frames, 1)
    finally:
        dev.close()
        srv.close()


def test_udp_ignores_other_senders():
    srv, port = _server()
    other, _ = _server()
    dev, local = _device(port)
    try:
        dev_addr = socket.getaddrinfo("127.0.0.1", local)[0][-1]
        buf = bytearray(64)
        other.sendto(b"\x19\x01\x05\x95", dev_addr)
        eq(dev.recv(buf, 300), 0)
        eq(dev.ignored, 1)
        srv.sendto(b"\x19\x02\x05\x95", dev_addr)
        eq(bytes(buf[:dev.recv(buf, 2000)]), b"\x19\x02\x05\x95")
        dev.only_server = False
        other.sendto(b"\x19\x03\x05\x95", dev_addr)
        eq(bytes(buf[:dev.recv(buf, 2000)]), b"\x19\x03\x05\x95")
        eq(dev.ignored, 1)
    finally:
        dev.close()
        srv.close()
        other.close()


def test_udp_accept_any_sender_from_the_start():
    srv, port = _server()
    other, _ = _server()
    dev = None
    for _ in range(20):
        local = _port()
        try:
            dev = UdpTransport("127.0.0.1", port, local, False)
            break
        except OtaError:
            pass
    try:
        other.sendto(b"\x19\x05\x05\x95", socket.getaddrinfo("127.0.0.1", local)[0][-1])
        buf = bytearray(8)
        eq(bytes(buf[:dev.recv(buf, 2000)]), b"\x19\x05\x05\x95")
        eq(dev.ignored, 0)
    finally:
        dev.close()
        srv.close()
        other.close()
