"""otatool sign: sign a firmware payload into an image file. The options are parsed and
checked here; the image is built by host_tools/imagebuild.py."""
from agent.image import fmt
from agent.image import manifest as mf
from host_tools import argtypes, keys, profile
from host_tools.atomic import Outputs
from host_tools.imagebuild import U16, U32, check_sector_size, finish, firmware_size, \
    prepare, read_firmware
from host_tools.report import add_output_options, emit, json_command


SIGN_EXAMPLE = """\
examples:
  otatool sign --key release.pem --in fw.bin --out fw-v2.ota --version 0x00020000 --seq 2 \\
      --manufacturer 0x1234 --image-type 1 --hw-min 1 --hw-max 3 --compress
  signing with an HSM (the private key never leaves it):
  otatool sign --public hsm.pub --in fw.bin --digest-out fw-v2.digest --version 2 --seq 2 ...
  openssl pkeyutl -sign -inkey <HSM key> -in fw-v2.digest -out fw-v2.sig    # or the HSM's tool
  otatool sign --public hsm.pub --in fw.bin --signature-in fw-v2.sig --out fw-v2.ota \\
      --version 2 --seq 2 ...           # the same options as for --digest-out
  a delta update for devices running fw-v1.ota (or its binary, with --base-version):
  otatool sign --profile product.toml --in fw.bin --out fw-v2-from-v1.ota --version 2 \\
      --seq 2 --delta-from fw-v1.ota
"""

# Options sign needs, whether from the command line or elsewhere (checked in _options).
REQUIRED = (("infile", "--in"), ("version", "--version"), ("seq", "--seq"),
            ("manufacturer", "--manufacturer"), ("image_type", "--image-type"),
            ("hw_min", "--hw-min"), ("hw_max", "--hw-max"))


def register(sub):
    p = sub.add_parser("sign", help="sign a firmware payload into an OTA image",
                       formatter_class=argtypes.HelpFormatter, epilog=SIGN_EXAMPLE,
                       description="Sign a firmware payload into a ZigBee OTA image file "
                                   "(format v1). Numbers are decimal or 0x-hex.\nThe outputs "
                                   "are written whole or not at all; an existing one is "
                                   "refused without --force.\nEvery signature written is "
                                   "low-s (s <= n/2), so an image has one identity.")
    profile.add_option(p)
    _file_options(p)
    _image_options(p)
    add_output_options(p)
    p.set_defaults(func=run_sign, sign_parser=p)


def _file_options(p):
    """Keys, the firmware and the outputs."""
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


def _image_options(p):
    """What the image says: numbers, sectors and encoding, the GBCS trailer, the header."""
    u16 = argtypes.integer(0, U16, "u16")
    u32 = argtypes.integer(0, U32, "u32")
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
    p.add_argument("--sector-size", type=argtypes.integer(1, U32, "sector size"),
                   metavar="S",
                   help="flash sector size, a power of two in %d..%d (default: the "
                        "profile's, else 4096)" % (fmt.MIN_SECTOR, fmt.MAX_SECTOR))
    p.add_argument("--compress", action="store_true",
                   help="deflate each sector on its own; signed raw instead when that would "
                        "not make the image smaller (default: off, raw)")
    p.add_argument("--delta-from", metavar="OLD",
                   help="sign a delta update against the image the devices run: its OTA "
                        "image file (raw or deflate; its manifest gives the old version and "
                        "product), or its firmware binary with --base-version; each sector "
                        "is copied, raw, deflated or a deflated op stream, the smallest "
                        "(--compress does not apply; default: a full image)")
    p.add_argument("--window", type=argtypes.integer(1, U32, "window"), metavar="BYTES",
                   help="the deflate window of a compressed or delta image's chunks, the "
                        "buffer a device makes to decode them: a power of two from 512 to "
                        "the sector size (default: 2048 with --compress, 1024 for a delta, "
                        "at most the sector size: against a 4 KiB sector's 4096, 0.2-1%% "
                        "and 0.1-3%% more bytes, and 2 and 3 KiB less RAM on the device)")
    p.add_argument("--base-version", type=u32, metavar="V",
                   help="file version of the old image, when --delta-from is a firmware "
                        "binary (default: the OTA file's own)")
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
    if args.base_version is not None and args.delta_from is None:
        usage("--base-version names the old image of a delta: add --delta-from")
    if args.window is not None and not args.compress and args.delta_from is None:
        usage("--window is the window of compressed chunks: add --compress or --delta-from")
    return dict(version=args.version, seq=args.seq, manufacturer=args.manufacturer,
                image_type=args.image_type, hw_min=args.hw_min, hw_max=args.hw_max,
                sector_size=args.sector_size, compress=args.compress,
                header_string=args.header_string, force_replace=args.force_replace,
                stack_version=args.stack_version, window=args.window)


