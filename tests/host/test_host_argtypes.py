"""host_tools.argtypes: every validator accepts its range and refuses what lies outside."""
import argparse

import pytest

from host_tools import argtypes as A


def bad(fn, text, *needles):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        fn(text)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_integer():
    t = A.integer(1, 255, "block size")
    assert t("1") == 1 and t("0xff") == 255 and t("1_0") == 10
    bad(t, "0", "between 1 and 255")
    bad(t, "256", "between 1 and 255")
    bad(t, "-3", "between 1 and 255")
    bad(t, "x12", "not a decimal")
    assert A.integer(0)("0") == 0
    bad(A.integer(0), "-1", "at least 0")


def test_real_and_probability():
    assert A.probability("0") == 0.0 and A.probability("1") == 1.0
    bad(A.probability, "1.5", "between 0 and 1")
    bad(A.probability, "-0.1", "between 0 and 1")
    bad(A.probability, "nan", "finite")
    bad(A.probability, "x", "not a number")
    pos = A.real(0, None, lo_open=True, what="rate")
    assert pos("0.5") == 0.5
    bad(pos, "0", "greater than 0")


def test_duration():
    d = A.duration(0, 3600)
    assert d("2") == 2 and d("500ms") == 0.5 and d("5m") == 300 and d("0.25s") == 0.25
    bad(d, "0", "more than 0")
    bad(d, "-1", "more than 0")
    bad(d, "2h", "at most 3600")
    bad(d, "soon", "not a duration")
    assert A.duration(0, allow_zero=True)("0") == 0


def test_size():
    s = A.size(64 << 10, 1 << 30, "heap")
    assert s("4m") == 4 << 20 and s("64k") == 65536 and s("1G") == 1 << 30
    assert s("65536") == 65536 and s("2MiB") == 2 << 20
    bad(s, "1k", "between 64k and 1g")
    bad(s, "2g", "between 64k and 1g")
    bad(s, "4q", "not a size")
    bad(s, "-4m", "not a size")


def test_host_port():
    hp = A.host_port()
    assert hp("127.0.0.1:4000") == ("127.0.0.1", 4000)
    assert hp("localhost:1") == ("localhost", 1)
    assert hp("[::1]:65535") == ("::1", 65535)
    bad(hp, "127.0.0.1", "port is missing")
    bad(hp, "127.0.0.1:", "port is missing")
    bad(hp, ":4000", "host is missing")
    bad(hp, "127.0.0.1:99999", "between 1 and 65535")
    bad(hp, "127.0.0.1:0", "between 1 and 65535")
    bad(hp, "127.0.0.1:http", "not a number")
    bad(hp, "::1:4000", "brackets")
    assert A.host_port(allow_any_port=True)("127.0.0.1:0") == ("127.0.0.1", 0)


def test_int_list():
    al = A.int_list((1, 2, 4, 8, 16), "alignment")
    assert al("1,4,8,16") == [1, 4, 8, 16] and al("4,4") == [4]
    bad(al, "3", "use 1, 2, 4, 8, 16")
    bad(al, ",", "empty")
    bad(al, "a", "not a number")
    er = A.int_list((0xFF, 0x00), "erased value", hexa=True)
    assert er("0xff,0x00") == [0xFF, 0]
    bad(er, "0x0f", "use 0xff, 0x00")


def test_activation():
    assert A.activation("now") == ("now", 0)
    assert A.activation("command") == ("command", 0)
    assert A.activation("relative:30") == ("relative", 30)
    assert A.activation("relative:0") == ("relative", 0)
    assert A.activation("at:2000-01-01T00:00:10Z") == ("at", 10)
    bad(A.activation, "relative:-5", "between 0 and")
    bad(A.activation, "relative:soon", "whole number")
    bad(A.activation, "at:tomorrow", "YYYY-MM-DD")
    bad(A.activation, "at:1999-12-31T23:59:59Z", "after 2000")
    bad(A.activation, "later", "expected now, command")


def test_help_formatter_shows_defaults():
    p = argparse.ArgumentParser(prog="x", formatter_class=A.HelpFormatter,
                                epilog="example:\n  x --n 3")
    p.add_argument("--n", type=A.integer(1, 9), default=4, help="a number")
    p.add_argument("--flag", action="store_true", help="a flag")
    p.add_argument("--opt", help="no default")
    h = p.format_help()
    assert "a number (default: 4)" in h
    assert "a flag\n" in h and "no default\n" in h
    assert "example:\n  x --n 3" in h
