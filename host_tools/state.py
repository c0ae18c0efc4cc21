"""otatool state: what a device's flash holds, read from a flash file without changing it.

The unix board's flash file (otatool device --flash), or a dump of another board's flash:
an rp2 storage region (rp2.Flash(), its layout follows from its size) or a whole ESP32
flash (its partition table at 0x8000 says where ota_0, ota_1 and ota_journal are).
Shown: the bootloader's state, each slot (empty, or the image in it: version, sequence
number, size, encoding, key id, and whether its payload passes the boot-time CRC-32 check),
the agent's journal (phase, anti-rollback counter, the held image and its Manufacturer Image
hash, the activation time) and the alerts not yet acknowledged by a server.
"""
import binascii
import json
import os
import struct

from agent import fmt
from agent import state as S
from agent.errors import OtaError, BAD_LAYOUT, message
from host_tools import argtypes
from host_tools.cli import InputError, out, verbosity

PHASES = {S.IDLE: "idle", S.DOWNLOADING: "downloading", S.HELD: "held",
          S.ACTIVATING: "activating"}
ALERT_NAMES = {fmt.ALERT_VERIFY_OK: "verification successful",
               fmt.ALERT_VERIFY_FAIL: "verification failed",
               fmt.ALERT_BOOT_VERIFY_FAIL: "verification failed at power on",
               fmt.ALERT_VERSION_CHANGED: "executing firmware version changed",
               fmt.ALERT_FUTURE_ACTIONED: "future-dated activation actioned",
               fmt.ALERT_FUTURE_NOT_ACTIONED: "future-dated activation not actioned"}
ZIGBEE_EPOCH = 946684800
BOARDS = ("auto", "unix", "rp2", "esp32")
ESP_TABLE = 0x8000          # ESP-IDF partition table offset and entry format
ESP_ENTRY = "<HBBII16sI"    # magic 0x50AA, type, subtype, offset, size, label, flags
ESP_ENTRY_SIZE = 32
ESP_MAGIC = 0x50AA

EXAMPLES = """examples:
  otatool state dev.flash
  otatool state --json dev.flash | jq .journal.phase
  otatool state --board rp2 pico-storage.bin       # a dump of rp2.Flash()
  otatool state esp32-flash.bin      # a whole-flash dump (esptool read_flash): its table says

A live device: read its flash first (esptool read_flash, or mpremote with the board's block
device); the update link carries no state query."""


class FileFlash:
    """A read-only flash over the bytes of a file (hal/flash.py interface)."""

    def __init__(self, data, sector, write_size=4, erased=0xFF):
        self.data = data
        self.size = len(data)
        self.sector_size = sector
        self.write_size = write_size
        self.erased = erased

    def read(self, offset, buf):
        n = len(buf)
        if offset < 0 or offset + n > self.size:
            raise OtaError(BAD_LAYOUT, "read of %d bytes at 0x%X beyond the file's %d bytes"
                           % (n, offset, self.size))
        buf[:] = self.data[offset:offset + n]

    def write(self, offset, data):
        raise OtaError(BAD_LAYOUT, "the flash file is read only")

    def erase(self, offset, size):
        raise OtaError(BAD_LAYOUT, "the flash file is read only")


class Regions:
    """Where the parts are: boot state (area or None), journal area, two slot areas and
    their meta size, and how the boot state is read ("sim" or "esp32")."""

    def __init__(self, boot, journal, slots, meta, boot_kind):
        self.boot = boot
        self.journal = journal
        self.slots = slots
        self.meta = meta
        self.boot_kind = boot_kind


def _unix(flash):
    from boards.unix import layout as L
    from hal.flash import Area
    lay = L.layout()
    if flash.size != lay.size:
        raise InputError("not a unix board flash file: %d bytes, the layout has %d"
                         % (flash.size, lay.size))
    return Regions(Area(flash, lay.boot_off, lay.boot_size),
                   Area(flash, lay.journal_off, lay.journal_size),
                   [Area(flash, o, lay.slot_size) for o in lay.slot_off], lay.meta_size, "sim")