@json_command
def run_sign(args):
    from host_tools.progress import Progress

    params = _options(args)
    out = Outputs(args.force, inputs=[args.infile, args.key, args.public, args.supplier_key,
                                      args.signature_in, args.delta_from])
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
    old = _old_image(args, public) if args.delta_from is not None else None
    fw = read_firmware(args.infile, size)
    with Progress(size, "sign delta" if old else "sign") as bar:
        if old is not None:
            params.update(base=old.payload, base_version=old.version)
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
    if old is not None:
        return _report_delta(args, img, old, fw)
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
    count = fmt.sector_count(m[mf.M_SIZE], args.sector_size)
    if args.json:
        res = _json_report(args, img, count)
        res.update(encoding="deflate" if img.compressed else "raw",
                   compress_fallback=img.fallback is not None)
        emit(res)
        return 0
    print("%s: %d bytes, version 0x%08X, seq %d, %s payload %d -> %d bytes, %d sectors of %d, "
          "key id %s" % (args.out, img.size, args.version, args.seq,
                         "deflate" if img.compressed else "raw", m[mf.M_SIZE],
                         m[mf.M_ENC_SIZE], count, args.sector_size, img.kid.hex()))
    if img.fallback is not None:
        print("compression: deflate would not make it smaller (%d vs %d bytes with the "
              "table): signed raw" % img.fallback)
    return _report_tail(args, img)


def _json_report(args, img, count):
    """What sign's --json says of every image it writes."""
    m = img.manifest
    return {"ok": True, "out": args.out, "size": img.size, "version": args.version,
            "seq": args.seq, "payload_size": m[mf.M_SIZE], "encoded_size": m[mf.M_ENC_SIZE],
            "sectors": count, "sector_size": args.sector_size, "kid": img.kid.hex(),
            "external_signature": args.signature_in is not None,
            "signature_normalised": img.normalised,
            "manufacturer_image_sha256": img.manufacturer_image_sha256().hex()}


def _report_tail(args, img):
    """The last lines of sign's text report: an external signature, the GBCS trailer's
    Manufacturer Image hash."""
    if args.signature_in is not None:
        print("signature: from %s, verified against key id %s%s"
              % (args.signature_in, img.kid.hex(),
                 " (high s, written as low s)" if img.normalised else ""))
    if img.mi_sha256 is not None:
        print("manufacturer image sha256 %s" % img.mi_sha256.hex())
    return 0


class OldImage:
    """The image a delta is made against: its installed payload and version, where they came
    from, and what was checked of its signature (signed_by: the key id, checked: whether
    it verified with the signing key; None for a binary)."""

    def __init__(self, payload, version, kind, kid=None, checked=None):
        self.payload = payload
        self.version = version
        self.kind = kind
        self.kid = kid
        self.checked = checked


