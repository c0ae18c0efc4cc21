"""otatool state: what a device's flash holds, read from a flash file without changing it.

The unix board's flash file (otatool device --flash), or a dump of another board's flash:
an rp2 storage region (rp2.Flash(), its layout follows from its size) or a whole ESP32
flash (its partition table at 0x8000 says where ota_0, ota_1 and ota_journal are).
Shown: the bootloader's state, each slot (empty, or the image in it: version, sequence
number, size, encoding, key id, and whether its payload passes the boot-time CRC-32 check),
the agent's journal (phase, anti-rollback counter, the held image and its Manufacturer Image
hash, the activation time) and the alerts not yet acknowledged by a server.

With --port, the same is read from a board running the agent, over its USB serial REPL with
mpremote (as otatool deploy connects): a read-only snippet opens the board's flash through
its adapter (boards/<name>/board.py), prints the boot record, the journal and each slot's
meta area in hex, and each slot's CRC-32 check as the board finds it; the host decodes them
with the code that reads a flash file, so both modes print the same report.
"""
import binascii
import json
import os
import struct

from agent.alerts import ALERT_BOOT_VERIFY_FAIL, ALERT_FUTURE_ACTIONED, \
    ALERT_FUTURE_NOT_ACTIONED, ALERT_VERIFY_FAIL, ALERT_VERIFY_OK, ALERT_VERSION_CHANGED
from agent.store import state as S
from agent.errors import OtaError, BAD_LAYOUT, message
from hal.clock import ZIGBEE_EPOCH
from host_tools import argtypes
from host_tools.imageinfo import ENCODING_NAMES
from host_tools.cli import InputError, out, verbosity

PHASES = {S.IDLE: "idle", S.DOWNLOADING: "downloading", S.HELD: "held",
          S.ACTIVATING: "activating"}
ALERT_NAMES = {ALERT_VERIFY_OK: "verification successful",
               ALERT_VERIFY_FAIL: "verification failed",
               ALERT_BOOT_VERIFY_FAIL: "verification failed at power on",
               ALERT_VERSION_CHANGED: "executing firmware version changed",
               ALERT_FUTURE_ACTIONED: "future-dated activation actioned",
               ALERT_FUTURE_NOT_ACTIONED: "future-dated activation not actioned"}
BOARDS = ("auto", "unix", "rp2", "esp32")
ESP_TABLE = 0x8000          # ESP-IDF partition table offset and entry format
ESP_ENTRY = "<HBBII16sI"    # magic 0x50AA, type, subtype, offset, size, label, flags
ESP_ENTRY_SIZE = 32
ESP_MAGIC = 0x50AA
LIVE_TIMEOUT = 5         # seconds a board has to enter its raw REPL (--port)

EXAMPLES = """examples:
  otatool state dev.flash
  otatool state --json dev.flash | jq .journal.phase
  otatool state --board rp2 pico-storage.bin       # a dump of rp2.Flash()
  otatool state esp32-flash.bin      # a whole-flash dump (esptool read_flash): its table says
                                     # where the partitions are
  otatool state --port /dev/ttyACM0  # a board running the agent, over its serial REPL
  otatool state --port /dev/pts/5 --board-flash dev.flash    # a unix-port board

--port reads the board without writing to it (the update link carries no state query)."""


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
        from hal.bootrec import BootRecord
        b = BootRecord(reg.boot)
        reverted, reason, boots = b.boot_info()
        return {"confirmed_slot": b.confirmed(), "pending_slot": b.pending(),
                "trials_left": b.trials_left(), "last_boot_slot": b.running(),
                "in_trial": b.in_trial(), "last_boot_reverted": reverted,
                "last_boot_reason": reason,
                "last_boot_reason_text": message(reason) if reason else None,
                "boots": boots}
    from agent.store.journal import Journal
    from boards.esp32 import bootctl as B
    j = Journal(reg.boot, B.REC_LEN)
    rec = j.load()
    if rec is None:
        return {"record": None}
    v, trial, conf = struct.unpack(B.REC_FMT, rec)
    return {"record_version": v, "trial": trial, "confirmed": conf, "record_seq": j.seq,
            "note": "ESP-IDF's otadata decides the boot; the record is the agent's view"}