def _rp2(flash, slot_size=None):
    from boards.rp2 import layout as L
    from hal.flash import Area
    slot_size = slot_size or L.SLOT_SIZE
    try:
        _fs, boot, journal, slots = L.regions(flash.size, slot_size)
    except OtaError:
        raise InputError("not an rp2 storage region with %d-byte slots: %d bytes"
                         % (slot_size, flash.size))
    return Regions(Area(flash, boot, L.BOOT_SIZE), Area(flash, journal, L.JOURNAL_SIZE),
                   [Area(flash, o, slot_size) for o in slots], L.META_SIZE, "sim")


def esp_partitions(data):
    """{label: (type, subtype, offset, size)} from an ESP-IDF partition table at 0x8000."""
    parts = {}
    off = ESP_TABLE
    while off + ESP_ENTRY_SIZE <= len(data) and off < ESP_TABLE + 0xC00:
        magic, ptype, sub, poff, size, label, _flags = struct.unpack_from(ESP_ENTRY, data, off)
        if magic != ESP_MAGIC:
            break
        parts[label.rstrip(b"\x00").decode("ascii", "replace")] = (ptype, sub, poff, size)
        off += ESP_ENTRY_SIZE
    return parts


def _esp32(flash):
    from boards.esp32 import layout as L
    from hal.flash import Area
    parts = esp_partitions(flash.data)
    if not parts:
        raise InputError("no ESP-IDF partition table at 0x%X" % ESP_TABLE)
    need = list(L.SLOT_LABELS) + [L.JOURNAL_LABEL]
    missing = [n for n in need if n not in parts]
    if missing:
        raise InputError("partition table has no %s" % ", ".join(missing))
    for n in need:
        _t, _s, off, size = parts[n]
        if off + size > flash.size or off % L.SECTOR or size % L.SECTOR:
            raise InputError("partition %s (0x%X, %d bytes) is not in the %d-byte dump"
                             % (n, off, size, flash.size))
    j = parts[L.JOURNAL_LABEL][2]
    return Regions(Area(flash, j + L.RECORD_OFF, L.RECORD_SIZE),
                   Area(flash, j + L.JOURNAL_OFF, L.JOURNAL_SIZE),
                   [Area(flash, parts[n][2], parts[n][3]) for n in L.SLOT_LABELS],
                   L.META_SIZE, "esp32")


def _boot_state(reg):
    if reg.boot_kind == "sim":
        from hal.bootsim import SimBoot
        b = SimBoot(reg.boot)
        reverted, reason, boots = b.boot_info()
        return {"confirmed_slot": b.confirmed(), "pending_slot": b.pending(),
                "trials_left": b.trials_left(), "last_boot_slot": b.running(),
                "in_trial": b.in_trial(), "last_boot_reverted": reverted,
                "last_boot_reason": reason,
                "last_boot_reason_text": message(reason) if reason else None,
                "boots": boots}
    from agent.journal import Journal
    from boards.esp32 import boot as B
    j = Journal(reg.boot, B.REC_LEN)
    rec = j.load()
    if rec is None:
        return {"record": None}
    v, trial, conf = struct.unpack(B.REC_FMT, rec)
    return {"record_version": v, "trial": trial, "confirmed": conf, "record_seq": j.seq,
            "note": "ESP-IDF's otadata decides the boot; the record is the agent's view"}


