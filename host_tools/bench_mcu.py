"""make bench-mcu: the agent's figures inside MicroPython's Cortex-M3 firmware under QEMU.

  python -m host_tools.bench_mcu [--out bench/mcu.json] [--step 1024]

Each measurement runs bench/mp_mcu.py in a fresh emulator. Instruction counts come from
-icount shift=0 (one Cortex-M3 instruction = 1 ns of virtual time, read with
time.ticks_us()), so they are the same on every run; heap bytes come from gc.mem_alloc().
The heap minima are bisected (in --step bytes) over the firmware's run-time heap size.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

from host_tools import mcu
from host_tools.mpy import device_sizes

ROOT = mcu.ROOT
DATA = os.path.join(ROOT, "build", "testdata")
WORK = os.path.join(mcu.BUILD, "bench")
BLOCK = 48
SECTOR = 4096
PAYLOAD = 256 * 1024
MAN, TYPE = 0x1234, 0x0001
# the modules a device running an update imports (boards/qemu/run.py's session)
IMPORTS = ("agent.update", "agent.zcl.client", "agent.store.check", "agent.crypto.cose", "agent.crypto.p256",
           "agent.crypto.trust", "agent.image.inflate", "hal.serial", "boards.qemu.board")
PATHS = {"frozen": [".frozen", "/rom/bench", "/rom/lib"], "romfs": ["/rom/lib", "/rom/bench"],
         "mpy": ["/heap/lib", "/rom/bench"]}
FIRMWARE = {"frozen": "agent", "romfs": "bare", "mpy": "bare"}


def payload_offset(img):
    hl = int.from_bytes(img[6:8], "little")
    off = hl
    for i in range(3):
        n = int.from_bytes(img[off + 2:off + 6], "little")
        off += 6 + (n if i < 2 else 0)
    return off


def frames_file(image, out, block=BLOCK):
    """Each block of image as an Image Block Response, for bench/mp_mcu.Frames: a u16
    stride S, then per block the frame padded to S bytes and its u16 length (one read a
    block lands the frame at the start of the receive buffer)."""
    from agent.zcl import server as zcl_server
    with open(image, "rb") as f:
        img = f.read()
    ver = int.from_bytes(img[14:18], "little")
    frames = [bytes(zcl_server.build(zcl_server.encode_block_response, 0, MAN, TYPE, ver, off,
                                     img[off:off + block]))
              for off in range(0, len(img), block)]
    stride = max(len(fr) for fr in frames)
    with open(out, "wb") as f:
        f.write(stride.to_bytes(2, "little"))
        for fr in frames:
            f.write(fr + bytes(stride - len(fr)) + len(fr).to_bytes(2, "little"))
    return img


def sign(fw, out, compress):
    """Sign fw into out, once: a signature differs at every signing (ECDSA), and the same
    bytes at the same places keep the instruction counts and heap figures the same."""
    cache = os.path.join(WORK, "signed", os.path.basename(out))
    key = os.path.join(DATA, "dev_priv.pem")
    if not (os.path.exists(cache) and os.path.getmtime(cache) >= max(
            os.path.getmtime(fw), os.path.getmtime(key))):
        _sign(fw, cache, compress, key)
    shutil.copy(cache, out)


def _sign(fw, out, compress, key):
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cmd = [sys.executable, "-m", "host_tools", "sign", "--key", key, "--in", fw, "--out", out, "--version", "2",
           "--seq", "2", "--manufacturer", "0x1234", "--image-type", "1", "--hw-min", "1",
           "--hw-max", "3", "--force"] + (["--compress"] if compress else [])
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise mcu.McuError("sign: %s" % (r.stderr or r.stdout).strip())


def stage(delta=False, pair=None):
    """The ROMFS image: device code (lib/), bench/mp_update, mp_mcu and mp_lock, the images
    and frames files; with delta, those of delta_images() too (of pair, (old, new) payloads,
    when given)."""
    tree = os.path.join(WORK, "rom")
    shutil.rmtree(tree, ignore_errors=True)
    for rel in mcu.romfs_sources():
        mcu.compile_to(os.path.join(ROOT, rel), os.path.join(tree, "lib", rel[:-3] + ".mpy"))
    for name in ("mp_update", "mp_mcu", "mp_lock"):
        mcu.compile_to(os.path.join(ROOT, "bench", name + ".py"),
                       os.path.join(tree, "bench", name + ".mpy"))
    d = os.path.join(tree, "d")
    os.makedirs(d)
    info = {}
    for name, src, key in (("v2", "core_v2.ota", "core_pub.bin"),
                           ("v2z", "core_v2z.ota", "core_pub.bin")):
        shutil.copy(os.path.join(DATA, src), os.path.join(d, name + ".ota"))
        shutil.copy(os.path.join(DATA, key), os.path.join(d, name + ".pub"))
        info[name] = frames_file(os.path.join(d, name + ".ota"), os.path.join(d, name + ".fr"))
    for name, compress in (("u256", False), ("u256z", True)):
        sign(os.path.join(DATA, "fw_256k.bin"), os.path.join(d, name + ".ota"), compress)
        shutil.copy(os.path.join(DATA, "dev_pub.bin"), os.path.join(d, name + ".pub"))
        info[name] = frames_file(os.path.join(d, name + ".ota"), os.path.join(d, name + ".fr"))
    if delta:
        delta_images(d, info, pair)
    rom = os.path.join(WORK, "bench.romfs")
    mcu.romfs(tree, rom)
    return rom, info


def delta_pair():
    """(old, new): the first PAYLOAD bytes of the raw images of host_tools/bench_delta.py's
    minor Cortex-M release pair (a device's running firmware and its next release); raises
    bench_delta.PairError when they cannot be built here."""
    from host_tools import bench_delta
    old, new = [p[:2] for p in bench_delta.FIRMWARE_PAIRS if p[2] == "minor"][0]
    out = []
    for commit in (old, new):
        with open(bench_delta.firmware(os.path.join(ROOT, "bench", "work"), commit), "rb") as f:
            out.append(f.read(PAYLOAD))
    return out


def delta_images(d, info, pair=None):
    """d/o256 (the old firmware, raw, version 1: what the device runs), d/d256 (the new one
    as a delta against it, version 2) and d/n256z (the new one, per-sector deflate, version
    2), signed once (cached in WORK/signed by the digest of the payloads and the key), with
    their frames files; of pair, (old, new) payloads, when given. None when the pair cannot
    be built (info['delta_why'] says why)."""
    from host_tools import bench_delta, keys
    from host_tools.imagebuild import build
    try:
        old, new = pair or delta_pair()
    except bench_delta.PairError as e:
        info["delta_why"] = str(e)
        return None
    with open(os.path.join(DATA, "dev_pub.bin"), "rb") as f:  # the test data's keys are
        pub = f.read()                                        # made anew at each run
    tag = hashlib.sha256(old + new + pub).hexdigest()[:12]
    key = None
    for name, fw, args in (("o256", old, dict(version=1, seq=1)),
                           ("d256", new, dict(version=2, seq=2, base=old, base_version=1)),
                           ("n256z", new, dict(version=2, seq=2, compress=True))):
        cache = os.path.join(WORK, "signed", "%s-%s.ota" % (name, tag))
        if not os.path.exists(cache):
            key = key or keys.load_private(os.path.join(DATA, "dev_priv.pem"))
            os.makedirs(os.path.dirname(cache), exist_ok=True)
            img = build(fw, key, manufacturer=MAN, image_type=TYPE, hw_min=1, hw_max=3,
                        **args)
            with open(cache + ".part", "wb") as f:
                f.write(img.tobytes())
            os.replace(cache + ".part", cache)
        shutil.copy(cache, os.path.join(d, name + ".ota"))
        shutil.copy(os.path.join(DATA, "dev_pub.bin"), os.path.join(d, name + ".pub"))
        info[name] = frames_file(os.path.join(d, name + ".ota"), os.path.join(d, name + ".fr"))
    return tag


def run(rom, config, call, heap=mcu.HEAP_MAX, icount=True, timeout=900, psram=None):
    """bench/mp_mcu.<call> on the device (update: bench/mp_update's, locked: bench/mp_lock's);
    its result dict, or raises McuError. psram: a host file behind the board's PSRAM (its
    flash), else the emulator's own memory."""
    code = "import sys\nsys.path[:] = %r\n" % PATHS[config]
    if config == "mpy":
        code += "import mp_mcu\nmp_mcu.mount_heapfs('/rom', '/heap')\n"
    module = "mp_lock" if call.startswith("locked(") else \
        "mp_update" if call.startswith("update(") else "mp_mcu"
    code += "import %s\n%s.%s\n" % (module, module, call)
    with mcu.Mcu(mcu.firmware(FIRMWARE[config]), heap=heap, rom=rom, icount=icount,
                 psram=psram) as m:
        out, err = m.exec(code, timeout)
    if err:
        raise mcu.McuError(failure(err))
    for line in out.splitlines():
        if line.startswith("result "):
            return json.loads(line[7:])
    raise mcu.McuError("no result: %s" % out.strip()[-200:])


