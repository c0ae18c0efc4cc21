# agent.store.check: a slot checked from flash. The power-on check of the running slot, on
# a board whose boot chain does not verify signatures: at an image's first boot the
# manifest's signature and the payload's SHA-256 and CRC-32 against it (tampering), at its
# later boots the CRC-32 only (corruption), the verification remembered in the journal. The
# fast and the full check; whether a slot's meta area still holds an image's header and
# table (a download's resume needs it).
import struct

from agent.activation import ACT_SUCCESS
from agent.alerts import ALERT_BOOT_VERIFY_FAIL
from agent.store import check as verify
from agent.crypto.p256 import verify as p256_verify
from agent.errors import PAYLOAD_DIGEST, BAD_SIGNATURE, PAYLOAD_CRC, SECTOR_CRC, NO_FALLBACK, \
    BAD_MANIFEST
from agent.store.slot import TABLE_OFF, TRAILER_OFF, COSE_OFF
from agent.image.fmt import TRAILER_SIZE
from hal.sim.board import EmuBoard
from agent.update import Device
from devkit import Rig
from tutil import read_data, eq, raises, Image


class CountingRig(Rig):
    """Rig whose board counts the P-256 verifications the agent asks for."""

    def reboot(self):
        self.board = EmuBoard(self.flash, self.layout, verifier=self._verify)
        self.board.power_on()
        self.verifies = 0
        self.dev = Device(self.board, self.cfg, self.alerts)
        self.dev.start()
        return self.dev

    def _verify(self, pub, digest, sig):
        self.verifies += 1
        return p256_verify(pub, digest, sig)


def _rewrite(r, off, patch):
    """Change flash bytes at off (in one sector) as an attacker with the flash would."""
    ss = r.layout.sector_size
    base = off - off % ss
    buf = bytearray(ss)
    r.flash.read(base, buf)
    buf[off - base:off - base + len(patch)] = patch
    r.flash.erase(base, ss)
    r.flash.write(base, buf)


def _tamper(r):
    """16 changed bytes and 4 that restore the CRC-32, in the running slot 0's payload."""
    t = read_data("hard_tamper.bin")
    off = struct.unpack_from("<I", t, 0)[0]
    _rewrite(r, r.layout.slot_off[0] + off, t[4:24])


def test_crc_preserving_tamper_is_caught_at_a_first_boot():
    r = Rig()
    r.provision()
    _tamper(r)
    verify.check(r.board.slots[0])  # the CRC-32 still matches: corruption checks pass
    # a later boot checks the CRC-32 only (README, Security): this change passes it
    r.reboot()
    eq(r.alerts.got, [], "CRC-32 only at a later boot")
    # the journal lost: the next boot is a first boot again, the full check
    r.flash.erase(r.layout.journal_off, r.layout.journal_size)
    d = r.reboot()
    got = r.alerts.got
    assert got, "tampering raised no alert"
    eq(got[0][:2], (ALERT_BOOT_VERIFY_FAIL, PAYLOAD_DIGEST), "alert")
    assert not d.reset_needed  # nothing to fall back to: it runs on, and has said so
    eq(d.stuck, PAYLOAD_DIGEST, "flagged")


def test_first_and_later_boot_checks():
    r = Rig()
    r.provision()
    slot = r.board.slots[0]
    trust = r.cfg.trust
    tag = verify.boot_check(slot, trust).tag
    eq(tag, r.dev.st.sig_ok, "the tag the journal holds")
    eq(verify.boot_check(slot, trust, None, tag).manifest.version, 1, "later boot")
    _tamper(r)
    raises(PAYLOAD_DIGEST, verify.boot_check, slot, trust)
    raises(PAYLOAD_DIGEST, verify.boot_check, slot, trust, None, bytes(16))
    eq(verify.boot_check(slot, trust, None, tag).tag, tag, "the CRC-32 is kept")
    r.flash.flip_bits(r.layout.slot_off[0] + 100, 0x80)
    raises(PAYLOAD_CRC, verify.boot_check, slot, trust, None, tag)
    raises(PAYLOAD_CRC, verify.boot_check, slot, trust)


class _Sha:
    """hashlib.sha256 that counts the bytes hashed."""

    def __init__(self, log, data=b""):
        import hashlib
        self.h = hashlib.sha256(data)
        self.log = log
        log[0] += len(data)

    def update(self, data):
        self.log[0] += len(data)
        self.h.update(data)

    def digest(self):
        return self.h.digest()


