"""The update server that plays the Communications Hub (Hub), as a library: the command
line is host_tools/serve.py (otatool serve), and the tests and benchmarks drive it directly.

A ZigBee OTA Upgrade cluster server over UDP (one ZCL frame per datagram, answered to the
address the request came from) or a serial line (framed, CRC-16). It offers the image that
matches a device's manufacturer code, image type and hardware version (and differs from
the version it runs), serves blocks, answers Upgrade End with the activation time, sends
Activate Image commands naming the image's Manufacturer Image hash, acknowledges alerts,
and logs every request, alert and outcome. Faults for tests: loss, duplicates, reordering,
corruption, delay, WAIT_FOR_DATA, ABORT. --rate-bps emulates the HAN's bit rate.

Full and delta images are held together. A delta image (manifest encoding fmt.ENC_DELTA) is
made against one old version (its manifest's base version) and goes only to a device that
queries with that version; every other device gets the full image of the release. Both have
the same file version, so the Hub remembers per device which file it offered, and once the
device has refused a delta (Upgrade End INVALID_IMAGE for it, or an alert with reason
BASE_MISMATCH) it offers that device the full image instead.
"""
import json
import random
import sys
import time

from agent.image import fmt, pack

from agent.zcl import frames as zcl, server as zcl_server
from agent.errors import OtaError, SIZE_MISMATCH, BASE_MISMATCH
from host_tools.paging import serve_page, notify_idle

from hal.clock import ZIGBEE_EPOCH

# Bytes a frame costs on an APS-encrypted 802.15.4 HAN beyond the ZCL frame: PHY preamble,
# SFD and length (6), MAC header and FCS (11), NWK header (8), APS header (8), APS
# auxiliary security header and MIC (9); acknowledgements and back-off are not counted.
FRAME_OVERHEAD = 42


def utc_now():
    return int(time.time()) - ZIGBEE_EPOCH


class Image:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        h = fmt.parse_header(self.data)
        self.path = path
        self.header = h
        self.manufacturer = h.manufacturer
        self.image_type = h.image_type
        self.version = h.file_version
        self.size = h.total_size
        if self.size != len(self.data):
            raise OtaError(SIZE_MISMATCH, "%s: header says %d bytes, file has %d"
                           % (path, self.size, len(self.data)))
        from host_tools.imageinfo import inspect_bytes
        self.mi_hash = bytes.fromhex(inspect_bytes(self.data)["manufacturer_image_sha256"])
        m = pack.peek(self.data)
        # a delta's old version (None: a full image, which any device can take)
        self.base = m.base_version if m.encoding == fmt.ENC_DELTA else None

    @property
    def kind(self):
        """How the log names it: "full" or "delta from V"."""
        return "full" if self.base is None else "delta from %d" % self.base

    def fits(self, manufacturer, image_type, hw):
        h = self.header
        if manufacturer != self.manufacturer or image_type != self.image_type:
            return False
        return hw is None or h.hw_min is None or h.hw_min <= hw <= h.hw_max


def _until(t):
    dt = t - time.monotonic()
    if dt > 0:
        time.sleep(dt)


def _label(addr):
    if isinstance(addr, tuple):
        return "%s:%s" % addr[:2]
    return str(addr or "serial")


class Faults:
    def __init__(self, drop=0.0, dup=0.0, corrupt=0.0, reorder=0.0, delay_ms=0,
                 wait_for_data=0, wait_s=2, abort_at=None, seed=None):
        self.drop = drop
        self.dup = dup
        self.corrupt = corrupt
        self.reorder = reorder
        self.delay_ms = delay_ms
        self.wait_for_data = wait_for_data
        self.wait_s = wait_s
        self.abort_at = abort_at
        self.rnd = random.Random(seed)


class Session:
    """The Hub's session with one device (by address): what the server knows of it."""

    def __init__(self, addr):
        self.addr = addr
        self.image = None
        self.served = 0
        self.top = 0
        self.bar = None
        self.waits = 0
        self.aborted = False
        self.alerts = []
        self.outcome = None
        self.activation_sent = 0
        self.activate_outcome = None
        self.start = None
        self.refused = {}  # delta Image -> why the device refused it (it gets the full one)


