"""Delta images on the host: the old image a delta is made against (its installed payload,
from an OTA image file or from the firmware binary itself), a delta's sector table read
back, its chunks checked, and its payload rebuilt from the old payload as a device makes it.
otatool sign --delta-from, inspect and verify use it; the bytes are described in the README's
format section and in host_tools/delta.py."""
import hashlib
import struct
import zlib

from agent.crypto import cose
from agent import errors as E
from agent.errors import OtaError
from agent.image import fmt
from agent.image import manifest as mf
from agent.image import pack
from host_tools import delta, keys
from host_tools.report import Rejected


class Parts:
    """An image of ours split by its layout: header (fmt.Header), header_bytes, cose (the
    parsed COSE_Sign1), manifest (agent.image.manifest.Manifest), table, payload, trailer
    (bytes or None)."""


def split(data, what):
    """Parts of the image file bytes data (named `what` in errors); Rejected when the file
    is no image of ours (its manifest's fields are checked by the device's decoder)."""
    data = memoryview(bytes(data))
    try:
        h = fmt.parse_header(data)
        if h.total_size != len(data):
            raise Rejected("bad-image", "%s: the header says %d bytes, the file has %d"
                           % (what, h.total_size, len(data)))
        off = h.length
        got = {}
        for want in (fmt.TAG_MANIFEST, fmt.TAG_TABLE, fmt.TAG_PAYLOAD):
            if off + fmt.ELEM_SIZE > len(data):
                raise OtaError(E.TRUNCATED, "sub-element 0x%04X missing" % want)
            tag, length = struct.unpack_from(fmt.ELEM_FMT, data, off)
            off += fmt.ELEM_SIZE
            if tag != want or off + length > len(data):
                raise OtaError(E.MISSING_ELEMENT, "0x%04X where 0x%04X belongs" % (tag, want))
            got[tag] = data[off:off + length]
            off += length
        msg = cose.parse_sign1(got[fmt.TAG_MANIFEST])
        m = mf.decode(msg.payload)
    except OtaError as e:
        raise Rejected("bad-image", "%s is not a signed image of ours: %s" % (what, e))
    out = Parts()
    out.header = h
    out.header_bytes = bytes(data[:h.length])
    out.cose = msg
    out.manifest = m
    out.table = bytes(got[fmt.TAG_TABLE])
    out.payload = got[fmt.TAG_PAYLOAD]
    out.trailer = bytes(data[off:]) or None
    if len(out.table) != m.table_size or len(out.payload) != m.enc_size:
        raise Rejected("bad-image", "%s: its table or payload does not have the manifest's "
                                    "size" % what)
    return out


def signed_by(parts, public_key):
    """True when the manifest's signature verifies with public_key (a cryptography key)."""
    msg = parts.cose
    tbs = pack.sig_structure(bytes(msg.protected), parts.header_bytes, bytes(msg.payload))
    return keys.verify(public_key, bytes(msg.signature), data=tbs)


def entries(m, table):
    """The sector table's entries: [(crc32, offset, length, digest, mode)] (mode None for
    a raw or deflate table)."""
    out = []
    for k in range(m.sectors):
        e = pack.unpack_entry(m.encoding, table, k)
        out.append(tuple(e) if m.encoding == fmt.ENC_DELTA else tuple(e) + (None,))
    return out


def _inflate(chunk, wbits, k):
    d = zlib.decompressobj(-wbits)
    try:
        out = d.decompress(bytes(chunk)) + d.flush()
    except zlib.error as e:
        raise OtaError(E.SECTOR_CRC, "sector %d: chunk does not inflate (%s)" % (k, e))
    if not d.eof or d.unused_data:
        raise OtaError(E.SECTOR_CRC, "sector %d: chunk is not one whole deflate stream" % k)
    return out


def _sector_len(m, k):
    return min(m.sector, m.size - k * m.sector)


def check_chunks(m, table, payload):
    """What can be checked of a delta without the old payload: the chunks in sector order,
    back to back, ending at enc_size, each matching its digest; copies inside the old
    payload. Returns [mode] per sector; OtaError (the device's reason codes) otherwise."""
    pos = 0
    modes = []
    for k, (_crc, off, length, digest, mode) in enumerate(entries(m, table)):
        n = _sector_len(m, k)
        modes.append(mode)
        if mode == fmt.MODE_COPY:
            if length or off + n > m.base_size:
                raise OtaError(E.BAD_TABLE, "sector %d copies %d+%d" % (k, off, n))
            continue
        if mode > fmt.MODE_DELTA or (mode == fmt.MODE_RAW and length != n) or off != pos \
                or not length or length > m.chunk_max or off + length > m.enc_size:
            raise OtaError(E.BAD_TABLE, "sector %d mode %d chunk %d+%d" % (k, mode, off, length))
        if hashlib.sha256(payload[off:off + length]).digest()[:fmt.CHUNK_DIGEST] != digest:
            raise OtaError(E.SECTOR_CRC, "sector %d: chunk digest" % k)
        pos = off + length
    if pos != m.enc_size:
        raise OtaError(E.BAD_TABLE, "chunks end at %d, payload %d bytes" % (pos, m.enc_size))
    return modes


