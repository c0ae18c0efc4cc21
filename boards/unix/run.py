# The emulated device's firmware main on the unix port: the agent over a flash file, an
# emulated bootloader, and the OTA client on UDP or a serial line. A reset is this process
# ending with exit code REBOOT; `otatool device` starts it again over the same flash file,
# as a device's reset would.
#
#   micropython -m boards.unix.run --flash F --key P.pem [--key ...] [--factory IMG]
#       (--server HOST:PORT | --serial DEV) [--hw N] [--block N] [--once] [--unhealthy]
#       [--slot-size BYTES] [--sector BYTES] [--stall S]  (slot-size: largest payload)
import sys

REBOOT = 3


def _opts(argv):
    o = {"key": [], "hw": None, "block": 48, "once": False, "unhealthy": False,
         "slot-size": 512 * 1024, "sector": 4096, "stall": 60, "factory": None,
         "server": None, "serial": None, "flash": None, "poll": 1000}
    i = 0
    while i < len(argv):
        k = argv[i][2:]
        if k in ("once", "unhealthy"):
            o[k] = True
            i += 1
            continue
        if k not in o or i + 1 >= len(argv):
            raise SystemExit("usage: unknown or incomplete option %s" % argv[i])
        v = argv[i + 1]
        if k == "key":
            o[k].append(v)
        elif k in ("hw", "block", "slot-size", "sector", "stall", "poll"):
            o[k] = int(v, 0)
        else:
            o[k] = v
        i += 2
    return o


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def say(text):
    print("device: " + text)


def board_for(o):
    from boards.unix.board import make_board
    from boards.unix.layout import layout
    return make_board(o["flash"], layout(o["sector"], o["slot-size"]))


def identity(board, o):
    """Manufacturer, image type and hardware version: from the running firmware, or the
    factory image on a blank device."""
    from agent import verify, fmt
    try:
        info = verify.read_meta(board.slots[board.boot.running()])
        h = info.header
    except Exception:
        if not o["factory"]:
            raise SystemExit("device: blank flash and no --factory image")
        with open(o["factory"], "rb") as f:
            h = fmt.parse_header(f.read(fmt.HDR_MAX))
    return h.manufacturer, h.image_type, o["hw"] if o["hw"] is not None else h.hw_min


def main(argv):
    from agent.core import Config, Device
    from agent.keys import Trust, from_pem
    from agent import client as C
    from agent import state as S
    o = _opts(argv)
    board = board_for(o)
    run = board.power_on()
    man, itype, hw = identity(board, o)
    healthy = not o["unhealthy"]
    cfg = Config(Trust([from_pem(_read(k)) for k in o["key"]]), man, itype, hw,
                 trials=board.trials, health=lambda: healthy)
    dev = Device(board, cfg)
    dev.start()
    st = dev.st
    if st.run_version == 0 and o["factory"]:
        img = _read(o["factory"])
        try:
            dev.provision(lambda off, n: img[off:off + n], len(img))
        except Exception as e:
            say("factory image refused: %s" % e)
            return 1
        say("provisioned version 0x%08X into slot %d" % (dev.st.run_version, run))
        return REBOOT
    try:
        ver = dev.check_running(False).manifest.version
    except Exception:
        ver = 0
    say("boot slot %d, version 0x%08X, seq %d, %s" % (
        run, ver, st.seq,
        ("trial boot, %d left" % board.boot.trials_left()) if dev.trial else "confirmed"))
    if dev.trial:
        ok = dev.run_health()
        say("health check %s: %s" % ("passed" if ok else "failed",
                                      "confirmed" if ok else "reverting"))
    if dev.reset_needed:
        return REBOOT
    if o["serial"]:
        from hal.serial import SerialTransport, open_tty
        link = SerialTransport(open_tty(o["serial"]))
    else:
        from hal.udp import UdpTransport
        host, port = o["server"].rsplit(":", 1)
        link = UdpTransport(host, int(port))
    cl = C.Client(dev, link, board.clock, o["block"], stall_s=o["stall"], log=say)
    if dev.trial is False and dev.unacked():
        cl.resend_alerts()
    while True:
        r = cl.session()
        say("session: %s%s" % (C.OUTCOMES[r], (" (%d bytes)" % cl.bytes) if cl.bytes else ""))
        if dev.reset_needed:
            say("reset to activate")
            return REBOOT
        if o["once"] and r != C.HELD:
            return 0 if r in (C.NO_UPDATE, C.REJECTED) else 2
        if r == C.HELD and dev.st.act_time == S.WAIT_COMMAND:
            say("image held, waiting for an activation command")
        for _ in range(30 if r == C.HELD else 5):
            if cl.idle(o["poll"]):
                say("reset to activate")
                return REBOOT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
