"""Typed argparse validators for otatool options: each checks its range before any work.

A bad value is a usage error: argparse prints the usage line and
"otatool <command>: error: argument --opt: <reason>" and exits with status 2.

    p.add_argument("--drop", type=probability, default=0.0, help="...")
    p.add_argument("--port", type=integer(1, 65535))
    p.add_argument("--heap", type=size(64 * 1024, 1 << 30), default="4m")

HelpFormatter shows each option's default (when it has one) and keeps the epilog's examples
as written. read_input, read_image and public_points check input files once the options are
parsed: a bad file is a rejected input (InputError, exit 1), not a usage error.
"""
import argparse
import calendar
import math
import os
import re
import time

from hal.clock import ZIGBEE_EPOCH

U32 = 0xFFFFFFFF

ArgumentTypeError = argparse.ArgumentTypeError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds "(default: X)" to an option's help when it has a meaningful default."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if "%(default)" in text or d is None or d is False or d is argparse.SUPPRESS \
                or not action.option_strings or d == [] or isinstance(action, (
                    argparse._HelpAction, argparse._VersionAction)):
            return text
        return text + " (default: %(default)s)"


def _name(fn, name):
    fn.__name__ = name
    return fn


def _bounds(lo, hi, fmt="%s"):
    if lo is not None and hi is not None:
        return ("between " + fmt + " and " + fmt) % (lo, hi)
    if lo is not None:
        return ("at least " + fmt) % lo
    return ("at most " + fmt) % hi


def parse_int(text):
    """A decimal or 0x-hex integer (underscores allowed); ValueError otherwise."""
    s = text.strip().replace("_", "")
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:]
    if s[:2].lower() == "0x":
        v = int(s[2:], 16)
    elif s.isdigit():
        v = int(s, 10)
    else:
        raise ValueError(text)
    return -v if neg else v


def integer(lo=None, hi=None, what="integer"):
    """An integer (decimal or 0x-hex) in lo..hi (either bound may be None)."""
    def check(text):
        try:
            v = parse_int(text)
        except ValueError:
            raise ArgumentTypeError("not a decimal or 0x-hex %s: %r" % (what, text))
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ArgumentTypeError("%s must be %s, not %s" % (what, _bounds(lo, hi), text))
        return v
    return _name(check, what)


def real(lo=None, hi=None, lo_open=False, what="number"):
    """A finite float in lo..hi; lo_open excludes lo itself (a strictly positive value)."""
    def check(text):
        try:
            v = float(text)
        except ValueError:
            raise ArgumentTypeError("not a number: %r" % text)
        if not math.isfinite(v):
            raise ArgumentTypeError("not a finite number: %r" % text)
        if lo is not None and (v < lo or (lo_open and v == lo)):
            bound = ("greater than %g" % lo) if lo_open else _bounds(lo, hi, "%g")
            if lo_open and hi is not None:
                bound += " and at most %g" % hi
            raise ArgumentTypeError("%s must be %s, not %s" % (what, bound, text))
        if hi is not None and v > hi:
            raise ArgumentTypeError("%s must be %s, not %s" % (what, _bounds(lo, hi, "%g"),
                                                               text))
        return v
    return _name(check, what)


probability = real(0.0, 1.0, what="probability")

_UNITS_S = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


def duration(lo=0.0, hi=None, allow_zero=False, what="duration"):
    """Seconds: "2", "0.5", "500ms", "2s", "5m", "1h"; more than lo (or equal when allow_zero
    and lo is 0), at most hi seconds."""
    def check(text):
        m = re.fullmatch(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*",
                         text.lower())
        if not m or m.group(2) not in _UNITS_S:
            raise ArgumentTypeError("not a duration (seconds, or with ms/s/m/h): %r" % text)
        v = float(m.group(1)) * _UNITS_S[m.group(2)]
        if not math.isfinite(v) or v < lo or (v == lo and not (allow_zero and lo == 0)):
            raise ArgumentTypeError("%s must be %s %g s, not %s"
                                    % (what, "at least" if allow_zero else "more than", lo,
                                       text))
        if hi is not None and v > hi:
            raise ArgumentTypeError("%s must be at most %g s, not %s" % (what, hi, text))
        return v
    return _name(check, what)


