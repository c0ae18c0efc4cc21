# Helpers shared by the device-side tests; runs under CPython and MicroPython.
from agent.errors import OtaError

try:
    import os.path as _p
    ROOT = _p.dirname(_p.dirname(_p.dirname(_p.abspath(__file__))))
except ImportError:  # MicroPython: mprun runs from the repository root
    ROOT = "."

DATA = ROOT + "/build/testdata"
FIXTURES = ROOT + "/tests/fixtures"


def data_path(name):
    return DATA + "/" + name


def read_data(name):
    with open(data_path(name), "rb") as f:
        return f.read()


def read_fixture(name):
    with open(FIXTURES + "/" + name, "rb") as f:
        return f.read()


def raises(reason, fn, *args):
    """Call fn(*args); it must raise OtaError with this reason. Returns the error."""
    try:
        fn(*args)
    except OtaError as e:
        if e.reason != reason:
            raise AssertionError("expected reason %d, got %s" % (reason, e))
        return e
    raise AssertionError("expected OtaError %d, nothing raised" % reason)


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))
