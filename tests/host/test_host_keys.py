"""Keys: keygen and getpub on the command line, encrypted keys, certificates, low-s."""
import datetime
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)
from cryptography.x509.oid import NameOID

from host_tools import cli, keys
from host_tools.report import Rejected
from tests.host.test_host_cli import MODULE, OTATOOL, rejected, run

PW_ENV = {"OTA_TEST_PW": "correct horse battery staple"}


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    return r


def keygen(d, *extra, env=None):
    return run(OTATOOL, "keygen", "--private", str(d / "k.pem"), "--public", str(d / "p.pem"),
               *extra, env=env)


def certificate(key, der=False):
    """A self-signed X.509 certificate of a P-256 key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ota test supplier")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


# -- keygen ------------------------------------------------------------------------------

def test_keygen_labelled_output(tmp_path):
    r = ok(keygen(tmp_path, "--raw-public", str(tmp_path / "p.bin")))
    lines = r.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["key", "private", "public", "raw"]
    point = keys.public_point(keys.load_private(str(tmp_path / "k.pem")))
    assert lines[0] == "key id       " + keys.key_id(point).hex()
    assert "unencrypted, mode 0600" in lines[1] and str(tmp_path / "k.pem") in lines[1]
    assert (tmp_path / "p.bin").read_bytes() == point


def test_keygen_json(tmp_path):
    r = ok(keygen(tmp_path, "--json"))
    obj = json.loads(r.stdout)
    point = keys.public_point(keys.load_public(str(tmp_path / "p.pem")))
    assert obj == {"ok": True, "kid": keys.key_id(point).hex(), "point": point.hex(),
                   "private": str(tmp_path / "k.pem"), "public": str(tmp_path / "p.pem"),
                   "raw_public": None, "encrypted": False}
    r = keygen(tmp_path, "--json")
    line = rejected(r, "exists", "--force")
    fail = json.loads(r.stdout)
    assert fail == {"ok": False, "code": "output-exists", "reason": line[len("otatool: "):]}


@pytest.mark.parametrize("bad", ["public", "raw"])
def test_keygen_bad_second_path_leaves_no_private_key(tmp_path, bad):
    args = ["keygen", "--private", str(tmp_path / "k.pem")]
    missing = str(tmp_path / "no-such-dir" / "x.pem")
    if bad == "public":
        args += ["--public", missing]
    else:
        args += ["--public", str(tmp_path / "p.pem"), "--raw-public", missing]
    rejected(run(OTATOOL, *args), "no-such-dir", "No such file or directory")
    assert os.listdir(tmp_path) == []


def test_keygen_same_path_twice(tmp_path):
    p = str(tmp_path / "k.pem")
    rejected(run(OTATOOL, "keygen", "--private", p, "--public", p), "two outputs")
    assert os.listdir(tmp_path) == []


def test_keygen_write_failure_in_process(tmp_path, monkeypatch):
    """Writing the second file fails after the first was written: neither is left."""
    from host_tools import atomic
    real = atomic.os.fsync
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(fd)
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(OSError):
        keys.write_keypair(str(tmp_path / "k.pem"), str(tmp_path / "p.pem"))
    assert os.listdir(tmp_path) == []


def test_keygen_encrypted_with_env(tmp_path):
    r = ok(keygen(tmp_path, "--password-env", "OTA_TEST_PW", env=PW_ENV))
    assert "(PKCS#8 PEM, encrypted, mode 0600)" in r.stdout
    pem = (tmp_path / "k.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(os.stat(tmp_path / "k.pem").st_mode) == 0o600
    key = serialization.load_pem_private_key(pem, PW_ENV["OTA_TEST_PW"].encode())
    assert keys.public_point(key) == keys.public_point(keys.load_public(str(tmp_path / "p.pem")))
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, None)
    # the same key opens with the password from the environment
    os.environ["OTA_TEST_PW"] = PW_ENV["OTA_TEST_PW"]
    try:
        assert keys.public_point(keys.load_private(str(tmp_path / "k.pem"), "OTA_TEST_PW")) \
            == keys.public_point(key)
    finally:
        del os.environ["OTA_TEST_PW"]


def test_keygen_encrypted_errors(tmp_path):
    rejected(keygen(tmp_path, "--password-env", "OTA_NO_SUCH_VAR"), "OTA_NO_SUCH_VAR",
             "not set")
    rejected(keygen(tmp_path, "--password-env", "OTA_TEST_PW", env={"OTA_TEST_PW": ""}),
             "empty password")
    # no terminal to ask on: refused, with what to do
    r = subprocess.run(OTATOOL + ["keygen", "--private", str(tmp_path / "k.pem"), "--public",
                                  str(tmp_path / "p.pem"), "--encrypt"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    rejected(r, "--password-env")
    assert os.listdir(tmp_path) == []


def test_keygen_prompts_twice(tmp_path, monkeypatch, capsys):
    answers = iter(["s3cret pass", "s3cret pass", "one", "two"])
    monkeypatch.setattr(keys.getpass, "getpass", lambda prompt="": next(answers))
    monkeypatch.setattr(keys, "_on_terminal", lambda: True)
    args = ["keygen", "--private", str(tmp_path / "k.pem"), "--public", str(tmp_path / "p.pem"),
            "--encrypt"]
    assert cli.main(args) == 0
    key = serialization.load_pem_private_key((tmp_path / "k.pem").read_bytes(), b"s3cret pass")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    monkeypatch.undo()
    monkeypatch.setattr(keys.getpass, "getpass", lambda prompt="": next(answers))
    monkeypatch.setattr(keys, "_on_terminal", lambda: True)
    args = ["keygen", "--private", str(tmp_path / "k2.pem"), "--public",
            str(tmp_path / "p2.pem"), "--encrypt"]
    assert cli.main(args) == 1
    monkeypatch.undo()
    assert "the two passwords differ" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["k.pem", "p.pem"]


def test_load_encrypted_key_errors(tmp_path, monkeypatch):
    k = keys.generate()
    path = tmp_path / "k.pem"
    path.write_bytes(keys.private_pem(k, b"right"))
    monkeypatch.setenv("PW", "wrong")
    with pytest.raises(Rejected) as e:
        keys.load_private(str(path), "PW")
    assert e.value.code == "wrong-password"
    monkeypatch.setenv("PW", "right")
    assert keys.public_point(keys.load_private(str(path), "PW")) == keys.public_point(k)
    # a DER encrypted PKCS#8 key opens too
    der = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                          serialization.BestAvailableEncryption(b"right"))
    (tmp_path / "k.der").write_bytes(der)
    assert keys.public_point(keys.load_private(str(tmp_path / "k.der"), "PW")) == \
        keys.public_point(k)
    # a password for a key that has none is not needed, and does no harm
    (tmp_path / "plain.pem").write_bytes(keys.private_pem(k))
    assert keys.public_point(keys.load_private(str(tmp_path / "plain.pem"), "PW")) == \
        keys.public_point(k)


def test_keygen_help_has_defaults_and_example():
    r = ok(run(MODULE, "keygen", "--help"))
    assert "example:" in r.stdout and "otatool keygen --private" in r.stdout
    text = " ".join(r.stdout.split())
    for opt in ("--raw-public", "--encrypt", "--password-env", "--force", "--json"):
        i = text.index(opt + " ", text.index("options:"))
        assert "default" in text[i:i + 260] or "required" in text[i:i + 260], opt


# -- certificates -------------------------------------------------------------------------

@pytest.mark.parametrize("der", [False, True])
def test_public_key_from_certificate(tmp_path, der):
    k = keys.generate()
    p = tmp_path / "cert"
    p.write_bytes(certificate(k, der))
    assert keys.public_point(keys.load_public(str(p))) == keys.public_point(k)


def test_certificate_of_another_curve_refused(tmp_path):
    k = ec.generate_private_key(ec.SECP384R1())
    p = tmp_path / "cert.pem"
    p.write_bytes(certificate(k))
    with pytest.raises(Rejected, match="not an ECDSA P-256 public key"):
        keys.load_public(str(p))
    (tmp_path / "junk.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
    with pytest.raises(Rejected, match="not a public key or certificate"):
        keys.load_public(str(tmp_path / "junk.pem"))


# -- getpub -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("getpub")
    ok(keygen(d, "--password-env", "OTA_TEST_PW", env=PW_ENV))
    os.environ["OTA_TEST_PW"] = PW_ENV["OTA_TEST_PW"]
    try:
        priv = keys.load_private(str(d / "k.pem"), "OTA_TEST_PW")
    finally:
        del os.environ["OTA_TEST_PW"]
    return d, priv


def getpub(d, *args, env=PW_ENV):
    return run(OTATOOL, "getpub", "--key", str(d / "k.pem"), "--password-env", "OTA_TEST_PW",
               *args, env=env)


def test_getpub_all_forms(pair):
    d, priv = pair
    point = keys.public_point(priv)
    kid = keys.key_id(point).hex()
    out = ok(getpub(d)).stdout
    assert out.startswith("key id       %s\nraw point    %s (65 bytes)\n" % (kid, point.hex()))
    assert keys.public_pem(priv).decode() in out
    assert "const unsigned char ota_public_key[65] = {" in out
    assert "OTA_PUBLIC_KEY = b\"" in out
    obj = json.loads(ok(getpub(d, "--json")).stdout)
    assert obj["kid"] == kid and obj["raw"] == point.hex()
    assert bytes.fromhex(obj["der"]) == keys.public_der(priv)
    assert obj["pem"] == keys.public_pem(priv).decode()


def test_getpub_one_form_each(pair, tmp_path):
    d, priv = pair
    point = keys.public_point(priv)
    assert ok(getpub(d, "--format", "kid")).stdout == keys.key_id(point).hex() + "\n"
    assert ok(getpub(d, "--format", "pem")).stdout == keys.public_pem(priv).decode()
    r = subprocess.run(OTATOOL + ["getpub", "--key", str(d / "p.pem"), "--format", "raw"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout == point      # from the public key file, binary
    ok(getpub(d, "--format", "der", "--out", str(tmp_path / "p.der")))
    assert (tmp_path / "p.der").read_bytes() == keys.public_der(priv)
    assert keys.public_point(keys.load_public(str(tmp_path / "p.der"))) == point
    rejected(getpub(d, "--format", "der", "--out", str(tmp_path / "p.der")), "exists")
    ok(getpub(d, "--format", "raw", "--out", str(tmp_path / "p.der"), "--force"))
    assert (tmp_path / "p.der").read_bytes() == point
    rejected(getpub(d, "--format", "c", "--out", str(d / "k.pem"), "--force"),
             "would overwrite an input")
    rejected(getpub(d, "--name", "not an identifier"), "identifier")


def test_getpub_c_array_compiles_to_the_point(pair, tmp_path):
    d, priv = pair
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    ok(getpub(d, "--format", "c", "--name", "trusted_key", "--out", str(tmp_path / "k.h")))
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "k.h"\n'
        'int main(void) { for (unsigned i = 0; i < sizeof trusted_key; i++) '
        'printf("%02x", trusted_key[i]); return 0; }\n')
    subprocess.run([cc, "-Wall", "-Werror", "-o", str(tmp_path / "main"),
                    str(tmp_path / "main.c")], check=True, cwd=tmp_path, timeout=120)
    r = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=30)
    assert r.stdout == keys.public_point(priv).hex()


def test_getpub_micropython_literal_on_micropython(pair, tmp_path):
    d, priv = pair
    ok(getpub(d, "--format", "micropython", "--out", str(tmp_path / "key.py")))
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    src = (tmp_path / "key.py").read_text() + "import sys\nsys.stdout.write(" \
        "''.join('%02x' % b for b in OTA_PUBLIC_KEY))\n"
    (tmp_path / "key.py").write_text(src)
    r = subprocess.run([mp, str(tmp_path / "key.py")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == keys.public_point(priv).hex()


def test_getpub_certificate_and_errors(tmp_path):
    k = keys.generate()
    (tmp_path / "c.der").write_bytes(certificate(k, der=True))
    r = ok(run(OTATOOL, "getpub", "--key", str(tmp_path / "c.der"), "--format", "kid"))
    assert r.stdout.strip() == keys.key_id(keys.public_point(k)).hex()
    (tmp_path / "enc.pem").write_bytes(keys.private_pem(k, b"pw"))
    r = subprocess.run(OTATOOL + ["getpub", "--key", str(tmp_path / "enc.pem"), "--json"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    rejected(r, "needs a password")
    assert json.loads(r.stdout)["code"] == "password-missing"
    rejected(run(OTATOOL, "getpub", "--key", str(tmp_path / "enc.pem"), "--password-env",
                 "PW", env={"PW": "nope"}), "wrong password")
    rejected(run(OTATOOL, "getpub", "--key", str(tmp_path / "nothing.pem")), "No such file")
    (tmp_path / "junk").write_bytes(b"junk")
    rejected(run(OTATOOL, "getpub", "--key", str(tmp_path / "junk")), "not a public key")
    r = run(OTATOOL, "getpub", "--key", str(tmp_path / "junk"), "--format", "png")
    assert r.returncode == 2 and "usage:" in r.stderr


def test_getpub_help_has_defaults_and_example():
    r = ok(run(MODULE, "getpub", "--help"))
    assert "example:" in r.stdout and "otatool getpub --key" in r.stdout
    assert "(default: all)" in r.stdout and "(default: ota_public_key)" in r.stdout


# -- low-s --------------------------------------------------------------------------------

def test_every_signature_is_low_s():
    """Over many signatures: cryptography alone gives high s about half the time; the
    signer's are all low-s and all verify."""
    k = keys.generate()
    pub = k.public_key()
    plain_high = 0
    for i in range(400):
        msg = b"message %d" % i
        _, s = decode_dss_signature(k.sign(msg, ec.ECDSA(hashes.SHA256())))
        plain_high += s > keys.HALF_N
        sig = keys.sign(k, msg)
        assert int.from_bytes(sig[32:], "big") <= keys.HALF_N
        assert keys.verify(pub, sig, msg)
        dsig = keys.sign_digest(k, bytes(32 - len(str(i))) + str(i).encode())
        assert int.from_bytes(dsig[32:], "big") <= keys.HALF_N
    assert 120 < plain_high < 280          # the check above could fail without normalising