def _slot_state(area, meta, index, crc=False):
    """crc: False to check the payload's CRC-32 here; else the board's own verdict (None:
    passed, or the reason it failed)."""
    from agent.store.slot import Slot
    from agent.store import check as verify
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
                "encoding": ENCODING_NAMES.get(m.encoding, str(m.encoding)),
                "manufacturer": h.manufacturer, "image_type": h.image_type,
                "hw_min": m.hw_min, "hw_max": m.hw_max, "kid": _hex(m.kid),
                "payload_sha256": _hex(m.sha256), "supplier_signed": info.trailer is not None})
    if crc is False:
        try:
            verify.check(s)
        except OtaError as e:
            crc = str(e)
        else:
            crc = None
    res["crc_ok"] = crc is None
    if crc is not None:
        res["crc_reason"] = crc
    return res


def _hex(b):
    return binascii.hexlify(bytes(b)).decode()


def _time(t):
    if t == S.WAIT_COMMAND:
        return "on an activation command"
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t + ZIGBEE_EPOCH))


def _journal_state(area):
    from agent.store.journal import Journal
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
    return describe(reg, {"file": path, "board": board, "size": len(data)})


def describe(reg, head, crcs=None):
    """The JSON-ready state of the regions, after the head's keys. crcs: the board's CRC-32
    verdicts per slot (see _slot_state), else each payload is checked here."""
    res = dict(head)
    res.update({"boot": _boot_state(reg), "journal": _journal_state(reg.journal),
                "slots": [_slot_state(a, reg.meta, i, False if crcs is None else crcs[i])
                          for i, a in enumerate(reg.slots)]})
    return res


# -- a live board, over its serial REPL ------------------------------------------------------

# Runs on the board (MicroPython): reads only. Lines: "=B name size" (the board and its
# flash's size), "=R what base size" then "=D hex" lines (a region's bytes), "=S index base
# size meta" (a slot, then its meta area as a region), "=C index verdict" (a slot's CRC-32
# check: "ok", "-" when its meta area holds no image, or the reason), "=X reason" (the
# board cannot be read).
_LIVE_SCRIPT = """def _ota_st(names, path, slot_size):
    import binascii
    try:
        from agent.store import check as verify
        from agent.errors import OtaError
    except ImportError as e:
        print('=X the agent is not installed on the board (otatool deploy): %%s' %% e)
        return
    b = None
    for n in names:
        try:
            m = getattr(getattr(__import__('boards.' + n + '.board'), n), 'board')
        except ImportError:
            continue
        try:
            if n == 'unix':
                b = m.make_board(path, create=False)
            elif n == 'rp2' and slot_size:
                b = m.make_board(slot_size=slot_size)
            else:
                b = m.make_board()
        except OtaError as e:
            print('=X %%s' %% e)
            return
        break
    if b is None:
        print('=X no board adapter of %%s on the board (otatool deploy)' %% ', '.join(names))
        return
    mv = memoryview(bytearray(512))
    def dump(what, area, off, size, base):
        print('=R', what, base + off, size)
        while size:
            part = mv[:512 if size > 512 else size]
            area.read(off, part)
            print('=D', binascii.hexlify(part).decode())
            off += len(part)
            size -= len(part)
    if n == 'esp32':
        import esp
        P = b.port.Partition
        j = P.find(P.TYPE_DATA, 0xFF, label='ota_journal')[0].info()[2]
        print('=B esp32', esp.flash_size())
        dump('boot', b.record_area, 0, b.record_area.size, j + b.record_area.base)
        dump('journal', b.journal_area, 0, b.journal_area.size, j + b.journal_area.base)
        bases = [p.info()[2] for p in b.parts]
    else:
        print('=B', n, b.flash.size)
        dump('boot', b.boot_area, 0, b.boot_area.size, b.boot_area.base)
        dump('journal', b.journal_area, 0, b.journal_area.size, b.journal_area.base)
        bases = [s.area.base for s in b.slots]
    for i in range(2):
        s = b.slots[i]
        print('=S', i, bases[i], s.area.size, s.area.size - s.meta)
        dump('meta', s.area, s.meta, s.area.size - s.meta, bases[i])
        try:
            verify.read_meta(s)
        except OtaError:
            print('=C', i, '-')
            continue
        try:
            verify.check(s)
            print('=C', i, 'ok')
        except OtaError as e:
            print('=C', i, e)
    f = getattr(b, 'flash', None)
    if n == 'unix' and f is not None:
        f.close()
_ota_st(%r, %r, %r)
del _ota_st
"""


