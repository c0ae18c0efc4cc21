"""Build and sign an image file (format v1, see agent/image/fmt.py) and the sign command.

OTA header | 0xF0A1 manifest (COSE_Sign1, ES256, external_aad = header)
           | 0xF0A2 sector table | 0x0000 payload | [GBCS supplier trailer]
"""
import hashlib
import os
import stat
import struct
import threading
import zlib

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from agent.image import fmt
from host_tools import argtypes, keys, profile
from host_tools.atomic import Outputs
from host_tools.cli import InputError
from host_tools.report import Rejected, add_output_options, emit, json_command

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
        self.compressed = False    # the payload is deflated per sector
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
          force_replace=False, stack_version=fmt.STACK_ZIGBEE_PRO, progress=None,
          raw_if_larger=False):
    """Sign the installed payload fw (bytes-like) into an image; returns a Built.

    progress, when given, is called with the number of payload bytes done so far.
    raw_if_larger: when deflate would not make the payload (with its table) smaller, sign it
    raw instead (Built.fallback then says so). A raw payload part is a view of fw itself:
    do not change fw while the result is in use."""
    _signing_key(private_key, "signing key")
    if supplier_key is not None:
        _signing_key(supplier_key, "supplier key")
    out = prepare(fw, private_key.public_key(), version, seq, manufacturer, image_type,
                  hw_min, hw_max, sector_size, compress, supplier_key is not None,
                  header_string, force_replace, stack_version, progress, raw_if_larger)
    return finish(out, keys.sign(private_key, out.tbs), supplier_key)


def prepare(fw, public_key, version, seq, manufacturer, image_type, hw_min, hw_max,
            sector_size=4096, compress=False, supplier=False, header_string=None,
            force_replace=False, stack_version=fmt.STACK_ZIGBEE_PRO, progress=None,
            raw_if_larger=False):
    """Everything of an image but its signatures; returns a Built whose tbs is the COSE
    Sig_structure to be signed by the key of public_key (digest: its SHA-256). finish()
    completes it. supplier: a GBCS trailer will be added (it counts in the header's size)."""
    fw = memoryview(fw)
    if fw.ndim != 1 or fw.itemsize != 1:
        fw = fw.cast("B")
    size = len(fw)
    if size == 0:
        raise Rejected("empty-firmware", "firmware is empty")
    _uint("firmware size", size, _U32)
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or \
            not isinstance(public_key.curve, ec.SECP256R1):
        raise InputError("signing key is not an ECDSA P-256 key")
    if force_replace and not supplier:
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
        out = Built()
        if compress and raw_if_larger:
            raw_table = fmt.sector_count(size, sector_size) * struct.calcsize(fmt.TABLE_RAW_FMT)
            if len(table) + len(data) >= raw_table + size:
                out.fallback = (len(table) + len(data), raw_table + size)
                table, data, crc = encode_payload(fw, sector_size, False)
                compress = False
    finally:
        if worker is not None:
            worker.join()

    out.table = table
    out.compressed = bool(compress)
    out.supplier = bool(supplier)
    out.force_replace = bool(force_replace)
    out.kid = keys.key_id(keys.public_point(public_key))
    out.public_key = public_key
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

    out.protected = _protected(out.kid)
    cose_len = len(_cose(out.protected, out.manifest_cbor, bytes(keys.SIG_LEN)))
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
             + (fmt.TRAILER_SIZE if supplier else 0))
    if total > _U32:
        raise Rejected("too-large", "image of %d bytes is too big for the OTA header" % total)
    hdr.total_size = total
    out.header = fmt.pack_header(hdr)
    out.size = total
    out.tbs = sig_structure(out.protected, out.header, out.manifest_cbor)
    out.digest = hashlib.sha256(out.tbs).digest()
    out.data = data
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
                 _elem(fmt.TAG_MANIFEST, len(out.cose)), out.cose,
                 _elem(fmt.TAG_TABLE, len(out.table)), out.table,
                 _elem(fmt.TAG_PAYLOAD, len(out.data)), out.data]
    if supplier_key is not None:
        ssig = keys.sign_digest(supplier_key, out.manufacturer_image_sha256())
        out.trailer = struct.pack(fmt.TRAILER_FMT, 1 if out.force_replace else 0,
                                  fmt.TRAILER_SIG_LEN, ssig)
        out.parts.append(out.trailer)
    return out


def build_image(fw_bytes, private_key, version, seq, manufacturer, image_type, hw_min, hw_max,
                sector_size=4096, compress=False, supplier_key=None, header_string=None,
                force_replace=False, stack_version=fmt.STACK_ZIGBEE_PRO):
    """Sign fw_bytes into a complete image file; returns its bytes."""
    return build(fw_bytes, private_key, version, seq, manufacturer, image_type, hw_min,
                 hw_max, sector_size, compress, supplier_key, header_string, force_replace,
                 stack_version).tobytes()


