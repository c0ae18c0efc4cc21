"""Build and sign an image file (format v1, see agent/fmt.py) and the sign command.

OTA header | 0xF0A1 manifest (COSE_Sign1, ES256, external_aad = header)
           | 0xF0A2 sector table | 0x0000 payload | [GBCS supplier trailer]
"""
import hashlib
import os
import struct
import threading
import zlib

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from agent import fmt
from host_tools import keys
from host_tools.cli import InputError, number

COSE_SIGN1_TAG = 18
COSE_HDR_ALG = 1
COSE_HDR_KID = 4
COSE_ES256 = -7
SIG_CONTEXT = "Signature1"

_THREAD_MIN = 1 << 20     # payloads this big are hashed in a second thread
_PROGRESS_STEP = 1 << 20  # report progress about once per MiB
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


class Built:
    """A signed image as a list of buffers (parts) and what went into it."""

    def __init__(self):
        self.parts = []            # header, element headers and data, trailer, in file order
        self.size = 0              # total image size
        self.header = b""          # the OTA header bytes (the COSE external_aad)
        self.manifest = {}         # the manifest map (integer keys fmt.M_*)
        self.manifest_cbor = b""   # its deterministic CBOR encoding (the COSE payload)
        self.cose = b""            # the 0xF0A1 element's data
        self.table = b""           # the 0xF0A2 element's data
        self.kid = b""
        self.trailer = None        # the GBCS trailer bytes, when a supplier signed it
        self.mi_sha256 = None      # Manufacturer Image SHA-256, once computed (supplier)

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
    _uint("sector size", sector, _U32)
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


def encode_payload(fw, sector, compress, progress=None):
    """Sector table and payload element data for the installed payload fw (a memoryview).

    Returns (table, data, crc32 of fw); data is fw itself when raw. The CRC-32 of the whole
    payload is combined from the sector CRCs, so zlib reads the bytes only once."""
    size = len(fw)
    crc32 = zlib.crc32
    block = max(1, _PROGRESS_STEP // sector) * sector
    crcs = []
    chunks = []
    if compress:
        wbits = -fmt.deflate_wbits(sector)
    for start in range(0, size, block):
        stop = min(size, start + block)
        if compress:
            for off in range(start, stop, sector):
                piece = fw[off:off + sector]
                crcs.append(crc32(piece))
                co = zlib.compressobj(9, zlib.DEFLATED, wbits)
                chunks.append(co.compress(piece) + co.flush())
        else:
            crcs += [crc32(fw[off:off + sector]) for off in range(start, stop, sector)]
        if progress is not None:
            progress(stop)

    t0, t1, t2, t3 = crc32_shift_tables(sector)
    full = size // sector
    total = 0
    for crc in crcs[:full]:
        total = t0[total & 255] ^ t1[(total >> 8) & 255] ^ t2[(total >> 16) & 255] \
            ^ t3[total >> 24] ^ crc
    if full < len(crcs):                       # a short last sector
        total = crc32(fw[full * sector:], total)

    if compress:
        entry = struct.Struct(fmt.TABLE_DEFLATE_FMT)
        table = bytearray(len(crcs) * entry.size)
        pos = 0
        for k, chunk in enumerate(chunks):
            entry.pack_into(table, k * entry.size, crcs[k], pos, len(chunk),
                            hashlib.sha256(chunk).digest()[:fmt.CHUNK_DIGEST])
            pos += len(chunk)
        return bytes(table), b"".join(chunks), total
    return b"".join(map(struct.Struct(fmt.TABLE_RAW_FMT).pack, crcs)), fw, total


def cose_sign1(private_key, kid, payload, external_aad):
    """A tagged COSE_Sign1 (ES256) over payload with the given external_aad."""
    protected = _protected(kid)
    sig = keys.sign(private_key, sig_structure(protected, external_aad, payload))
    return _cose(protected, payload, sig)


def sig_structure(protected, external_aad, payload):
    """The COSE Sig_structure for a COSE_Sign1 (RFC 9052 section 4.4)."""
    return cbor2.dumps([SIG_CONTEXT, bytes(protected), bytes(external_aad), bytes(payload)],
                       canonical=True)


def _protected(kid):
    return cbor2.dumps({COSE_HDR_ALG: COSE_ES256, COSE_HDR_KID: bytes(kid)}, canonical=True)


def _cose(protected, payload, sig):
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, sig]),
                       canonical=True)