class PieceFlash(FileFlash):
    """A read-only flash of which only some regions were read (from a board)."""

    def __init__(self, size, pieces, sector, write_size=4, erased=0xFF):
        FileFlash.__init__(self, b"", sector, write_size, erased)
        self.size = size
        self.pieces = pieces  # [(offset, bytes)]

    def read(self, offset, buf):
        n = len(buf)
        for base, data in self.pieces:
            if base <= offset and offset + n <= base + len(data):
                buf[:] = data[offset - base:offset - base + n]
                return
        raise OtaError(BAD_LAYOUT, "0x%X+%d was not read from the board" % (offset, n))


def parse_live(text):
    """(board, flash size, {what: [(base, bytes)]}, slots [(base, size, meta)], crc verdicts)
    from the board's answer to _LIVE_SCRIPT."""
    board = size = None
    regions = {"boot": [], "journal": [], "meta": []}
    slots, crcs = [], []
    cur = None
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("="):
            continue
        tag, _s, rest = line[1:].partition(" ")
        if tag == "X":
            raise InputError(rest)
        if tag == "B":
            board, n = rest.split()
            size = int(n)
        elif tag == "R":
            what, base, _n = rest.split()
            cur = bytearray()
            regions[what].append((int(base), cur))
        elif tag == "D" and cur is not None:
            cur += binascii.unhexlify(rest)
        elif tag == "S":
            slots.append(tuple(int(x) for x in rest.split()[1:4]))
        elif tag == "C":
            verdict = rest.split(" ", 1)[1]
            crcs.append(None if verdict == "ok" else _with_text(verdict))
    if board not in BOARDS or len(slots) != 2 or len(crcs) != 2 or \
            len(regions["boot"]) != 1 or len(regions["journal"]) != 1:
        raise InputError("the board's answer is not a state report (%d lines)"
                         % len(text.splitlines()))
    for (base, n, meta), (mbase, data) in zip(slots, regions["meta"]):
        if mbase != base + n - meta or len(data) != meta:
            raise InputError("the board's answer is not a state report (slot meta area)")
    return board, size, regions, slots, crcs


def live_script(board="auto", path="dev.flash", slot_size=None):
    """The snippet that reads the board (the adapter of `board`, or the one installed)."""
    names = ("esp32", "rp2", "unix") if board == "auto" else (board,)
    return _LIVE_SCRIPT % (names, path, slot_size)


def live_state(port, board="auto", path="dev.flash", slot_size=None):
    """The state of the board at the serial port, as read_state gives a file's."""
    from host_tools.deploy import check_port
    check_port(port)
    text = run_on_board(port, live_script(board, path, slot_size))
    return from_answer(text, {"port": port}, path)


def _with_text(verdict):
    """A board's error line "E<code>: <detail>" (a device carries no reason texts) as the
    host writes it, with the text of the code; any other line as it is."""
    head, sep, detail = verdict.partition(": ")
    if head[:1] == "E" and head[1:].isdigit():
        return str(OtaError(int(head[1:]), detail))
    return verdict


def from_answer(text, head, path="dev.flash"):
    """The state from the board's answer to live_script(), after the head's keys."""
    from hal.flash import Area
    name, size, regions, slots, crcs = parse_live(text)
    L = __import__("boards.%s.layout" % name, fromlist=["layout"])
    pieces = regions["boot"] + regions["journal"] + regions["meta"]
    flash = PieceFlash(size, pieces, L.SECTOR, L.WRITE_SIZE, L.ERASED)
    (boot, bdata), = regions["boot"]
    (jour, jdata), = regions["journal"]
    meta = slots[0][2]
    reg = Regions(Area(flash, boot, len(bdata)), Area(flash, jour, len(jdata)),
                  [Area(flash, b, n) for b, n, _m in slots], meta,
                  "esp32" if name == "esp32" else "sim")
    head = dict(head, board=name, size=size)
    if name == "unix":
        head["flash"] = path
    return describe(reg, head, crcs)