def failure(err):
    """One line from a device's traceback: its innermost frame's file and function, then the
    exception, e.g. "agent/crypto/p256.py _odd_multiples: MemoryError: memory allocation
    failed, allocating 66 bytes"."""
    lines = err.strip().splitlines()
    where = ""
    for line in lines:
        line = line.strip()
        if line.startswith('File "') and ", in " in line:
            where = "%s %s: " % (line[6:line.index('"', 6)], line[line.rindex(", in ") + 5:])
    return where + (lines[-1] if lines else "no output")


def ingest(rom, info, name, alloc=True, payload=64 * 1024, config="frozen"):
    img = info[name]
    po = payload_offset(img)
    nblocks = (len(img) + BLOCK - 1) // BLOCK
    start = (po + BLOCK - 1) // BLOCK
    stop = nblocks - 1
    bounds = set()
    for j in range(start, stop):
        a, b = j * BLOCK - po, j * BLOCK + BLOCK - po
        if b // SECTOR > a // SECTOR:
            bounds.add(j)
    d = "/rom/d/%s" % name
    return run(rom, config, "ingest(%r, %r, %r, %d, %d, %d, %d, %r)" % (
        d + ".ota", d + ".fr", d + ".pub", BLOCK, start, stop, payload,
        sorted(bounds) if alloc else None))


