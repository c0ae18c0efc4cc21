# An emulated device for the device-side tests (CPython and MicroPython alike).
from agent.crypto.trust import Trust
from agent.update import Config, Device
from hal.sim.nor import NorFlash
from hal.sim.board import EmuBoard, Layout
from tutil import read_data, Image, eq

MAN = 0x1234
TYPE = 0x0001
HW = 2


def provision(dev, img, block=256):
    """Factory install of the image file img (bytes or a tutil.Image) on a blank device,
    block bytes at a time."""
    dev.provision(lambda off, n: img[off:off + n], len(img), block)


def download(dev, img, block=48, limit=None):
    """Feed img (bytes or a tutil.Image, read a block at a time) from the offset the device
    asks for; stop after `limit` blocks."""
    off = dev.begin()
    n = 0
    while not dev.done():
        if limit is not None and n >= limit:
            return off
        off = dev.feed(off, img[off:off + block])
        n += 1
        if off >= len(img) and not dev.done():
            dev.end()
    return off


def resumed(dev, img, block=48):
    """After a reset: feed img from the offset dev asks for until it holds the image;
    returns the offsets it jumped to (its checkpoint)."""
    off = dev.begin()
    jumps = []
    while not dev.done():
        nxt = dev.feed(off, img[off:off + block])
        if nxt != off + block and nxt < len(img):
            jumps.append(nxt)
        off = nxt
    return jumps


def refuse(dev, img, reason, block=48):
    """Feed img until dev refuses it with this reason (an OtaError); it must not have asked
    for anything past the manifest."""
    from agent.image import fmt
    from agent.errors import OtaError
    off = dev.begin()
    top = 0
    try:
        while True:
            off = dev.feed(off, img[off:off + block])
            top = off if off > top else top
            if dev.done():
                raise AssertionError("accepted")
    except OtaError as e:
        if e.reason != reason:
            raise AssertionError("refused with %s, expected reason %d" % (e, reason))
    hl = fmt.parse_header(img[:256]).length
    if top > hl + 6 + (img[hl + 2] | img[hl + 3] << 8):
        raise AssertionError("fetched past the manifest")


def updated(rig, img, block=48):
    """Download img into the rig's device, activate it now and reset: the device on its
    trial boot of img."""
    from agent.activation import ACT_SUCCESS
    from agent.store import state as S
    rig.download(img, block)
    d = rig.dev
    eq(d.st.phase, S.HELD, "phase")
    eq(d.schedule(0), ACT_SUCCESS, "outcome")
    return rig.reboot()


def rejected(rig, img, reason):
    """img is refused from its manifest with this reason and alert 0x8F1C; after a reset
    the device runs what it ran, idle."""
    from agent.alerts import ALERT_VERIFY_FAIL
    from agent.store import state as S
    slot = rig.running()
    refuse(rig.dev, img, reason)
    eq(rig.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, reason), "alert")
    d = rig.reboot()
    eq(rig.running(), slot, "running image kept")
    eq(d.st.phase, S.IDLE, "phase")
    return d


class Alerts:
    def __init__(self):
        self.got = []

    def alert(self, code, reason, aid, value):
        self.got.append((code, reason, value))

    def codes(self):
        return [a[0] for a in self.got]


class Rig:
    """A flash, a board over it, a device, and a reboot()."""

    def __init__(self, sector=4096, write_size=1, erased=0xFF, slot_payload=64 * 1024,
                 trials=3, supplier_key=None, keys=("core_pub.bin", "core_other_pub.bin")):
        self.layout = Layout.for_image(sector, slot_payload)
        self.flash = NorFlash(self.layout.size, sector, write_size, erased)
        self.cfg = Config(Trust([read_data(k) for k in keys]), MAN, TYPE, HW,
                          supplier_key=supplier_key, trials=trials)
        self.alerts = Alerts()
        self.reboot()

    def reboot(self):
        self.dev = self.board = None  # a reset: nothing of the old ones is kept
        self.board = EmuBoard(self.flash, self.layout)
        self.board.power_on()
        self.dev = Device(self.board, self.cfg, self.alerts)
        self.dev.start()
        return self.dev

    def provision(self, name="core_v1.ota"):
        with Image(name) as img:
            provision(self.dev, img)
        return self.reboot()

    def download(self, img, block=48, limit=None):
        return download(self.dev, img, block, limit)

    def running(self):
        return self.board.boot.running()