def run_on_board(port, script):
    """The output of script run in the board's raw REPL (no soft reset: nothing restarts)."""
    from mpremote.transport import TransportError, TransportExecError
    from mpremote.transport_serial import SerialTransport
    from host_tools.deploy import port_path
    import contextlib
    import io
    try:    # a read timeout, or mpremote waits for ever on a pseudo-terminal nobody answers
        t = SerialTransport(port_path(port), baudrate=115200, timeout=1)
    except TransportError as e:
        raise InputError("cannot open %s: %s" % (port, e))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it got
            t.enter_raw_repl(soft_reset=False, timeout_overall=LIVE_TIMEOUT)
        return t.exec(script).decode("utf-8", "replace")
    except TransportExecError as e:
        err = e.error_output.strip().splitlines()
        raise InputError("the board at %s failed to read its state: %s"
                         % (port, err[-1] if err else e))
    except TransportError as e:
        raise InputError("the board at %s does not answer: %s" % (port, e))
    finally:
        try:
            if t.in_raw_repl:
                t.exit_raw_repl()
        except TransportError:
            pass
        finally:
            t.close()


def format_text(st, verbose=False):
    lines = []
    add = lines.append
    add("%s%s (%s board, %d bytes)" % ("flash               " if "file" in st else
                                        "device              ", st.get("file", st.get("port")),
                                        st["board"], st["size"]))
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
                                   "acknowledged, read from a flash file or from a board "
                                   "running the\nagent (--port; nothing is written).",
                       epilog=EXAMPLES)
    p.add_argument("flash", metavar="FLASH", nargs="?",
                   help="the flash file or flash dump (or --port)")
    p.add_argument("--port", metavar="PORT",
                   help="read a board running the agent instead, over its serial REPL "
                        "(/dev/ttyACM0, COM3, or mpremote's a0, u0, c0); nothing is written")
    p.add_argument("--board", choices=BOARDS, default="auto",
                   help="whose layout the file has; auto: esp32 when the file holds an "
                        "ESP-IDF partition table with the agent's partitions, unix when its "
                        "size is the unix flash file's (an rp2 dump needs --board rp2); with "
                        "--port, auto: the adapter installed on the board")
    p.add_argument("--board-flash", metavar="PATH",
                   help="--port with the unix board: its flash file, relative to the "
                        "board's working directory (default: dev.flash)")
    p.add_argument("--slot-size", type=argtypes.integer(2 * 4096, 1 << 30, "slot size"),
                   metavar="N", help="rp2: bytes of each slot (default: boards/rp2/layout.py's, "
                                     "as the board's own make_board() has)")
    p.add_argument("--json", action="store_true", help="print JSON (on failure: "
                                                       "{\"ok\": false, \"code\", \"reason\"})")
    p.set_defaults(func=run_state, parser_error=p.error)


def run_state(args):
    if (args.flash is None) == (args.port is None):
        args.parser_error("give either FLASH or --port")
    if args.board_flash is not None and (args.port is None or args.board not in
                                         ("auto", "unix")):
        args.parser_error("--board-flash applies to --port with the unix board only")
    if args.slot_size is not None and args.board != "rp2":
        args.parser_error("--slot-size applies to --board rp2 only")
    if args.port is not None:
        st = live_state(args.port, args.board, args.board_flash or "dev.flash", args.slot_size)
    else:
        if os.path.isdir(args.flash):
            raise InputError("%s is a directory" % args.flash)
        st = read_state(args.flash, args.board, args.slot_size)
    if args.json:
        st["ok"] = True
        out(json.dumps(st, indent=2))
    else:
        out(format_text(st, verbosity() > 0))
    return 0
