# The agent's core scenarios run through each board adapter (unix, esp32, rp2, qemu) over the
# fakes of the port modules (fake_esp32, fake_rp2; the qemu board's flash over a bytearray,
# or over its own PSRAM on the Cortex-M tier: qemu_mem). CPython and MicroPython alike.
#
#   r = BoardRig("esp32")     a fresh board of that kind; r.reboot() is a reset
#   update_confirm("rp2")     one scenario, run by tests/scenario/test_board_<kind>.py
import os

from agent.image import fmt
from agent.activation import ACT_FAILURE, ACT_SUCCESS
from agent.alerts import ALERT_BOOT_VERIFY_FAIL, ALERT_FUTURE_NOT_ACTIONED, ALERT_VERIFY_FAIL, \
    ALERT_VERSION_CHANGED
from agent.store import state as S
from agent.update import Config, Device
from agent.errors import OtaError, WRONG_HARDWARE, WRONG_MANUFACTURER, UNKNOWN_KEY, \
    ROLLBACK, NOT_IN_TRIAL, ACTIVATION_FAILED, REVERTED_IMAGE
from agent.crypto.trust import Trust
from hal.sim.clock import FakeClock
import devkit
from devkit import Alerts, MAN, TYPE, HW
from tutil import read_data, eq, ROOT, Image, same_as_file

KINDS = ("unix", "esp32", "rp2", "qemu")
RP2_STORAGE = 336 * 1024      # a small rp2.Flash() for the tests: 64 KiB of filesystem
RP2_SLOT = 128 * 1024
IMAGES = {
    "unix": ("core_v1.ota", "core_v2.ota", "core_v2z.ota", "core_old.ota", "core_v2.bin"),
    "esp32": ("board_esp_v1.ota", "board_esp_v2.ota", "board_esp_v2z.ota", "board_esp_old.ota",
              "board_esp_v2.bin"),
    "qemu": ("core_v1.ota", "core_v2.ota", "core_v2z.ota", "core_old.ota", "core_v2.bin"),
    "rp2": ("board_rp2_v1.ota", "board_rp2_v2.ota", "board_rp2_v2z.ota", "board_rp2_old.ota",
            "board_rp2_v2.bin"),
}


def _unix_path():
    return ROOT + "/build/board_unix_test.flash"


def install_check(dev, check):
    """The board's payload check on the first bytes of sector 0, once that sector is in
    flash and its CRC-32 checked, before the download's checkpoint moves past it."""
    if check is None:
        return
    w = dev.writer
    inner = w.on_sector
    buf = bytearray(64)

    def on_sector(nxt, mi):
        if nxt == 1:
            w.slot.area.read(0, buf)
            check(buf)
        inner(nxt, mi)
    w.on_sector = on_sector


def qemu_mem(size):
    """The bytes behind the qemu board's flash: on the Cortex-M tier the board's own PSRAM
    (boards.qemu.board.ram), elsewhere a bytearray."""
    import sys
    if sys.platform == "qemu":
        from boards.qemu.board import ram
        from boards.qemu.layout import FLASH_ADDR
        return ram(FLASH_ADDR, size)
    return bytearray(size)


