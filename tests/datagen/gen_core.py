"""Images for the device-core and power-cut tests: a factory image and updates to it.

core_v1.ota   factory image, version 1, seq 1 (12 KiB payload)
core_v2.ota   update, version 2, seq 2 (20 KiB, raw)
core_v2z.ota  the same firmware, per-sector deflate (in the signer's default window, 2 KiB)
core_v3.ota   version 3, seq 3, raw
core_old.ota  version 9 but seq 0: a rollback once seq 2 is confirmed
core_other_hw.ota, core_other_man.ota  wrong hardware range / manufacturer
core_v1_kid.ota  core_v1 with a manifest whose key id is not its COSE header's
core_v2d.ota  version 2, seq 2: a delta against core_v1's payload (core_v2d.bin), whose
              sectors are made in each of the four ways (copy, delta, raw, deflate)
core_v3d.ota  version 3, seq 3: a delta against core_v2's payload (refused by a device
              running core_v1)
delta_ops.bin the op streams of core_v2d's delta sectors and the sectors they make
core_v2d_<fault>.ota  core_v2d signed with a table that breaks a rule of the delta encoding
              (FORGED: a mode past DELTA, a copy past the old payload, a copy that carries a
              chunk, a RAW chunk shorter than its sector); core_v2z_short.ota and
              core_v2d_short.ota: their manifests bound a chunk one byte below the longest
core_v2z_w512.ota, core_v2z_w4k.ota  core_v2z's firmware, its chunks deflated in a
              512-byte window and in the sector's 4 KiB; core_v2z_narrow.ota: chunks of
              a 4 KiB window, the manifest naming 512 bytes
core_pub.bin  the public key (65-byte point); core_other_pub.bin a second trusted key
"""
import os
import random

from cryptography.hazmat.primitives.asymmetric import ec

import struct

import cbor2

from agent.image import pack
from host_tools import delta, keys
from host_tools.imagebuild import build, build_image, prepare, finish

MAN = 0x1234
TYPE = 0x0001
HW = 2


def fw(size, seed):
    rnd = random.Random(seed)
    out = bytearray(rnd.randbytes(size))
    for i in range(0, size, 3000):  # compressible stretches
        out[i:i + 1200] = bytes(min(1200, size - i))
    return bytes(out)


def release(v1):
    """A next release of v1 whose 4 KiB sectors are made each way: sector 0 v1's sector 1
    as it is (copy), sector 1 v1's sector 0 with a few bytes changed and some inserted
    (delta), sector 2 new random bytes (raw), sector 3 new text (deflate), then 1000 bytes
    of v1's sector 2 (copy, a last sector shorter than the others)."""
    s1 = bytearray(v1[:4096])
    for i in range(100, 4000, 397):
        s1[i] = (s1[i] + 7) & 0xFF
    s1 = (bytes(s1[:2000]) + b"inserted" + bytes(s1[2000:]))[:4096]
    text = b"release notes: the quick brown fox jumps over the lazy dog, again. " * 70
    return (v1[4096:8192] + s1 + random.Random(9).randbytes(4096) + text[:4096]
            + v1[8192:9192])


def _mode(sectors):
    m, c, a = sectors[1]
    sectors[1] = (7, c, a)


def _copy_past(sectors):
    sectors[0] = (delta.COPY, b"", 12 * 1024 - 100)


def _copy_chunk(sectors):
    m, c, a = sectors[0]
    sectors[0] = (delta.COPY, b"\x00" * 10, a)


def _raw_short(sectors):
    m, c, a = sectors[2]
    sectors[2] = (delta.RAW, c[:-1], a)


FORGED = (("mode", _mode), ("copy_past", _copy_past), ("copy_chunk", _copy_chunk),
          ("raw_short", _raw_short))


def forged(fw, key, edit, **kw):
    """A delta image signed over a table that edit(sectors) changed (host_tools.delta's
    list of (mode, chunk, copy offset)), with the manifest and signature made for it."""
    real = delta.encode

    def encode(*a, **k):
        out = real(*a, **k)
        edit(out)
        return out
    delta.encode = encode
    try:
        return build(fw, key, **kw)
    finally:
        delta.encode = real


def short_bound(fw, key, **kw):
    """The image of fw whose manifest bounds a chunk (M_CHUNK_MAX) one byte below its
    longest chunk, signed as it is."""
    out = prepare(fw, key.public_key(), **kw)
    out.manifest[pack.M_CHUNK_MAX] -= 1  # as long in CBOR: the header's sizes hold
    out.manifest_cbor = cbor2.dumps(out.manifest, canonical=True)
    out.tbs = pack.sig_structure(out.protected, out.header, out.manifest_cbor)
    return finish(out, keys.sign(key, out.tbs)).tobytes()


