"""Keys and signed images for the device tests.

Keys (fresh on every run): dev_*, other_*, supplier_* as priv.pem / pub.pem / pub.bin (the raw
65-byte public point). Payloads are deterministic (seeded). images.json describes each image
(parameters, key id, Manufacturer Image SHA-256) for tests that need the expected values.
"""
import json
import os
import random

from agent.image import manifest as mf
from host_tools import imagebuild, keys

FW_20K = "fw_20k.bin"
FW_256K = "fw_256k.bin"
FW_ODD = "fw_odd.bin"

BASE = dict(version=2, seq=5, manufacturer=0x1234, image_type=0x0001, hw_min=1, hw_max=3)

# name: (payload file, signing key, build parameters beyond BASE)
IMAGES = (
    ("img_raw.ota", FW_20K, "dev", {}),
    ("img_deflate.ota", FW_20K, "dev", {"compress": True}),
    ("img_supplier.ota", FW_20K, "dev", {"supplier": True}),
    ("img_small_sector.ota", FW_20K, "dev", {"sector_size": 512}),
    ("img_big.ota", FW_256K, "dev", {"compress": True}),
    ("img_other_key.ota", FW_20K, "other", {}),
    ("img_odd.ota", FW_ODD, "dev", {"compress": True}),
)


def payload(size, seed):
    """Pseudo-random bytes with compressible stretches (zeros, a repeated pattern, text)."""
    rnd = random.Random(seed)
    out = bytearray(rnd.randbytes(size))
    pattern = b"\xde\xad\xbe\xef\x00\x11\x22\x33"
    text = b"ota-agent test firmware; the quick brown fox jumps over the lazy dog. "
    pos = 0
    while pos < size:
        n = rnd.randrange(512, 3000)
        kind = rnd.randrange(4)
        if kind == 0:
            fill = bytes(n)
        elif kind == 1:
            fill = (pattern * (n // len(pattern) + 1))[:n]
        elif kind == 2:
            fill = (text * (n // len(text) + 1))[:n]
        else:
            fill = None                      # leave random
        if fill is not None:
            end = min(size, pos + n)
            out[pos:end] = fill[:end - pos]
        pos += n + rnd.randrange(1000, 4000)
    return bytes(out)


def _write(outdir, name, data):
    with open(os.path.join(outdir, name), "wb") as f:
        f.write(data)


def generate(outdir):
    os.makedirs(outdir, exist_ok=True)
    keyset = {}
    for name in ("dev", "other", "supplier"):
        k = keys.generate()
        keys.write_keypair(os.path.join(outdir, name + "_priv.pem"),
                           os.path.join(outdir, name + "_pub.pem"), force=True, key=k,
                           raw_path=os.path.join(outdir, name + "_pub.bin"))
        keyset[name] = k
    payloads = {FW_20K: payload(20 * 1024, 20), FW_256K: payload(256 * 1024, 256),
                FW_ODD: payload(13000 + 337, 13)}
    for name, data in payloads.items():
        _write(outdir, name, data)

    index = {"keys": {n: keys.key_id(keys.public_point(k)).hex() for n, k in keyset.items()},
             "images": {}}
    for name, fw_name, signer, extra in IMAGES:
        params = dict(BASE)
        params.update(extra)
        supplier = params.pop("supplier", False)
        img = imagebuild.build(payloads[fw_name], keyset[signer],
                               supplier_key=keyset["supplier"] if supplier else None, **params)
        data = img.tobytes()
        _write(outdir, name, data)
        desc = dict(params)
        desc.update(payload=fw_name, key=signer, supplier=supplier, size=len(data),
                    sector_size=params.get("sector_size", 4096),
                    compress=params.get("compress", False),
                    encoding=img.manifest[mf.M_ENCODING],
                    payload_size=img.manifest[mf.M_SIZE],
                    enc_size=img.manifest[mf.M_ENC_SIZE],
                    header_length=len(img.header), kid=img.kid.hex(),
                    mi_sha256=img.manufacturer_image_sha256().hex())
        index["images"][name] = desc
    with open(os.path.join(outdir, "images.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
