# The device agent: download into the inactive slot, verification from flash, activation
# (now, at a time, or on a command naming the image), trial boot, confirm and revert, and
# alerts. Every decision is saved in the journal before it is acted on, so a power cut at
# any instant leaves a state that start() completes or undoes.
import hashlib

from agent.image import fmt
from agent.store import state as S
from agent.errors import OtaError, BUSY, NO_IMAGE, NOT_IN_TRIAL, SECTOR_CRC, \
    ACTIVATION_FAILED, HASH_MISMATCH, SLOT_INVALID, SLOT_EMPTY, TRUNCATED, ROLLBACK, \
    REVERTED_IMAGE, NO_FALLBACK, DOWNLOAD_ACTIVE, TIME_RANGE, SECTOR_CHANGED
from agent.store.journal import Journal
from agent.image.manifest import Policy
from agent.image.parser import Parser
from agent.store.slot import SlotWriter, scan, TABLE_OFF
from agent.store import check as verify

QUIET_S = 60  # an image refused before its signature verified: at most one alert a minute,
              # sent from RAM (nothing is written to flash for such a refusal)


class Config:
    """What the device is and whom it trusts."""

    def __init__(self, trust, manufacturer, image_type, hw_version, supplier_key=None,
                 trials=3, refetch=3, page=256, health=None, payload_check=None, ieee=None):
        self.trust = trust
        self.manufacturer = manufacturer
        self.image_type = image_type
        self.hw_version = hw_version
        self.supplier_key = supplier_key
        self.trials = trials      # trial boots before the bootloader reverts
        self.refetch = refetch    # fetches of one bad sector before the image is rejected
        self.page = page          # flash write unit the slot writer gathers
        self.health = health      # application health check for a trial boot: () -> bool
        self.payload_check = payload_check  # fn(first payload bytes): raises OtaError when
                                            # the board cannot boot such a payload
        self.ieee = ieee          # the device's IEEE address, 8 bytes in OTA header order
                                  # (None: the board's .ieee); addressed images must name it