def _elem(tag, length):
    return struct.pack(fmt.ELEM_FMT, tag, length)


def build(fw, private_key, version, seq, manufacturer, image_type, hw_min, hw_max,
          sector_size=4096, compress=False, supplier_key=None, header_string=None,
          force_replace=False, stack_version=fmt.STACK_ZIGBEE_PRO, progress=None):
    """Sign the installed payload fw (bytes-like) into an image; returns a Built.

    progress, when given, is called with the number of payload bytes done so far.
    A raw payload part is a view of fw itself: do not change fw while the result is in use."""
    fw = memoryview(fw)
    if fw.ndim != 1 or fw.itemsize != 1:
        fw = fw.cast("B")
    size = len(fw)
    if size == 0:
        raise InputError("firmware is empty")
    _uint("firmware size", size, _U32)
    _signing_key(private_key, "signing key")
    if supplier_key is not None:
        _signing_key(supplier_key, "supplier key")
    elif force_replace:
        raise InputError("force-replace needs a supplier key")
    for name, v, top in (("version", version, _U32), ("sequence number", seq, _U32),
                         ("manufacturer code", manufacturer, _U16),
                         ("image type", image_type, _U16), ("hw min", hw_min, _U16),
                         ("hw max", hw_max, _U16), ("stack version", stack_version, _U16)):
        _uint(name, v, top)
    if hw_min > hw_max:
        raise InputError("hw min 0x%04X above hw max 0x%04X" % (hw_min, hw_max))
    check_sector_size(sector_size)
    hstr = _header_string(header_string, version)

    h = hashlib.sha256()
    worker = None
    if size >= _THREAD_MIN:
        worker = threading.Thread(target=h.update, args=(fw,))
        worker.start()
    else:
        h.update(fw)
    try:
        table, data, crc = encode_payload(fw, sector_size, compress, progress)
    finally:
        if worker is not None:
            worker.join()

    out = Built()
    out.table = table
    out.kid = keys.key_id(keys.public_point(private_key))
    m = out.manifest
    m[fmt.M_FORMAT] = fmt.FORMAT_VERSION
    m[fmt.M_SEQ] = seq
    m[fmt.M_VERSION] = version
    m[fmt.M_MANUFACTURER] = manufacturer
    m[fmt.M_IMAGE_TYPE] = image_type
    m[fmt.M_HW_MIN] = hw_min
    m[fmt.M_HW_MAX] = hw_max
    m[fmt.M_SIZE] = size
    m[fmt.M_SHA256] = h.digest()
    m[fmt.M_CRC32] = crc
    m[fmt.M_ENCODING] = fmt.ENC_DEFLATE if compress else fmt.ENC_RAW
    m[fmt.M_ENC_SIZE] = len(data)
    m[fmt.M_SECTOR] = sector_size
    m[fmt.M_TABLE_SHA256] = hashlib.sha256(table).digest()
    m[fmt.M_KID] = out.kid
    out.manifest_cbor = cbor2.dumps(m, canonical=True)

    protected = _protected(out.kid)
    cose_len = len(_cose(protected, out.manifest_cbor, bytes(keys.SIG_LEN)))
    if cose_len > fmt.MANIFEST_MAX:
        raise InputError("manifest is %d bytes, at most %d" % (cose_len, fmt.MANIFEST_MAX))

    hdr = fmt.Header()
    hdr.manufacturer = manufacturer
    hdr.image_type = image_type
    hdr.file_version = version
    hdr.stack_version = stack_version
    hdr.header_string = hstr
    hdr.hw_min = hw_min
    hdr.hw_max = hw_max
    hlen = fmt.header_length(fmt.FC_HW)
    total = (hlen + 3 * fmt.ELEM_SIZE + cose_len + len(table) + len(data)
             + (fmt.TRAILER_SIZE if supplier_key is not None else 0))
    if total > _U32:
        raise InputError("image of %d bytes is too big for the OTA header" % total)
    hdr.total_size = total
    out.header = fmt.pack_header(hdr)
    out.size = total

    sig = keys.sign(private_key, sig_structure(protected, out.header, out.manifest_cbor))
    out.cose = _cose(protected, out.manifest_cbor, sig)
    out.parts = [out.header,
                 _elem(fmt.TAG_MANIFEST, len(out.cose)), out.cose,
                 _elem(fmt.TAG_TABLE, len(table)), table,
                 _elem(fmt.TAG_PAYLOAD, len(data)), data]
    if supplier_key is not None:
        ssig = keys.sign_digest(supplier_key, out.manufacturer_image_sha256())
        out.trailer = struct.pack(fmt.TRAILER_FMT, 1 if force_replace else 0,
                                  fmt.TRAILER_SIG_LEN, ssig)
        out.parts.append(out.trailer)
    if progress is not None:
        progress(size)
    return out


