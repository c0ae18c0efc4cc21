"""Write a raw 65-byte public point as a PEM public key: pem.py POINT.bin OUT.pem"""
import sys

from cryptography.hazmat.primitives import serialization

from host_tools import keys

if __name__ == "__main__":
    k = keys.public_from_point(open(sys.argv[1], "rb").read())
    with open(sys.argv[2], "wb") as f:
        f.write(k.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo))
