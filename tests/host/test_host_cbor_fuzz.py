"""Fuzzing agent.crypto.cbor.decode and agent.crypto.cose.parse_sign1: only OtaError ever escapes.

Also: round trips of cbor2 encodings, a differential check against cbor2 on mutated
inputs the decoder accepts, memory bounds for hostile lengths, and Sig_structure bytes
against cbor2 for random sizes.
"""
import hashlib
import tracemalloc

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agent.crypto import cbor, cose
from agent.image import pack
from agent.errors import BAD_CBOR, BAD_COSE, UNSUPPORTED_ALG, OtaError

FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ints = st.integers(-2 ** 64, 2 ** 64 - 1)
keys = st.one_of(ints, st.text(max_size=8), st.binary(max_size=8))
scalars = st.one_of(ints, st.binary(max_size=40), st.text(max_size=20), st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(keys, inner, max_size=5),
        st.builds(cbor2.CBORTag, st.integers(0, 2 ** 64 - 1), inner)),
    max_leaves=25)

# (kind, position, byte); position is taken modulo the length
mutation = st.tuples(st.sampled_from(("flip", "set", "insert", "delete", "truncate")),
                     st.integers(0, 10 ** 6), st.integers(0, 255))


def mutate(buf, ops):
    b = bytearray(buf)
    for kind, pos, byte in ops:
        if not b:
            b.append(byte)
            continue
        i = pos % len(b)
        if kind == "flip":
            b[i] ^= 1 << (byte & 7)
        elif kind == "set":
            b[i] = byte
        elif kind == "insert":
            b.insert(i, byte)
        elif kind == "delete":
            del b[i]
        else:
            del b[i:]
    return bytes(b)


def norm(v):
    """A comparable form: tags of either library as ("tag", n, value); bools kept apart from ints."""
    if isinstance(v, (cbor.Tag, cbor2.CBORTag)):
        return ("tag", v.tag, norm(v.value))
    if isinstance(v, list):
        return ("list", [norm(x) for x in v])
    if isinstance(v, dict):
        return ("map", {(type(k).__name__, k): norm(x) for k, x in v.items()})
    return (type(v).__name__, v)


def has_tag(v):
    if isinstance(v, cbor.Tag):
        return True
    if isinstance(v, list):
        return any(has_tag(x) for x in v)
    if isinstance(v, dict):
        return any(has_tag(x) for x in v.values())
    return False


def try_decode(buf, depth=8):
    try:
        return True, cbor.decode(buf, depth)
    except OtaError as e:
        assert e.reason == BAD_CBOR
        assert e.detail and "\n" not in e.detail
        return False, None


@FUZZ
@given(st.binary(max_size=300), st.integers(0, 12))
def test_decode_random_bytes(buf, depth):
    try_decode(buf, depth)


@FUZZ
@given(values)
def test_roundtrip_cbor2(v):
    ok, got = try_decode(cbor2.dumps(v), 100)
    assert ok
    assert norm(got) == norm(v)


@FUZZ
@given(values, st.lists(mutation, min_size=1, max_size=4))
def test_mutated_encodings(v, ops):
    buf = mutate(cbor2.dumps(v), ops)
    ok, got = try_decode(buf, 100)
    if ok and not has_tag(got):
        # whatever the decoder accepts, cbor2 reads the same way
        assert norm(cbor2.loads(buf)) == norm(got)


def test_deep_nesting_is_not_recursive():
    deep = b"\x81" * 5000 + b"\x00"
    v = cbor.decode(deep, 10000)
    for _ in range(5000):
        v = v[0]
    assert v == 0
    with pytest.raises(OtaError) as e:
        cbor.decode(deep)
    assert e.value.reason == BAD_CBOR


@pytest.mark.parametrize("buf", [
    b"\x9b" + b"\xff" * 8,
    b"\xbb" + b"\xff" * 8,
    b"\x5b" + b"\xff" * 8 + b"\x00" * 100,
    b"\x7a\x7f\xff\xff\xff" + b"a" * 100,
    b"\x9a\x00\x10\x00\x00" + b"\x00" * 1000,
    b"\x81" * 8 + b"\x9a\x00\x10\x00\x00" + b"\x00" * 1000,
    b"\x99\x03\xe8" + b"\x00" * 1000,
    b"\x59\x03\xe8" + b"\x00" * 1000,
    b"\xb9\x01\xf4" + b"".join(cbor.encode_head(0, i) + b"\x00" for i in range(500)),
])
def test_memory_bounded_by_input(buf):
    tracemalloc.start()
    try:
        try:
            cbor.decode(buf)
        except OtaError:
            pass
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * len(buf) + 4096, (peak, len(buf))


def _msg(prot, unprot, payload, sig, tag=18):
    return cbor2.dumps(cbor2.CBORTag(tag, [prot, unprot, payload, sig]))


def _sign1():
    return _msg(cbor2.dumps({1: -7, 4: b"kid-0001"}), {}, b"\xa1\x01\x01", b"\x5a" * 64)


def try_parse(buf):
    try:
        m = cose.parse_sign1(buf)
    except OtaError as e:
        assert e.reason in (BAD_CBOR, BAD_COSE, UNSUPPORTED_ALG)
        assert "\n" not in str(e)
        return None
    assert m.alg == -7
    assert type(m.protected) is bytes and type(m.payload) is bytes
    assert type(m.signature) is bytes and len(m.signature) == 64
    assert m.kid is None or type(m.kid) is bytes
    return m


def test_sign1_base_parses():
    m = try_parse(_sign1())
    assert m.kid == b"kid-0001"


@FUZZ
@given(st.binary(max_size=300))
def test_sign1_random_bytes(buf):
    try_parse(buf)


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4))
def test_sign1_mutations(ops):
    try_parse(mutate(_sign1(), ops))


header_maps = st.dictionaries(st.one_of(st.integers(-8, 8), st.text(max_size=3), st.binary(max_size=2)),
                              values, max_size=4)
good_labels = st.one_of(st.integers(3, 9), st.integers(-9, -1), st.text(max_size=3))


def mostly(good, bad):
    return st.one_of(good, good, good, bad)


@settings(FUZZ, max_examples=300)
@given(mostly(st.dictionaries(good_labels, values, max_size=3).map(lambda m: cbor2.dumps({**m, 1: -7})),
              st.one_of(st.binary(max_size=20), header_maps.map(cbor2.dumps), values)),
       mostly(st.dictionaries(st.one_of(st.integers(10, 20), st.text(min_size=4, max_size=5)),
                              values, max_size=3),
              st.one_of(header_maps, values)),
       mostly(st.binary(max_size=30), values),
       mostly(st.binary(min_size=64, max_size=64), st.one_of(st.binary(max_size=70), values)),
       st.sampled_from((18, 18, 18, 98, 17)))
def test_sign1_structured(prot, unprot, payload, sig, tag):
    m = try_parse(_msg(prot, unprot, payload, sig, tag))
    if m is not None:
        assert m.protected == prot and m.payload == payload and m.signature == sig


@FUZZ
@given(st.binary(max_size=300), st.binary(max_size=300), st.binary(max_size=70000))
def test_sig_structure_against_cbor2(prot, aad, payload):
    want = cbor2.dumps(["Signature1", prot, aad, payload])
    assert pack.sig_structure(prot, aad, payload) == want
    assert cose.sig_structure_digest(prot, aad, payload) == hashlib.sha256(want).digest()
