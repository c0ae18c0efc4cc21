# The emulated device's firmware main on the unix port: the agent over a flash file, an
# emulated bootloader, and the OTA client on UDP or a serial line. A reset is this process
# ending with exit code REBOOT; `otatool device` starts it again over the same flash file,
# as a device's reset would. `otatool device` checks every option and file before it starts
# this process; run by hand, the options are:
#
#   micropython -m boards.unix.run --flash F (--key P.pem | --point HEX) [...] [--factory IMG]
#       (--server HOST:PORT | --serial DEV) [--hw N] [--block N] [--once] [--unhealthy]
#       [--slot-size BYTES] [--sector BYTES] [--stall S]  (slot-size: largest payload)
#       [--ieee HEX]  (the device's IEEE address, most significant byte first: an image
#                      addressed to another device is refused)
#       [--wait-cap S]  (longest wait a server's WAIT_FOR_DATA is honoured for, 1..86400 s)
#
# with MICROPYPATH=build/mpy, from outside the repository's root: -m puts the working
# directory first on the path, and an agent/ there is compiled from source in the heap
# (otatool device runs it through host_tools.mpy.run_module instead).
#
# Output: log lines "device: ..." and, during a download, "progress OFFSET SIZE RECEIVED"
# lines on stdout (about two a second); a refusal is one line "E<code> <text>: <detail>" on stderr.
# Exit codes: 0 done (--once); 1 refused, or with --once aborted (the line on stderr);
# 3 reset; 4 no answer from the server (with --once: a session stalled; without: a session
# stalled and the server never answered since this boot); 130 interrupted.
import sys

REBOOT = 3
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_NO_ANSWER = 4
EXIT_INTERRUPTED = 130
PROGRESS_MS = 500   # between progress lines


def _opts(argv):
    o = {"key": [], "point": [], "hw": None, "block": 48, "once": False, "unhealthy": False,
         "slot-size": 512 * 1024, "sector": 4096, "stall": 60, "factory": None,
         "server": None, "serial": None, "flash": None, "poll": 1000, "ieee": None,
         "wait-cap": 600}
    i = 0
    while i < len(argv):
        k = argv[i][2:]
        if k in ("once", "unhealthy"):
            o[k] = True
            i += 1
            continue
        if k not in o or i + 1 >= len(argv):
            raise ValueError("unknown or incomplete option %s" % argv[i])
        v = argv[i + 1]
        if k in ("key", "point"):
            o[k].append(v)
        elif k in ("hw", "block", "slot-size", "sector", "poll", "wait-cap"):
            o[k] = int(v, 0)
        elif k == "stall":
            o[k] = float(v)
        elif k == "ieee":
            o[k] = ieee_bytes(v)
        else:
            o[k] = v
        i += 2
    if not o["flash"] or not (o["server"] or o["serial"]) or not (o["key"] or o["point"]):
        raise ValueError("--flash, --key or --point, and --server or --serial are required")
    if not 0 < o["block"] < 256 or o["stall"] <= 0 or not 0 < o["wait-cap"] <= 86400:
        raise ValueError("--block must be 1..255, --stall positive, --wait-cap 1..86400")
    return o


def ieee_bytes(text):
    """An IEEE address written most significant byte first (hex, ':' allowed) as the 8
    bytes of an OTA header's destination field (little-endian, as ZCL sends it)."""
    h = text.replace(":", "")
    if len(h) != 16:
        raise ValueError("--ieee needs 16 hex digits")
    b = bytes(int(h[i:i + 2], 16) for i in range(0, 16, 2))
    return bytes(b[7 - i] for i in range(8))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def say(text):
    print("device: " + text)


def refuse(text):
    sys.stderr.write(text + "\n")


def board_for(o):
    from boards.unix.board import make_board
    from boards.unix.layout import layout
    return make_board(o["flash"], layout(o["sector"], o["slot-size"]), ieee=o.get("ieee"))


def identity(board, o):
    """Manufacturer, image type and hardware version: from the running firmware, or the
    factory image on a blank device."""
    from agent.store import check as verify
    from agent.image import fmt
    from agent.errors import OtaError, SLOT_EMPTY
    try:
        info = verify.read_meta(board.slots[board.boot.running()])
        h = info.header
    except OtaError:
        if not o["factory"]:
            raise OtaError(SLOT_EMPTY, "the flash %s is blank: give --factory IMG.ota to "
                                       "provision it" % o["flash"])
        with open(o["factory"], "rb") as f:
            h = fmt.parse_header(f.read(fmt.HDR_MAX))
    return h.manufacturer, h.image_type, o["hw"] if o["hw"] is not None else h.hw_min


