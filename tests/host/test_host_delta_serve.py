"""The update server's choice between full and delta images (host_tools.server.Hub), driven
with ZCL frames in memory: a device that runs a delta's old version is offered the delta,
any other the full image of the same release; blocks and pages come from the file offered
to that device; a device that refuses the delta (Upgrade End INVALID_IMAGE, or an alert
with reason BASE_MISMATCH) is offered the full image at its next query, and the log says
which file was offered and why."""
import io
import json
import random
import signal
import socket
import subprocess

import pytest

from agent.alerts import ALERT_VERIFY_FAIL
from agent.errors import BASE_MISMATCH, BAD_SIGNATURE, message
from agent.image import fmt
from agent.zcl import frames as zcl
from host_tools import imagebuild, keys
from host_tools.lab import free_udp_port
from host_tools.server import Hub, Image
from tests.host.clirun import OTATOOL, env

MAN, TYPE = 0x1234, 0x0042
PARAMS = dict(seq=1, manufacturer=MAN, image_type=TYPE, hw_min=1, hw_max=3)
A, B = ("127.0.0.1", 5001), ("127.0.0.1", 5002)


def firmware(size, seed):
    rnd = random.Random(seed)
    return bytes(rnd.randbytes(size))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("delta_serve")
    key = keys.generate()
    v1 = firmware(20000, 1)
    v2 = bytearray(v1)
    v2[5000:5100] = firmware(100, 2)      # a small change: the delta is far smaller
    v2 += firmware(3000, 3)
    out = {}
    for name, fw, ver, extra in (
            ("v1", v1, 1, {}), ("v2", v2, 2, {}), ("v2d1", v2, 2, dict(base=v1, base_version=1)),
            ("v3", v2[:10000], 3, {}), ("v3d2", v2[:10000], 3, dict(base=v2, base_version=2))):
        p = d / (name + ".ota")
        p.write_bytes(imagebuild.build(fw, key, version=ver, **dict(PARAMS, **extra)).tobytes())
        out[name] = str(p)
    return out


class Link:
    def __init__(self):
        self.sent = []

    def send(self, data, addr):
        self.sent.append((bytes(data), addr))


class Rig:
    """A Hub with a link that keeps what it sends and a log kept in memory."""

    def __init__(self, files, *names):
        self.images = {n: Image(files[n]) for n in names}
        self.link = Link()
        self.logf = io.StringIO()
        self.hub = Hub(list(self.images.values()), self.link, log=self.logf)
        self.buf = bytearray(zcl.FRAME_MAX)

    def records(self, event=None):
        recs = [json.loads(x) for x in self.logf.getvalue().splitlines()]
        return [r for r in recs if event is None or r["event"] == event]

    def ask(self, addr, encoder, *args):
        n = encoder(self.buf, 7, *args)
        del self.link.sent[:]
        self.hub.handle(bytes(self.buf[:n]), addr)
        out = []
        for data, to in self.link.sent:
            assert to == addr
            f = zcl.Frame()
            zcl.decode(data, len(data), f)
            out.append((f, data))
        return out

    def query(self, addr, running):
        (f, _), = self.ask(addr, zcl.encode_query_next, MAN, TYPE, running, 2)
        return f

    def block(self, addr, version, offset, size=48):
        (f, data), = self.ask(addr, zcl.encode_block_request, MAN, TYPE, version, offset, size)
        assert f.status == zcl.S_SUCCESS
        return data[f.data_off:f.data_off + f.data_len]

    def end(self, addr, status, version):
        return self.ask(addr, zcl.encode_upgrade_end, status, MAN, TYPE, version)

    def alert(self, addr, reason, aid=1):
        return self.ask(addr, zcl.encode_alert, MAN, aid, ALERT_VERIFY_FAIL, reason)


def test_images_know_whether_they_are_deltas(files):
    full, delta = Image(files["v2"]), Image(files["v2d1"])
    assert full.base is None and full.kind == "full"
    assert delta.base == 1 and delta.kind == "delta from 1"
    assert delta.version == full.version == 2
    assert delta.size < full.size // 3, (delta.size, full.size)


def test_the_delta_goes_to_a_device_on_its_old_version(files):
    r = Rig(files, "v2", "v2d1")
    f = r.query(A, 1)
    assert (f.status, f.file_version, f.image_size) == \
        (zcl.S_SUCCESS, 2, r.images["v2d1"].size)
    q = r.records("query")[-1]
    assert q["image"] == "delta from 1" and q["offered"] == 2 and "fallback" not in q
    # the same query with the files listed the other way round: the same choice
    r = Rig(files, "v2d1", "v2")
    assert r.query(A, 1).image_size == r.images["v2d1"].size


def test_another_version_gets_the_full_image(files):
    r = Rig(files, "v2d1", "v2")
    f = r.query(A, 7)
    assert (f.file_version, f.image_size) == (2, r.images["v2"].size)
    q = r.records("query")[-1]
    assert q["image"] == "full" and q["fallback"] == "no delta from 7"
    # a delta from another version and no full image: nothing for it (a delta is never
    # offered to a device that does not run its old image)
    r = Rig(files, "v2d1")
    assert r.query(A, 7).status == zcl.S_NO_IMAGE_AVAILABLE
    assert r.query(B, 1).file_version == 2
    # refused, with no full image to fall back to: nothing more for that device
    r.end(B, zcl.S_INVALID_IMAGE, 2)
    assert r.records("delta_refused")[0]["next"] == "none"
    assert r.query(B, 1).status == zcl.S_NO_IMAGE_AVAILABLE


