"""Per-sector delta encoding against the image a device runs (host side).

Each sector of the new payload is made on the device in one of four ways, and the signer
keeps the one that puts the fewest bytes on air:

  COPY     the same bytes are somewhere in the old payload: only their offset travels
  RAW      the sector's bytes as they are
  DEFLATE  the sector raw-deflated on its own, in the image's window (DELTA_WBITS: 1 KiB)
  DELTA    an op stream against the whole old payload, raw-deflated with the same window

The op stream is the data of a detools "sequential" patch of the sector (compression
"none"), after its header (patch type, to-size) and its data-format size (0): entries of

  diff size, diff bytes     out = old[from + i] + diff[i] (mod 256); from += diff size
  extra size, extra bytes   out = extra bytes (from unchanged)
  adjustment                from += adjustment (signed)

until the sector is complete; sizes in detools' variable-length form (first byte: bit 7
more, bit 6 negative, 6 value bits; then 7 value bits a byte, least significant first).
`from` starts at 0, the old payload's first byte, for every sector.
"""
import io
import zlib

from agent.image import fmt
from agent.image.pack import pack_size  # noqa: F401 (host_tools.delta.pack_size)

COPY, RAW, DEFLATE, DELTA = 0, 1, 2, 3
# The window the chunks are deflated in, unless the signer is given one (the manifest's
# M_WINDOW), at most the one covering a sector: the window a device makes for its decoder.
# A delta's, 1 KiB: 3 KiB of RAM less than a 4 KiB sector's, for 0.1 to 3 % more bytes on
# the release pairs of `make bench`. A full image's (--compress), 2 KiB: its chunks are
# whole sectors of code, which lose more in a small window. Per-sector deflate of the
# binaries of `make bench` (4 KiB sectors, level 9), bytes against a 4 KiB window: 2 KiB
# +0.2 to +0.3 % for Thumb-2 firmware (the Cortex-M tier's) and +0.2 to +1.0 % for the
# mpy-cross and MicroPython executables; 1 KiB +1.0 to +1.1 % and +1.7 to +4.2 %. The
# Cortex-M tier's frozen deflate update needs 48 KiB of heap with a 4 KiB window, 46 with
# 2 KiB and 45 with 1 KiB (`heap_min_update_frozen_deflate`).
DELTA_WBITS = 10
DEFLATE_WBITS = 11
MODES = ("copy", "raw", "deflate", "delta")


class DeltaError(Exception):
    pass


def unpack_size(buf, pos):
    """(value, next position) of the size at buf[pos:]."""
    if pos >= len(buf):
        raise DeltaError("op stream ends inside a size")
    b = buf[pos]
    neg = b & 0x40
    v = b & 0x3F
    shift = 6
    pos += 1
    while b & 0x80:
        if pos >= len(buf):
            raise DeltaError("op stream ends inside a size")
        b = buf[pos]
        v |= (b & 0x7F) << shift
        shift += 7
        pos += 1
    return (-v if neg else v), pos


def op_stream(old, sector):
    """The op stream that makes `sector` from `old` (detools, sequential, no compression)."""
    import detools
    out = io.BytesIO()
    detools.create_patch(io.BytesIO(bytes(old)), io.BytesIO(bytes(sector)), out,
                         compression="none", patch_type="sequential")
    p = out.getvalue()
    if not p or p[0] != 0:  # patch type sequential (0), compression none (0)
        raise DeltaError("detools wrote a patch of another kind (0x%02X)" % p[0])
    size, pos = unpack_size(p, 1)
    if size != len(sector):
        raise DeltaError("detools patch for %d bytes, not %d" % (size, len(sector)))
    dfsize, pos = unpack_size(p, pos)
    if dfsize:
        raise DeltaError("detools patch with a data format")
    return p[pos:]


def apply_ops(old, ops, n):
    """The n bytes the op stream ops makes from old (the host's reference)."""
    out = bytearray()
    src = 0
    pos = 0
    while len(out) < n:
        k, pos = unpack_size(ops, pos)
        if k < 0 or len(out) + k > n or src < 0 or src + k > len(old) or pos + k > len(ops):
            raise DeltaError("diff of %d bytes at %d out of range" % (k, len(out)))
        out += bytes((a + b) & 0xFF for a, b in zip(old[src:src + k], ops[pos:pos + k]))
        src += k
        pos += k
        k, pos = unpack_size(ops, pos)
        if k < 0 or len(out) + k > n or pos + k > len(ops):
            raise DeltaError("extra of %d bytes at %d out of range" % (k, len(out)))
        out += ops[pos:pos + k]
        pos += k
        adj, pos = unpack_size(ops, pos)
        src += adj
    if pos != len(ops):
        raise DeltaError("%d bytes after the sector's last op" % (len(ops) - pos))
    return bytes(out)


def deflate_raw(data, sector, wbits=0):
    """data raw-deflated in a window of 2**wbits bytes (0: the one covering a sector)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -(wbits or fmt.deflate_wbits(sector)))
    return co.compress(bytes(data)) + co.flush()


def window_bits(sector, wbits=0, default=DELTA_WBITS):
    """The window bits of an image's chunks: wbits, else default (a delta's; DEFLATE_WBITS
    for a full image's), at most the one covering a sector."""
    top = fmt.deflate_wbits(sector)
    w = wbits or default
    return w if w < top else top


def encode_sector(old, sector, size, wbits=0):
    """(mode, chunk, copy offset) of the cheapest way to make `sector` (the table's sector
    size is `size`) from the old payload `old`: COPY has no chunk, its offset in old;
    chunks deflated in a window of window_bits(size, wbits)."""
    wbits = window_bits(size, wbits)
    sec = bytes(sector)
    at = old.find(sec) if len(sec) else -1
    if at >= 0:
        return COPY, b"", at
    best = (RAW, sec, 0)
    z = deflate_raw(sec, size, wbits)
    if len(z) < len(best[1]):
        best = (DEFLATE, z, 0)
    ops = op_stream(old, sec)
    if apply_ops(old, ops, len(sec)) != sec:
        raise DeltaError("the op stream does not make the sector")
    d = deflate_raw(ops, size, wbits)
    if len(d) < len(best[1]):
        best = (DELTA, d, 0)
    return best


def encode(old, new, size=4096, progress=None, wbits=0):
    """Every sector of new against old: a list of (mode, chunk, copy offset), chunks
    deflated in a window of window_bits(size, wbits)."""
    old = bytes(old)
    out = []
    for off in range(0, len(new), size):
        out.append(encode_sector(old, new[off:off + size], size, wbits))
        if progress is not None:
            progress(min(len(new), off + size))
    return out


def summary(sectors):
    """{mode name: sector count} and the bytes of the chunks."""
    counts = {}
    for mode, chunk, _at in sectors:
        counts[MODES[mode]] = counts.get(MODES[mode], 0) + 1
    return counts, sum(len(c) for _m, c, _a in sectors)