class Device:
    """board: .slots (two agent.store.slot.Slot), .journal_area, .boot (hal/boot.py interface),
    .clock, .verifier (hardware signature check or None), optionally .ieee and
    .boot_verifies (True: the bootloader verifies signatures, the power-on check is CRC-32
    only). alerts: an object with alert(code, reason, alert_id, value) called after each
    alert is saved (or, for refusals before a signature verified, sent from RAM), or None."""

    def __init__(self, board, config, alerts=None):
        self.board = board
        self.cfg = config
        self.sink = alerts
        self.journal = Journal(board.journal_area, S.STATE_SIZE)
        self.st = S.State()
        self._buf = bytearray(S.STATE_SIZE)
        self.writer = SlotWriter(config.page)
        self.writer.on_sector = self._on_sector
        self.writer.check = config.payload_check or getattr(board, "payload_check", None)
        self.on_payload = self.writer.on_payload  # the parser calls the writer directly
        self.parser = None
        self.trial = False
        self.reset_needed = False
        self.loading = False  # a transfer is open (begin() until done, rejected or close())
        self._out = []
        self._mine = False
        self._factory = False
        self.floor = 0             # signed seq of the image in the confirmed slot (start())
        self._quiet = [None, 0]    # last RAM-only alert (clock seconds), refusals since
        self._told = False         # the refusal of a reverted image was saved this boot
        self.stuck = 0             # reason the running slot failed at power on with no
                                   # acceptable image to fall back to (it runs on), else 0

    # -- state and alerts ----------------------------------------------------

    def _save(self):
        self.journal.save(self.st.pack(self._buf))
        if self._out:  # not at a per-sector checkpoint
            self._send()

    def _send(self):
        out = self._out
        self._out = []
        if self.sink is not None:
            for a in out:
                self.sink.alert(a[0], a[1], a[2], a[3])

    def _alert(self, code, reason=0, value=0):
        st = self.st
        a = [code, reason, st.next_alert, value]
        st.next_alert = (st.next_alert + 1) & 0xFF
        st.alerts.append(a)
        if len(st.alerts) > S.ALERTS:
            st.alerts.pop(0)
        self._out.append(a)

    def ack(self, alert_id):
        """The server acknowledged an alert: forget it."""
        al = self.st.alerts
        for i in range(len(al)):
            if al[i][2] == alert_id:
                al.pop(i)
                self._save()
                return True
        return False

    def unacked(self):
        return list(self.st.alerts)

    def policy(self):
        c = self.cfg
        s = self.board.slots[0]
        seq = self.st.seq if self.st.seq > self.floor else self.floor
        return Policy(c.trust, c.manufacturer, c.image_type, c.hw_version, seq,
                      s.capacity, s.area.sector_size, s.table_max, c.supplier_key,
                      c.ieee if c.ieee is not None else getattr(self.board, "ieee", None))

    # -- power on ------------------------------------------------------------

    def start(self):
        """Run once after every reset, after the bootloader chose the slot."""
        raw = self.journal.load()
        st = self.st
        if raw is not None:
            st.unpack(raw)
        b = self.board.boot
        run = b.running()
        if st.phase in (S.HELD, S.ACTIVATING) and st.slot == run and b.in_trial():
            self.trial = True
            if st.phase != S.ACTIVATING:
                st.phase = S.ACTIVATING
                self._save()
        elif st.phase == S.ACTIVATING and st.slot == run:
            self._confirmed()   # confirmed before the journal said so
        elif st.phase == S.ACTIVATING and b.pending() != st.slot:
            why = b.boot_info()[1] or ACTIVATION_FAILED
            st.phase = S.IDLE
            if why == ACTIVATION_FAILED:  # never confirmed in its trials
                st.flags |= S.F_REVERTED
            self._alert(fmt.ALERT_BOOT_VERIFY_FAIL, why, st.held_version)
            self._save()
        elif st.phase in (S.DOWNLOADING, S.HELD) and st.slot == run:
            st.phase = S.IDLE   # never write into, or activate, the running slot
            self._save()
        self._read_floor()
        try:
            info = self._boot_check(run)
            m = info.manifest
            if not self.trial and (st.run_version != m.version or st.seq < m.seq):
                st.run_version = m.version
                if st.seq < m.seq:  # the journal was lost: the floor is the running image's
                    st.seq = m.seq
                self._save()
        except OtaError as e:
            if raw is None and e.reason == SLOT_EMPTY:
                return self.trial  # a blank device, never provisioned: nothing to report
            self._alert(fmt.ALERT_BOOT_VERIFY_FAIL, e.reason, st.run_version)
            self._save()
            self.stuck = e.reason
            self._fall_back(run)
        return self.trial

    def _boot_check(self, run):
        """The running slot's power-on check: CRC-32 where the bootloader verifies
        signatures (board.boot_verifies), else the payload SHA-256 against the signed
        manifest, whose signature is verified once per image (remembered in st.sig_ok)."""
        slot = self.board.slots[run]
        if getattr(self.board, "boot_verifies", False):
            return verify.check(slot)
        st = self.st
        info = verify.boot_check(slot, self.cfg.trust, self.board.verifier, st.sig_ok)
        if st.sig_ok != info.tag:
            st.sig_ok = info.tag
            self._save()
        return info

    def _read_floor(self):
        # the anti-rollback floor kept in flash by the confirmed image itself: its signed
        # sequence number, read from its meta area (it survives the loss of the journal)
        try:
            self.floor = verify.read_meta(
                self.board.slots[self.board.boot.confirmed()]).manifest.seq
        except OtaError:
            self.floor = 0

    def check_running(self, full=True):
        """Check the running slot from flash: CRC-32 only, or fully (signature, digests)."""
        st = self.st
        run = self.board.boot.running()
        return verify.check(self.board.slots[run], self.policy() if full else None,
                            self.board.verifier, st.mi_hash if st.slot == run else None)

    def run_health(self):
        """On a trial boot, let the application's health check decide: confirm or revert."""
        h = self.cfg.health
        if not self.trial or h is None:
            return None
        if h():
            self.confirm()
            return True
        self.revert()
        return False

    def _fall_back(self, run):
        b = self.board.boot
        st = self.st
        if self.trial:
            self.revert(SLOT_INVALID)
            return
        other = 1 - run
        try:
            p = self.policy()
            info = verify.check(self.board.slots[other], p, self.board.verifier,
                                st.mi_hash if st.slot == other else None)
            m = info.manifest
            if m.seq < p.seq:  # never below the floor, as a downgrade-preventing bootloader
                raise OtaError(ROLLBACK, "slot %d seq %d < %d" % (other, m.seq, p.seq))
        except OtaError:
            # nothing acceptable to run instead: stay on the running image and say so
            self._alert(fmt.ALERT_BOOT_VERIFY_FAIL, NO_FALLBACK, st.run_version)
            self._save()
            return
        self.stuck = 0
        st.sig_ok = info.tag
        b.set_confirmed(other)
        if st.slot == other:
            st.phase = S.IDLE
        st.run_version = m.version
        self._save()
        self.reset_needed = True

    # -- download ------------------------------------------------------------

    def begin(self):
        """Start a transfer session; returns the file offset to fetch first."""
        if self.trial or self.st.phase == S.ACTIVATING or self.reset_needed:
            raise OtaError(BUSY, "activation in progress")
        b = self.board.boot
        if not self._factory and b.pending() == 1 - b.running():
            b.revert()  # a pending boot the journal does not know of: cancel it before writing
        self.parser = Parser(self.policy(), self, self.board.verifier)
        self._mine = False
        self.loading = True
        return 0

    def close(self):
        """The transfer session ended (finished or not): activation may run again."""
        self.loading = False

    def feed(self, offset, data):
        """Image bytes at file offset; returns the offset wanted next. Data for another
        offset (a duplicate or late block) is ignored."""
        try:
            return self.take(offset, data)
        except OtaError as e:
            if not self.refetch(e):
                raise
            return self.parser.pos

    def take(self, offset, data):
        """feed() for a caller that catches OtaError itself and passes it to refetch():
        the per-block path without a try block, whose frame MicroPython would take from
        the heap on every call."""
        p = self.parser
        if offset == p.pos:
            p.feed(data)
        return p.pos

    def refetch(self, e):
        """After take() raised e: True when a sector that failed its check is fetched again
        (from the offset parser.pos), False when the image is rejected (e stands)."""
        st = self.st
        p = self.parser
        if e.reason == SECTOR_CRC and self._mine and p.state == 6:
            # the final check from flash: a sector written and checked has changed since
            e = OtaError(SECTOR_CHANGED, e.detail)
        elif e.reason == SECTOR_CRC and self._mine and st.fails < self.cfg.refetch:
            st.fails += 1
            self._save()
            p.seek(self.writer.resume_offset(p.payload_offset()))
            return True
        self._reject(e)
        return False

    def done(self):
        """True once the image is received and verified."""
        return self.parser is not None and self.parser.state == 6 and self.st.phase == S.HELD

    def end(self):
        """The server says the image is complete: anything missing is an error."""
        try:
            self.parser.finish()
        except OtaError as e:
            self._reject(e)
            raise

    def _reject(self, e):
        st = self.st
        self.loading = False
        p = self.parser
        quiet = p is None or not p.signed  # anyone can send these: they must not wear flash
        if e.reason == REVERTED_IMAGE:
            quiet = self._told  # saved once per boot, then as the others
            self._told = True
        if quiet and not self._mine:
            self._quiet_alert(e.reason)
            return
        if self._mine and st.phase == S.DOWNLOADING:
            st.phase = S.IDLE
        self._mine = False
        self._alert(fmt.ALERT_VERIFY_FAIL, e.reason, 0)
        self._save()

    def _quiet_alert(self, reason):
        # an alert that is not saved, at most one per QUIET_S; value: refusals since the last
        q = self._quiet
        q[1] += 1
        now = self.board.clock.now()
        if q[0] is not None and now - q[0] < QUIET_S:
            return
        st = self.st
        aid = st.next_alert
        st.next_alert = (aid + 1) & 0xFF
        n = q[1]
        q[0] = now
        q[1] = 0
        if self.sink is not None:
            self.sink.alert(fmt.ALERT_VERIFY_FAIL, reason, aid, n)

    def on_manifest(self, p):
        st = self.st
        h = hashlib.sha256(p.header_bytes())
        h.update(p.cose_bytes())
        ident = h.digest()
        if st.flags & S.F_REVERTED and st.ident == ident and st.phase == S.IDLE:
            raise OtaError(REVERTED_IMAGE, "refused until another image is offered")
        run = self.board.boot.running()
        i = run if self._factory else 1 - run
        slot = self.board.slots[i]
        self._mine = True
        if (st.phase == S.DOWNLOADING and st.ident == ident and st.slot == i and st.next
                and self._meta_intact(slot, p)):
            self.writer.resume(slot, p.manifest, p.cose_len, st.next, st.mi_state)
            return self.writer.resume_offset(p.payload_offset())
        st.phase = S.DOWNLOADING
        st.slot = i
        st.ident = ident
        st.next = 0
        st.fails = 0
        st.flags = 0
        st.act_time = S.WAIT_COMMAND
        self._save()
        self.writer.start(slot)
        self.writer.on_manifest(p)
        return None

    def _meta_intact(self, slot, p):
        try:
            info = verify.read_meta(slot)
        except OtaError:
            return False
        if info.header_bytes != bytes(p.header_bytes()) or info.cose_len != p.cose_len:
            return False
        t = hashlib.sha256()
        scan(slot.area, slot.meta + TABLE_OFF, p.manifest.table_size, bytearray(64), 0, t)
        return t.digest() == p.manifest.table_sha256

    def on_table(self, mv):
        self.writer.on_table(mv)

    def on_table_end(self):
        self.writer.on_table_end()

    def _on_sector(self, nxt, mi):
        st = self.st
        st.next = nxt
        st.fails = 0
        self.writer.mi_save(st.mi_state)
        if mi is not None:
            st.mi_hash = mi
        self._save()

    def on_done(self, p):
        self.writer.on_done(p)
        st = self.st
        slot = self.board.slots[st.slot]
        m = p.manifest
        info = verify.check(slot, self.policy(), self.board.verifier,
                            st.mi_hash if m.encoding == fmt.ENC_DEFLATE else None)
        st.mi_hash = info.mi_hash
        if self._factory:  # it runs from the next reset: its signature is known good
            st.sig_ok = info.tag
        st.held_version = m.version
        st.held_seq = m.seq
        st.act_time = S.WAIT_COMMAND
        self._mine = False
        self.loading = False
        if self._factory:
            st.phase = S.IDLE
            st.seq = m.seq
            st.run_version = m.version
        else:
            st.phase = S.HELD
            self._alert(fmt.ALERT_VERIFY_OK, 0, m.version)
        self._save()

    def provision(self, read, size, block=1024):
        """Factory install of a first image into the running slot, which must not hold a
        valid image. read(offset, n) returns n bytes of the image file from offset."""
        try:
            verify.check(self.board.slots[self.board.boot.running()], self.policy(),
                         self.board.verifier)
        except OtaError:
            pass
        else:
            raise OtaError(BUSY, "the running slot holds a valid image")
        self._factory = True
        try:
            self.begin()
            pos = 0
            while pos < size:
                b = read(pos, block if block < size - pos else size - pos)
                if not b:
                    raise OtaError(TRUNCATED, "image ends at %d of %d bytes" % (pos, size))
                pos = self.feed(pos, b)
            self.end()
        finally:
            self._factory = False

    # -- activation ----------------------------------------------------------

    def schedule(self, when):
        """Activate the held image at device time `when` (seconds; 0 or past = now; at most
        state.HORIZON ahead) or on a command (state.WAIT_COMMAND). Returns the activation
        outcome if it ran now."""
        st = self.st
        if st.phase != S.HELD:
            raise OtaError(NO_IMAGE)
        if self.loading:
            raise OtaError(DOWNLOAD_ACTIVE)
        now = self.board.clock.now()
        if when != S.WAIT_COMMAND and (when < 0 or when - now > S.HORIZON
                                       or when >= S.WAIT_COMMAND):
            raise OtaError(TIME_RANGE, "activation at %d, now %d" % (when, now))
        st.act_time = when
        st.flags = S.F_FUTURE if when != S.WAIT_COMMAND and when > now else 0
        self._save()
        return self.tick()

    def tick(self):
        """Call now and then: runs an activation whose time has come."""
        st = self.st
        if st.phase != S.HELD or st.act_time == S.WAIT_COMMAND or self.loading:
            return None
        if self.board.clock.now() < st.act_time:
            return None
        return self._activate(st.flags & S.F_FUTURE)

    def activate(self, mi_hash):
        """Activation command naming the image: a GBCS CS06 outcome."""
        st = self.st
        if st.phase != S.HELD:
            return fmt.ACT_NO_IMAGE
        if bytes(mi_hash) != st.mi_hash:
            return fmt.ACT_HASH_MISMATCH
        if self.loading:  # never in the middle of a download
            return fmt.ACT_FAILURE
        return self._activate(False)

    def refused(self, reason, value):
        """A server's activation time was refused (out of range): alert 0x8F67."""
        self._alert(fmt.ALERT_FUTURE_NOT_ACTIONED, reason, value)
        self._save()

    def recover(self):
        """After a fault in a session: close the transfer, back to the journal's state."""
        self.loading = False
        self._mine = False
        self.parser = None
        self._out = []
        raw = self.journal.load()
        if raw is not None:
            self.st.unpack(raw)

    def _activate(self, future):
        st = self.st
        slot = self.board.slots[st.slot]
        try:
            info = verify.check(slot, self.policy(), self.board.verifier, st.mi_hash)
            if info.mi_hash != st.mi_hash:
                raise OtaError(HASH_MISMATCH, "image in flash changed")
            self.board.boot.set_pending(st.slot, self.cfg.trials)
        except OtaError as e:
            st.phase = S.IDLE
            self._alert(fmt.ALERT_VERIFY_FAIL, e.reason, st.held_version)
            if future:
                self._alert(fmt.ALERT_FUTURE_NOT_ACTIONED, e.reason, st.held_version)
            self._save()
            return fmt.ACT_FAILURE
        st.phase = S.ACTIVATING
        st.act_time = S.WAIT_COMMAND
        if future:
            self._alert(fmt.ALERT_FUTURE_ACTIONED, 0, st.held_version)
        self._save()
        self.reset_needed = True
        return fmt.ACT_SUCCESS

    # -- trial ---------------------------------------------------------------

    def confirm(self):
        """The new image is healthy: make it permanent, then raise the sequence number."""
        if not self.trial:
            raise OtaError(NOT_IN_TRIAL)
        self.board.boot.confirm()
        self._confirmed()

    def _confirmed(self):
        st = self.st
        self.trial = False
        if st.held_seq > st.seq:
            st.seq = st.held_seq
        st.run_version = st.held_version
        st.phase = S.IDLE
        self._alert(fmt.ALERT_VERSION_CHANGED, 0, st.run_version)
        self._save()

    def revert(self, reason=ACTIVATION_FAILED):
        """The new image is not healthy: go back to the confirmed one at the next reset."""
        if not self.trial:
            raise OtaError(NOT_IN_TRIAL)
        self.board.boot.revert()
        st = self.st
        self.trial = False
        st.phase = S.IDLE
        if reason == ACTIVATION_FAILED:  # unhealthy: not to be taken again (on_manifest)
            st.flags |= S.F_REVERTED
        self._alert(fmt.ALERT_BOOT_VERIFY_FAIL, reason, st.held_version)
        self._save()
        self.reset_needed = True
