# agent.errors: every reason code has one line of text, codes are unique, and OtaError's
# text carries both. (That every code is raised somewhere: tests/host/test_host_errors.py.)
from agent import errors
from agent.errors import OtaError, message, BAD_MAGIC, BAD_SIGNATURE, SECTOR_CRC
from tutil import eq


def codes():
    """{name: code} of every reason code agent.errors declares (its table, CODES), each read
    back as the module hands it out."""
    t = errors.CODES.split()
    eq(len(t) % 2, 0, "the table holds (name, code) pairs")
    out = {}
    for i in range(0, len(t), 2):
        assert t[i] not in out, "%s twice" % t[i]
        out[t[i]] = int(t[i + 1])
        eq(getattr(errors, t[i]), out[t[i]], t[i])
    return out


def texts():
    """[(code, text)] of the table message() reads."""
    from agent.errtext import TEXT as t
    eq(len(t) % 2, 0, "the table holds (code, text) pairs")
    return [(t[i], t[i + 1]) for i in range(0, len(t), 2)]


def test_codes_found():
    c = codes()
    eq(c.get("BAD_MAGIC"), 1, "BAD_MAGIC")
    eq(c.get("NOT_APP_IMAGE"), 141, "NOT_APP_IMAGE")
    assert len(c) > 50, sorted(c)
    eq((BAD_MAGIC, BAD_SIGNATURE, SECTOR_CRC), (1, 26, 62), "imported by name")


def test_only_the_table_names_are_found():
    for name in ("MAGIC", "BAD_MAGIC_", "AD_MAGIC", "1", "BAD_MAGIC 1", "bad_magic", "CODES 1",
                 "NOPE", "__path__"):
        assert not hasattr(errors, name), name
    try:
        from agent.errors import NOT_A_CODE  # noqa: F401
    except (ImportError, AttributeError):  # CPython says ImportError, MicroPython passes on
        pass                               # the module's AttributeError
    else:
        raise AssertionError("imported a code that does not exist")


def test_codes_unique_and_fit_an_alert():
    c = codes()
    seen = {}
    for name in sorted(c):
        v = c[name]
        if v in seen:
            raise AssertionError("%s and %s are both %d" % (seen[v], name, v))
        seen[v] = name
        # an alert carries the reason as a u16, a refusal prints it as E<code>
        assert 0 < v < 0x10000, (name, v)


def test_every_code_has_one_line_of_text():
    for name, v in sorted(codes().items()):
        t = message(v)
        assert t != "error", "%s (%d) has no text" % (name, v)
        assert "\n" not in t and t == t.strip() and 0 < len(t) <= 72, (name, t)


def test_every_text_belongs_to_a_code():
    declared = set(codes().values())
    seen = set()
    for code, text in texts():
        assert code in declared, "text for undeclared code %d: %s" % (code, text)
        assert code not in seen, "two texts for code %d" % code
        seen.add(code)
    eq(seen, declared, "codes with a text")


def test_unknown_code_reads_as_error():
    eq(message(0), "error", "code 0")
    eq(message(999), "error", "code 999")


def test_ota_error_str_has_code_and_text():
    e = OtaError(BAD_SIGNATURE)
    eq(e.reason, BAD_SIGNATURE, "reason")
    eq(e.detail, "", "detail")
    eq(str(e), "E26 manifest signature invalid", "without detail")
    e = OtaError(SECTOR_CRC, "sector 5")
    eq(str(e), "E62 sector CRC-32 mismatch: sector 5", "with detail")
    eq(str(OtaError(BAD_MAGIC, "")), "E1 bad magic number", "empty detail")
    assert isinstance(e, Exception)
    try:
        raise OtaError(BAD_MAGIC, "x")
    except Exception as got:
        eq(got.reason, BAD_MAGIC, "caught as an Exception")
