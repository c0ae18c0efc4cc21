# A client session over the serial framing on an in-memory line (the link a port without
# sockets has: the Cortex-M tier's is its UART), against hubkit's scripted server.
from agent.zcl import client as C
from agent.zcl import frames as zcl
from hal import serial as ser
from hal.serial import SerialTransport
from hal.sim.clock import FakeClock
from devkit import Rig
from hubkit import Hub
from test_hal_serial import Pipe
from tutil import eq, Image


class SerialHub:
    """The far end of a serial line, in memory: what the device writes is deframed and
    handed to a hubkit.Hub; the hub's answers come back framed, every `noise`-th one after
    line noise. As a stream (write, readinto) it is what the device's SerialTransport uses."""

    def __init__(self, hub, noise=0):
        self.hub = hub
        self.noise = noise
        self.up = Pipe()
        self.down = Pipe()
        self.rx = SerialTransport(self.up)      # the hub's deframer
        self.tx = SerialTransport(self.down)    # and framer
        self.buf = bytearray(ser.MAX_FRAME)
        self.answers = 0

    def write(self, b):
        return self.up.write(b)

    def readinto(self, b):
        if not self.down.data:
            n = self.rx.recv(self.buf, 0)
            while n:
                self.hub.send(self.buf[:n])
                n = self.rx.recv(self.buf, 0)
            n = self.hub.recv(self.buf, 0)
            while n:
                self.answers += 1
                if self.noise and self.answers % self.noise == 0:
                    self.down.data += b"\x13\x7d\x00 noise"
                self.tx.send(self.buf[:n])
                n = self.hub.recv(self.buf, 0)
        return self.down.readinto(b)


def test_client_session_over_serial_framing():
    r = Rig()
    r.provision()
    clk = FakeClock(800000000)
    hub = Hub(clk, Image("core_v2.ota"), 2, limit_s=3600)
    line = SerialHub(hub, noise=7)
    t = SerialTransport(line)
    t._clock = clk  # the line's waits pass on the session's clock
    r.board.clock = clk
    out = C.Client(r.dev, t, clk, 48).session()
    eq(C.OUTCOMES[out], "held", "outcome")
    eq(r.dev.st.held_version, 2, "held version")
    assert hub.blocks > 400, hub.blocks
    eq(line.rx.bad_frames, 0, "frames from the device")
    eq(t.bad_frames, line.answers // 7, "noise bursts seen as bad frames")
    eq(hub.got[0].command, zcl.CMD_QUERY_NEXT, "first request")
    eq(len(hub.sent(zcl.CMD_UPGRADE_END)), 1, "upgrade end")
