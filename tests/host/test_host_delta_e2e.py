"""End to end with delta images: `otatool serve` holding the full image of v2 and a delta of
v2 from v1, and the device agent on real MicroPython (`otatool device`) over UDP on
loopback. A device that runs v1 takes the delta: a small part of the full image's bytes on
air, and it ends confirmed on v2 with v2's payload in its slot. A device that runs another
build of version 1 refuses the delta before its payload (reason 66, the delta's old image
is not the running one), the server falls back to the full image, and the device ends on v2
all the same."""
import hashlib
import os
import random

import pytest

from host_tools import imagebuild, keys
from host_tools.lab import Lab

SIGN = dict(manufacturer=0x1234, image_type=0x0001, hw_min=1, hw_max=3)  # as Lab.sign


def firmware_pair(seed, size):
    """v1, and v2 as a minor release of it: a few patched regions, a stretch moved, a tail
    added."""
    rnd = random.Random(seed)
    v1 = bytearray(rnd.randbytes(size))
    for i in range(0, size, 2500):
        v1[i:i + 700] = bytes(min(700, size - i))
    v2 = bytearray(v1)
    for at in (3000, 17000, 29000):
        v2[at:at + 40] = rnd.randbytes(40)
    v2[20000:20000] = rnd.randbytes(300)    # an insertion shifts everything after it
    v2 += rnd.randbytes(1500)
    return bytes(v1), bytes(v2)


@pytest.fixture(scope="module")
def imgs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("delta_e2e"))
    lab = Lab(d)
    lab.keygen("dev")
    key = keys.load_private(lab.path("dev_priv.pem"))
    v1, v2 = firmware_pair(15, 40 * 1024 + 77)
    v1x = bytearray(v1)
    v1x[100] ^= 0x55        # another build of version 1: not the delta's old image
    v3 = bytearray(v2)      # a larger change: a delta long enough to cut in the middle
    v3[8000:24000] = random.Random(16).randbytes(16000)
    v3 = bytes(v3)
    out = {"fw": {"v1": v1, "v2": v2, "v3": v3}}
    for name, fw, ver, extra in (("v1", v1, 1, {}), ("v1x", bytes(v1x), 1, {}),
                                 ("v2", v2, 2, {}),
                                 ("v2-from-v1", v2, 2, dict(base=v1, base_version=1)),
                                 ("v3-from-v1", v3, 3, dict(base=v1, base_version=1))):
        built = imagebuild.build(fw, key, ver, ver, sector_size=4096,
                                 compress=name == "v2", **dict(SIGN, **extra))
        with open(lab.path(name + ".ota"), "wb") as f:
            f.write(built.tobytes())
        out[name] = lab.path(name + ".ota")
    out["pub"] = lab.path("dev_pub.pem")
    return out


@pytest.fixture(params=[False, True], ids=["micropython", "cpython"])
def lab(imgs, tmp_path, request):
    """A device of its own (its flash file in tmp_path); the images and keys stay where
    the module made them."""
    return Lab(str(tmp_path), python=request.param)


def confirmed(srv):
    return any(c == 0x8F43 for c, _ in srv.alerts())


def update(lab, imgs, factory, once):
    """Serve full and delta v2 to a device made with factory; returns the server."""
    srv = lab.serve([imgs["v2"], imgs["v2-from-v1"]], "--block-size", 48,
                    "--exit-when", "confirmed", "--timeout", 150)
    dev = lab.device(srv, "dev.flash", imgs[factory], *(("--once",) if once else ()),
                     key=imgs["pub"])
    ok = srv.wait(lambda s: confirmed(s) or dev.poll() is not None, 150) and confirmed(srv)
    srv.wait(lambda s: s.proc.poll() is not None, 15)
    if once:
        dev.wait(30)
        assert dev.returncode == 0, lab.device_log()
    else:
        lab.power_cut(dev)
    assert ok, lab.device_log()
    return srv


def served(srv):
    """(image bytes served in blocks, number of blocks)."""
    blocks = srv.events("block")
    return sum(b["size"] for b in blocks), len(blocks)


def assert_runs(lab, imgs, version=2):
    """The device's flash: that version confirmed in the slot it boots, with its payload."""
    from host_tools.state import read_state
    from boards.unix import layout as L
    st = read_state(lab.path("dev.flash"))
    slot = st["boot"]["confirmed_slot"]
    assert st["boot"]["pending_slot"] is None, st["boot"]
    s = st["slots"][slot]
    fw = imgs["fw"]["v%d" % version]
    assert (s["state"], s["version"], s["size"], s["crc_ok"]) == \
        ("image", version, len(fw), True)
    assert s["payload_sha256"] == hashlib.sha256(fw).hexdigest()
    with open(lab.path("dev.flash"), "rb") as f:
        f.seek(L.layout().slot_off[slot])
        assert f.read(len(fw)) == fw
    assert st["journal"]["running_version"] == version


def test_delta_update_over_the_han(lab, imgs):
    srv = update(lab, imgs, "v1", once=True)
    q = [e for e in srv.events("query") if e.get("offered") == 2]
    assert q and all(e["image"] == "delta from 1" for e in q), q
    assert not srv.events("delta_refused")
    assert [c for c, _ in srv.alerts()] == [0x8F72, 0x8F43]
    full, delta = (os.path.getsize(imgs[n]) for n in ("v2", "v2-from-v1"))
    got, blocks = served(srv)
    print("delta %d B in %d blocks of 48 B; the full image (per-sector deflate) %d B"
          % (got, blocks, full))
    assert delta < full // 4, (delta, full)
    assert delta <= got < delta * 1.2, (got, delta)    # each byte once (a retry or two)
    assert max(b["offset"] + b["size"] for b in srv.events("block")) == delta
    log = lab.device_log()
    assert "health check passed: confirmed" in log
    assert_runs(lab, imgs)


