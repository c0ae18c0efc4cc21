# Checking a slot from flash: what is activated is what is in flash, not what passed
# through RAM. Fast check (boot): the payload's CRC-32 against the manifest. Full check:
# manifest signature with the header as external_aad, sector table digest, every sector's
# CRC-32, payload SHA-256 and CRC-32, the Manufacturer Image hash, the supplier signature.
import binascii
import hashlib
import struct

from agent.image import fmt
from agent import errors as E
from agent.image.manifest import Manifest
from agent.store import slot as L
from agent.store.slot import scan, table_entry, sector_len


def _lent(buf):
    # the buffer a caller lends a check, or one made here that holds the meta area
    return buf if buf is not None else bytearray(L.TRAILER_OFF + fmt.TRAILER_SIZE)


class SlotInfo:
    """What a check found: header, manifest, and (full check) the MI hash and trailer."""

    def __init__(self):
        self.header = None
        self.header_bytes = None
        self.cose = None
        self.manifest = None
        self.trailer = None
        self.mi_hash = None
        self.tag = None  # sig_tag() once the manifest's signature has verified


def _meta(slot, buf):
    # the slot's meta area read into buf (see check) when it holds it, else into a buffer
    # made here: (the bytes, header length, COSE length, table length), lengths checked
    a = slot.area
    n = L.TRAILER_OFF + fmt.TRAILER_SIZE
    b = memoryview(buf)[:n] if buf is not None and len(buf) >= n else bytearray(n)
    a.read(slot.meta, b)
    magic, hl, cl, tl = struct.unpack_from(L.META_FMT, b, 0)
    if magic != L.META_MAGIC:
        e = a.erased
        for i in range(L.META_SIZE):
            if b[i] != e:
                raise E.OtaError(E.SLOT_INVALID, "slot %d: bad meta record" % slot.index)
        raise E.OtaError(E.SLOT_EMPTY, "slot %d" % slot.index)
    if hl > fmt.HDR_MAX or not cl or cl > fmt.MANIFEST_MAX or tl > slot.table_max:
        raise E.OtaError(E.SLOT_INVALID, "slot %d: meta lengths" % slot.index)
    return b, hl, cl, tl


def _tail(buf, n):
    # what a lent buffer holds past the meta area's n bytes: the P-256 verification's work
    # buffer (agent.crypto.p256.verify uses it when it is long enough)
    return memoryview(buf)[n:] if buf is not None and len(buf) > n else None


def read_meta(slot, buf=None, trust=None, verifier=None, known=None):
    """Header, COSE bytes, manifest and trailer from a slot's meta area, read into buf (see
    check) when it holds them, else into a buffer made here. Without trust the manifest is
    not verified (info.tag None). With trust, info.tag is the meta area's sig_tag(), and
    unless it is known (recorded when this manifest verified before) the manifest's
    signature is verified first, from the bytes as read (the header as external_aad),
    before anything is decoded or copied: the P-256 verification is a check's peak of heap,
    and nothing of the SlotInfo is held while it runs. OtaError BAD_SIGNATURE if it fails."""
    b, hl, cl, tl = _meta(slot, buf)
    from agent.crypto import cbor, cose
    hv = b[L.HDR_OFF:L.HDR_OFF + hl]
    cv = b[L.COSE_OFF:L.COSE_OFF + cl]
    tag = msg = None
    if trust is not None:
        tag = _tag(hv, cv)
        if tag != known:  # (msg's fields are copies: it outlives buf's next use)
            msg = cose.parse_sign1(cv)
            if not cose.verify_sign1(msg, hv, trust.find(msg.kid), verifier,
                                     _tail(buf, len(b))):
                raise E.OtaError(E.BAD_SIGNATURE, "slot %d" % slot.index)
    info = SlotInfo()
    info.tag = tag
    info.header_bytes = bytes(hv)
    info.cose_raw = bytes(cv)
    info.cose = msg if msg is not None else cose.parse_sign1(info.cose_raw)
    info.header = fmt.parse_header(info.header_bytes)
    m = Manifest(cbor.decode(info.cose.payload))
    m.check_header(info.header)
    if m.table_size != tl or m.size > slot.capacity:
        raise E.OtaError(E.SLOT_INVALID, "slot %d: table or size" % slot.index)
    if trust is not None and m.kid != info.cose.kid:
        raise E.OtaError(E.BAD_MANIFEST, "key id differs from the COSE header's")
    info.manifest = m
    info.cose_len = cl
    t = b[L.TRAILER_OFF:L.TRAILER_OFF + fmt.TRAILER_SIZE]
    if t[1] == fmt.TRAILER_SIG_LEN:
        info.trailer = fmt.parse_trailer(t)
    return info


def sig_tag(info):
    """The first 16 bytes of SHA-256(OTA header || COSE_Sign1) of a slot's meta area: what
    the journal remembers of a manifest whose signature verified."""
    return _tag(info.header_bytes, info.cose_raw)


def _tag(header, cose):
    h = hashlib.sha256(header)
    h.update(cose)
    return h.digest()[:16]


