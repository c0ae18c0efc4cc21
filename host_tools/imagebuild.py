"""The image builder: a firmware payload signed into an image file (format v1, declared in
agent/image/fmt.py, the manifest's keys in agent/image/manifest.py, COSE in
agent/crypto/cose.py). The sign command (host_tools/sign.py) parses its options and calls it.

OTA header | 0xF0A1 manifest (COSE_Sign1, ES256, external_aad = header)
           | 0xF0A2 sector table | 0x0000 payload | [GBCS supplier trailer]

build() signs with a private key; prepare() then finish() do the same around an external
signer (an HSM signs prepare()'s digest).
"""
import hashlib
import os
import stat
import threading
import zlib

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from agent.crypto import cose
from agent.image import fmt
from agent.image import pack
from agent.image import manifest as mf
from host_tools import keys
from host_tools.cli import InputError
from host_tools.report import Rejected

_THREAD_MIN = 1 << 20     # payloads this big are hashed in a second thread
_PROGRESS_STEP = 1 << 20  # report progress about once per MiB
U16 = 0xFFFF
U32 = 0xFFFFFFFF


class Built:
    """A signed image as a list of buffers (parts) and what went into it."""

    def __init__(self):
        self.parts = []            # header, element headers and data, trailer, in file order
        self.size = 0              # total image size
        self.header = b""          # the OTA header bytes (the COSE external_aad)
        self.manifest = {}         # the manifest map (integer keys manifest.M_*)
        self.manifest_cbor = b""   # its deterministic CBOR encoding (the COSE payload)
        self.cose = b""            # the 0xF0A1 element's data
        self.table = b""           # the 0xF0A2 element's data
        self.data = b""            # the 0x0000 element's data (a view of the firmware, raw)
        self.protected = b""       # the COSE protected header (alg, kid)
        self.kid = b""
        self.public_key = None     # the key the manifest signature must verify with
        self.supplier = False      # a GBCS trailer is added (its size is in the header)
        self.force_replace = False
        self.trailer = None        # the GBCS trailer bytes, when a supplier signed it
        self.mi_sha256 = None      # Manufacturer Image SHA-256, once computed (supplier)
        self.compressed = False    # the payload is deflated per sector
        self.encoding = fmt.ENC_RAW  # the manifest's encoding
        self.wbits = 0             # the chunks' deflate window, bits (0: raw)
        self.delta_modes = None    # delta: each sector's mode (fmt.MODE_*)
        self.base = {}             # delta: the manifest's keys naming the old image
        self.fallback = None       # (deflate size, raw size) when deflate did not pay
        self.tbs = b""             # the COSE Sig_structure the manifest signature covers
        self.digest = b""          # its SHA-256: what an external signer (HSM) signs
        self.normalised = False    # the manifest signature given was high-s, written low-s

    def tobytes(self):
        return b"".join(self.parts)

    def manufacturer_image_sha256(self):
        """SHA-256 over the Manufacturer Image (all sub-elements, without the trailer)."""
        if self.mi_sha256 is None:
            h = hashlib.sha256()
            end = len(self.parts) - (1 if self.trailer is not None else 0)
            for p in self.parts[1:end]:
                h.update(p)
            self.mi_sha256 = h.digest()
        return self.mi_sha256


def _uint(name, v, top):
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError("%s must be an integer, not %r" % (name, v))
    if not 0 <= v <= top:
        raise InputError("%s %d out of range 0..%d" % (name, v, top))
    return v


def _signing_key(key, what):
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            not isinstance(key.curve, ec.SECP256R1):
        raise InputError("%s is not an ECDSA P-256 private key" % what)
    return key


def check_sector_size(sector):
    _uint("sector size", sector, U32)
    if sector & (sector - 1) or not fmt.MIN_SECTOR <= sector <= fmt.MAX_SECTOR:
        raise InputError("sector size %d is not a power of two in %d..%d"
                         % (sector, fmt.MIN_SECTOR, fmt.MAX_SECTOR))
    return sector


def _header_string(text, version):
    if text is None:
        return ("ota-agent v0x%08X" % version).encode()[:32]
    if isinstance(text, str):
        text = text.encode("utf-8")
    if len(text) > 32:
        raise InputError("header string is %d bytes, at most 32" % len(text))
    return bytes(text)