_UNITS_B = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
            "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def human_size(n):
    for unit, k in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n >= k and n % k == 0:
            return "%d%s" % (n // k, unit)
    return str(n)


def size(lo=None, hi=None, what="size"):
    """A size in bytes: "4096", "64k", "4m", "1g" (binary units), in lo..hi bytes."""
    def check(text):
        m = re.fullmatch(r"\s*([0-9]+)\s*([a-z]*)\s*", text.lower())
        if not m or m.group(2) not in _UNITS_B:
            raise ArgumentTypeError("not a size (bytes, or with k/m/g): %r" % text)
        v = int(m.group(1)) * _UNITS_B[m.group(2)]
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            lo_s = None if lo is None else human_size(lo)
            hi_s = None if hi is None else human_size(hi)
            raise ArgumentTypeError("%s must be %s bytes, not %s" % (what, _bounds(lo_s, hi_s),
                                                                     text))
        return v
    return _name(check, what)


def host_port(allow_any_port=False):
    """HOST:PORT with PORT 1..65535 (0 too when allow_any_port: the system picks one).
    HOST may be a name, an IPv4 address or a bracketed IPv6 address ([::1]:4000).
    Returns (host, port); the name is resolved later, where it is used."""
    lo = 0 if allow_any_port else 1

    def check(text):
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port:
            raise ArgumentTypeError("expected HOST:PORT, got %r (the port is missing)" % text)
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ArgumentTypeError("an IPv6 address goes in brackets: [%s]:%s" % (host, port))
        if not host:
            raise ArgumentTypeError("expected HOST:PORT, got %r (the host is missing)" % text)
        if not port.isdigit():
            raise ArgumentTypeError("port %r is not a number" % port)
        p = int(port)
        if not lo <= p <= 65535:
            raise ArgumentTypeError("port must be between %d and 65535, not %s" % (lo, port))
        return (host, p)
    return _name(check, "HOST:PORT")


def int_list(allowed, what="value", hexa=False):
    """A comma-separated list of integers (decimal or 0x-hex), each one of `allowed`
    (named in hex in the message when hexa)."""
    def check(text):
        out = []
        for part in text.split(","):
            if not part.strip():
                continue
            try:
                v = parse_int(part)
            except ValueError:
                raise ArgumentTypeError("not a number in the %s list: %r" % (what, part))
            if v not in allowed:
                raise ArgumentTypeError("%s %s: use %s" % (what, part.strip(), ", ".join(
                    ("0x%02x" if hexa else "%d") % a for a in allowed)))
            if v not in out:
                out.append(v)
        if not out:
            raise ArgumentTypeError("empty %s list" % what)
        return out
    return _name(check, what + " list")


def activation(text):
    """now | command | relative:SECONDS (0..0xFFFFFFFE) | at:YYYY-MM-DDTHH:MM:SSZ (UTC).
    Returns (mode, value): value is seconds for relative, ZigBee UTC seconds (since 2000)
    for at, 0 otherwise."""
    t = text.strip()
    if t in ("now", "command"):
        return (t, 0)
    kind, sep, val = t.partition(":")
    if kind == "relative" and sep:
        try:
            v = parse_int(val)
        except ValueError:
            raise ArgumentTypeError("relative:SECONDS needs a whole number of seconds, not %r"
                                    % val)
        if not 0 <= v < U32:
            raise ArgumentTypeError("relative:SECONDS must be between 0 and %d, not %s"
                                    % (U32 - 1, val))
        return ("relative", v)
    if kind == "at" and sep:
        try:
            st = time.strptime(val.strip().rstrip("Zz"), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise ArgumentTypeError("at:TIME needs YYYY-MM-DDTHH:MM:SSZ (UTC), not %r" % val)
        z = calendar.timegm(st) - ZIGBEE_EPOCH
        if not 0 < z < U32:
            raise ArgumentTypeError("at:TIME must be after 2000-01-01 and before 2136, not %r"
                                    % val)
        return ("at", z)
    raise ArgumentTypeError("expected now, command, relative:SECONDS or at:ISO-TIME, not %r"
                            % text)


activation.__name__ = "activation"


def power_of_two(lo, hi, what="size"):
    """A power of two in lo..hi (decimal, 0x-hex, or with k/m)."""
    base = size(lo, hi, what)

    def check(text):
        v = base(text)
        if v & (v - 1):
            raise ArgumentTypeError("%s must be a power of two, not %s" % (what, text))
        return v
    return _name(check, what)


# -- input files: checked after parsing; a bad one is a rejected input (exit 1) ---------------

def _input_error(text):
    from host_tools.cli import InputError
    return InputError(text)


def read_input(path, what="file", limit=None):
    """The bytes of an existing regular file (the first `limit` bytes when given)."""
    if os.path.isdir(path):
        raise _input_error("%s is a directory, not %s" % (path, what))
    try:
        with open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except OSError as e:
        raise _input_error("%s: %s" % (path, e.strerror or e))


def read_image(path, what="an OTA image"):
    """The bytes of a ZigBee OTA file whose header parses and agrees with its size."""
    from agent.image import fmt
    from agent.errors import OtaError
    data = read_input(path, what)
    try:
        h = fmt.parse_header(data)
    except OtaError as e:
        raise _input_error("%s is not %s: %s" % (path, what, e))
    if h.total_size != len(data):
        raise _input_error("%s: the header says %d bytes, the file has %d (truncated?)"
                           % (path, h.total_size, len(data)))
    return data


def public_points(paths):
    """The 65-byte points of public keys (PEM, DER or raw point files). A private key given
    where a public one belongs is named as such."""
    from host_tools import keys
    out = []
    for p in paths:
        if b"PRIVATE KEY" in read_input(p, "a public key", 4096):
            raise _input_error("%s is a private key: give the public key (the --public file "
                               "of otatool keygen)" % p)
        out.append(keys.public_point(keys.load_public(p)))
    return out
