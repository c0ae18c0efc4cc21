"""Images for the device-core and power-cut tests: a factory image and updates to it.

core_v1.ota   factory image, version 1, seq 1 (12 KiB payload)
core_v2.ota   update, version 2, seq 2 (20 KiB, raw)
core_v2z.ota  the same firmware, per-sector deflate
core_v3.ota   version 3, seq 3, raw
core_old.ota  version 9 but seq 0: a rollback once seq 2 is confirmed
core_other_hw.ota, core_other_man.ota  wrong hardware range / manufacturer
core_pub.bin  the public key (65-byte point); core_other_pub.bin a second trusted key
"""
import os
import random

from cryptography.hazmat.primitives.asymmetric import ec

from host_tools import keys
from host_tools.imagebuild import build_image

MAN = 0x1234
TYPE = 0x0001
HW = 2


def fw(size, seed):
    rnd = random.Random(seed)
    out = bytearray(rnd.randbytes(size))
    for i in range(0, size, 3000):  # compressible stretches
        out[i:i + 1200] = bytes(min(1200, size - i))
    return bytes(out)


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
    # a 256 KiB update for the power-cut campaign
    put("core_256k.ota", build_image(fw(256 * 1024, 4), k, version=5, seq=5, **base))