_shift_cache = {}


def crc32_shift_tables(n):
    """Byte tables for the linear map A_n with crc32(a + b) == A_n(crc32(a)) ^ crc32(b)
    whenever len(b) == n (zlib's crc32_combine for a fixed length)."""
    t = _shift_cache.get(n)
    if t is None:
        zeros = bytes(n)
        base = zlib.crc32(zeros)
        basis = [zlib.crc32(zeros, 1 << i) ^ base for i in range(32)]
        t = []
        for j in range(4):
            tab = [0] * 256
            for b in range(1, 256):
                low = b & -b
                tab[b] = tab[b ^ low] ^ basis[8 * j + low.bit_length() - 1]
            t.append(tab)
        _shift_cache[n] = t
    return t


def _combined_crc32(fw, crcs, sector):
    """The CRC-32 of the whole payload fw from its sector CRCs (only a short last sector is
    read again)."""
    t0, t1, t2, t3 = crc32_shift_tables(sector)
    full = len(fw) // sector
    total = 0
    for crc in crcs[:full]:
        total = t0[total & 255] ^ t1[(total >> 8) & 255] ^ t2[(total >> 16) & 255] \
            ^ t3[total >> 24] ^ crc
    if full < len(crcs):                       # a short last sector
        total = zlib.crc32(fw[full * sector:], total)
    return total


