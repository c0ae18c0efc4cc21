"""Hypothesis over otatool inspect and verify with arbitrary bytes: they report (exit 0 or 1,
one line on stderr), never trace back, and verify's memory is the device profile's whatever
the file says."""
import atexit
import contextlib
import datetime
import io
import json
import os
import struct
import tempfile

import cbor2
from hypothesis import HealthCheck, given, settings, strategies as st

from agent.image import fmt
from agent.image import pack
from host_tools import cli, imagebuild, imageinfo, keys, profile
from host_tools import inspect as ins

KEY = keys.generate()
IMG = imagebuild.build_image(bytes(range(256)) * 30, KEY, version=2, seq=3, manufacturer=0x1234,
                       image_type=1, hw_min=1, hw_max=4)
HL = fmt.parse_header(IMG).length
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

_PUB = tempfile.NamedTemporaryFile(suffix=".pem", delete=False)
from cryptography.hazmat.primitives import serialization as _ser  # noqa: E402
_PUB.write(KEY.public_key().public_bytes(_ser.Encoding.PEM,
                                          _ser.PublicFormat.SubjectPublicKeyInfo))
_PUB.close()
atexit.register(os.remove, _PUB.name)


def run_cli(argv, data):
    """otatool argv FILE (holding data) in this process: (exit code, stdout, stderr)."""
    with tempfile.NamedTemporaryFile(suffix=".ota", delete=False) as f:
        f.write(data)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(list(argv) + [f.name])
    finally:
        os.remove(f.name)
    return rc, out.getvalue(), err.getvalue()


def reported(rc, err):
    assert rc in (0, 1), rc
    lines = err.splitlines()
    if rc == 1:
        assert len(lines) == 1 and lines[0].startswith("otatool: "), err
    assert "Traceback" not in err


cbor_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
    st.binary(max_size=8), st.just(cbor2.undefined),
    st.builds(cbor2.CBORSimpleValue, st.sampled_from([0, 19, 32, 99, 255])),
    st.datetimes(timezones=st.just(datetime.timezone.utc)),
    st.decimals(allow_nan=False, allow_infinity=False, places=3))
cbor_value = st.recursive(
    cbor_leaf,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.integers(-3, 20), c,
                                                                 max_size=4),
                        st.frozensets(st.integers(), max_size=3),
                        st.builds(cbor2.CBORTag, st.integers(19, 300), c)),
    max_leaves=12)


def manifest_element(payload):
    """A file whose first element (our manifest tag) is a COSE_Sign1 around payload."""
    cose = cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: -7}), {}, payload, b"s" * 64]),
                       datetime_as_timestamp=False, timezone=datetime.timezone.utc)
    body = fmt.pack_elem(fmt.TAG_MANIFEST, len(cose)) + cose
    h = fmt.parse_header(IMG)
    h.total_size = HL + len(body)
    return pack.pack_header(h) + body


@SETTINGS
@given(st.binary(max_size=600))
def test_inspect_arbitrary_bytes(data):
    for argv in (["inspect"], ["inspect", "--json"]):
        rc, out, err = run_cli(argv, data)
        reported(rc, err)
        if "--json" in argv:
            json.loads(out)


@SETTINGS
@given(st.integers(0, len(IMG) - 1), st.binary(min_size=1, max_size=8), st.booleans())
def test_inspect_mutated_image(pos, patch, cut):
    data = IMG[:pos] if cut else IMG[:pos] + patch + IMG[pos + len(patch):]
    rc, out, err = run_cli(["inspect", "--json"], data)
    reported(rc, err)
    info = json.loads(out)
    if rc == 0:
        assert info["ok"] is True


@SETTINGS
@given(st.dictionaries(st.one_of(st.integers(-2, 20), st.text(max_size=3)), cbor_value,
                       max_size=8))
def test_inspect_any_manifest_values(m):
    data = manifest_element(cbor2.dumps(m, datetime_as_timestamp=False,
                                        timezone=datetime.timezone.utc))
    info = imageinfo.inspect_bytes(data)
    json.dumps(info, allow_nan=False)
    ins.format_text(info, True, data)
    for argv in (["inspect"], ["inspect", "--json"]):
        rc, out, err = run_cli(argv, data)
        assert rc == 0 and err == "", err


@SETTINGS
@given(cbor_value)
def test_inspect_any_cbor_as_manifest(v):
    data = manifest_element(cbor2.dumps(v, datetime_as_timestamp=False,
                                        timezone=datetime.timezone.utc))
    rc, out, err = run_cli(["inspect"], data)
    reported(rc, err)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400),
                 st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=6)).map(
                     lambda t: IMG[:t[0]] + t[1] + IMG[t[0] + len(t[1]):]),
                 st.integers(0, 0xFFFFFFFF).map(
                     lambda n: IMG[:HL + 40] + struct.pack("<I", n) + IMG[HL + 44:])))
def test_verify_arbitrary_bytes_bounded(data):
    """verify answers for any bytes, and its emulated flash is always the default device's
    layout (the NorFlash it makes), never sized by the file."""
    from hal.sim import nor
    sizes = []
    real = nor.NorFlash.__init__

    def record(self, size, *a, **kw):
        sizes.append(size)
        return real(self, size, *a, **kw)
    nor.NorFlash.__init__ = record
    try:
        for argv in (["verify", "--public", _PUB.name],
                     ["verify", "--json", "--public", _PUB.name]):
            rc, out, err = run_cli(argv, data)
            reported(rc, err)
            res = json.loads(out) if "--json" in argv else None
            if res is not None and rc == 1:
                assert res["ok"] is False and (res["code"] is None or res["code"] > 0)
    finally:
        nor.NorFlash.__init__ = real
    assert all(s == profile.device_layout().size for s in sizes), sizes


def test_verify_accepts_the_unmutated_image():
    rc, out, err = run_cli(["verify", "--json", "--public", _PUB.name], IMG)
    assert rc == 0 and json.loads(out)["seq"] == 3, err