def test_parse_signature_forms_and_normalisation():
    k = keys.generate()
    msg = b"abc"
    r, s = decode_dss_signature(k.sign(msg, ec.ECDSA(hashes.SHA256())))
    lo = s if s <= keys.HALF_N else keys.N - s
    hi = keys.N - lo
    want = r.to_bytes(32, "big") + lo.to_bytes(32, "big")
    raw_hi = r.to_bytes(32, "big") + hi.to_bytes(32, "big")
    for form in (want, raw_hi, encode_dss_signature(r, hi), encode_dss_signature(r, lo),
                 raw_hi.hex().encode() + b"\n"):
        assert keys.parse_signature(form) == want
    assert keys.verify(k.public_key(), raw_hi, msg)          # both forms verify ...
    assert keys.verify(k.public_key(), want, msg)            # ... which is why it matters
    for bad in (b"", bytes(64), b"\x30\x03\x02\x01\x01", keys.N.to_bytes(32, "big") * 2,
                b"x" * 63):
        with pytest.raises(Rejected) as e:
            keys.parse_signature(bad, "sig.bin")
        assert e.value.code == "bad-signature" and "sig.bin" in str(e.value)


# -- encrypted key format -------------------------------------------------------------------

def test_pkcs8_der_pieces():
    from host_tools import pkcs8
    assert pkcs8._oid(pkcs8.OID_PBES2) == bytes.fromhex("06092a864886f70d01050d")
    assert pkcs8._oid(pkcs8.OID_AES256_CBC) == bytes.fromhex("060960864801650304012a")
    assert pkcs8._integer(600000) == bytes.fromhex("02030927c0")
    assert pkcs8._integer(128) == bytes.fromhex("02020080")        # no sign bit set
    assert pkcs8._octets(bytes(200))[:3] == bytes.fromhex("0481c8")   # long form length
    assert pkcs8._octets(bytes(300))[:4] == bytes.fromhex("0482012c")


