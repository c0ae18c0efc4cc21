"""host_tools.atomic: every output of a command written whole, or none of them."""
import os
import stat

import pytest

from host_tools import atomic
from host_tools.atomic import Outputs
from host_tools.report import Rejected


def names(d):
    return sorted(os.listdir(d))


def test_all_outputs_written(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    out = Outputs()
    out.claim(a, 0o600)
    out.claim(b)
    out.put(a, b"secret")
    out.put(b, [b"one ", memoryview(b"two"), bytearray(b" three")])
    out.commit()
    assert open(a, "rb").read() == b"secret" and open(b, "rb").read() == b"one two three"
    assert stat.S_IMODE(os.stat(a).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(b).st_mode) == 0o666 & ~atomic._umask()
    assert names(tmp_path) == ["a", "b"]                  # no temporary file left


def test_existing_output_refused_before_any_work(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"old")
    with pytest.raises(Rejected) as e:
        Outputs().claim(str(a))
    assert e.value.code == "output-exists" and "--force" in str(e.value)
    out = Outputs(force=True)
    out.claim(str(a))
    out.put(str(a), b"new")
    out.commit()
    assert a.read_bytes() == b"new" and names(tmp_path) == ["a"]


def test_output_that_is_an_input_refused_even_with_force(tmp_path):
    src = tmp_path / "fw.bin"
    src.write_bytes(b"firmware")
    os.symlink(str(src), str(tmp_path / "link.bin"))
    for path in (str(src), str(tmp_path / "link.bin"),
                 os.path.join(str(tmp_path), ".", "fw.bin")):
        with pytest.raises(Rejected) as e:
            Outputs(force=True, inputs=[str(src)]).claim(path)
        assert e.value.code == "output-is-input"
    assert src.read_bytes() == b"firmware"


def test_two_outputs_on_one_path_refused(tmp_path):
    out = Outputs()
    out.claim(str(tmp_path / "k.pem"), what="private key")
    with pytest.raises(Rejected, match="two outputs") as e:
        out.claim(str(tmp_path / "sub" / ".." / "k.pem"), what="public key")
    assert e.value.code == "outputs-clash"


def test_missing_directory_and_directory_output(tmp_path):
    with pytest.raises(OSError) as e:
        Outputs().claim(str(tmp_path / "no" / "x.bin"))
    assert e.value.filename == str(tmp_path / "no" / "x.bin")
    with pytest.raises(Rejected) as e:
        Outputs(force=True).claim(str(tmp_path))
    assert e.value.code == "output-is-directory"


class Boom(Exception):
    pass


@pytest.mark.parametrize("exc", [Boom("disk gone"), KeyboardInterrupt()])
def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch, exc):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    out = Outputs()
    out.claim(a)
    out.claim(b)
    out.put(a, b"first")
    out.put(b, b"second")
    synced = []

    def fsync(fd):                                   # the second file fails to reach disk
        synced.append(fd)
        if len(synced) == 2:
            raise exc
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(type(exc)):
        out.commit()
    assert len(synced) == 2
    assert names(tmp_path) == []


def test_failure_while_placing_takes_back_what_was_placed(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"old a")
    out = Outputs(force=True)
    out.claim(str(a))
    out.claim(str(b))
    out.put(str(a), b"new a")
    out.put(str(b), b"new b")
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if str(dst) == str(b):
            raise OSError(28, "No space left on device", src)
        return real(src, dst)
    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError) as e:
        out.commit()
    monkeypatch.undo()
    assert e.value.filename == str(b)                # named by the output, not the temp file
    assert str(a) in calls
    assert a.read_bytes() == b"old a"                # the replaced file has its old contents
    assert names(tmp_path) == ["a"]


def test_file_appearing_before_commit_is_not_overwritten(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    out = Outputs()
    out.claim(str(a))
    out.claim(str(b))
    out.put(str(a), b"mine")
    out.put(str(b), b"mine too")
    b.write_bytes(b"someone else's")                 # created between claim and commit
    with pytest.raises(Rejected) as e:
        out.commit()
    assert e.value.code == "output-exists"
    assert b.read_bytes() == b"someone else's" and names(tmp_path) == ["b"]


def test_put_needs_a_claim(tmp_path):
    with pytest.raises(ValueError):
        Outputs().put(str(tmp_path / "x"), b"")