class Hub:
    def __init__(self, images, link, block_size=None, activate=("now", 0), faults=None,
                 rate_bps=None, log=None, plain=False, progress=None, echo=None):
        self.images = images
        self.link = link
        self.block_size = block_size
        self.activate = activate
        self.f = faults or Faults()
        self.rate_bps = rate_bps
        self.logf = log
        self.plain = plain
        self.progress = progress
        self.echo = echo
        self.devices = {}  # Session by device address
        self.frames = 0
        self.air_bytes = 0
        self.lost_air_bytes = 0  # of the frames the loss fault dropped (either way)
        self._held = None
        self._free = 0.0   # --rate-bps: when the channel is free
        self._out = None   # (due, [(frame, addr)]): the frame on the air, delivered when due
        self._buf = bytearray(zcl.FRAME_MAX)
        self._seq = 0
        self.t0 = time.monotonic()

    # -- logging -------------------------------------------------------------

    def log(self, dev, event, **kw):
        rec = {"t": round(time.monotonic() - self.t0, 3), "device": _label(dev.addr),
               "event": event}
        rec.update(kw)
        if self.logf:
            self.logf.write(json.dumps(rec) + "\n")
            self.logf.flush()
        if self.echo and event not in ("block",):
            self.echo(rec)

    def close(self):
        """Take down the progress bars (the server is stopping)."""
        for dev in self.devices.values():
            if dev.bar is not None:
                dev.bar.close(False)
                dev.bar = None

    def seen(self, what):
        """True once a device has "confirmed" an update (alert 0x8F43), "ended" a download
        (Upgrade End, any status) or "rejected" an image (Upgrade End INVALID_IMAGE)."""
        sessions = self.devices.values()
        if what == "confirmed":
            return any(a["code"] == "0x8F43" for d in sessions for a in d.alerts)
        if what == "ended":
            return any(d.outcome for d in sessions)
        if what == "rejected":
            return any(d.outcome == "invalid_image" for d in sessions)
        raise ValueError("unknown outcome %r" % (what,))

    # -- link with faults and airtime ------------------------------------------

    # --rate-bps: one channel, busy until self._free. A frame's airtime starts when the
    # channel is free or when the frame is handed over, whichever is later, and it is
    # delivered when its airtime ends. Like a radio with one transmit buffer, the Hub hands
    # over the next frame while the one before is still on the air (self._out), so the
    # emulation's own timer lateness in waiting for one frame is not charged to the next.

    def _reserve(self, n):
        # the channel time at which a frame of n bytes handed over now has been sent
        now = time.monotonic()
        start = self._free if self._free > now else now
        self._free = start + (n + FRAME_OVERHEAD) * 8.0 / self.rate_bps
        return self._free

    def _airtime(self, n):
        # an incoming frame: it takes the channel once it is free (a frame that came while
        # one was on the air follows it), and is handled when its airtime has ended
        if self.rate_bps:
            due = self._reserve(n)
            self._flush()
            _until(due)

    def _flush(self):
        # deliver the frame on the air once its airtime has ended
        out, self._out = self._out, None
        if out is not None:
            _until(out[0])
            for data, addr in out[1]:
                self.link.send(data, addr)

    def _send(self, data, addr, faulty=True):
        f = self.f
        data = bytes(data)
        self.frames += 1
        self.air_bytes += len(data) + FRAME_OVERHEAD
        due = self._reserve(len(data)) if self.rate_bps else None
        self._flush()
        if f.delay_ms:
            if due is not None:
                _until(due)
                due = None
            time.sleep(f.delay_ms / 1000.0)
        out = []
        if faulty:
            r = f.rnd
            if f.drop and r.random() < f.drop:
                self.lost_air_bytes += len(data) + FRAME_OVERHEAD
                data = None
            elif f.corrupt and r.random() < f.corrupt:
                b = bytearray(data)
                b[r.randrange(len(b))] ^= 1 << r.randrange(8)
                data = bytes(b)
            if data is not None and f.reorder and r.random() < f.reorder \
                    and self._held is None:
                self._held = (data, addr)
                data = None
        if data is not None:
            out.append((data, addr))
            if faulty and f.dup and f.rnd.random() < f.dup:
                out.append((data, addr))
            if self._held is not None and self._held[0] is not data:
                out.append(self._held)
                self._held = None
        if due is None:
            for d, a in out:
                self.link.send(d, a)
        else:
            self._out = (due, out)

    def _next_seq(self):
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    # -- serving -------------------------------------------------------------

    def serve(self, timeout=None, until=None, linger=2.0):
        """Serve until until(hub) is true (then `linger` seconds more, to answer what the
        devices still ask) or timeout seconds pass. Returns True if until."""
        end = None if timeout is None else time.monotonic() + timeout
        met = False
        while True:
            if not met and until is not None and until(self):
                met = True
                end = time.monotonic() + linger
            if met and time.monotonic() >= end:
                self._flush()
                return True
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                self._flush()
                return False
            wait = 0.2 if left is None else min(0.2, left)
            if self._out is not None:  # a frame on the air: listen until it is delivered
                wait = max(0.0, min(wait, self._out[0] - time.monotonic()))
            data, addr = self.link.recv(wait)
            if data is None:
                self._flush()
            self._retry_activations()
            notify_idle(self)
            if data is None:
                continue
            self.air_bytes += len(data) + FRAME_OVERHEAD
            self._airtime(len(data))
            if self.f.drop and self.f.rnd.random() < self.f.drop:
                self.lost_air_bytes += len(data) + FRAME_OVERHEAD
                continue  # lost on the way in
            self.handle(data, addr)

    def handle(self, data, addr):
        dev = self.devices.get(addr)
        if dev is None:
            dev = self.devices[addr] = Session(addr)
        dev.heard_at = time.monotonic()
        try:
            fr = zcl_server.decode(data, len(data))
        except OtaError as e:
            self.log(dev, "bad_frame", reason=str(e))
            return
        if not fr.cluster or fr.to_client:
            return
        if fr.mfr_code is not None:
            if self.plain or not fr.known:
                # a plain ZCL server ignores manufacturer-specific commands
                self.log(dev, "ignored", command="0x%02X" % fr.command)
                return
            if fr.command == zcl.CMD_ALERT:
                self._alert(dev, fr, data)
            elif fr.command == zcl.CMD_ACTIVATE_RSP:
                dev.activate_outcome = fr.outcome
                self.log(dev, "activate_response", outcome=fr.outcome)
            return
        c = fr.command
        if c == zcl.CMD_QUERY_NEXT:
            self._query(dev, fr)
        elif c == zcl.CMD_BLOCK_REQ:
            self._block(dev, fr)
        elif c == zcl.CMD_PAGE_REQ:
            serve_page(self, dev, fr)
        elif c == zcl.CMD_UPGRADE_END:
            self._end(dev, fr)

    def _choose(self, dev, fr):
        """The image to offer: of the newest release that fits the device and differs from
        the version it runs, the delta from that version (unless the device refused it),
        else the full image; a delta from another version is never offered."""
        img = None
        for i in self.images:
            if not i.fits(fr.manufacturer, fr.image_type, fr.hw_version) \
                    or i.version == fr.file_version:
                continue
            if i.base is not None and (i.base != fr.file_version or i in dev.refused):
                continue
            if img is None or i.version > img.version or \
                    (i.version == img.version and img.base is None and i.base is not None):
                img = i
        return img

    def _query(self, dev, fr):
        img = self._choose(dev, fr)
        b = self._buf
        if img is None:
            n = zcl_server.encode_query_next_response(b, fr.seq, zcl.S_NO_IMAGE_AVAILABLE)
            self.log(dev, "query", running=fr.file_version, offered=None)
        else:
            n = zcl_server.encode_query_next_response(b, fr.seq, zcl.S_SUCCESS, img.manufacturer,
                                                      img.image_type, img.version, img.size)
            if dev.image is not img:
                dev.image = img
                dev.served = dev.top = 0
                dev.start = time.monotonic()
                dev.outcome = None
                dev.activation_sent = 0
            kw = {}
            if img.base is not None:
                kw["image"] = img.kind
            elif any(d.version == img.version for d in dev.refused):
                kw["image"] = img.kind
                kw["fallback"] = "; ".join(why for d, why in dev.refused.items()
                                           if d.version == img.version)
            elif any(i.base is not None and i.version == img.version for i in self.images):
                kw["image"] = img.kind
                kw["fallback"] = "no delta from %d" % fr.file_version
            self.log(dev, "query", running=fr.file_version, offered=img.version,
                     size=img.size, **kw)
        self._send(memoryview(b)[:n], dev.addr)

    def _find(self, fr, dev=None):
        """The image a request names by manufacturer, type and version: the one offered to
        the device (full and delta of a release share the version), else a full one."""
        key = (fr.manufacturer, fr.image_type, fr.file_version)
        if dev is not None and dev.image is not None and \
                (dev.image.manufacturer, dev.image.image_type, dev.image.version) == key:
            return dev.image
        found = None
        for i in self.images:
            if (i.manufacturer, i.image_type, i.version) == key:
                if i.base is None:
                    return i
                found = found or i
        return found

    def _refused(self, dev, img, why):
        # the device refused the delta img: the full image is offered to it from now on
        if img is not None and img.base is not None and img not in dev.refused:
            dev.refused[img] = why
            full = any(i.base is None and i.version == img.version for i in self.images)
            self.log(dev, "delta_refused", version=img.version, image=img.kind, why=why,
                     next="full" if full else "none")

    def _block(self, dev, fr):
        b = self._buf
        img = self._find(fr, dev)
        f = self.f
        if img is None:
            n = zcl_server.encode_block_status(b, fr.seq, zcl.S_NO_IMAGE_AVAILABLE)
        elif f.abort_at is not None and fr.offset >= f.abort_at and not dev.aborted:
            dev.aborted = True
            self.log(dev, "abort", offset=fr.offset)
            n = zcl_server.encode_block_status(b, fr.seq, zcl.S_ABORT)
        elif dev.waits < f.wait_for_data:
            dev.waits += 1
            now = utc_now()
            self.log(dev, "wait_for_data", offset=fr.offset, seconds=f.wait_s)
            n = zcl_server.encode_block_wait(b, fr.seq, now, now + f.wait_s, 0)
        else:
            size = fr.max_size
            if self.block_size and size > self.block_size:
                size = self.block_size
            if self.plain and size > 50:
                size = 50
            data = img.data[fr.offset:fr.offset + size]
            n = zcl_server.encode_block_response(b, fr.seq, img.manufacturer, img.image_type,
                                                 img.version, fr.offset, data)
            if self.logf:
                self.log(dev, "block", offset=fr.offset, size=len(data))
            dev.served += len(data)
            if dev.bar is None and self.progress is not None:
                dev.bar = self.progress(img.size, _label(dev.addr))
            if dev.bar is not None and fr.offset > dev.top:
                dev.bar.skip(fr.offset)   # resumed from a checkpoint: not served now
            if fr.offset + len(data) > dev.top:
                dev.top = fr.offset + len(data)
            if dev.bar is not None:
                dev.bar.update(dev.top)
        self._send(memoryview(b)[:n], dev.addr)

    def _end(self, dev, fr):
        img = self._find(fr, dev)
        name = {zcl.S_SUCCESS: "success", zcl.S_INVALID_IMAGE: "invalid_image",
                zcl.S_REQUIRE_MORE_IMAGE: "require_more_image",
                zcl.S_ABORT: "abort"}.get(fr.status, "status 0x%02X" % fr.status)
        secs = round(time.monotonic() - dev.start, 3) if dev.start else None
        self.log(dev, "upgrade_end", status=name, version=fr.file_version, seconds=secs)
        if dev.bar is not None:
            dev.bar.close(fr.status == zcl.S_SUCCESS)
            dev.bar = None
        dev.outcome = name
        if fr.status == zcl.S_INVALID_IMAGE:
            self._refused(dev, img, "upgrade_end invalid_image")
        if fr.status != zcl.S_SUCCESS or img is None:
            return
        mode, t = self.activate
        now = utc_now()
        if mode == "now":
            cur, up = now, now
        elif mode == "at":
            cur, up = now, t
        elif mode == "relative":
            cur, up = 0, t
        else:
            cur, up = now, zcl.UPGRADE_WAIT
        n = zcl_server.encode_upgrade_end_response(self._buf, fr.seq, img.manufacturer,
                                                   img.image_type, img.version, cur, up)
        self._send(memoryview(self._buf)[:n], dev.addr)
        if mode == "command" and not self.plain:
            dev.activation_sent = 0
            self._send_activate(dev)

    def _send_activate(self, dev):
        img = dev.image
        n = zcl_server.encode_activate(self._buf, self._next_seq(), img.manufacturer,
                                       img.mi_hash, 0)
        dev.activation_sent += 1
        dev.activation_at = time.monotonic()
        self.log(dev, "activate", hash=img.mi_hash.hex())
        self._send(memoryview(self._buf)[:n], dev.addr)

    def _retry_activations(self):
        for dev in self.devices.values():
            if dev.activation_sent and dev.activate_outcome is None \
                    and dev.activation_sent < 10 \
                    and time.monotonic() - dev.activation_at > 2.0:
                self._send_activate(dev)

    def _alert(self, dev, fr, data):
        h = bytes(data[fr.hash_off:fr.hash_off + 32]).hex() if fr.hash_off else None
        from agent.errors import message
        rec = {"code": "0x%04X" % fr.alert_code, "reason": fr.reason,
               "reason_text": message(fr.reason) if fr.reason else "", "id": fr.alert_seq,
               "hash": h, "value": fr.extra}
        if not any(a["id"] == fr.alert_seq and a["code"] == rec["code"] for a in dev.alerts):
            dev.alerts.append(rec)
            self.log(dev, "alert", **rec)
            if fr.reason == BASE_MISMATCH and dev.image is not None:
                self._refused(dev, dev.image, "alert %s reason %d: %s"
                              % (rec["code"], fr.reason, rec["reason_text"]))
        n = zcl_server.encode_alert_ack(self._buf, fr.seq, fr.mfr_code, fr.alert_seq)
        self._send(memoryview(self._buf)[:n], dev.addr)