class _Hashlib:
    def __init__(self):
        self.log = [0]

    def sha256(self, data=b""):
        return _Sha(self.log, data)


def _hashed(f, *args):
    """Bytes f(*args) passes to agent.store.check's SHA-256."""
    real = verify.hashlib
    verify.hashlib = fake = _Hashlib()
    try:
        f(*args)
    finally:
        verify.hashlib = real
    return fake.log[0]


def test_later_boot_hashes_only_the_meta_area():
    r = Rig()
    r.provision()
    slot = r.board.slots[0]
    info = verify.read_meta(slot)
    meta = len(info.header_bytes) + len(info.cose_raw)
    tag = verify.sig_tag(info)
    eq(_hashed(verify.boot_check, slot, r.cfg.trust, None, tag), meta, "sig_tag() only")
    eq(_hashed(verify.boot_check, slot, r.cfg.trust), meta + info.manifest.size,
       "first boot: the payload too")


def test_crc_breaking_change_refused_at_a_later_boot_and_nothing_lost():
    r = CountingRig()
    r.provision()
    st = r.dev.st
    was = (st.sig_ok, st.seq, st.run_version)
    off = r.layout.slot_off[0] + 5000
    r.flash.flip_bits(off, 0x01)
    d = r.reboot()
    eq(r.verifies, 0, "a later boot: the signature is not verified again")
    eq([a[:2] for a in r.alerts.got], [(ALERT_BOOT_VERIFY_FAIL, PAYLOAD_CRC),
                                       (ALERT_BOOT_VERIFY_FAIL, NO_FALLBACK)], "alerts")
    eq(d.stuck, PAYLOAD_CRC, "flagged")
    assert not d.reset_needed  # nothing to fall back to: it runs on, and has said so
    st = d.st
    eq((st.sig_ok, st.seq, st.run_version), was, "the journal keeps the image and the floor")
    d = r.reboot()
    eq(d.stuck, PAYLOAD_CRC, "refused again")
    r.flash.flip_bits(off, 0x01)  # the bytes are as they were: nothing was erased
    n = len(r.alerts.got)
    d = r.reboot()
    eq((d.stuck, r.alerts.got[n:], r.verifies), (0, [], 0), "runs as before, still known")
    r.download(Image("core_v2.ota"))
    eq(d.schedule(0), ACT_SUCCESS, "and updates")


def test_signature_checked_once_per_image():
    r = CountingRig()
    r.provision()
    eq(r.verifies, 0, "the signature verified at install is remembered")
    r.reboot()
    eq(r.verifies, 0, "and at the next boot")
    # the journal lost: the first boot verifies once, saves it, the next ones do not
    r.flash.erase(r.layout.journal_off, r.layout.journal_size)
    r.reboot()
    eq(r.verifies, 1, "verified once")
    r.reboot()
    eq(r.verifies, 0, "remembered")
    eq(r.alerts.got, [], "no alert for a good image")


def test_new_image_verified_at_its_first_boot_only():
    r = CountingRig()
    r.provision()
    r.download(Image("core_v2.ota"))
    r.reboot()
    eq(r.verifies, 0, "a held image does not displace the running one's")
    eq(r.dev.schedule(0), ACT_SUCCESS, "activation")
    d = r.reboot()
    assert d.trial
    eq(r.verifies, 1, "the new image's first boot")
    d.confirm()
    r.reboot()
    eq(r.verifies, 0, "then remembered")


def test_replaced_manifest_is_verified_and_refused():
    r = CountingRig()
    r.provision()
    # a change in the manifest's signature changes what the journal remembers: the
    # signature is checked again, and fails
    meta = r.layout.slot_off[0] + r.layout.slot_size - r.layout.meta_size
    b = bytearray(12)
    r.flash.read(meta, b)
    cose_len = b[6] | b[7] << 8
    sig_end = meta + 85 + cose_len
    s = bytearray(4)
    r.flash.read(sig_end - 4, s)
    s[3] ^= 0x01
    _rewrite(r, sig_end - 4, s)
    d = r.reboot()
    eq(r.verifies, 1, "verified")
    eq(r.alerts.got[0][:2], (ALERT_BOOT_VERIFY_FAIL, BAD_SIGNATURE), "alert")
    eq(d.stuck, BAD_SIGNATURE, "runs on, flagged")