def _old_image(args, public):
    """--delta-from read: an OTA image file of ours (not a delta, same product; its
    signature checked when the signing key signed it) or a firmware binary (then
    --base-version is required)."""
    from host_tools import argtypes, deltaimage
    from host_tools.report import Rejected
    path = args.delta_from
    data = argtypes.read_input(path, "the old image")
    if not data:
        raise Rejected("empty-firmware", "%s is empty" % path)
    if data[:4] != fmt.OTA_MAGIC.to_bytes(4, "little"):
        if args.base_version is None:
            args.sign_parser.error("--delta-from %s is a firmware binary: add --base-version "
                                   "(the file version the devices run)" % path)
        return OldImage(data, args.base_version, "binary")
    parts = deltaimage.split(data, path)
    m = parts.manifest
    if (m.manufacturer, m.image_type) != (args.manufacturer, args.image_type):
        raise Rejected("other-product", "%s is for manufacturer 0x%04X image type 0x%04X, not "
                       "0x%04X 0x%04X" % (path, m.manufacturer, m.image_type,
                                          args.manufacturer, args.image_type))
    if args.base_version is not None and args.base_version != m.version:
        raise Rejected("version-mismatch", "--base-version 0x%08X, but %s is version 0x%08X"
                       % (args.base_version, path, m.version))
    payload = deltaimage.installed(parts, path)
    checked = None
    if bytes(m.kid) == keys.key_id(keys.public_point(public)):
        if not deltaimage.signed_by(parts, public):
            raise Rejected("bad-signature", "%s: its manifest signature does not verify with "
                           "the signing key (key id %s)" % (path, bytes(m.kid).hex()))
        checked = True
    else:
        checked = False
    return OldImage(payload, m.version, "image", bytes(m.kid), checked)


def _report_delta(args, img, old, fw):
    """sign's report of a delta: the old image, sectors per mode, and the bytes on air
    (payload and table) against the same release signed raw and deflated per sector, in the
    sector's own window (the fewest bytes per-sector deflate sends; --compress's default
    2 KiB window sends a little more), as `otatool bench --only delta` compares them."""
    from host_tools.delta import MODES
    from host_tools.imagebuild import encode_payload
    m = img.manifest
    count = len(img.delta_modes)
    counts = dict((name, 0) for name in MODES)
    for mode in img.delta_modes:
        counts[MODES[mode]] += 1
    sent = len(img.table) + len(img.data)
    raw = len(fw) + count * fmt.TABLE_RAW_SIZE
    table, data, _crc = encode_payload(memoryview(fw), args.sector_size, True)
    deflate = len(table) + len(data)
    base = m[mf.M_BASE_SHA256].hex()
    if args.json:
        res = _json_report(args, img, count)
        res.update({"encoding": "delta",
                    "base": {"from": args.delta_from, "kind": old.kind, "version": old.version,
                             "size": m[mf.M_BASE_SIZE], "sha256": base,
                             "kid": old.kid.hex() if old.kid is not None else None,
                             "signature_checked": old.checked},
                    "modes": counts, "bytes_sent": sent, "deflate_bytes": deflate,
                    "raw_bytes": raw, "saved_vs_deflate": deflate - sent,
                    "saved_vs_raw": raw - sent})
        emit(res)
        return 0
    print("%s: %d bytes, version 0x%08X, seq %d, delta payload %d -> %d bytes, %d sectors of "
          "%d, key id %s" % (args.out, img.size, args.version, args.seq, m[mf.M_SIZE],
                             m[mf.M_ENC_SIZE], count, args.sector_size, img.kid.hex()))
    print("old image: version 0x%08X, %d bytes, sha256 %s (from %s %s%s)"
          % (old.version, m[mf.M_BASE_SIZE], base, "the image" if old.kind == "image" else
             "the binary", args.delta_from, _signature_note(old)))
    print("sectors: %s" % ", ".join("%s %d" % kv for kv in counts.items()))
    print("on air (payload and table): delta %d bytes; per-sector deflate %d (%d saved, "
          "%.3f of it); raw %d (%d saved, %.3f of it)"
          % (sent, deflate, deflate - sent, sent / float(deflate), raw, raw - sent,
             sent / float(raw)))
    return _report_tail(args, img)


def _signature_note(old):
    if old.checked is None:
        return ""
    if old.checked:
        return "; its signature verified with the signing key"
    return "; signed by key id %s, not the signing key: its signature not checked" \
        % old.kid.hex()