def rebuild(m, table, payload, base):
    """The installed payload a delta makes from the old payload base, every sector checked
    against its CRC-32 (and a copy against its digest), then the whole against the
    manifest's SHA-256 and CRC-32, as a device checks it."""
    if len(base) != m.base_size or hashlib.sha256(base).digest() != m.base_sha256:
        raise OtaError(E.BASE_MISMATCH, "the old payload given is %d bytes, sha256 %s; the "
                       "delta needs %d bytes, sha256 %s" % (len(base), hashlib.sha256(
                           base).hexdigest(), m.base_size, bytes(m.base_sha256).hex()))
    check_chunks(m, table, payload)
    out = bytearray()
    for k, (crc, off, length, digest, mode) in enumerate(entries(m, table)):
        n = _sector_len(m, k)
        chunk = payload[off:off + length]
        if mode == fmt.MODE_COPY:
            sec = base[off:off + n]
            if hashlib.sha256(sec).digest()[:fmt.CHUNK_DIGEST] != digest:
                raise OtaError(E.SECTOR_CRC, "sector %d: copied bytes' digest" % k)
        elif mode == fmt.MODE_RAW:
            sec = bytes(chunk)
        elif mode == fmt.MODE_DEFLATE:
            sec = _inflate(chunk, m.wbits, k)
        else:
            try:
                sec = delta.apply_ops(base, _inflate(chunk, m.wbits, k), n)
            except delta.DeltaError as e:
                raise OtaError(E.SECTOR_CRC, "sector %d: %s" % (k, e))
        if len(sec) != n or zlib.crc32(sec) != crc:
            raise OtaError(E.SECTOR_CRC, "sector %d" % k)
        out += sec
    if zlib.crc32(out) != m.crc32:
        raise OtaError(E.PAYLOAD_CRC, "rebuilt payload")
    if hashlib.sha256(out).digest() != m.sha256:
        raise OtaError(E.PAYLOAD_DIGEST, "rebuilt payload")
    return bytes(out)


def installed(parts, what):
    """The installed payload of a raw or per-sector deflate image (a delta is refused: a
    delta is made against a full image), checked against its manifest."""
    m = parts.manifest
    if m.encoding == fmt.ENC_DELTA:
        raise Rejected("delta-of-delta", "%s is a delta image (against version 0x%08X): make "
                       "the delta from the full image of that release or from its firmware "
                       "binary" % (what, m.base_version))
    if m.encoding == fmt.ENC_RAW:
        out = bytes(parts.payload)
    else:
        pieces = []
        try:
            for k, (_crc, off, length, _d, _m) in enumerate(entries(m, parts.table)):
                pieces.append(_inflate(parts.payload[off:off + length], m.wbits, k))
        except OtaError as e:
            raise Rejected("bad-image", "%s: %s" % (what, e))
        out = b"".join(pieces)
    if len(out) != m.size or hashlib.sha256(out).digest() != m.sha256:
        raise Rejected("bad-image", "%s: its payload does not match its manifest's size and "
                                    "SHA-256" % what)
    return out


def summary(m, table):
    """A delta's table as JSON-ready facts: the old image, each sector's mode, the bytes per
    mode, and the bytes against a raw image of the same payload (payload and table)."""
    counts = dict((name, 0) for name in delta.MODES)
    mode_bytes = dict((name, 0) for name in delta.MODES)
    sectors = []
    for crc, off, length, _d, mode in entries(m, table):
        name = delta.MODES[mode] if mode < len(delta.MODES) else str(mode)
        counts[name] = counts.get(name, 0) + 1
        mode_bytes[name] = mode_bytes.get(name, 0) + length
        sectors.append({"mode": name, "offset": off, "length": length})
    raw = m.size + m.sectors * fmt.TABLE_RAW_SIZE
    sent = m.enc_size + m.table_size
    return {"base": {"size": m.base_size, "sha256": bytes(m.base_sha256).hex(),
                     "version": m.base_version},
            "sector_size": m.sector, "counts": counts, "bytes": mode_bytes,
            "sent": sent, "raw": raw, "saved_vs_raw": raw - sent, "sectors": sectors}


def runs(sectors):
    """The sectors of summary() as compact text items: a run of copies as "a-b copy", a
    chunk as "k mode length"."""
    out = []
    k = 0
    while k < len(sectors):
        s = sectors[k]
        if s["mode"] == "copy":
            j = k
            while j + 1 < len(sectors) and sectors[j + 1]["mode"] == "copy":
                j += 1
            out.append(("%d-%d copy" % (k, j)) if j > k else "%d copy" % k)
            k = j + 1
            continue
        out.append("%d %s %d" % (k, s["mode"], s["length"]))
        k += 1
    return out