class BoardRig:
    def __init__(self, kind, trials=None):
        self.kind = kind
        self.clock = FakeClock(1000)
        self.alerts = Alerts()
        self.images = IMAGES[kind]
        if kind == "unix":
            from hal.sim.board import Layout
            self.path = _unix_path()
            try:
                os.remove(self.path)
            except OSError:
                pass
            self.layout = Layout.for_image(4096, 64 * 1024)
        elif kind == "qemu":
            from boards.qemu.layout import layout
            self.layout = layout(4096, 64 * 1024)
            self.mem = qemu_mem(self.layout.size)
            self.blank = True
        elif kind == "esp32":
            import fake_esp32
            self.chip = fake_esp32.Chip()
            self.chip.flash_app(0, Image(self.images[0])[-12 * 1024:])  # esptool
        else:
            import fake_rp2
            self.dev_flash = fake_rp2.Flash(RP2_STORAGE)
            self.machine = fake_rp2.Machine()
        keys = [read_data("board_pub.bin"), read_data("core_pub.bin")]
        self.trust = Trust(keys)
        self.trials = trials
        self.cfg = None
        self.reboot()

    def _board(self):
        k = self.kind
        if k == "unix":
            from boards.unix.board import make_board
            b = make_board(self.path, self.layout, clock=self.clock)
            b.power_on()
            return b
        if k == "qemu":
            from boards.qemu.board import make_board
            b = make_board(self.layout, self.blank, self.clock, mem=self.mem)
            self.blank = False
            b.power_on()
            return b
        if k == "esp32":
            from boards.esp32.board import make_board
            self.chip.reset()
            return make_board(self.chip.module, self.chip.machine, self.clock)
        from boards.rp2.board import make_board
        b = make_board(self.dev_flash, self.machine, self.clock, slot_size=RP2_SLOT)
        b.boot.boot()   # main.py's selector: the decision part
        return b

    def reboot(self):
        if self.kind == "unix" and self.cfg is not None:
            self.board.flash.close()
        b = self.board = self._board()
        if self.cfg is None:
            self.cfg = Config(self.trust, MAN, TYPE, HW,
                              trials=self.trials or getattr(b, "trials", 3))
        self.dev = Device(b, self.cfg, self.alerts)
        install_check(self.dev, b.payload_check)
        self.dev.start()
        return self.dev

    def close(self):
        if self.kind == "unix":
            self.board.flash.close()
            os.remove(self.path)

    def running(self):
        return self.board.boot.running()

    def flip(self, slot, offset):
        """Corrupt one byte of a slot behind the flash rules' back."""
        a = self.board.slots[slot].area
        if self.kind == "unix":
            self.board.flash.flip_bits(a.base + offset, 1)
        elif self.kind == "qemu":
            self.mem[a.base + offset] ^= 1
        elif self.kind == "esp32":
            self.chip.flash.flip_bits(self.board.parts[slot].info()[2] + offset, 1)
        else:
            self.dev_flash.nor.flip_bits(a.base + offset, 1)

    def provision(self, name=None):
        devkit.provision(self.dev, Image(name or self.images[0]))
        return self.reboot()

    def download(self, img, block=48, limit=None):
        return devkit.download(self.dev, img, block, limit)

    def update(self, name=None, block=48):
        """Download, activate now, reset: the device on trial."""
        self.download(Image(name or self.images[1]), block)
        eq(self.dev.st.phase, S.HELD, "phase")
        eq(self.dev.schedule(0), ACT_SUCCESS, "outcome")
        return self.reboot()


# -- the scenarios -----------------------------------------------------------------

def provision(kind):
    r = BoardRig(kind)
    eq(r.alerts.codes(), [], "a blank device reports nothing")
    d = r.provision()
    eq(r.running(), 0, "slot")
    eq((d.st.run_version, d.st.seq), (1, 1), "version, seq")
    assert not d.trial
    r.close()


def update_confirm(kind, name=None, block=48):
    r = BoardRig(kind)
    r.provision()
    d = r.update(name, block)
    assert d.trial and r.board.boot.in_trial()
    eq(r.running(), 1, "trial slot")
    eq(d.st.seq, 1, "seq before confirm")
    d.confirm()
    eq(d.st.seq, 2, "seq after confirm")
    d = r.reboot()
    assert not d.trial and not r.board.boot.in_trial()
    eq((r.running(), r.board.boot.confirmed()), (1, 1), "running, confirmed")
    eq(d.st.run_version, 2, "version")
    assert r.alerts.codes()[-1] == ALERT_VERSION_CHANGED
    same_as_file(r.images[4], r.board.slots[1].area.read, "installed bytes")
    d = r.reboot()
    eq(r.running(), 1, "stays on the new slot")
    r.close()
    return r


def revert(kind):
    r = BoardRig(kind)
    r.provision()
    d = r.update()
    d.revert()
    assert d.reset_needed and not r.board.boot.in_trial()
    d = r.reboot()
    eq(r.running(), 0, "back on the confirmed slot")
    eq((d.st.seq, d.st.run_version), (1, 1), "seq, version")
    assert r.alerts.codes()[-1] == ALERT_BOOT_VERIFY_FAIL
    try:
        d.confirm()
        raise AssertionError("confirm outside a trial")
    except OtaError as e:
        eq(e.reason, NOT_IN_TRIAL, "reason")
    r.close()