def narrow_window(fw, key, **kw):
    """The image of fw whose manifest names a window (M_WINDOW) smaller than the one its
    chunks were deflated in, signed as it is."""
    out = prepare(fw, key.public_key(), **kw)
    out.manifest[pack.M_WINDOW] = 9  # as long in CBOR: the header's sizes hold
    out.manifest_cbor = cbor2.dumps(out.manifest, canonical=True)
    out.tbs = pack.sig_structure(out.protected, out.header, out.manifest_cbor)
    return finish(out, keys.sign(key, out.tbs)).tobytes()


def generate(outdir):
    k = ec.generate_private_key(ec.SECP256R1())
    k2 = ec.generate_private_key(ec.SECP256R1())

    def put(name, data):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)

    put("core_pub.bin", keys.public_point(k.public_key()))
    put("core_other_pub.bin", keys.public_point(k2.public_key()))
    base = dict(manufacturer=MAN, image_type=TYPE, hw_min=1, hw_max=3)
    v1, v2, v3 = fw(12 * 1024, 1), fw(20 * 1024 + 100, 2), fw(20 * 1024, 3)
    put("core_v1.bin", v1)
    put("core_v2.bin", v2)
    put("core_v1.ota", build_image(v1, k, version=1, seq=1, **base))
    put("core_v2.ota", build_image(v2, k, version=2, seq=2, **base))
    put("core_v2z.ota", build_image(v2, k, version=2, seq=2, compress=True, **base))
    put("core_v3.ota", build_image(v3, k2, version=3, seq=3, **base))
    put("core_old.ota", build_image(v3, k, version=9, seq=0, **base))
    put("core_other_hw.ota", build_image(v3, k, version=4, seq=4, manufacturer=MAN,
                                         image_type=TYPE, hw_min=5, hw_max=9))
    put("core_other_man.ota", build_image(v3, k, version=4, seq=4, manufacturer=0x4321,
                                          image_type=TYPE, hw_min=1, hw_max=3))
    # core_v1's image whose manifest names another key (k2's id) than its COSE header (k's,
    # which signed it): refused for the mismatch, the signature being good
    out = prepare(v1, k.public_key(), version=1, seq=1, **base)
    out.manifest[pack.M_KID] = keys.key_id(keys.public_point(k2.public_key()))
    out.manifest_cbor = cbor2.dumps(out.manifest, canonical=True)
    out.tbs = pack.sig_structure(out.protected, out.header, out.manifest_cbor)
    put("core_v1_kid.ota", finish(out, keys.sign(k, out.tbs)).tobytes())
    v2d = release(v1)
    put("core_v2d.bin", v2d)
    img = build(v2d, k, version=2, seq=2, base=v1, base_version=1, **base)
    if img.delta_modes != [delta.COPY, delta.DELTA, delta.RAW, delta.DEFLATE, delta.COPY]:
        raise ValueError("core_v2d's sectors are made %r" % img.delta_modes)
    put("core_v2d.ota", img.tobytes())
    put("core_v3d.ota", build(v3, k, version=3, seq=3, base=v2, base_version=2,
                              **base).tobytes())
    for name, edit in FORGED:
        put("core_v2d_%s.ota" % name, forged(v2d, k, edit, version=2, seq=2, base=v1,
                                             base_version=1, **base).tobytes())
    put("core_v2z_short.ota", short_bound(v2, k, version=2, seq=2, compress=True, **base))
    put("core_v2z_w512.ota", build(v2, k, version=2, seq=2, compress=True, window=512,
                                   **base).tobytes())
    put("core_v2z_w4k.ota", build(v2, k, version=2, seq=2, compress=True, window=4096,
                                  **base).tobytes())
    put("core_v2z_narrow.ota", narrow_window(v2, k, version=2, seq=2, compress=True,
                                             window=4096, **base))
    put("core_v2d_short.ota", short_bound(v2d, k, version=2, seq=2, base=v1, base_version=1,
                                          **base))
    # each delta sector of core_v2d: its length, its op stream's, the op stream, the sector
    vec = b""
    for i in range(0, len(v2d), 4096):
        sec = v2d[i:i + 4096]
        if delta.encode_sector(v1, sec, 4096)[0] == delta.DELTA:
            ops = delta.op_stream(v1, sec)
            vec += struct.pack("<II", len(sec), len(ops)) + ops + sec
    put("delta_ops.bin", vec)
    # a 256 KiB update for the power-cut campaign
    put("core_256k.ota", build_image(fw(256 * 1024, 4), k, version=5, seq=5, **base))
