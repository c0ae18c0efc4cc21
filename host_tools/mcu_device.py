"""otatool device --target mcu: the emulated board's device inside the Cortex-M3 firmware.

The firmware with the agent frozen in runs under qemu-system-arm; boards/qemu/run.py is the
device (boards/unix/run.py's, with the flash in the board's PSRAM outside the heap and the
serial framing of hal/serial.py on the console UART). The PSRAM is the --flash file on the
host (16 MiB, shared with the emulator), so the flash outlives the emulator: a reset, or a
power cut (the emulator killed), and a new emulator over the same file sees what a rebooted
device would. Keys and the factory image reach the device in a ROMFS image.

On the host side the UART carries the device's log lines and its frames: the frames go to
the update server (written as they are to --serial DEV; or, with --server HOST:PORT,
checked and sent as UDP datagrams), the log lines to stdout. --serial pty makes a
pseudo-terminal and prints its path for `otatool serve --serial`.
"""
import os
import select
import shutil
import socket
import sys
import tempfile
import time

from host_tools import mcu
from host_tools.cli import InputError

REBOOT = 3
FLAG = 0x7E
PSRAM_FLASH = 0x401000   # boards/qemu/layout.py: FLASH_ADDR - PSRAM_ADDR
FLASH_MAX = 0xAFF000
EPOCH = 946684800


def psram_file(path):
    """The host file behind the PSRAM: created with the flash erased when missing."""
    if os.path.exists(path):
        if os.path.getsize(path) != mcu.PSRAM_SIZE:
            raise InputError("%s is not a Cortex-M flash file (%d bytes, not %d)"
                             % (path, os.path.getsize(path), mcu.PSRAM_SIZE))
        return
    with open(path, "wb") as f:
        f.write(bytes(PSRAM_FLASH))
        f.write(b"\xff" * FLASH_MAX)
        f.write(bytes(mcu.PSRAM_SIZE - PSRAM_FLASH - FLASH_MAX))


def device_rom(args, work):
    """ROMFS image with the keys (k0.pem, ...) and the factory image; returns (path, argv)."""
    tree = os.path.join(work, "rom")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    argv = ["--flash", "psram", "--serial", "uart", "--block", str(args.block),
            "--stall", str(args.stall)]
    for i, k in enumerate(args.public):
        shutil.copy(k, os.path.join(tree, "k%d.pem" % i))
        argv += ["--key", "/rom/k%d.pem" % i]
    if args.factory:
        shutil.copy(args.factory, os.path.join(tree, "factory.ota"))
        argv += ["--factory", "/rom/factory.ota"]
    if args.hw is not None:
        argv += ["--hw", str(args.hw)]
    for flag in ("once", "unhealthy"):
        if getattr(args, flag):
            argv.append("--" + flag)
    rom = os.path.join(work, "device.romfs")
    mcu.romfs(tree, rom)
    return rom, argv


class Link:
    """The server side of the device's UART: a tty (frames as they are) or UDP."""

    def __init__(self, args):
        self.sock = self.fd = None
        self._keep = None
        if args.server:
            if isinstance(args.server, str):
                host, _, port = args.server.rpartition(":")
                self.addr = (host or "127.0.0.1", int(port))
            else:
                self.addr = tuple(args.server[:2])
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            from host_tools.link import Deframer
            self.deframer = Deframer()
        elif args.serial == "pty":
            from host_tools.link import open_pty
            self.fd, self._keep, path = open_pty()
            print("device: serial line on %s" % path, flush=True)
        else:
            from host_tools.link import set_raw
            try:
                self.fd = os.open(args.serial, os.O_RDWR | os.O_NOCTTY)
            except OSError as e:
                raise InputError("cannot open %s: %s" % (args.serial, e))
            set_raw(self.fd)

    def fileno(self):
        return self.sock.fileno() if self.sock else self.fd

    def to_server(self, wire):
        if self.sock:
            for frame in self.deframer.feed(wire):
                self.sock.sendto(bytes(frame), self.addr)
        else:
            os.write(self.fd, wire)

    def from_server(self):
        """Bytes for the device's UART (b"" when nothing)."""
        if self.sock:
            from host_tools.link import frame_bytes
            data, _ = self.sock.recvfrom(4096)
            return frame_bytes(data)
        try:
            return os.read(self.fd, 4096)
        except OSError:  # EIO on a pty master while no slave is open
            time.sleep(0.02)
            return b""