def test_delta_against_another_image_falls_back_to_full(lab, imgs):
    srv = update(lab, imgs, "v1x", once=False)
    assert (0x8F1C, 66) in srv.alerts(), srv.alerts()
    refused = srv.events("delta_refused")
    assert len(refused) == 1 and refused[0]["image"] == "delta from 1", refused
    assert refused[0]["next"] == "full"
    ends = srv.events("upgrade_end")
    assert ends[0]["status"] == "invalid_image" and ends[0]["version"] == 2, ends
    queries = [e for e in srv.events("query") if e.get("offered") == 2]
    assert queries[0]["image"] == "delta from 1"
    after = queries[[e["image"] for e in queries].index("full"):]
    assert after and all(e["image"] == "full" and e["fallback"] for e in after), queries
    # refused before its payload: of the delta only its head was fetched
    i = [n for n, e in enumerate(srv.events()) if e["event"] == "delta_refused"][0]
    before = [e for e in srv.events()[:i] if e["event"] == "block"]
    delta = open(imgs["v2-from-v1"], "rb").read()
    from agent.image import fmt
    hl = fmt.parse_header(delta).length
    cose_len = int.from_bytes(delta[hl + 2:hl + 6], "little")
    assert max(b["offset"] + b["size"] for b in before) <= hl + 6 + cose_len + 48
    # then the whole full image
    rest = [e for e in srv.events()[i:] if e["event"] == "block"]
    assert max(b["offset"] + b["size"] for b in rest) == os.path.getsize(imgs["v2"])
    assert [c for c, _ in srv.alerts()][-2:] == [0x8F72, 0x8F43]
    assert_runs(lab, imgs)


def test_power_cut_in_a_delta_download_resumes_with_the_delta(lab, imgs):
    size = os.path.getsize(imgs["v3-from-v1"])
    srv = lab.serve([imgs["v3-from-v1"]], "--rate-bps", 100000, "--block-size", 48,
                    "--exit-when", "confirmed", "--timeout", 120)
    dev = lab.device(srv, "dev.flash", imgs["v1"], "--once", key=imgs["pub"])
    assert srv.wait(lambda s: any(b["offset"] > size * 0.6 for b in s.events("block")), 60), \
        lab.device_log()
    lab.power_cut(dev)
    n = len(srv.events("block"))
    dev = lab.device(srv, "dev.flash", None, "--once", key=imgs["pub"])
    assert srv.wait(confirmed, 120), lab.device_log()
    dev.wait(30)
    assert dev.returncode == 0, lab.device_log()
    # the running v1 still matches: the same delta again, resumed past its checkpoint
    assert [q["image"] for q in srv.events("query") if q.get("offered")] == ["delta from 1"] * 2
    after = [b["offset"] for b in srv.events("block")[n:]]
    payload = [o for o in after if o > 2048]
    assert payload and payload[0] > size * 0.4, payload[:3]
    assert_runs(lab, imgs, 3)


def test_delta_over_a_lossy_link(lab, imgs):
    # frames lost, sent twice and reordered: each of the delta's sectors still arrives whole
    srv = lab.serve([imgs["v3-from-v1"]], "--drop", 0.2, "--dup", 0.1, "--reorder", 0.1,
                    "--seed", 11, "--linger", 20, "--exit-when", "confirmed", "--timeout", 120)
    dev = lab.device(srv, "dev.flash", imgs["v1"], "--once", key=imgs["pub"])
    assert srv.wait(confirmed, 120), lab.device_log()
    srv.wait(lambda s: s.proc.poll() is not None, 30)
    dev.wait(30)
    assert dev.returncode == 0, lab.device_log()
    assert not srv.events("delta_refused")
    assert_runs(lab, imgs, 3)


def test_power_cut_in_the_full_image_after_a_fallback(lab, imgs):
    # after the reset the device speaks from another address, a session the server does
    # not know: it is offered the delta again and refuses it again (a few hundred bytes),
    # then resumes the full image past its checkpoint instead of from zero
    size = os.path.getsize(imgs["v2"])
    srv = lab.serve([imgs["v2"], imgs["v2-from-v1"]], "--rate-bps", 60000, "--block-size", 48,
                    "--exit-when", "confirmed", "--timeout", 120)
    dev = lab.device(srv, "dev.flash", imgs["v1x"], key=imgs["pub"])
    assert srv.wait(lambda s: s.events("delta_refused") and
                    any(b["offset"] > size * 0.6 for b in s.events("block")), 60), \
        lab.device_log()
    lab.power_cut(dev)
    n = len(srv.events())
    dev = lab.device(srv, "dev.flash", None, key=imgs["pub"])
    assert srv.wait(confirmed, 120), lab.device_log()
    lab.power_cut(dev)
    srv.stop()
    ev = srv.events()[n:]
    assert len([e for e in ev if e["event"] == "delta_refused"]) == 1, ev
    i = [k for k, e in enumerate(ev) if e["event"] == "delta_refused"][0]
    payload = [e["offset"] for e in ev[i:] if e["event"] == "block" and e["offset"] > 2048]
    assert payload and payload[0] > size * 0.4, payload[:3]
    assert_runs(lab, imgs)