def test_board_whose_bootloader_verifies_keeps_the_cheap_check():
    r = CountingRig()
    r.provision()
    r.flash.erase(r.layout.journal_off, r.layout.journal_size)  # nothing remembered
    r.board.boot_verifies = True
    r.dev = Device(r.board, r.cfg, r.alerts)
    r.verifies = 0
    r.dev.start()
    eq(r.verifies, 0, "CRC-32 only: the bootloader has verified the signature")
    eq(r.alerts.got, [], "no alert")


class _Headers:
    """A parser sink that keeps nothing: the parser holds the header and the manifest."""

    def on_manifest(self, p):
        return None

    def on_table(self, mv):
        pass

    def on_table_end(self):
        pass

    def on_payload(self, mv):
        pass


def _parsed(r, name):
    from agent.image.parser import Parser
    img = Image(name)
    p = Parser(r.dev.policy(), _Headers())
    off = 0
    while p.state != 4:  # up to the payload
        p.feed(img[off:off + 48])
        off = p.pos
    return p


def test_holds_meta_of_the_image_downloaded():
    r = Rig()
    r.provision()
    r.download(Image("core_v2.ota"))
    slot = r.board.slots[1]
    lent = r.dev.writer.scratch

    def holds(s, name):  # the same answer through a buffer of its own and a lent one
        v = verify.holds_meta(s, _parsed(r, name))
        eq(verify.holds_meta(s, _parsed(r, name), lent), v, "through the lent buffer")
        return v
    assert holds(slot, "core_v2.ota"), "the same image"
    assert not holds(slot, "core_v3.ota"), "another image"
    assert not holds(r.board.slots[0], "core_v2.ota"), "v1's slot"
    meta = r.layout.slot_off[1] + r.layout.slot_size - r.layout.meta_size
    r.flash.flip_bits(meta + TABLE_OFF + 2, 0x01)
    assert not holds(slot, "core_v2.ota"), "a table byte changed"
    r.flash.erase(meta, r.layout.meta_size)
    assert not holds(slot, "core_v2.ota"), "an erased meta area"


def test_fast_and_full_checks_name_what_changed():
    r = Rig()
    r.provision()
    slot = r.board.slots[0]
    eq(verify.check(slot).manifest.version, 1, "fast check")
    info = verify.check(slot, r.dev.policy())
    eq(len(info.mi_hash), 32, "Manufacturer Image hash from flash")
    eq(info.tag, verify.sig_tag(info), "signature remembered as")
    r.flash.flip_bits(r.layout.slot_off[0] + 5000, 0x01)
    raises(PAYLOAD_CRC, verify.check, slot)
    raises(SECTOR_CRC, verify.check, slot, r.dev.policy())


def test_checks_read_through_the_buffer_lent_them():
    # the agent lends its writer's read-back buffer: no check makes a large one of its own
    r = Rig()
    r.provision()
    slot = r.board.slots[0]
    m = verify.check(slot).manifest

    def last_read(n):  # what the payload's last read through n bytes leaves in them
        b = bytearray(m.size % n or n)
        slot.area.read(m.size - len(b), b)
        return bytes(b)
    for call in (lambda b: verify.check(slot, None, None, None, b),
                 lambda b: verify.check(slot, r.dev.policy(), None, None, b),
                 lambda b: verify.boot_check(slot, r.cfg.trust, None, None, b)):
        buf = bytearray(256)
        info = call(buf)
        eq(info.manifest.version, 1, "checked through a 256-byte buffer")
        tail = last_read(256)
        eq(bytes(buf[:len(tail)]), tail, "the payload's last read is in the buffer")
    s = r.dev.writer.scratch
    for i in range(len(s)):
        s[i] = 0xA5
    r.dev.check_slot(0, r.dev.policy())
    tail = last_read(len(s))
    eq(bytes(s[:len(tail)]), tail, "the device's checks read through its writer's")


