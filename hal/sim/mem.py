# Byte moves for hal.sim.nor: copy, fill, count and program over the bytes named only. Under
# MicroPython with the viper emitter they are hal.sim.memv's loops (slice assignment there
# moves the rest of the array too, and a memoryview slice is a heap object); elsewhere the
# plain functions below, which tests/device/test_sim_mem.py checks them against.


def copy(dst, doff, src, soff, n):
    """dst[doff:doff + n] = src[soff:soff + n]"""
    dst[doff:doff + n] = src[soff:soff + n] if soff or len(src) != n else src


def fill(dst, off, n, v):
    """dst[off:off + n] = bytes((v,)) * n"""
    dst[off:off + n] = bytes((v,)) * n


def count(m, off, n, v):
    """How many of m[off:off + n] equal v."""
    return m.count(bytes((v,)), off, off + n)


def program(dst, off, src, n, v):
    """dst[off:off + n] = src[0:n] and True if all of dst[off:off + n] equal v; else False
    and dst unchanged."""
    if dst.count(bytes((v,)), off, off + n) != n:
        return False
    dst[off:off + n] = src if len(src) == n else src[0:n]
    return True


PLAIN = (copy, fill, count, program)
try:
    from hal.sim.memv import copy, fill, count, program  # noqa: F811
except (ImportError, SyntaxError):  # CPython; a port or build without the emitter
    pass
