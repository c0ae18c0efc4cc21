# A small CBOR (RFC 8949) decoder for the manifest and COSE_Sign1, and the item heads the
# COSE Sig_structure needs.
#
# decode() accepts: unsigned and negative integers (arguments up to 64 bits), byte strings
# (bytes), text strings (str, strict UTF-8 as RFC 3629), arrays (list), maps (dict, keys int,
# str or bytes), tags (Tag) and the simple values false, true and null.
# It rejects with OtaError(BAD_CBOR, reason): indefinite lengths, reserved additional
# information (28-30, and 31 outside major types 2-5), floats, undefined and every other
# simple value, stray break codes, non-preferred argument encodings (a value given in more
# bytes than it needs, e.g. 0x18 0x05: the signed manifest has one encoding only), duplicate
# map keys, other map key types, nesting deeper than max_depth, truncated input and bytes
# after the item.
#
# Byte strings come back as bytes copies, not memoryview slices: all the copies together are
# never larger than the input, a copy can be a dict key and compares equal to bytes on
# MicroPython (a memoryview does neither), and it does not pin the caller's buffer.
#
# Memory: every length is checked against the bytes left before anything is allocated (an
# array of n items needs at least n more bytes, a map of n pairs 2n), and lists and dicts
# grow only as their items are decoded. The decoder is a loop, not a recursion: each item is
# read by _item according to its major type, and a container is a 4-slot list on its
# stack, at most max_depth of them open at once.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.errors import OtaError, BAD_CBOR

_MAJOR_UINT = const(0)
_MAJOR_NINT = const(1)
MAJOR_BSTR = const(2)
_MAJOR_TSTR = const(3)
_MAJOR_ARRAY = const(4)
_MAJOR_MAP = const(5)
_MAJOR_TAG = const(6)
_MAJOR_SIMPLE = const(7)
_FALSE = const(20)
_TRUE = const(21)
_NULL = const(22)
# Frame kinds on the decoder stack; a map frame switches between key and value.
_F_ARRAY = const(0)
_F_KEY = const(1)
_F_VALUE = const(2)
_F_TAG = const(3)
_MAX_ARG = const(0xFFFFFFFFFFFFFFFF)