class Relay:
    """Splits the UART output: frames (FLAG ... FLAG) to the link, text lines to stdout;
    0x04 outside a frame ends the raw REPL's output."""

    def __init__(self, link):
        self.link = link
        self.frame = None
        self.line = bytearray()
        self.lines = []

    def feed(self, data):
        """Returns the bytes after the end of the output, or None while it goes on."""
        for i, c in enumerate(data):
            if self.frame is not None:
                self.frame.append(c)
                if c == FLAG and len(self.frame) > 1:
                    self.link.to_server(bytes(self.frame))
                    self.frame = None
            elif c == FLAG:
                self.frame = bytearray([FLAG])
            elif c == 4:
                self._text(b"\n")
                return data[i + 1:]
            else:
                self._text(bytes((c,)))
        return None

    def _text(self, b):
        if b == b"\n":
            if self.line:
                text = self.line.decode(errors="replace").rstrip("\r")
                self.lines.append(text)
                if text.startswith("device-exit "):
                    pass
                elif text[:1] == "E" and text[1:2].isdigit():
                    print("otatool: " + text, file=sys.stderr, flush=True)
                else:
                    print(text, flush=True)
            self.line = bytearray()
        else:
            self.line += b


def boot_once(args, rom, argv, link, heap):
    """One run of the firmware, from reset to the device's end; returns its exit code."""
    m = mcu.Mcu(mcu.firmware("agent"), heap=heap, rom=rom, psram=os.path.abspath(args.flash))
    try:
        m.raw(60)
        now = int(time.time()) - EPOCH
        code = "import boards.qemu.run as r\nprint('device-exit %%d' %% r.main(%r, %d))\n" % (
            argv, now)
        m.write(code.encode() + b"\x04")
        m.read_until(b"OK", 30)
        relay = Relay(link)
        rest = relay.feed(m.buf)
        m.buf = b""
        while rest is None:
            r, _, _ = select.select([m.fd, link.fileno()], [], [], 1.0)
            if link.fileno() in r:
                data = link.from_server()
                if data:
                    m.write(data)
            if m.fd in r:
                data = os.read(m.fd, 65536)
                if not data:
                    print("otatool: the emulator ended", file=sys.stderr)
                    return 1
                rest = relay.feed(data)
        m.buf = rest
        err = m.read_until(b"\x04", 30)[:-1].decode(errors="replace").strip()
        if err:
            last = err.splitlines()[-1]
            if last.startswith("SystemExit: "):
                print(last[12:], file=sys.stderr)
            else:
                print("otatool: the device raised:\n" + err, file=sys.stderr)
            return 1
        for line in reversed(relay.lines):
            if line.startswith("device-exit "):
                return int(line.split()[1])
        return 1
    finally:
        m.kill()


def run(args):
    why = mcu.unavailable()
    if why:
        raise InputError("the Cortex-M target needs packages: %s" % why)
    if not os.path.exists(mcu.firmware("agent")):
        raise InputError("no Cortex-M firmware %s (make mcu)" % mcu.firmware("agent"))
    if args.python:
        raise InputError("--python and --target mcu do not go together")
    heap = mcu.HEAP_MAX
    psram_file(args.flash)
    work = tempfile.mkdtemp(prefix="otatool-mcu-")
    try:
        rom, argv = device_rom(args, work)
        link = Link(args)
        for _ in range(args.max_boots):
            t0 = time.monotonic()
            rc = boot_once(args, rom, argv, link, heap)
            if rc != REBOOT:
                if rc:
                    print("otatool: device stopped with status %d" % rc, file=sys.stderr)
                    return 1
                return 0
            print("device: -- reset (%.1f s) --" % (time.monotonic() - t0), flush=True)
        print("otatool: device rebooted %d times" % args.max_boots, file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