def write_parts(path, parts, force=False):
    """Write the buffers to path through a temporary file, so a failure leaves no image."""
    out = Outputs(force)
    out.claim(path, None, "image")
    out.put(path, parts)
    out.commit()


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
             + fmt.sector_count(size, sector_size) * struct.calcsize(fmt.TABLE_RAW_FMT)
             + (fmt.TRAILER_SIZE if supplier else 0))
    if size > _U32 - least:
        raise Rejected("too-large", "%s is %d bytes: an OTA image holds at most %d bytes of "
                       "firmware" % (path, size, _U32 - least))
    return size


def _read_firmware(path, size):
    with open(path, "rb") as f:
        data = f.read(size + 1)
    if len(data) != size:
        raise Rejected("input-changed", "%s changed while it was read" % path)
    return data


SIGN_EXAMPLE = """\
examples:
  otatool sign --key release.pem --in fw.bin --out fw-v2.ota --version 0x00020000 --seq 2 \\
      --manufacturer 0x1234 --image-type 1 --hw-min 1 --hw-max 3 --compress
  signing with an HSM (the private key never leaves it):
  otatool sign --public hsm.pub --in fw.bin --digest-out fw-v2.digest --version 2 --seq 2 ...
  openssl pkeyutl -sign -inkey <HSM key> -in fw-v2.digest -out fw-v2.sig    # or the HSM's tool
  otatool sign --public hsm.pub --in fw.bin --signature-in fw-v2.sig --out fw-v2.ota \\
      --version 2 --seq 2 ...           # the same options as for --digest-out
"""

# Options sign needs, whether from the command line or elsewhere (checked in _options).
REQUIRED = (("infile", "--in"), ("version", "--version"), ("seq", "--seq"),
            ("manufacturer", "--manufacturer"), ("image_type", "--image-type"),
            ("hw_min", "--hw-min"), ("hw_max", "--hw-max"))


def register(sub):
    u16 = argtypes.integer(0, _U16, "u16")
    u32 = argtypes.integer(0, _U32, "u32")
    p = sub.add_parser("sign", help="sign a firmware payload into an OTA image",
                       formatter_class=argtypes.HelpFormatter, epilog=SIGN_EXAMPLE,
                       description="Sign a firmware payload into a ZigBee OTA image file "
                                   "(format v1). Numbers are decimal or 0x-hex.\nThe outputs "
                                   "are written whole or not at all; an existing one is "
                                   "refused without --force.\nEvery signature written is "
                                   "low-s (s <= n/2), so an image has one identity.")
    profile.add_option(p)
    p.add_argument("--key", metavar="K.pem",
                   help="signing key: P-256 private key, PEM or DER, encrypted or not "
                        "(this or --public is required)")
    p.add_argument("--public", metavar="P.pem",
                   help="the signing key's public key (PEM, DER, raw point or X.509 "
                        "certificate) when an HSM signs: with --digest-out or --signature-in "
                        "(default: none)")
    p.add_argument("--password-env", metavar="VAR",
                   help="password of an encrypted --key from environment variable VAR "
                        "(default: asked on the terminal)")
    p.add_argument("--in", dest="infile", metavar="FW.bin",
                   help="installed firmware payload (required)")
    p.add_argument("--out", metavar="IMG.ota",
                   help="image file to write (required, except with --digest-out)")
    p.add_argument("--digest-out", metavar="FILE",
                   help="write the 32-byte SHA-256 an external signer must sign (ECDSA P-256, "
                        "prehashed) and stop: no image is written (default: none)")
    p.add_argument("--signature-in", metavar="FILE",
                   help="the external signature over --digest-out's digest: 64 bytes r||s, "
                        "DER or 128 hex digits; checked against the public key and written "
                        "in low-s form (default: none, --key signs)")
    p.add_argument("--version", type=u32, metavar="V", help="file version (u32, required)")
    p.add_argument("--seq", type=u32, metavar="N",
                   help="sequence number, the anti-rollback counter (u32, required)")
    p.add_argument("--manufacturer", type=u16, metavar="M",
                   help="manufacturer code (u16, required)")
    p.add_argument("--image-type", type=u16, metavar="T", help="image type (u16, required)")
    p.add_argument("--hw-min", type=u16, metavar="A",
                   help="lowest hardware version (u16, required)")
    p.add_argument("--hw-max", type=u16, metavar="B",
                   help="highest hardware version (u16, required)")
    p.add_argument("--sector-size", type=argtypes.integer(1, _U32, "sector size"),
                   metavar="S",
                   help="flash sector size, a power of two in %d..%d (default: the "
                        "profile's, else 4096)" % (fmt.MIN_SECTOR, fmt.MAX_SECTOR))
    p.add_argument("--compress", action="store_true",
                   help="deflate each sector on its own; signed raw instead when that would "
                        "not make the image smaller (default: off, raw)")
    p.add_argument("--supplier-key", metavar="S.pem",
                   help="append a GBCS trailer signed by this supplier private key "
                        "(default: no trailer)")
    p.add_argument("--supplier-password-env", metavar="VAR",
                   help="password of an encrypted --supplier-key from environment variable "
                        "VAR (default: asked on the terminal)")
    p.add_argument("--force-replace", action="store_true",
                   help="set the trailer's force-replace flag (needs --supplier-key; "
                        "default: off)")
    p.add_argument("--header-string", metavar="TEXT",
                   help="OTA header string, at most 32 bytes (default: ota-agent v<version>)")
    p.add_argument("--stack-version", type=u16, metavar="N", default=fmt.STACK_ZIGBEE_PRO,
                   help="ZigBee stack version")
    add_output_options(p)
    p.set_defaults(func=run_sign, sign_parser=p)