def build_image(fw_bytes, private_key, version, seq, manufacturer, image_type, hw_min, hw_max,
                sector_size=4096, compress=False, supplier_key=None, header_string=None,
                force_replace=False, stack_version=fmt.STACK_ZIGBEE_PRO):
    """Sign fw_bytes into a complete image file; returns its bytes."""
    return build(fw_bytes, private_key, version, seq, manufacturer, image_type, hw_min,
                 hw_max, sector_size, compress, supplier_key, header_string, force_replace,
                 stack_version).tobytes()


def write_parts(path, parts):
    """Write the buffers to path through a temporary file, so a failure leaves no image."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            for p in parts:
                f.write(p)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and e.filename == tmp:
            raise OSError(e.errno, e.strerror, path) from None
        raise


def register(sub):
    p = sub.add_parser("sign", help="sign a firmware payload into an OTA image",
                       description="Sign a firmware payload into a ZigBee OTA image file "
                                   "(format v1). Numbers are decimal or 0x-hex.")
    p.add_argument("--key", required=True, metavar="K.pem", help="signing key (P-256 PEM)")
    p.add_argument("--in", dest="infile", required=True, metavar="FW.bin",
                   help="installed firmware payload")
    p.add_argument("--out", required=True, metavar="IMG.ota", help="image file to write")
    p.add_argument("--version", required=True, type=number, metavar="V", help="file version (u32)")
    p.add_argument("--seq", required=True, type=number, metavar="N",
                   help="sequence number, the anti-rollback counter (u32)")
    p.add_argument("--manufacturer", required=True, type=number, metavar="M",
                   help="manufacturer code (u16)")
    p.add_argument("--image-type", required=True, type=number, metavar="T", help="image type (u16)")
    p.add_argument("--hw-min", required=True, type=number, metavar="A",
                   help="lowest hardware version (u16)")
    p.add_argument("--hw-max", required=True, type=number, metavar="B",
                   help="highest hardware version (u16)")
    p.add_argument("--sector-size", type=number, metavar="S", default=4096,
                   help="flash sector size, a power of two in %d..%d (default 4096)"
                        % (fmt.MIN_SECTOR, fmt.MAX_SECTOR))
    p.add_argument("--compress", action="store_true",
                   help="deflate each sector on its own")
    p.add_argument("--supplier-key", metavar="S.pem",
                   help="append a GBCS trailer signed by this supplier key")
    p.add_argument("--force-replace", action="store_true",
                   help="set the trailer's force-replace flag (needs --supplier-key)")
    p.add_argument("--header-string", metavar="TEXT",
                   help="OTA header string, at most 32 bytes (default ota-agent v<version>)")
    p.add_argument("--stack-version", type=number, metavar="N", default=fmt.STACK_ZIGBEE_PRO,
                   help="ZigBee stack version (default 2)")
    p.set_defaults(func=run_sign)


def run_sign(args):
    from host_tools.progress import Progress

    with open(args.infile, "rb") as f:
        fw = f.read()
    key = keys.load_private(args.key)
    supplier = keys.load_private(args.supplier_key) if args.supplier_key else None
    with Progress(len(fw), "sign") as bar:
        img = build(fw, key, args.version, args.seq, args.manufacturer, args.image_type,
                    args.hw_min, args.hw_max, sector_size=args.sector_size,
                    compress=args.compress, supplier_key=supplier,
                    header_string=args.header_string, force_replace=args.force_replace,
                    stack_version=args.stack_version, progress=bar.update)
        write_parts(args.out, img.parts)
    m = img.manifest
    print("%s: %d bytes, version 0x%08X, seq %d, %s payload %d -> %d bytes, %d sectors of %d, "
          "key id %s" % (args.out, img.size, args.version, args.seq,
                         "deflate" if args.compress else "raw", m[fmt.M_SIZE],
                         m[fmt.M_ENC_SIZE], fmt.sector_count(m[fmt.M_SIZE], args.sector_size),
                         args.sector_size, img.kid.hex()))
    if img.mi_sha256 is not None:
        print("manufacturer image sha256 %s" % img.mi_sha256.hex())
    return 0