def lock_spans(img, block=BLOCK):
    """The spans [first, last] of blocks wholly in the payload that complete no flash sector
    (raw) or chunk (deflate, delta): the blocks the per-block path alone handles."""
    from agent.image import fmt, pack
    from host_tools.imageinfo import walk_elements
    m = pack.peek(img[:fmt.MANIFEST_END_MAX])
    elems, _end = walk_elements(img, fmt.parse_header(img).length, len(img))
    data = dict((tag, o + fmt.ELEM_SIZE) for tag, _n, o in elems)
    po = data[fmt.TAG_PAYLOAD]
    if m.encoding == fmt.ENC_RAW:
        ends = set(range(m.sector, m.size, m.sector))
    else:  # where each sector's chunk ends in the payload element's data (a copied
        # sector has none)
        table = img[data[fmt.TAG_TABLE]:data[fmt.TAG_TABLE] + m.table_size]
        ends = set(e[1] + e[2] for e in
                   (pack.unpack_entry(m.encoding, table, k) for k in range(m.sectors)) if e[2])
    start = (po + block - 1) // block
    last = (len(img) - 1) // block - 1   # the last block runs the verification
    spans = []
    a = None
    for j in range(start, last + 1):
        lo, hi = j * block - po, j * block + block - po
        bound = any(lo < e <= hi for e in ends)
        if bound:
            if a is not None:
                spans.append((a, j - 1))
            a = None
        elif a is None:
            a = j
    if a is not None:
        spans.append((a, last))
    return spans


def heap_locked(rom, info, name, flash=None):
    """The download run with the heap locked over lock_spans(): its result, or McuError.
    flash: as update_ok's (a delta's device, running its old image)."""
    d = "/rom/d/%s" % name
    spans = lock_spans(info[name])
    r = run(rom, "frozen", "locked(%r, %r, %r, %d, %r, %d, %r)" % (
        d + ".ota", d + ".fr", d + ".pub", BLOCK, spans,
        PAYLOAD if flash is not None else 64 * 1024, flash is not None), psram=_copy(flash))
    r["blocks"] = sum(b - a + 1 for a, b in spans)
    return r


BUDGET = 4   # a heap minimum: the update within this many times its instructions in 1 MiB


