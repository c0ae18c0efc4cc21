# The device agent's update: a download into the inactive slot (resumed from its checkpoint
# after a reset), its verification from flash, and the power-on check of the running slot.
# Every decision is saved in the journal before it is acted on, so a power cut at any
# instant leaves a state that start() completes or undoes. Activation, trial boot, confirm
# and revert: agent.activation; alerts: agent.alerts.
import hashlib

from agent import activation as A
from agent import alerts as AL
from agent.image import fmt
from agent.store import state as S
from agent import errors as E
from agent.errors import OtaError
from agent.store.journal import Journal
from agent.image.manifest import Policy
from agent.image.parser import Parser
from agent.store.writer import SlotWriter
from agent.store import check as verify


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
    .clock, .verifier (hardware signature check or None), optionally .ieee,
    .boot_verifies (True: the bootloader verifies signatures, the power-on check is CRC-32
    only) and .collect (called where long-lived buffers are about to be made: the device's
    own, here, after the garbage its modules' imports left; a download's at its start,
    before a compressed or delta image's decoder is reserved and, in a small heap, before
    each chunk's decoder. gc.collect on a board with a small heap, so that they fill the
    holes the garbage before them leaves instead of splitting the free space further).
    sink: an object with
    alert(code, reason, alert_id, value) called after each alert is saved (or, for refusals
    before a signature verified, sent from RAM), or None."""

    def __init__(self, board, config, sink=None):
        self.board = board
        self.cfg = config
        self.sink = sink
        collect = getattr(board, "collect", None)
        if collect is not None:
            collect()  # the writer's read-back and page buffers are this object's largest
        self.journal = Journal(board.journal_area, S.STATE_SIZE)
        self.st = S.State()
        self.alerts = AL.Queue(self.st)  # saved with the state record, sent after each save
        self.writer = SlotWriter(config.page)  # moves the checkpoint, st.next
        self.writer.on_sector = self._on_sector
        self.writer.check = config.payload_check or getattr(board, "payload_check", None)
        # the parser's sink: this object, which hands the table and the payload to the
        # writer directly
        self.on_table = self.writer.on_table
        self.on_table_end = self.writer.on_table_end
        self.on_payload = self.writer.on_payload
        # lent to the parser's verification of a manifest's signature (the P-256 digit
        # buffers): the writer's read-back buffer is idle until the manifest has verified
        self.work = self.writer.scratch
        self.parser = None
        self.trial = False
        self.reset_needed = False
        self.loading = False  # a transfer is open (begin() until done, rejected or close())
        self.writing = False  # this transfer's image, its manifest verified, is being
                              # written into the slot (on_manifest until done or rejected)
        self._factory = False
        self.floor = 0             # signed seq of the image in the confirmed slot (start())
        self._told = False         # the refusal of a reverted image was saved this boot
        self.stuck = 0             # reason the running slot failed at power on with no
                                   # acceptable image to fall back to (it runs on), else 0

    # -- state and alerts ----------------------------------------------------

    def _save(self):
        self.journal.save(self.st.pack(self.journal.payload))  # packed in the record
        if self.alerts.out:  # not at a per-sector checkpoint
            self.alerts.send(self.sink)

    def ack(self, alert_id):
        """The server acknowledged an alert: forget it."""
        if self.alerts.ack(alert_id):
            self._save()
            return True
        return False

    def unacked(self):
        return self.alerts.unacked()

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
        run = self.board.boot.running()
        A.power_on(self, run)
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
            if raw is None and e.reason == E.SLOT_EMPTY:
                return self.trial  # a blank device, never provisioned: nothing to report
            self.alerts.add(AL.ALERT_BOOT_VERIFY_FAIL, e.reason, st.run_version)
            self._save()
            self.stuck = e.reason
            A.fall_back(self, run)
        return self.trial

    def _boot_check(self, run):
        """The running slot's power-on check: CRC-32 where the bootloader verifies
        signatures (board.boot_verifies); else, at an image's first boot, its signature,
        payload SHA-256 and CRC-32 (the signature's tag then remembered in st.sig_ok), and
        at later boots the payload CRC-32 (agent.store.check.boot_check)."""
        slot = self.board.slots[run]
        if getattr(self.board, "boot_verifies", False):
            return self.check_slot(run)
        st = self.st
        info = verify.boot_check(slot, self.cfg.trust, self.board.verifier, st.sig_ok,
                                 self.writer.scratch)
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
        return self.check_slot(run, self.policy() if full else None,
                               st.mi_hash if st.slot == run else None)

    def check_slot(self, k, policy=None, mi_hash=None):
        """agent.store.check.check of slot k, read through the writer's buffer."""
        return verify.check(self.board.slots[k], policy, self.board.verifier, mi_hash,
                            self.writer.scratch)

    # -- download ------------------------------------------------------------

    def begin(self):
        """Start a transfer session; returns the file offset to fetch first."""
        if self.trial or self.st.phase == S.ACTIVATING or self.reset_needed:
            raise OtaError(E.BUSY, "activation in progress")
        b = self.board.boot
        if not self._factory and b.pending() == 1 - b.running():
            b.revert()  # a pending boot the journal does not know of: cancel it before writing
        collect = self.writer.collect = getattr(self.board, "collect", None)
        if collect is not None:
            collect()  # the session's garbage goes before the parser's buffers are made
        self.parser = Parser(self.policy(), self, self.board.verifier)
        self.take = self.parser.take
        self.writing = False
        self.loading = True
        return 0

    def close(self):
        """The transfer session ended (finished or not): activation may run again, and
        the writer's chunk decoder goes back to the heap."""
        self.loading = False
        self.writer.release()

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
        the heap on every call. From begin() on, the parser's take (the same, one call
        less) stands in this object in its place."""
        return self.parser.take(offset, data)

    _take = take  # what recover() puts back

    def refetch(self, e):
        """After take() raised e: True when a sector that failed its check is fetched again
        (from the offset parser.pos), False when the image is rejected (e stands)."""
        st = self.st
        p = self.parser
        if e.reason == E.SECTOR_CRC and self.writing and p.state == 6:
            # the final check from flash: a sector written and checked has changed since
            e = OtaError(E.SECTOR_CHANGED, e.detail)
        elif e.reason == E.SECTOR_CRC and self.writing and st.fails < self.cfg.refetch:
            st.fails += 1
            self._save()
            p.seek(self.writer.resume_offset(p))  # the failed sector, from its start
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
        self.writer.release()
        p = self.parser
        quiet = p is None or not p.signed  # anyone can send these: they must not wear flash
        if e.reason == E.REVERTED_IMAGE:
            quiet = self._told  # saved once per boot, then as the others
            self._told = True
        if quiet and not self.writing:
            self.alerts.quiet(self.sink, self.board.clock.now(), e.reason)
            return
        if self.writing and st.phase == S.DOWNLOADING:
            st.phase = S.IDLE
        self.writing = False
        self.alerts.add(AL.ALERT_VERIFY_FAIL, e.reason, 0)
        self._save()

    def presize(self, payload):
        """Called by the parser before it verifies the manifest's signature (whose big
        numbers leave the heap fragmented): the writer's buffers for a compressed or delta
        image's sectors are made now, while the heap holds large holes, as the manifest
        payload, not yet verified, asks. A false one costs the memory alone: nothing else
        is decided from it. A heap too small for them (or for reading the manifest) now
        leaves it to the writer later."""
        from agent.image.manifest import sector_of
        try:
            s, enc, cap, wbits = sector_of(payload)
            if s:
                self.writer.reserve(s, enc == fmt.ENC_DELTA, cap, wbits)
        except MemoryError:
            pass

    def on_manifest(self, p):
        st = self.st
        h = hashlib.sha256(p.header_bytes())
        h.update(p.cose_bytes())
        ident = h.digest()
        if st.flags & S.F_REVERTED and st.ident == ident and st.phase == S.IDLE:
            raise OtaError(E.REVERTED_IMAGE, "refused until another image is offered")
        run = self.board.boot.running()
        i = run if self._factory else 1 - run
        m = p.manifest
        if m.encoding == fmt.ENC_DELTA:
            self._base(m, run, i)
        self.writing = True
        off = self._resume(p, ident, i)
        if off is not None:
            return off  # the parser goes on from there
        self.writer.start(self.board.slots[i], st)  # the checkpoint back to 0
        st.phase = S.DOWNLOADING
        st.slot = i
        st.ident = ident
        st.fails = 0
        st.flags = 0
        st.act_time = S.WAIT_COMMAND
        self._save()  # before the slot's meta area is erased
        self.writer.on_manifest(p)
        return None

    def _base(self, m, run, i):
        """A delta is made against an old image: the running slot must hold it. Its signed
        manifest names its payload's size and SHA-256, which its first boot checked from
        flash (and every boot since its CRC-32), so nothing is hashed here."""
        if i == run:
            raise OtaError(E.BASE_MISMATCH, "a delta cannot be installed in its old slot")
        try:
            o = verify.read_meta(self.board.slots[run], self.writer.scratch).manifest
        except OtaError:
            o = None
        if o is None or o.size != m.base_size or o.sha256 != m.base_sha256 or \
                o.version != m.base_version:
            raise OtaError(E.BASE_MISMATCH, "made against version %d, running %s"
                           % (m.base_version, "none" if o is None else o.version))
        self.writer.base = self.board.slots[run]

    def _resume(self, p, ident, i):
        """The resume decision: the file offset where the download of the image p parses
        (its manifest verified) goes on, or None to start it afresh. It goes on from the
        journal's checkpoint when the journal's download is this image (the same header and
        manifest) into the same slot i, past sector 0, and the slot's meta area still holds
        its header and sector table (a cut may have come while they were written)."""
        st = self.st
        slot = self.board.slots[i]
        if st.phase != S.DOWNLOADING or st.ident != ident or st.slot != i or not st.next \
                or not verify.holds_meta(slot, p, self.writer.scratch):
            return None
        return self.writer.resume(slot, p, st)

    def _on_sector(self, nxt, mi):
        # the writer moved the checkpoint to sector nxt: save it
        st = self.st
        st.fails = 0
        if mi is not None:
            st.mi_hash = mi
        self._save()

    def on_done(self, p):
        self.writer.on_done(p)
        st = self.st
        raw = p.manifest.encoding == fmt.ENC_RAW
        p.release()  # the check decodes them from the slot: not held twice through it
        self.writer.m = None
        info = self.check_slot(st.slot, self.policy(), None if raw else st.mi_hash)
        m = info.manifest  # the same manifest, as the slot holds it
        st.mi_hash = info.mi_hash
        if self._factory:  # it runs from the next reset: its signature is known good
            st.sig_ok = info.tag
        st.held_version = m.version
        st.held_seq = m.seq
        st.act_time = S.WAIT_COMMAND
        self.writing = False
        self.loading = False
        if self._factory:
            st.phase = S.IDLE
            st.seq = m.seq
            st.run_version = m.version
        else:
            st.phase = S.HELD
            self.alerts.add(AL.ALERT_VERIFY_OK, 0, m.version)
        self._save()

    def provision(self, read, size, block=1024):
        """Factory install of a first image into the running slot, which must not hold a
        valid image. read(offset, n) returns n bytes of the image file from offset."""
        try:
            self.check_slot(self.board.boot.running(), self.policy())
        except OtaError:
            pass
        else:
            raise OtaError(E.BUSY, "the running slot holds a valid image")
        self._factory = True
        try:
            self.begin()
            pos = 0
            while pos < size:
                b = read(pos, block if block < size - pos else size - pos)
                if not b:
                    raise OtaError(E.TRUNCATED, "image ends at %d of %d bytes" % (pos, size))
                pos = self.feed(pos, b)
            self.end()
        finally:
            self._factory = False

    def recover(self):
        """After a fault in a session: close the transfer, back to the journal's state."""
        self.loading = False
        self.writer.release()
        self.writing = False
        self.parser = None
        self.take = self._take
        self.alerts.drop()
        raw = self.journal.load()
        if raw is not None:
            self.st.unpack(raw)

    # -- activation and trial boot: agent.activation's functions, as methods ---

    schedule = A.schedule      # (when): activate now, at a time, or on a command
    tick = A.tick              # (): run an activation whose time has come
    activate = A.activate      # (mi_hash): an activation command naming the image
    refused = A.refused        # (reason, value): a server's activation time refused
    run_health = A.run_health  # (): on a trial boot, the health check decides
    confirm = A.confirm        # (): the trial image is healthy: keep it
    revert = A.revert          # (reason=ACTIVATION_FAILED): back to the confirmed image