def holds_meta(slot, p, buf=None):
    """The slot's meta area holds the OTA header, a manifest of the same length and the
    sector table of the image p parses (its manifest verified): what a download resumed
    into the slot needs (a cut may have come while the meta area was written). buf: as
    for check."""
    buf = _lent(buf)
    try:
        info = read_meta(slot, buf)
    except E.OtaError:
        return False
    if info.header_bytes != bytes(p.header_bytes()) or info.cose_len != p.cose_len:
        return False
    t = hashlib.sha256()
    scan(slot.area, slot.meta + L.TABLE_OFF, p.manifest.table_size, buf, 0, t)
    return t.digest() == p.manifest.table_sha256


def boot_check(slot, trust, verifier=None, known=None, buf=None):
    """Power-on check for a board whose boot chain does not verify signatures. known is
    the sig_tag() recorded once this image passed a full check from flash (its install, or
    an earlier power-on check). First boot (sig_tag() != known): the manifest's signature,
    the payload's SHA-256 and CRC-32 against it, so a change that keeps the CRC-32 is
    caught. Later boots: the payload's CRC-32 only (flash decay; whoever can rewrite flash
    to keep the CRC-32 can rewrite the agent and the journal too). buf: the read buffer
    (see check). Returns the SlotInfo with .tag set; OtaError BAD_SIGNATURE, PAYLOAD_CRC,
    PAYLOAD_DIGEST, ... otherwise."""
    buf = _lent(buf)
    info = read_meta(slot, buf, trust, verifier, known)
    m = info.manifest
    psha = hashlib.sha256() if info.tag != known else None
    _crc(slot, m, psha, buf)
    if psha is not None and psha.digest() != m.sha256:
        raise E.OtaError(E.PAYLOAD_DIGEST, "slot %d" % slot.index)
    return info


def _crc(slot, m, h, buf):
    # the payload's CRC-32 against the manifest (its bytes into h too)
    if scan(slot.area, 0, m.size, buf, 0, h) != m.crc32:
        raise E.OtaError(E.PAYLOAD_CRC, "slot %d" % slot.index)


def check(slot, policy=None, verifier=None, mi_hash=None, buf=None):
    """Check slot from flash. policy None: fast check (CRC-32 of the payload only).
    With a policy: the full check; mi_hash is the deflate image's Manufacturer Image hash
    recorded during its download, or a delta's (raw images get theirs from flash). buf: the flash is read
    through it (the agent lends its writer's 2 KiB read-back buffer: each read is a call
    chain down to the flash driver, and a buffer made here is a large allocation late in
    a fragmented heap); None: one the meta area's size is made. Returns a SlotInfo."""
    buf = _lent(buf)
    info = read_meta(slot, buf, policy.trust if policy is not None else None, verifier)
    m = info.manifest
    if policy is None:
        _crc(slot, m, None, buf)
        return info
    tsha = hashlib.sha256()
    scan(slot.area, slot.meta + L.TABLE_OFF, m.table_size, buf, 0, tsha)
    if tsha.digest() != m.table_sha256:
        raise E.OtaError(E.BAD_TABLE_DIGEST, "slot %d" % slot.index)
    mi = None
    if m.encoding == fmt.ENC_RAW:  # the payload element holds the installed bytes
        mi = hashlib.sha256()
        L.hash_prefix(slot, info.cose_len, m, mi, buf)
    _sectors(slot, m, buf, mi)
    info.mi_hash = mi.digest() if mi is not None else mi_hash
    _supplier(info, policy.supplier_key, verifier)
    return info


def _sectors(slot, m, buf, mi):
    # every sector's CRC-32 against the table, then the payload's CRC-32 and SHA-256, in one
    # pass over the flash; the same bytes go into the Manufacturer Image hash mi (raw)
    a = slot.area
    ent = bytearray(fmt.TABLE_DELTA_SIZE)
    mv = memoryview(buf)
    psha = hashlib.sha256()
    total = 0
    for k in range(m.sectors):
        n = sector_len(m, k)
        off = k * m.sector
        c = 0
        while n:
            part = mv[:n if n < len(buf) else len(buf)]
            a.read(off, part)
            c = binascii.crc32(part, c)
            total = binascii.crc32(part, total)
            psha.update(part)
            if mi is not None:
                mi.update(part)
            off += len(part)
            n -= len(part)
        if c != table_entry(slot, m, k, ent)[0]:
            raise E.OtaError(E.SECTOR_CRC, "slot %d sector %d" % (slot.index, k))
    if total != m.crc32:
        raise E.OtaError(E.PAYLOAD_CRC, "slot %d" % slot.index)
    if psha.digest() != m.sha256:
        raise E.OtaError(E.PAYLOAD_DIGEST, "slot %d" % slot.index)


def _supplier(info, key, verifier):
    # the GBCS supplier signature over the Manufacturer Image hash, where one is required
    if key is None:
        return
    if info.trailer is None:
        raise E.OtaError(E.SUPPLIER_SIG_REQUIRED)
    if info.mi_hash is None:
        raise E.OtaError(E.SLOT_INVALID, "Manufacturer Image hash unknown")
    v = verifier
    if v is None:
        from agent.crypto.p256 import verify as v
    if not v(key, info.mi_hash, info.trailer[1]):
        raise E.OtaError(E.BAD_SUPPLIER_SIG)