def test_newest_release_first_then_its_delta(files):
    r = Rig(files, "v2", "v2d1", "v3", "v3d2")
    f = r.query(A, 2)
    assert (f.file_version, f.image_size) == (3, r.images["v3d2"].size)
    f = r.query(B, 1)   # no delta from 1 to v3: the full v3, not the older release's delta
    assert (f.file_version, f.image_size) == (3, r.images["v3"].size)
    # as ever, the newest release that differs from the running one (the device refuses
    # an older one itself), in full: the delta of that release is from another version
    f = r.query(("127.0.0.1", 5003), 3)
    assert (f.file_version, f.image_size) == (2, r.images["v2"].size)


def test_blocks_and_pages_come_from_the_file_offered_to_that_device(files):
    r = Rig(files, "v2", "v2d1")
    delta, full = r.images["v2d1"].data, r.images["v2"].data
    r.query(A, 1)
    r.query(B, 5)
    hl = fmt.parse_header(delta).length
    for off in (0, hl, hl + 48, len(delta) - 40):
        assert r.block(A, 2, off) == delta[off:off + 48]
        assert r.block(B, 2, off) == full[off:off + 48]
    # a page request: a run of blocks up to the delta's end, not the full image's
    off = len(delta) - 100
    got = r.ask(A, zcl.encode_page_request, MAN, TYPE, 2, off, 48, 512, 0)
    data = b"".join(d[f.data_off:f.data_off + f.data_len] for f, d in got)
    assert data == delta[off:]
    assert r.records("page")[-1]["size"] == 100


@pytest.mark.parametrize("how", ["upgrade_end", "alert", "both"])
def test_a_refused_delta_falls_back_to_the_full_image(files, how):
    r = Rig(files, "v2", "v2d1")
    assert r.query(A, 1).image_size == r.images["v2d1"].size
    r.block(A, 2, 0)
    if how in ("alert", "both"):
        acks = r.alert(A, BASE_MISMATCH)
        assert [f.command for f, _ in acks] == [zcl.CMD_ALERT_ACK]
    if how in ("upgrade_end", "both"):
        assert r.end(A, zcl.S_INVALID_IMAGE, 2) == []   # no Upgrade End Response
    refused = r.records("delta_refused")
    assert len(refused) == 1, refused        # once, however many ways the device says so
    why = refused[0]["why"]
    assert refused[0]["image"] == "delta from 1" and refused[0]["next"] == "full"
    if how == "upgrade_end":
        assert why == "upgrade_end invalid_image"
    else:
        assert why == "alert 0x8F1C reason 66: " + message(BASE_MISMATCH)
    # the next query from that device gets the full image, and says why
    f = r.query(A, 1)
    assert (f.file_version, f.image_size) == (2, r.images["v2"].size)
    q = r.records("query")[-1]
    assert q["image"] == "full" and q["fallback"] == why
    assert r.block(A, 2, 100) == r.images["v2"].data[100:148]
    # and every query after it; another device still gets the delta
    assert r.query(A, 1).image_size == r.images["v2"].size
    assert r.query(B, 1).image_size == r.images["v2d1"].size
    # the full image completes as usual: the Upgrade End Response names release 2
    (rsp, _), = r.end(A, zcl.S_SUCCESS, 2)
    assert (rsp.command, rsp.file_version) == (zcl.CMD_UPGRADE_END_RSP, 2)


def test_other_refusals_do_not_drop_the_delta(files):
    # an alert with another reason is not a base mismatch; a refused full image changes
    # nothing (the existing behaviour: it is offered again)
    r = Rig(files, "v2", "v2d1")
    r.query(A, 1)
    r.alert(A, BAD_SIGNATURE)
    assert r.query(A, 1).image_size == r.images["v2d1"].size
    r.query(B, 4)
    r.end(B, zcl.S_INVALID_IMAGE, 2)
    assert r.query(B, 4).image_size == r.images["v2"].size
    assert r.records("delta_refused") == []


def test_full_images_alone_are_served_as_before(files):
    r = Rig(files, "v1", "v2", "v3")
    assert r.query(A, 1).file_version == 3
    assert r.query(B, 3).file_version == 2     # the newest that differs from the running one
    for q in r.records("query"):
        assert set(q) == {"t", "device", "event", "running", "offered", "size"}, q
    assert r.block(A, 3, 0) == r.images["v3"].data[:48]


def test_otatool_serve_says_which_file_and_why(files):
    # the command's log lines on stderr, over real UDP: the delta offered, refused, the
    # full image offered in its place with the reason
    port = free_udp_port()
    p = subprocess.Popen(OTATOOL + ["serve", "--image", files["v2"], "--image", files["v2d1"],
                                    "--udp", "127.0.0.1:%d" % port],
                         env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    buf = bytearray(zcl.FRAME_MAX)
    sizes = []
    try:
        def query():
            n = zcl.encode_query_next(buf, 7, MAN, TYPE, 1, 2)
            for _ in range(40):       # until the server is up and answers
                s.sendto(bytes(buf[:n]), ("127.0.0.1", port))
                try:
                    data = s.recv(512)
                except socket.timeout:
                    continue
                return zcl.decode(data, len(data)).image_size
        sizes.append(query())
        n = zcl.encode_upgrade_end(buf, 8, zcl.S_INVALID_IMAGE, MAN, TYPE, 2)
        s.sendto(bytes(buf[:n]), ("127.0.0.1", port))
        sizes.append(query())
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
    finally:
        s.close()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    delta, full = Image(files["v2d1"]).size, Image(files["v2"]).size
    assert sizes == [delta, full]
    assert "query running=1 offered=2 size=%d image=delta from 1\n" % delta in err, err
    assert "delta_refused version=2 image=delta from 1 why=upgrade_end invalid_image " \
        "next=full\n" in err, err
    assert "query running=1 offered=2 size=%d image=full fallback=upgrade_end " \
        "invalid_image\n" % full in err, err
