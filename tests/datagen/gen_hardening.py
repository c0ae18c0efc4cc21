"""Images for the hardening tests (test_rollback, test_store_check, test_policy_hardening).

hard_pub.bin            the public key of the images below (65-byte point)
hard_v1.ota             version 1, seq 1, 12 KiB raw: the factory image of these rigs
hard_to_me.ota          version 2, seq 2, its OTA header addressed (Upgrade File
                        Destination) to HARD_IEEE
hard_to_other.ota       the same firmware addressed to another device
hard_8k_z.ota / _raw    58 KiB of firmware in 8 KiB image sectors, deflate / raw: on 4 KiB
                        flash sectors in a 60 KiB payload area, the deflate one's last
                        sector would overrun the payload area
hard_highs.ota          core_v2.ota with its manifest signature's s replaced by n - s
hard_tamper.bin         a patch of core_v1.bin (the payload of core_v1.ota): u32 offset,
                        then 20 bytes: 16 changed bytes and 4 that restore the CRC-32
"""
import os
import struct
import zlib

from cryptography.hazmat.primitives.asymmetric import ec

from agent.image import fmt
from agent.image import pack
from host_tools import imagebuild, keys
from tests.datagen.gen_core import fw, MAN, TYPE

HARD_IEEE = bytes((0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88))
OTHER_IEEE = bytes((0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x99))
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
BASE = dict(manufacturer=MAN, image_type=TYPE, hw_min=1, hw_max=3)


def addressed(payload, key, dest, **kw):
    """An image whose OTA header carries an Upgrade File Destination, signed over it."""
    b = imagebuild.build(payload, key, **kw)
    h = fmt.parse_header(b.header)
    h.destination = dest
    h.total_size += 8
    header = pack.pack_header(h)
    cose = imagebuild.cose_sign1(key, b.kid, b.manifest_cbor, header)
    if len(cose) != len(b.cose):
        raise SystemExit("gen_hardening: COSE length changed")
    parts = [header] + list(b.parts[1:])
    parts[2] = cose
    return b"".join(parts)


def high_s(img):
    """img with its manifest signature's s replaced by n - s (still a valid signature)."""
    off, n = fmt.find_manifest(img)
    end = off + n  # the signature bstr is the COSE_Sign1's last 64 bytes
    s = int.from_bytes(img[end - 32:end], "big")
    return img[:end - 32] + (N - s).to_bytes(32, "big") + img[end:]


def crc_patch(data, off):
    """16 changed bytes at off, then 4 bytes chosen so that CRC-32(data) is unchanged."""
    want = zlib.crc32(data)
    d = bytearray(data)
    for i in range(16):
        d[off + i] ^= 0x5A
    p = off + 16

    def crc_with(v):
        d[p:p + 4] = v.to_bytes(4, "little")
        return zlib.crc32(d)
    base = crc_with(0)
    cols = [crc_with(1 << i) ^ base for i in range(32)]  # CRC is affine in those 32 bits
    # solve sum(x_i * cols[i]) == want ^ base over GF(2), Gaussian elimination
    rows = [(cols[i], 1 << i) for i in range(32)]
    target = want ^ base
    basis = []
    for c, m in rows:
        for bc, bm in basis:
            if c ^ bc < c:
                c ^= bc
                m ^= bm
        if c:
            basis.append((c, m))
            basis.sort(reverse=True)
    x = 0
    t = target
    for bc, bm in basis:
        if t ^ bc < t:
            t ^= bc
            x ^= bm
    if t:
        raise SystemExit("gen_hardening: no CRC-32 patch")
    crc_with(x)
    if zlib.crc32(d) != want or bytes(d) == bytes(data):
        raise SystemExit("gen_hardening: CRC-32 patch wrong")
    return struct.pack("<I", off) + bytes(d[off:off + 20])


def generate(outdir):
    def put(name, data):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)

    def get(name):
        with open(os.path.join(outdir, name), "rb") as f:
            return f.read()

    k = ec.generate_private_key(ec.SECP256R1())
    put("hard_pub.bin", keys.public_point(k.public_key()))
    put("hard_v1.ota", imagebuild.build_image(fw(12 * 1024, 11), k, version=1, seq=1, **BASE))
    v2 = fw(20 * 1024, 12)
    put("hard_to_me.ota", addressed(v2, k, HARD_IEEE, version=2, seq=2, **BASE))
    put("hard_to_other.ota", addressed(v2, k, OTHER_IEEE, version=2, seq=2, **BASE))
    big = fw(58 * 1024, 13)
    put("hard_8k_z.ota", imagebuild.build_image(big, k, version=3, seq=3, sector_size=8192,
                                                compress=True, **BASE))
    put("hard_8k_raw.ota", imagebuild.build_image(big, k, version=3, seq=3, sector_size=8192,
                                                  **BASE))
    put("hard_highs.ota", high_s(get("core_v2.ota")))
    put("hard_tamper.bin", crc_patch(get("core_v1.bin"), 5000))