def update_ok(rom, config, name, heap, check=False, budget=0, flash=None, pad=0, why=None):
    """The update's result, or None when it did not complete (then, given a list why, where
    and how it failed is appended to it: failure()). flash: the PSRAM file of a device
    already running an image (installed()), copied for this run; pad: bytes the main holds
    through it (another heap layout)."""
    d = "/rom/d/%s" % name
    try:
        r = run(rom, config, "update(%r, %r, %r, %d, %d, %r, %d, %r, %d)" % (
            d + ".ota", d + ".fr", d + ".pub", BLOCK, PAYLOAD, check, budget,
            flash is not None, pad), heap=heap, psram=_copy(flash))
        if r.get("ok"):
            return r
        e = "no result: %s" % r
    except mcu.McuError as x:
        e = str(x)
    if why is not None:
        why.append(e)
    return None


def _copy(flash):
    if flash is None:
        return None
    run_file = os.path.join(WORK, "run.psram")
    shutil.copy(flash, run_file)
    return run_file


def installed(rom, config, name):
    """The PSRAM file (WORK/<name>.psram) of a device given d/<name> at the factory and
    reset: the device a delta against that image updates."""
    path = os.path.join(WORK, name + ".psram")
    with open(path, "wb") as f:
        f.truncate(mcu.PSRAM_SIZE)
    d = "/rom/d/%s" % name
    r = run(rom, config, "install(%r, %r, %d)" % (d + ".ota", d + ".pub", PAYLOAD),
            psram=path)
    if not r.get("ok"):
        raise mcu.McuError("%s: not installed: %s" % (name, r))
    return path


# Heap layouts the heap minima are measured in as well: the bench's main holding this many
# bytes more through the update (update()'s pad), so that every later allocation lands
# elsewhere. Below the minimum, whether an update completes is not monotonic in the heap's
# size, and the minimum of one layout moves by a few KiB with any change that moves an
# allocation (the same code built twice can differ by 1 KiB): two builds are compared by
# the minima over these layouts, not by one of them.
LAYOUTS = (16, 48, 112, 240)


def layouts(rom, config, name, step, first, say=None, flash=None, fails=None):
    """The heap minimum of the update in each layout: [first (no pad, measured before), then
    one per LAYOUTS], bytes; each search starts from first. fails: heap_min's, per layout."""
    return [first] + [heap_min(rom, config, name, step, first, say, flash, pad, fails)
                      for pad in LAYOUTS]