def test_meta_area_read_through_a_lent_buffer_long_enough():
    # the meta area (header, manifest, trailer) is read through a lent buffer that holds it,
    # so a check late in a download makes no buffer of that size; a shorter one is not used
    r = Rig()
    r.provision()
    slot = r.board.slots[0]
    own = verify.read_meta(slot)
    raw = bytearray(TABLE_OFF)
    slot.area.read(slot.meta, raw)
    n = TRAILER_OFF + TRAILER_SIZE
    for size, used in ((n, True), (2048, True), (n - 1, False)):
        buf = bytearray(b"\xA5" * size)
        info = verify.read_meta(slot, buf)
        eq((info.header_bytes, info.cose_raw, info.manifest.seq, info.trailer),
           (own.header_bytes, own.cose_raw, own.manifest.seq, own.trailer),
           "read through %d bytes" % size)
        eq(bytes(buf[:n]) == bytes(raw[:n]), used, "a %d-byte buffer holds the meta area" % size)


def test_signature_verified_before_the_meta_area_is_decoded():
    # the P-256 verification is a check's peak of heap: it runs over the bytes as read, and
    # no manifest, header or copy of the meta area is made until it has passed
    r = Rig()
    r.provision()
    slot = r.board.slots[0]
    made = []
    seen = []
    real = verify.Manifest

    def manifest(d):
        made.append(1)
        return real(d)

    def verifier(pub, digest, sig):
        seen.append(len(made))
        return p256_verify(pub, digest, sig)
    verify.Manifest = manifest
    try:
        info = verify.check(slot, r.dev.policy(), verifier)
        eq((seen, len(made)), ([0], 1), "verified before the one manifest decoded")
        tag = info.tag
        eq(verify.read_meta(slot, None, r.cfg.trust, verifier, tag).tag, tag, "known")
        eq(len(seen), 1, "a known tag: not verified again")
        eq(verify.read_meta(slot, None, None, verifier).tag, None, "no trust: no tag")
        eq(len(seen), 1, "no trust: not verified")
    finally:
        verify.Manifest = real
    # a manifest byte changed in flash: refused for its signature before it is decoded
    meta = r.layout.slot_off[0] + r.layout.slot_size - r.layout.meta_size
    b = bytearray(1)
    r.flash.read(meta + COSE_OFF + 40, b)
    _rewrite(r, meta + COSE_OFF + 40, bytes((b[0] ^ 0xFF,)))
    raises(BAD_SIGNATURE, verify.check, slot, r.dev.policy())
    raises(BAD_SIGNATURE, verify.boot_check, slot, r.cfg.trust)


def test_verifications_take_their_digit_buffers_from_the_writers():
    # the manifest's signature, as it arrives and in the check from flash, is verified with
    # the P-256 digit buffers in the writer's read-back buffer, which the device lends: no
    # 257-byte holes needed late in a fragmented heap
    from agent.crypto import p256
    r = Rig()
    r.provision()
    s = r.dev.writer.scratch
    real = p256.verify
    wrote = []

    def verify(pub, digest, sig, work=None):
        before = bytes(s)
        ok = real(pub, digest, sig, work)
        wrote.append(bytes(s) != before)
        return ok
    p256.verify = verify
    try:
        r.download(Image("core_v2.ota"))
    finally:
        p256.verify = real
    eq(wrote, [True, True], "the manifest as it came, then from flash: digits in the buffer")


def test_manifest_naming_another_key_is_refused_from_flash():
    # a meta area whose manifest, signed well by the key its COSE header names, names another
    # key's id (core_v1_kid.ota: core_v1 but for that, the same length): BAD_MANIFEST from
    # the full check and from a first boot's, after the signature has verified
    r = Rig()
    r.provision()
    slot = r.board.slots[0]
    info = verify.read_meta(slot)
    with Image("core_v1_kid.ota") as img:
        hl = len(info.header_bytes)
        cose = bytes(img[hl + 6:hl + 6 + info.cose_len])
    eq(len(cose), info.cose_len, "the same length")
    assert cose != info.cose_raw
    meta = r.layout.slot_off[0] + r.layout.slot_size - r.layout.meta_size
    _rewrite(r, meta + COSE_OFF, cose)
    eq(verify.read_meta(slot).cose_raw, cose, "in flash")
    e = raises(BAD_MANIFEST, verify.check, slot, r.dev.policy())
    assert "key id" in str(e), e
    raises(BAD_MANIFEST, verify.boot_check, slot, r.cfg.trust)
