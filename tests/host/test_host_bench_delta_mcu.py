"""host_tools/bench_mcu.py's delta images for the Cortex-M figures: the old image a device
runs, the new one as a delta against it and as per-sector deflate (no emulator is run and no
firmware built here: the release pair is replaced by generated payloads)."""
import os
import random

import pytest

from agent.image import fmt, pack
from host_tools import bench_delta, bench_mcu as B


def _pair():
    r = random.Random(15)
    old = bytearray()
    while len(old) < B.PAYLOAD:     # code-like: short patterns with varying operands
        old += r.choice((b"\x00\xbf", b"\x70\x47", b"\x4f\xf0")) + bytes((r.randrange(256),))
    old = bytes(old[:B.PAYLOAD])
    new = bytearray(old)
    new[100000:100000] = b"\x12\x34\x56\x78" * 5          # an insertion shifts what follows
    new[7:11] = b"\xde\xad\xbe\xef"
    return old, bytes(new[:B.PAYLOAD])


@pytest.fixture
def staged(tmp_path, monkeypatch):
    if not os.path.exists(os.path.join(B.DATA, "dev_priv.pem")):
        pytest.skip("no build/testdata (make build/testdata/.stamp)")
    monkeypatch.setattr(B, "WORK", str(tmp_path / "work"))
    old, new = _pair()
    monkeypatch.setattr(B, "delta_pair", lambda: (old, new))
    d = tmp_path / "d"
    d.mkdir()
    info = {}
    tag = B.delta_images(str(d), info)
    return d, info, tag, old, new


def test_delta_images(staged):
    d, info, tag, old, new = staged
    assert tag and "delta_why" not in info
    ms = dict((n, pack.peek(info[n][:fmt.MANIFEST_END_MAX])) for n in ("o256", "d256", "n256z"))
    assert [ms[n].encoding for n in ("o256", "d256", "n256z")] == \
        [fmt.ENC_RAW, fmt.ENC_DELTA, fmt.ENC_DEFLATE]
    assert [ms[n].version for n in ("o256", "d256", "n256z")] == [1, 2, 2]
    dm = ms["d256"]
    assert (dm.base_size, dm.base_version) == (len(old), 1) and dm.size == len(new)
    # the delta sends far less than per-sector deflate of the same payload
    assert dm.enc_size < ms["n256z"].enc_size // 4
    for n in ("o256", "d256", "n256z"):
        with open(str(d / (n + ".ota")), "rb") as f:
            assert f.read() == info[n]
        fr = (d / (n + ".fr")).read_bytes()
        assert len(fr) > len(info[n])   # every block framed
        assert (d / (n + ".pub")).exists()


def test_delta_images_signed_once(staged, tmp_path):
    d, info, tag, _old, _new = staged
    again = {}
    assert B.delta_images(str(d), again) == tag
    # an ECDSA signature differs at every signing: the same bytes mean the cached image
    assert again["d256"] == info["d256"] and again["o256"] == info["o256"]


def test_delta_images_without_the_pair(tmp_path, monkeypatch):
    def no_pair():
        raise bench_delta.PairError("missing gcc-arm-none-eabi")
    monkeypatch.setattr(B, "delta_pair", no_pair)
    info = {}
    assert B.delta_images(str(tmp_path), info) is None
    assert info == {"delta_why": "missing gcc-arm-none-eabi"}
    assert os.listdir(str(tmp_path)) == []