def retries_for(stall_s):
    """Retries of one request (1 s, then doubling up to 8 s) that fit in the stall time, so
    a server that never answers is given up after about stall_s seconds."""
    n, wait, total = 0, 1, 1
    while n < 8 and total < stall_s:
        wait = wait * 2 if wait < 4 else 8
        total += wait
        n += 1
    return n


class Watched:
    """The link, noting whether the server ever answered, and printing the download's
    progress ("progress OFFSET SIZE RECEIVED": where the download is, the image size, the
    bytes received in this session) at most every PROGRESS_MS while it moves."""

    def __init__(self, link, dev, clock):
        self.link = link
        self.dev = dev
        self.clock = clock
        self.client = None
        self.heard = False
        self._t = clock.ticks_ms()
        self._pos = -1

    def send(self, data):
        self.link.send(data)

    def recv(self, buf, timeout_ms):
        n = self.link.recv(buf, timeout_ms)
        if n:
            self.heard = True
            now = self.clock.ticks_ms()
            if self.clock.ticks_diff(now, self._t) >= PROGRESS_MS:
                self._t = now
                self._progress()
        return n

    def _progress(self):
        p = self.dev.parser
        cl = self.client
        if p is None or cl is None or cl.offer is None:
            return
        pos, size = p.pos, cl.offer[3]
        if pos != self._pos and pos < size:
            self._pos = pos
            print("progress %d %d %d" % (pos, size, cl.bytes))


def open_link(o):
    if o["serial"]:
        from hal.serial import SerialTransport, open_tty
        return SerialTransport(open_tty(o["serial"]))
    from hal.udp import UdpTransport
    host, port = o["server"].rsplit(":", 1)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return UdpTransport(host, int(port))


def keys(o):
    from agent.crypto.trust import from_pem
    from binascii import unhexlify
    return [from_pem(_read(k)) for k in o["key"]] + [unhexlify(p) for p in o["point"]]


def run(o):
    from agent.update import Config, Device
    from agent.crypto.trust import Trust
    from agent.zcl import client as C
    from agent.store import state as S
    from agent.errors import OtaError, SERVER_ABORT
    board = board_for(o)
    run_slot = board.power_on()
    man, itype, hw = identity(board, o)
    healthy = not o["unhealthy"]
    cfg = Config(Trust(keys(o)), man, itype, hw, trials=board.trials, health=lambda: healthy)
    dev = Device(board, cfg)
    dev.start()
    st = dev.st
    if st.run_version == 0 and o["factory"]:
        img = _read(o["factory"])
        dev.provision(lambda off, n: img[off:off + n], len(img))
        say("provisioned version 0x%08X into slot %d" % (dev.st.run_version, run_slot))
        return REBOOT
    try:
        ver = dev.check_running(False).manifest.version
    except Exception:
        ver = 0
    say("boot slot %d, version 0x%08X, seq %d, %s" % (
        run_slot, ver, st.seq,
        ("trial boot, %d left" % board.boot.trials_left()) if dev.trial else "confirmed"))
    if dev.trial:
        ok = dev.run_health()
        say("health check %s: %s" % ("passed" if ok else "failed",
                                      "confirmed" if ok else "reverting"))
    if dev.reset_needed:
        return REBOOT
    link = Watched(open_link(o), dev, board.clock)
    cl = C.Client(dev, link, board.clock, o["block"], retries=retries_for(o["stall"]),
                  stall_s=o["stall"], log=say, wait_cap_s=o["wait-cap"])
    link.client = cl
    if dev.trial is False and dev.unacked():
        cl.resend_alerts()
    while True:
        r = cl.session()
        say("session: %s%s" % (C.OUTCOMES[r], (" (%d bytes)" % cl.bytes) if cl.bytes else ""))
        if dev.reset_needed:
            say("reset to activate")
            return REBOOT
        if r == C.STALLED and (o["once"] or not link.heard):
            return EXIT_NO_ANSWER
        if o["once"] and r == C.ABORTED:
            refuse(str(OtaError(SERVER_ABORT, "the session ended at offset %d; the checkpoint"
                                " is kept" % (dev.parser.pos if dev.parser else 0))))
            return EXIT_REFUSED
        if o["once"] and r != C.HELD:
            return EXIT_OK
        if r == C.HELD and dev.st.act_time == S.WAIT_COMMAND:
            say("image held, waiting for an activation command")
        for _ in range(30 if r == C.HELD else 5):
            if cl.idle(o["poll"]):
                say("reset to activate")
                return REBOOT
            if cl.notified:  # an Image Notify: query now, not at the next poll
                break


def main(argv):
    from agent.errors import OtaError
    try:
        return run(_opts(argv))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OtaError as e:
        refuse(str(e))
    except MemoryError:
        refuse("out of memory: the heap is too small for this device (otatool device --heap)")
    except (OSError, ValueError) as e:
        refuse("%s: %s" % (e.__class__.__name__, e))
    return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