def trial_runs_out(kind, trials=None):
    r = BoardRig(kind, trials)
    r.provision()
    d = r.update()
    for _ in range(r.cfg.trials - 1):
        d = r.reboot()
        assert d.trial, "still on trial"
    d = r.reboot()          # no trial boot left: the bootloader goes back
    eq(r.running(), 0, "reverted")
    assert not d.trial
    eq(d.st.phase, S.IDLE, "phase")
    eq(r.alerts.got[-1][:2], (ALERT_BOOT_VERIFY_FAIL, ACTIVATION_FAILED), "alert")
    rejected(r, r.images[1], REVERTED_IMAGE)  # the image that failed is not taken again
    d = r.update(r.images[2])  # another image is (the same firmware, deflate)
    d.confirm()
    eq(r.reboot().st.run_version, 2, "version")
    r.close()


def rejections(kind):
    r = BoardRig(kind)
    r.provision()
    for name, why in (("core_other_hw.ota", WRONG_HARDWARE),
                      ("core_other_man.ota", WRONG_MANUFACTURER),
                      ("img_other_key.ota", UNKNOWN_KEY)):
        rejected(r, name, why)
    r.close()


def rejected(r, name, why, before_payload=True):
    """Feed image `name`; it must be refused with reason `why`, the running slot kept."""
    img = Image(name)
    d = r.dev
    off = d.begin()
    top = 0
    try:
        while True:
            off = d.feed(off, img[off:off + 48])
            top = max(top, off)
            if off >= len(img):
                d.end()
                raise AssertionError("%s accepted" % name)
    except OtaError as e:
        eq(e.reason, why, name)
    if before_payload:
        hl = fmt.parse_header(img[:256]).length
        assert top <= hl + 6 + (img[hl + 2] | img[hl + 3] << 8), "fetched past the manifest"
    eq(r.alerts.got[-1][:2], (ALERT_VERIFY_FAIL, why), "alert")
    run = r.running()
    d = r.reboot()
    eq(r.running(), run, "running slot kept")
    eq(d.st.phase, S.IDLE, "phase")


def rollback(kind):
    r = BoardRig(kind)
    r.provision()
    r.update().confirm()
    r.reboot()
    rejected(r, r.images[3], ROLLBACK)
    eq((r.running(), r.dev.st.seq), (1, 2), "running, seq")
    r.close()


def resume(kind, name=None):
    r = BoardRig(kind)
    r.provision()
    img = Image(name or r.images[1])
    r.download(img, 48, limit=150)
    done = r.dev.st.next
    assert done > 0, "some sectors written"
    d = r.reboot()
    eq(d.st.phase, S.DOWNLOADING, "phase")
    off = d.begin()
    jumps = []
    while not d.done():
        nxt = d.feed(off, img[off:off + 48])
        if nxt != off + 48 and nxt < len(img):
            jumps.append(nxt)
        off = nxt
    assert jumps, "jumped to the checkpoint"
    eq(d.st.phase, S.HELD, "held")
    eq(d.schedule(0), ACT_SUCCESS, "outcome")
    assert r.reboot().trial
    r.close()


def damaged_before_activation(kind):
    r = BoardRig(kind)
    r.provision()
    r.download(Image(r.images[1]))
    d = r.dev
    d.schedule(r.clock.now() + 10)
    r.flip(1, 100)
    r.clock.advance(20)
    eq(d.tick(), ACT_FAILURE, "outcome")
    assert ALERT_FUTURE_NOT_ACTIONED in r.alerts.codes()
    r.reboot()
    eq(r.running(), 0, "confirmed image kept")
    assert r.board.boot.pending() is None
    r.close()


def collects(kind):
    """A board of a port with a small heap gives agent.update.Device gc.collect as its
    collect (run before a download's long-lived buffers are made); the unix board, over the
    host's heap, none."""
    import gc
    r = BoardRig(kind)
    eq(getattr(r.board, "collect", None), None if kind == "unix" else gc.collect, "collect")
    r.close()


def core(kind):
    """Every scenario above on a board of this kind, one after the other (each on a fresh
    board): provision, update and confirm (raw and deflate), revert, a trial that runs out,
    rejections, rollback, resume (raw and deflate), damage found before activation."""
    z = IMAGES[kind][2]
    provision(kind)
    update_confirm(kind)
    update_confirm(kind, z, 63)
    revert(kind)
    trial_runs_out(kind, 2)
    rejections(kind)
    rollback(kind)
    resume(kind)
    resume(kind, z)
    damaged_before_activation(kind)