def _options(args):
    """Every option of sign, checked in one place; returns build()'s keyword arguments
    (without the keys). A missing or conflicting option is a usage error (exit 2)."""
    usage = args.sign_parser.error
    profile.apply_sign(args)
    for dest, opt in REQUIRED:
        if getattr(args, dest) is None:
            usage("the following arguments are required: %s" % opt)
    if (args.key is None) == (args.public is None):
        usage("give one of --key or --public")
    if args.digest_out is not None and args.signature_in is not None:
        usage("--digest-out and --signature-in are two separate steps")
    if args.public is not None and args.digest_out is None and args.signature_in is None:
        usage("--public signs with an external signer: add --digest-out or --signature-in")
    if args.digest_out is None and args.out is None:
        usage("the following arguments are required: --out")
    if args.digest_out is not None and args.out is not None:
        usage("--digest-out writes no image: drop --out")
    return dict(version=args.version, seq=args.seq, manufacturer=args.manufacturer,
                image_type=args.image_type, hw_min=args.hw_min, hw_max=args.hw_max,
                sector_size=args.sector_size, compress=args.compress,
                header_string=args.header_string, force_replace=args.force_replace,
                stack_version=args.stack_version)


@json_command
def run_sign(args):
    from host_tools.progress import Progress

    params = _options(args)
    out = Outputs(args.force, inputs=[args.infile, args.key, args.public, args.supplier_key,
                                      args.signature_in])
    out.claim(args.out, None, "image")
    out.claim(args.digest_out, None, "digest")
    check_sector_size(args.sector_size)
    size = firmware_size(args.infile, args.sector_size, args.supplier_key is not None)
    key = keys.load_private(args.key, args.password_env) if args.key else None
    public = key.public_key() if key is not None else keys.load_public(args.public)
    # with --digest-out only the trailer's presence counts (its size is in the header)
    supplier = keys.load_private(args.supplier_key, args.supplier_password_env) \
        if args.supplier_key and args.digest_out is None else None
    external = None
    if args.signature_in is not None:
        with open(args.signature_in, "rb") as f:
            external = f.read(4096)
        keys.split_signature(external, args.signature_in)
    fw = _read_firmware(args.infile, size)
    with Progress(size, "sign") as bar:
        img = prepare(fw, public, supplier=args.supplier_key is not None, progress=bar.update,
                      raw_if_larger=True, **params)
        if args.digest_out is None:
            finish(img, external if external is not None else keys.sign(key, img.tbs),
                   supplier)
    if args.digest_out is not None:
        out.put(args.digest_out, img.digest)
        out.commit()
        return _report_digest(args, img)
    out.put(args.out, img.parts)
    out.commit()
    return _report(args, img)


def _report_digest(args, img):
    if args.json:
        emit({"ok": True, "digest_out": args.digest_out, "digest": img.digest.hex(),
              "kid": img.kid.hex(), "image_size": img.size})
        return 0
    print("%s: SHA-256 to sign with key id %s: %s"
          % (args.digest_out, img.kid.hex(), img.digest.hex()))
    print("sign it (ECDSA P-256 over this digest), then run sign again with the same options "
          "and --signature-in SIG --out IMG.ota")
    return 0


def _report(args, img):
    m = img.manifest
    count = fmt.sector_count(m[fmt.M_SIZE], args.sector_size)
    if args.json:
        emit({"ok": True, "out": args.out, "size": img.size, "version": args.version,
              "seq": args.seq, "encoding": "deflate" if img.compressed else "raw",
              "compress_fallback": img.fallback is not None, "payload_size": m[fmt.M_SIZE],
              "encoded_size": m[fmt.M_ENC_SIZE], "sectors": count,
              "sector_size": args.sector_size, "kid": img.kid.hex(),
              "external_signature": args.signature_in is not None,
              "signature_normalised": img.normalised,
              "manufacturer_image_sha256": img.manufacturer_image_sha256().hex()})
        return 0
    print("%s: %d bytes, version 0x%08X, seq %d, %s payload %d -> %d bytes, %d sectors of %d, "
          "key id %s" % (args.out, img.size, args.version, args.seq,
                         "deflate" if img.compressed else "raw", m[fmt.M_SIZE],
                         m[fmt.M_ENC_SIZE], count, args.sector_size, img.kid.hex()))
    if img.fallback is not None:
        print("compression: deflate would not make it smaller (%d vs %d bytes with the "
              "table): signed raw" % img.fallback)
    if args.signature_in is not None:
        print("signature: from %s, verified against key id %s%s"
              % (args.signature_in, img.kid.hex(),
                 " (high s, written as low s)" if img.normalised else ""))
    if img.mi_sha256 is not None:
        print("manufacturer image sha256 %s" % img.mi_sha256.hex())
    return 0