def heap_min(rom, config, name, step, guess, say=None, flash=None, pad=0, fails=None):
    """The smallest heap (a multiple of step) in which the whole update completes within
    BUDGET times the instructions it takes in the largest heap (deterministic under
    -icount): a bracket found from guess outwards (doubling), then bisected. pad: bytes the
    main holds through the update, a heap layout of its own (update()). fails: a list, to
    which how the update failed one step below the minimum (failure()) is appended: which
    of its allocations decides the minimum."""
    full = update_ok(rom, config, name, mcu.HEAP_MAX, flash=flash, pad=pad)
    if not full:
        raise mcu.McuError("%s %s: no update in the largest heap" % (config, name))
    budget = BUDGET * full["insns"]
    why = {}

    def ok(h):
        e = []
        good = update_ok(rom, config, name, h, budget=budget, flash=flash,
                         pad=pad, why=e) is not None
        if say:
            say("  %s %s pad %d in %d bytes: %s" % (config, name, pad, h,
                                                   "done" if good else "failed: " + e[0]))
        if e:
            why[h] = e[0]
        return good
    guess = max(step, guess // step * step)
    width = 4 * step
    if ok(guess):
        hi, lo = guess, guess - width
        while lo > 0 and ok(lo):
            hi, width = lo, width * 2
            lo = hi - width
        lo = max(lo, 0)
    else:
        lo, hi = guess, guess + width
        while not ok(hi):
            if hi >= mcu.HEAP_MAX:
                raise mcu.McuError("%s %s: no update in the largest heap" % (config, name))
            lo, width = hi, width * 2
            hi = min(lo + width, mcu.HEAP_MAX)
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if ok(mid):
            hi = mid
        else:
            lo = mid
    if fails is not None:
        fails.append(why.get(hi - step) or "")
    return hi


def p256_args():
    """A public key, digest and signature that verify (from the P-256 test data)."""
    with open(os.path.join(DATA, "p256_wycheproof.txt")) as f:
        for line in f:
            if line.startswith("#"):
                continue
            tcid, res, pub, sig, msg = line.split()
            if res == "V":
                return pub, hashlib.sha256(bytes.fromhex(msg)).hexdigest(), sig
    raise mcu.McuError("no valid P-256 case")


def p256_run(rom, lent=False):
    """bench/mp_mcu.p256 of p256_args(), frozen: without a work buffer, or (lent) with one
    as the device lends it, its slot writer's read-back buffer (READBACK bytes)."""
    from agent.store.writer import READBACK
    pub, dig, sig = p256_args()
    return run(rom, "frozen", "p256(%r, %r, %r, %d)" % (pub, dig, sig,
                                                        READBACK if lent else 0))


def measure(step, say):
    rom, info = stage(delta=True)
    out = {}
    t0 = time.monotonic()
    raw = ingest(rom, info, "v2")
    say("raw 48-byte blocks: %s" % raw)
    z = ingest(rom, info, "v2z", alloc=False)
    say("deflate 48-byte blocks: %s" % z)
    out["insns_per_block_raw_48"] = raw["insns_per_block"]
    out["insns_per_block_deflate_48"] = z["insns_per_block"]
    out["insns_per_block_bare_48"] = raw["bare_insns_per_block"]
    out["alloc_bytes_per_block_48"] = round(raw["alloc_steady_per_block"], 1)
    out["alloc_bytes_per_sector"] = round(raw["alloc_per_sector"], 1)
    for name, key in (("v2", "raw"), ("v2z", "deflate")):
        out["heap_locked_blocks_%s_48" % key] = heap_locked(rom, info, name)["locked_blocks"]
    out["insns_p256_verify"] = p256_run(rom)["insns"]
    out["insns_p256_verify_lent"] = p256_run(rom, lent=True)["insns"]
    chk = update_ok(rom, "frozen", "u256", mcu.HEAP_MAX, check=True)
    if not chk:
        raise mcu.McuError("the 256 KiB update did not complete")
    out["insns_boot_check_256k"] = chk["boot_check_insns"]
    for config in ("mpy", "romfs", "frozen"):
        out["heap_after_import_" + config] = run(rom, config, "imports(%r)" % (IMPORTS,))["heap"]
    say("figures so far: %s (%.0f s)" % (out, time.monotonic() - t0))
    # each search starts from what the figures before it suggest: the deflate path needs
    # what the raw one does and its inflate window; ROMFS adds its module objects
    fr = out["heap_fail_layouts_frozen_raw"] = []
    fz = out["heap_fail_layouts_frozen_deflate"] = []
    fm = out["heap_fail_layouts_romfs_raw"] = []
    raw = out["heap_min_update_frozen_raw"] = heap_min(rom, "frozen", "u256", step, 48 * 1024,
                                                       say, fails=fr)
    out["heap_min_update_frozen_deflate"] = heap_min(rom, "frozen", "u256z", step,
                                                     raw + 4096, say, fails=fz)
    for key, name, fails in (("raw", "u256", fr), ("deflate", "u256z", fz)):
        out["heap_min_layouts_frozen_" + key] = layouts(
            rom, "frozen", name, step, out["heap_min_update_frozen_" + key], say, None, fails)
    out["heap_min_update_romfs_raw"] = heap_min(
        rom, "romfs", "u256", step,
        raw + out["heap_after_import_romfs"] - out["heap_after_import_frozen"], say, fails=fm)
    out["heap_min_layouts_romfs_raw"] = layouts(rom, "romfs", "u256", step,
                                                out["heap_min_update_romfs_raw"], say, None, fm)
    say("heap minima done (%.0f s)" % (time.monotonic() - t0))
    if info.get("delta_why"):
        say("delta figures not measured: %s" % info["delta_why"])
        out["not_measured"] = {"delta": info["delta_why"]}
    else:
        out.update(delta_figures(rom, info, step, say, out["heap_min_update_frozen_deflate"]))
        say("delta figures done (%.0f s)" % (time.monotonic() - t0))
    out["firmware_bytes_agent"] = mcu.image_bytes(mcu.firmware("agent")) - \
        mcu.image_bytes(mcu.firmware("bare"))
    out["mpy_bytes_device"] = mpy_bytes_device()
    return out


def delta_figures(rom, info, step, say, guess, config="frozen"):
    """A delta update of the release pair delta_images() signs, on a device running the old
    image (installed()), agent frozen: delta_costs() and the smallest heap of the whole
    delta update."""
    out, flash = delta_costs(rom, info, say, config)
    fails = out["heap_fail_layouts_%s_delta" % config] = []
    h = out["heap_min_update_%s_delta" % config] = heap_min(rom, config, "d256", step, guess,
                                                            say, flash, fails=fails)
    out["heap_min_layouts_%s_delta" % config] = layouts(rom, config, "d256", step, h, say,
                                                         flash, fails)
    return out


def _delta_alloc(rom, config, flash):
    # the most heap bytes a DELTA-mode sector of the delta update allocates (a run of its own)
    d = "/rom/d/d256"
    r = run(rom, config, "delta_sectors(%r, %r, %r, %d, %d, True)" % (
        d + ".ota", d + ".fr", d + ".pub", BLOCK, PAYLOAD), psram=_copy(flash))
    return max(r["alloc"]) if r["alloc"] else None


def delta_costs(rom, info, say=None, config="frozen"):
    """The instructions a DELTA-mode sector takes to be made from its chunk and the old
    slot (mean over the update's delta sectors), and those of receiving a deflate sector's
    blocks (the new image signed per-sector deflate: its payload blocks' instructions over
    its sectors); with the PSRAM file of the device running the old image."""
    from agent.image import fmt, pack
    flash = installed(rom, config, "o256")
    d = "/rom/d/d256"
    r = run(rom, config, "delta_sectors(%r, %r, %r, %d, %d)" % (
        d + ".ota", d + ".fr", d + ".pub", BLOCK, PAYLOAD), psram=_copy(flash))
    made = r.get("mode_%d" % fmt.MODE_DELTA)
    if not made:
        raise mcu.McuError("the delta update made no delta sector: %s" % sorted(r))
    if say:
        say("delta sectors: %s" % r)
    z = ingest(rom, info, "n256z", False, PAYLOAD, config)
    m = pack.peek(info["n256z"][:fmt.MANIFEST_END_MAX])
    dm = pack.peek(info["d256"][:fmt.MANIFEST_END_MAX])
    out = {"insns_per_sector_delta_4k": sum(made) // len(made),
           "insns_per_sector_delta_4k_max": max(made),
           "insns_per_sector_delta_decode_4k": sum(r["decode"]) // len(r["decode"]),
           "insns_per_sector_copy_4k": r["copy_insns"] // max(1, r["copy_sectors"]),
           "alloc_bytes_per_sector_delta_4k": _delta_alloc(rom, config, flash),
           "insns_update_delta": r["insns"],
           "sectors_delta": len(made), "sectors_copy": r["copy_sectors"],
           "blocks_update_delta": -(-dm.enc_size // BLOCK),
           "blocks_update_deflate": -(-m.enc_size // BLOCK),
           "insns_per_sector_deflate_4k": z["insns_per_block"] * m.enc_size // (BLOCK * m.sectors)}
    return out, flash


def mpy_bytes_device():
    """The .mpy bytes of the code this firmware's device loads (host_tools.mpy.device_sizes,
    computed host-side): the agent, hal flash, boot, clock and hal/serial, its link."""
    return sum(device_sizes(os.path.join(mcu.BUILD, "mpy-device"), link="hal/serial.py")
               .values())


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m host_tools.bench_mcu")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "mcu.json"))
    ap.add_argument("--step", type=int, default=1024, help="heap bisection step, bytes")
    a = ap.parse_args(argv)
    why = mcu.unavailable()
    if why:
        print("bench-mcu: not run: %s" % why, file=sys.stderr)
        return 1

    def say(text):
        print("bench-mcu: " + text, flush=True)
    t0 = time.monotonic()
    try:
        figures = measure(a.step, say)
    except mcu.McuError as e:
        print("bench-mcu: %s" % e, file=sys.stderr)
        return 1
    doc = {"figures": figures,
           "target": "MicroPython %s qemu port, board %s (Cortex-M3), qemu-system-arm -icount %s"
                     % (mcu.PIN[:7], mcu.BOARD, mcu.ICOUNT),
           "block": BLOCK, "seconds": round(time.monotonic() - t0)}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    for k in sorted(figures):
        print("%-34s %s" % (k, figures[k]))
    print("bench-mcu: wrote %s (%.0f s)" % (os.path.relpath(a.out, ROOT), time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