def _slot_state(area, meta, index):
    from agent.slot import Slot
    from agent import verify
    s = Slot(area, meta, index)
    res = {"index": index, "offset": area.base, "slot_size": area.size, "capacity": s.capacity}
    try:
        info = verify.read_meta(s)
    except OtaError as e:
        res["state"] = "empty" if "slot empty" in str(e) else "invalid"
        res["reason"] = str(e)
        return res
    m = info.manifest
    h = info.header
    res.update({"state": "image", "version": m.version, "seq": m.seq, "size": m.size,
                "encoding": "deflate" if m.encoding == fmt.ENC_DEFLATE else "raw",
                "manufacturer": h.manufacturer, "image_type": h.image_type,
                "hw_min": m.hw_min, "hw_max": m.hw_max, "kid": _hex(m.kid),
                "payload_sha256": _hex(m.sha256), "supplier_signed": info.trailer is not None})
    try:
        verify.check(s)
        res["crc_ok"] = True
    except OtaError as e:
        res["crc_ok"] = False
        res["crc_reason"] = str(e)
    return res


def _hex(b):
    return binascii.hexlify(bytes(b)).decode()


def _time(t):
    if t == S.WAIT_COMMAND:
        return "on an activation command"
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t + ZIGBEE_EPOCH))


def _journal_state(area):
    from agent.journal import Journal
    j = Journal(area, S.STATE_SIZE)
    rec = j.load()
    res = {"records_seq": j.seq, "bad_records": j.bad}
    if rec is None:
        res["phase"] = None
        return res
    st = S.State().unpack(rec)
    res.update({
        "phase": PHASES.get(st.phase, "unknown %d" % st.phase),
        "slot": st.slot,
        "device_seq": st.seq,
        "running_version": st.run_version,
        "next_sector": st.next,
        "sector_failures": st.fails,
        "activation_time": st.act_time,
        "activation": _time(st.act_time),
        "future_dated": bool(st.flags & S.F_FUTURE),
        "held_version": st.held_version,
        "held_seq": st.held_seq,
        "download_id": _hex(st.ident),
        "mi_sha256": _hex(st.mi_hash),
        "alerts": [{"code": a[0], "name": ALERT_NAMES.get(a[0], "alert"), "reason": a[1],
                    "reason_text": message(a[1]) if a[1] else None, "id": a[2],
                    "value": a[3]} for a in st.alerts],
    })
    return res


def detect(data):
    """The board whose layout the flash bytes have, where they say it: an ESP-IDF partition
    table with the agent's partitions, or the size of the unix board's flash file."""
    from boards.esp32 import layout as E
    from boards.unix import layout as U
    parts = esp_partitions(data)
    if parts and all(n in parts for n in E.SLOT_LABELS + (E.JOURNAL_LABEL,)):
        return "esp32"
    if len(data) == U.layout().size:
        return "unix"
    raise InputError("cannot tell the board from the file (%d bytes, no ESP-IDF partition "
                     "table with %s): give --board" % (len(data), ", ".join(
                         E.SLOT_LABELS + (E.JOURNAL_LABEL,))))


def read_state(path, board="auto", slot_size=None):
    """The state of the flash file at path as a JSON-ready dict."""
    with open(path, "rb") as f:
        data = f.read()
    if board == "auto":
        board = detect(data)
    if board == "esp32":
        from boards.esp32 import layout as L
        flash = FileFlash(data, L.SECTOR, L.WRITE_SIZE, L.ERASED)
        reg = _esp32(flash)
    elif board == "rp2":
        from boards.rp2 import layout as L
        flash = FileFlash(data, L.SECTOR, L.WRITE_SIZE, L.ERASED)
        reg = _rp2(flash, slot_size)
    else:
        from boards.unix import layout as L
        flash = FileFlash(data, L.SECTOR, L.WRITE_SIZE, L.ERASED)
        reg = _unix(flash)
    res = {"file": path, "board": board, "size": len(data), "boot": _boot_state(reg),
           "journal": _journal_state(reg.journal),
           "slots": [_slot_state(a, reg.meta, i) for i, a in enumerate(reg.slots)]}
    return res