class Tag:
    """A tagged data item: tag number and the item it wraps."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


def _err(what, pos):
    return OtaError(BAD_CBOR, "%s at byte %d" % (what, pos))


def _simple_reason(ai):
    if ai < 24:
        return "simple value %d not supported" % ai
    if ai == 24:
        return "one-byte simple value not supported"
    if ai < 28:
        return "floating-point value not supported"
    if ai < 31:
        return "reserved additional information %d" % ai
    return "break code outside an indefinite-length item"


def _utf8_ok(mv, i, end):
    """True when mv[i:end] is well-formed UTF-8: no overlongs, surrogates or > U+10FFFF."""
    while i < end:
        c = mv[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            n = 1
        elif 0xE0 <= c <= 0xEF:
            n = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            n = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return False
        if end - i <= n:
            return False
        c = mv[i + 1]
        if c < lo or c > hi:
            return False
        for j in range(i + 2, i + n + 1):
            if mv[j] & 0xC0 != 0x80:
                return False
        i += n + 1
    return True


# The decoder's state, one list: the input (a memoryview), its length, the read position,
# the open containers (frames: [kind, list or dict, items left, tag number or map key]) and
# the nesting limit.
_MV = const(0)
_END = const(1)
_POS = const(2)
_STACK = const(3)
_DEPTH = const(4)


# Returned in place of a value: by _item for a container it opened, and by _close while a
# container is still open. Ellipsis, which no CBOR item decodes to (a constant: no object
# made at import).
_OPEN = const(...)


def _arg(d, major, ai, start):
    """The argument of the head at start (additional information ai), after its bytes."""
    if ai < 24:
        return ai
    if ai < 28:
        p = d[_POS]
        n = 1 << (ai - 24)
        if d[_END] - p < n:
            raise _err("truncated argument", start)
        mv = d[_MV]
        arg = 0
        for i in range(p, p + n):
            arg = (arg << 8) | mv[i]
        d[_POS] = p + n
        # preferred form only: at least 24 in one byte, and in 2, 4 or 8 bytes a value
        # that does not fit in half as many (0x100, 0x10000, 0x100000000 at least)
        if arg < 24 or arg >> (n << 2) == 0:
            raise _err("non-minimal argument", start)
        return arg
    if ai == 31 and MAJOR_BSTR <= major <= _MAJOR_MAP:
        raise _err("indefinite length not supported", start)
    raise _err("reserved additional information %d" % ai, start)


def _nest(d, start):
    """Check that a container may open at start: not as a map key, not too deep."""
    stack = d[_STACK]
    if stack and stack[-1][0] == _F_KEY:
        raise _err("map key must be int, text or bytes", start)
    if len(stack) >= d[_DEPTH]:
        raise _err("nesting deeper than %d" % d[_DEPTH], start)


def _push(d, kind, box, n):
    """Open a container of n items; an empty one is the value itself."""
    if n == 0:
        return box
    d[_STACK].append([kind, box, n, None])
    return _OPEN


def _item(d):
    """The next data item, or _OPEN when it opens a container."""
    start = p = d[_POS]
    if p >= d[_END]:
        raise _err("truncated", p)
    ib = d[_MV][p]
    d[_POS] = p + 1
    major = ib >> 5
    if major == _MAJOR_SIMPLE:
        ib &= 31
        if ib == _FALSE:
            return False
        if ib == _TRUE:
            return True
        if ib == _NULL:
            return None
        raise _err(_simple_reason(ib), start)
    arg = _arg(d, major, ib & 31, start)
    if major == _MAJOR_UINT:
        return arg
    if major == _MAJOR_NINT:
        return -1 - arg
    p = d[_POS]
    if major <= _MAJOR_TSTR:
        if arg > d[_END] - p:
            raise _err("string of %d bytes overruns the input" % arg, start)
        d[_POS] = p + arg
        s = d[_MV][p:p + arg]
        if major == MAJOR_BSTR:
            return bytes(s)
        if not _utf8_ok(s, 0, arg):
            raise _err("invalid UTF-8 in text string", start)
        return str(bytes(s), "utf-8")
    _nest(d, start)
    if major == _MAJOR_ARRAY:
        if arg > d[_END] - p:  # each item takes a byte at least
            raise _err("array of %d items overruns the input" % arg, start)
        return _push(d, _F_ARRAY, [], arg)
    if major == _MAJOR_MAP:
        if arg > (d[_END] - p) >> 1:  # each pair takes two bytes at least
            raise _err("map of %d pairs overruns the input" % arg, start)
        return _push(d, _F_KEY, {}, arg)
    d[_STACK].append([_F_TAG, None, 1, arg])  # _MAJOR_TAG
    return _OPEN


def _close(d, val, start):
    """Hand the finished item val to the open containers, closing those it completes; the
    whole item once none is left open, else _OPEN."""
    stack = d[_STACK]
    while stack:
        f = stack[-1]
        kind = f[0]
        if kind == _F_ARRAY:
            f[1].append(val)
        elif kind == _F_KEY:
            t = type(val)
            if t is not int and t is not str and t is not bytes:
                raise _err("map key must be int, text or bytes", start)
            if val in f[1]:
                raise _err("duplicate map key", start)
            f[3] = val
            f[0] = _F_VALUE
            return _OPEN
        elif kind == _F_VALUE:
            f[1][f[3]] = val
            f[0] = _F_KEY
        else:
            val = Tag(f[3], val)
        f[2] -= 1
        if f[2]:
            return _OPEN
        stack.pop()
        if kind != _F_TAG:
            val = f[1]
    return val


def decode(buf, max_depth=8):
    """Decode the one CBOR data item that fills buf (bytes, bytearray or memoryview).

    max_depth bounds how many arrays, maps and tags may be open at once.
    """
    mv = memoryview(buf)
    d = [mv, len(mv), 0, [], max_depth]
    while True:
        start = d[_POS]
        val = _item(d)
        if val is not _OPEN:
            val = _close(d, val, start)
            if val is not _OPEN:
                p = d[_POS]
                if p != d[_END]:
                    raise _err("%d bytes after the item" % (d[_END] - p), p)
                return val


def encode_head(major, value):
    """The head of a CBOR item in preferred (shortest) form: major type and argument."""
    if major < 0 or major > 7 or value < 0 or value > _MAX_ARG:
        raise OtaError(BAD_CBOR, "cannot encode major %d argument %d" % (major, value))
    ib = major << 5
    if value < 24:
        return bytes((ib | value,))
    n = 1
    while value >> (8 * n):
        n <<= 1
        ib += 1
    return bytes((ib + 24,)) + value.to_bytes(n, "big")