def test_encrypted_key_is_strong_and_standard(tmp_path):
    from host_tools import pkcs8
    k = keys.generate()
    pem = keys.private_pem(k, b"pw")
    der = serialization.load_pem_private_key(pem, b"pw").private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    assert der == k.private_bytes(serialization.Encoding.DER,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(pem, b"pW")
    (tmp_path / "k.pem").write_bytes(pem)
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command")
    parsed = subprocess.run(["openssl", "asn1parse", "-in", str(tmp_path / "k.pem")],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    assert ":PBES2" in parsed and ":PBKDF2" in parsed and ":hmacWithSHA256" in parsed
    assert ":aes-256-cbc" in parsed
    ints = [int(ln.rsplit(":", 1)[1], 16) for ln in parsed.splitlines() if "prim: INTEGER" in ln]
    assert ints == [pkcs8.ITERATIONS]
    r = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "k.pem"), "-passin",
                        "env:PW", "-pubout", "-outform", "DER"], capture_output=True,
                       env=dict(os.environ, PW="pw"), timeout=60)
    assert r.returncode == 0 and r.stdout == keys.public_der(k)
    r = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "k.pem"), "-passin",
                        "env:PW", "-noout"], capture_output=True,
                       env=dict(os.environ, PW="wrong"), timeout=60)
    assert r.returncode != 0