def format_text(st, verbose=False):
    lines = []
    add = lines.append
    add("flash               %s (%s board, %d bytes)" % (st["file"], st["board"], st["size"]))
    b = st["boot"]
    if "confirmed_slot" in b:
        add("boot                confirmed slot %d, last boot ran slot %d, %d boots"
            % (b["confirmed_slot"], b["last_boot_slot"], b["boots"]))
        if b["pending_slot"] is not None:
            add("  pending           slot %d, %d trial boots left%s"
                % (b["pending_slot"], b["trials_left"], ", in trial" if b["in_trial"] else ""))
        if b["last_boot_reason"]:
            add("  last boot         %s E%d %s"
                % ("reverted:" if b["last_boot_reverted"] else "ran with",
                   b["last_boot_reason"], b["last_boot_reason_text"]))
    else:
        add("boot                %s" % (" ".join("%s=%s" % kv for kv in b.items())))
    for s in st["slots"]:
        head = "slot %d              " % s["index"]
        if s["state"] != "image":
            add(head + "%s (%s)" % (s["state"], s["reason"]))
            continue
        add(head + "version 0x%08X, seq %d, %d bytes %s, key id %s, CRC-32 %s"
            % (s["version"], s["seq"], s["size"], s["encoding"], s["kid"],
               "ok" if s["crc_ok"] else "BAD"))
        if verbose:
            add("  payload sha256    %s" % s["payload_sha256"])
            add("  product           manufacturer 0x%04X, image type 0x%04X, hw %d..%d"
                % (s["manufacturer"], s["image_type"], s["hw_min"], s["hw_max"]))
    j = st["journal"]
    if j["phase"] is None:
        add("journal             empty (a device never started)")
    else:
        add("journal             phase %s, device seq %d, running version 0x%08X"
            % (j["phase"], j["device_seq"], j["running_version"]))
        if j["phase"] == "downloading":
            add("  download          into slot %d, next sector %d" % (j["slot"], j["next_sector"]))
        if j["phase"] in ("held", "activating"):
            add("  held image        slot %d, version 0x%08X, seq %d, activation %s"
                % (j["slot"], j["held_version"], j["held_seq"], j["activation"]))
            add("  held mi_sha256    %s" % j["mi_sha256"])
        if verbose:
            add("  journal record    %d (%d bad slots)" % (j["records_seq"], j["bad_records"]))
        for a in j["alerts"]:
            add("  alert (unacked)   0x%04X %s, id %d%s, value 0x%08X"
                % (a["code"], a["name"], a["id"],
                   ", E%d %s" % (a["reason"], a["reason_text"]) if a["reason"] else "",
                   a["value"]))
    return "\n".join(lines)


def register(sub):
    p = sub.add_parser("state", help="show what a device's flash holds",
                       description="Show the slots, versions, sequence numbers, held image "
                                   "and its hash, the journal's\nphase and the alerts not yet "
                                   "acknowledged, read from a flash file (nothing is\nwritten).",
                       epilog=EXAMPLES)
    p.add_argument("flash", metavar="FLASH", help="the flash file or flash dump")
    p.add_argument("--board", choices=BOARDS, default="auto",
                   help="whose layout the file has; auto: esp32 when the file holds an "
                        "ESP-IDF partition table with the agent's partitions, unix when its "
                        "size is the unix flash file's (an rp2 dump needs --board rp2)")
    p.add_argument("--slot-size", type=argtypes.integer(2 * 4096, 1 << 30, "slot size"),
                   metavar="N", help="rp2: bytes of each slot (default: boards/rp2/layout.py's)")
    p.add_argument("--json", action="store_true", help="print JSON (on failure: "
                                                       "{\"ok\": false, \"code\", \"reason\"})")
    p.set_defaults(func=run_state, parser_error=p.error)


def run_state(args):
    if os.path.isdir(args.flash):
        raise InputError("%s is a directory" % args.flash)
    if args.slot_size is not None and args.board != "rp2":
        args.parser_error("--slot-size applies to --board rp2 only")
    st = read_state(args.flash, args.board, args.slot_size)
    if args.json:
        st["ok"] = True
        out(json.dumps(st, indent=2))
    else:
        out(format_text(st, verbosity() > 0))
    return 0