def encode_payload(fw, sector, compress, progress=None, wbits=0):
    """Sector table and payload element data for the installed payload fw (a memoryview);
    compressed chunks in a window of 2**wbits bytes (0: the one covering a sector; build()
    passes its own default).

    Returns (table, data, crc32 of fw); data is fw itself when raw. The CRC-32 of the whole
    payload is combined from the sector CRCs, so zlib reads the bytes only once."""
    size = len(fw)
    crc32 = zlib.crc32
    block = max(1, _PROGRESS_STEP // sector) * sector
    crcs = []
    chunks = []
    if compress:
        from host_tools.delta import deflate_raw
    for start in range(0, size, block):
        stop = min(size, start + block)
        if compress:
            for off in range(start, stop, sector):
                piece = fw[off:off + sector]
                crcs.append(crc32(piece))
                chunks.append(deflate_raw(piece, sector, wbits))
        else:
            crcs += [crc32(fw[off:off + sector]) for off in range(start, stop, sector)]
        if progress is not None:
            progress(stop)
    total = _combined_crc32(fw, crcs, sector)
    if not compress:
        return b"".join([pack.pack_entry(fmt.ENC_RAW, crc) for crc in crcs]), fw, total
    entries = []
    pos = 0
    for crc, chunk in zip(crcs, chunks):
        entries.append(pack.pack_entry(fmt.ENC_DEFLATE, crc, pos, len(chunk),
                                      hashlib.sha256(chunk).digest()[:fmt.CHUNK_DIGEST]))
        pos += len(chunk)
    return b"".join(entries), b"".join(chunks), total


def chunk_max(encoding, table, sectors):
    """The manifest's M_CHUNK_MAX for a deflate or delta table of this many sectors: its
    longest chunk's length (at least 1: a delta may copy every sector)."""
    return max([1] + [pack.unpack_entry(encoding, table, k)[2] for k in range(sectors)])


def cose_sign1(private_key, kid, payload, external_aad):
    """A tagged COSE_Sign1 (ES256) over payload with the given external_aad."""
    protected = _protected(kid)
    sig = keys.sign(private_key, pack.sig_structure(protected, external_aad, payload))
    return _cose(protected, payload, sig)


def _protected(kid):
    return cbor2.dumps({cose.H_ALG: cose.ALG_ES256, cose.H_KID: bytes(kid)}, canonical=True)


def _cose(protected, payload, sig):
    return cbor2.dumps(cbor2.CBORTag(cose.TAG_SIGN1, [protected, {}, payload, sig]),
                       canonical=True)


def build(fw, private_key, version, seq, manufacturer, image_type, hw_min, hw_max,
          sector_size=4096, compress=False, supplier_key=None, header_string=None,
          force_replace=False, stack_version=fmt.STACK_ZIGBEE_PRO, progress=None,
          raw_if_larger=False, base=None, base_version=None, window=None):
    """Sign the installed payload fw (bytes-like) into an image; returns a Built.

    progress, when given, is called with the number of payload bytes done so far.
    raw_if_larger: when deflate would not make the payload (with its table) smaller, sign it
    raw instead (Built.fallback then says so). A raw payload part is a view of fw itself:
    do not change fw while the result is in use. base: the installed payload of the image
    the devices run (bytes-like), whose firmware version is base_version: the image is a
    delta against it (fmt.ENC_DELTA; compress and raw_if_larger do not apply). window: the
    deflate window of a compressed or delta image's chunks, bytes (a power of two from 512
    to the one covering a sector; default 2 KiB for compress, host_tools.delta.DEFLATE_WBITS,
    and 1 KiB for a delta, DELTA_WBITS, each at most the sector's): the decoder's window a
    device makes."""
    _signing_key(private_key, "signing key")
    if supplier_key is not None:
        _signing_key(supplier_key, "supplier key")
    out = prepare(fw, private_key.public_key(), version, seq, manufacturer, image_type,
                  hw_min, hw_max, sector_size, compress, supplier_key is not None,
                  header_string, force_replace, stack_version, progress, raw_if_larger,
                  base, base_version, window)
    return finish(out, keys.sign(private_key, out.tbs), supplier_key)


def _window_bits(window, sector):
    """The window bits of `window` bytes (None: 0, the encoding's default); InputError
    unless a power of two from 512 to the window covering a sector of this size."""
    if window is None:
        return 0
    top = fmt.deflate_wbits(sector)
    for w in range(9, top + 1):
        if window == 1 << w:
            return w
    raise InputError("window %r: a power of two from 512 to %d bytes (sectors of %d)"
                     % (window, 1 << top, sector))


def _check_inputs(size, public_key, supplier, force_replace, version, seq, manufacturer,
                  image_type, hw_min, hw_max, stack_version, sector_size):
    """Every parameter of prepare() in range, checked in this order."""
    if size == 0:
        raise Rejected("empty-firmware", "firmware is empty")
    _uint("firmware size", size, U32)
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or \
            not isinstance(public_key.curve, ec.SECP256R1):
        raise InputError("signing key is not an ECDSA P-256 key")
    if force_replace and not supplier:
        raise InputError("force-replace needs a supplier key")
    for name, v, top in (("version", version, U32), ("sequence number", seq, U32),
                         ("manufacturer code", manufacturer, U16),
                         ("image type", image_type, U16), ("hw min", hw_min, U16),
                         ("hw max", hw_max, U16), ("stack version", stack_version, U16)):
        _uint(name, v, top)
    if hw_min > hw_max:
        raise InputError("hw min 0x%04X above hw max 0x%04X" % (hw_min, hw_max))
    check_sector_size(sector_size)


def _encode(out, fw, sector_size, compress, raw_if_larger, progress, wbits=0):
    """out.table and out.data for the payload fw, and its SHA-256 (hashed in a second
    thread for a big payload while the table is made); returns (sha256, crc32)."""
    h = hashlib.sha256()
    worker = None
    if len(fw) >= _THREAD_MIN:
        worker = threading.Thread(target=h.update, args=(fw,))
        worker.start()
    else:
        h.update(fw)
    if compress:
        from host_tools.delta import window_bits, DEFLATE_WBITS
        wbits = window_bits(sector_size, wbits, DEFLATE_WBITS)
    try:
        table, data, crc = encode_payload(fw, sector_size, compress, progress, wbits)
        if compress and raw_if_larger:
            raw_table = fmt.sector_count(len(fw), sector_size) * fmt.TABLE_RAW_SIZE
            if len(table) + len(data) >= raw_table + len(fw):
                out.fallback = (len(table) + len(data), raw_table + len(fw))
                table, data, crc = encode_payload(fw, sector_size, False)
                compress = False
    finally:
        if worker is not None:
            worker.join()
    out.table = table
    out.data = data
    out.compressed = bool(compress)
    out.encoding = fmt.ENC_DEFLATE if compress else fmt.ENC_RAW
    out.wbits = wbits if compress else 0
    return h.digest(), crc


def _encode_delta(out, fw, base, base_version, sector_size, progress, wbits=0):
    """out.table and out.data of a delta of fw against the old payload base (each sector
    made the cheapest way: host_tools.delta); returns (sha256, crc32) of fw."""
    from host_tools import delta
    base = bytes(base)
    if not base:
        raise InputError("the old image's payload is empty")
    _uint("old version", base_version, U32)
    sectors = delta.encode(base, fw, sector_size, progress, wbits)
    out.wbits = delta.window_bits(sector_size, wbits)
    entries = []
    chunks = []
    pos = 0
    crcs = []
    for k, (mode, chunk, at) in enumerate(sectors):
        piece = fw[k * sector_size:(k + 1) * sector_size]
        crc = zlib.crc32(piece)
        crcs.append(crc)
        digest = hashlib.sha256(chunk if mode != delta.COPY else piece).digest()
        entries.append(pack.pack_entry(fmt.ENC_DELTA, crc, at if mode == delta.COPY else pos,
                                       len(chunk), digest[:fmt.CHUNK_DIGEST], mode))
        chunks.append(chunk)
        pos += len(chunk)
    out.table = b"".join(entries)
    out.data = b"".join(chunks)
    out.encoding = fmt.ENC_DELTA
    out.delta_modes = [mode for mode, _c, _a in sectors]
    out.base = {mf.M_BASE_SIZE: len(base), mf.M_BASE_SHA256: hashlib.sha256(base).digest(),
                mf.M_BASE_VERSION: base_version}
    return hashlib.sha256(fw).digest(), _combined_crc32(fw, crcs, sector_size)


def _header(out, h, cose_len):
    """The OTA header h (hardware versions present) with its total image size, into out."""
    total = (fmt.header_length(fmt.FC_HW) + 3 * fmt.ELEM_SIZE + cose_len + len(out.table)
             + len(out.data) + (fmt.TRAILER_SIZE if out.supplier else 0))
    if total > U32:
        raise Rejected("too-large", "image of %d bytes is too big for the OTA header" % total)
    h.total_size = total
    out.header = pack.pack_header(h)
    out.size = total


def prepare(fw, public_key, version, seq, manufacturer, image_type, hw_min, hw_max,
            sector_size=4096, compress=False, supplier=False, header_string=None,
            force_replace=False, stack_version=fmt.STACK_ZIGBEE_PRO, progress=None,
            raw_if_larger=False, base=None, base_version=None, window=None):
    """Everything of an image but its signatures; returns a Built whose tbs is the COSE
    Sig_structure to be signed by the key of public_key (digest: its SHA-256). finish()
    completes it. supplier: a GBCS trailer will be added (it counts in the header's size).
    base, base_version, window: as build()'s."""
    fw = memoryview(fw)
    if fw.ndim != 1 or fw.itemsize != 1:
        fw = fw.cast("B")
    size = len(fw)
    _check_inputs(size, public_key, supplier, force_replace, version, seq, manufacturer,
                  image_type, hw_min, hw_max, stack_version, sector_size)
    hdr = fmt.Header()
    hdr.manufacturer = manufacturer
    hdr.image_type = image_type
    hdr.file_version = version
    hdr.stack_version = stack_version
    hdr.header_string = _header_string(header_string, version)
    hdr.hw_min = hw_min
    hdr.hw_max = hw_max

    out = Built()
    wbits = _window_bits(window, sector_size)
    if base is not None:
        sha256, crc = _encode_delta(out, fw, base, base_version, sector_size, progress, wbits)
    else:
        sha256, crc = _encode(out, fw, sector_size, compress, raw_if_larger, progress, wbits)
    out.supplier = bool(supplier)
    out.force_replace = bool(force_replace)
    out.kid = keys.key_id(keys.public_point(public_key))
    out.public_key = public_key
    out.manifest.update({
        mf.M_FORMAT: mf.FORMAT_VERSION, mf.M_SEQ: seq, mf.M_VERSION: version,
        mf.M_MANUFACTURER: manufacturer, mf.M_IMAGE_TYPE: image_type, mf.M_HW_MIN: hw_min,
        mf.M_HW_MAX: hw_max, mf.M_SIZE: size, mf.M_SHA256: sha256, mf.M_CRC32: crc,
        mf.M_ENCODING: out.encoding,
        mf.M_ENC_SIZE: len(out.data), mf.M_SECTOR: sector_size,
        mf.M_TABLE_SHA256: hashlib.sha256(out.table).digest(), mf.M_KID: out.kid})
    out.manifest.update(out.base)
    if out.encoding != fmt.ENC_RAW:  # the device's buffer for a chunk is made this long
        out.manifest[mf.M_CHUNK_MAX] = chunk_max(out.encoding, out.table,
                                                 fmt.sector_count(size, sector_size))
        out.manifest[mf.M_WINDOW] = out.wbits
    out.manifest_cbor = cbor2.dumps(out.manifest, canonical=True)

    out.protected = _protected(out.kid)
    cose_len = len(_cose(out.protected, out.manifest_cbor, bytes(cose.SIG_LEN)))
    if cose_len > fmt.MANIFEST_MAX:
        raise InputError("manifest is %d bytes, at most %d" % (cose_len, fmt.MANIFEST_MAX))
    _header(out, hdr, cose_len)
    out.tbs = pack.sig_structure(out.protected, out.header, out.manifest_cbor)
    out.digest = hashlib.sha256(out.tbs).digest()
    if progress is not None:
        progress(size)
    return out


def finish(out, signature, supplier_key=None):
    """Complete a prepare()d image with the manifest signature (64 bytes r||s, or DER) and
    the supplier's trailer. The signature must verify against the public key the image was
    prepared for; it is written in low-s form. Returns out."""
    r, s = keys.split_signature(signature)
    sig = keys.parse_signature(signature)
    if not keys.verify(out.public_key, sig, out.tbs):
        raise Rejected("signature-mismatch", "the signature does not verify against the "
                       "public key (key id %s) over this image's manifest: another key, "
                       "firmware or option" % out.kid.hex())
    if (supplier_key is not None) != out.supplier:
        raise InputError("the supplier key must be given to prepare and finish alike")
    if supplier_key is not None:
        _signing_key(supplier_key, "supplier key")
    out.normalised = s > keys.HALF_N
    out.cose = _cose(out.protected, out.manifest_cbor, sig)
    out.parts = [out.header,
                 fmt.pack_elem(fmt.TAG_MANIFEST, len(out.cose)), out.cose,
                 fmt.pack_elem(fmt.TAG_TABLE, len(out.table)), out.table,
                 fmt.pack_elem(fmt.TAG_PAYLOAD, len(out.data)), out.data]
    if supplier_key is not None:
        ssig = keys.sign_digest(supplier_key, out.manufacturer_image_sha256())
        out.trailer = fmt.pack_trailer(1 if out.force_replace else 0, ssig)
        out.parts.append(out.trailer)
    return out


def build_image(fw_bytes, private_key, version, seq, manufacturer, image_type, hw_min, hw_max,
                sector_size=4096, compress=False, supplier_key=None, header_string=None,
                force_replace=False, stack_version=fmt.STACK_ZIGBEE_PRO):
    """Sign fw_bytes into a complete image file; returns its bytes."""
    return build(fw_bytes, private_key, version, seq, manufacturer, image_type, hw_min,
                 hw_max, sector_size, compress, supplier_key, header_string, force_replace,
                 stack_version).tobytes()


def firmware_size(path, sector_size=fmt.MIN_SECTOR, supplier=False):
    """The size of the firmware file, checked before it is read: a regular file, not empty,
    small enough for an image."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise Rejected("not-a-file", "%s is not a regular file" % path)
    size = st.st_size
    if size == 0:
        raise Rejected("empty-firmware", "firmware is empty: %s" % path)
    least = (fmt.header_length(fmt.FC_HW) + 3 * fmt.ELEM_SIZE
             + fmt.sector_count(size, sector_size) * fmt.TABLE_RAW_SIZE
             + (fmt.TRAILER_SIZE if supplier else 0))
    if size > U32 - least:
        raise Rejected("too-large", "%s is %d bytes: an OTA image holds at most %d bytes of "
                       "firmware" % (path, size, U32 - least))
    return size


def read_firmware(path, size):
    """The firmware file's size bytes, refused when it changed since firmware_size()."""
    with open(path, "rb") as f:
        data = f.read(size + 1)
    if len(data) != size:
        raise Rejected("input-changed", "%s changed while it was read" % path)
    return data
