"""Our image files and our device against zigbee-herdsman (the OTA code Zigbee2MQTT runs),
installed from npm into tests/herdsman (`make herdsman`, a pinned version): its own
parseOtaImage lists our sub-elements, and zigpy's parser lists the same."""
import json
import os
import shutil
import subprocess

import pytest

from agent.image import fmt
from tests.conftest import ROOT

HERE = os.path.join(ROOT, "tests", "herdsman")
DATA = os.path.join(ROOT, "build", "testdata")
OURS = [fmt.TAG_MANIFEST, fmt.TAG_TABLE, fmt.TAG_PAYLOAD]


@pytest.fixture(scope="module")
def node():
    exe = shutil.which("node")
    assert exe, "node (20 or later) is needed for the zigbee-herdsman tests"
    if not os.path.isdir(os.path.join(HERE, "node_modules", "zigbee-herdsman")):
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund",
                        "--silent"], cwd=HERE, check=True)
    return exe


def herdsman_elements(node, *paths):
    r = subprocess.run([node, os.path.join(HERE, "parse.js")] + list(paths),
                       capture_output=True, text=True, check=True)
    return [json.loads(line) for line in r.stdout.splitlines()]


def our_elements(data):
    h = fmt.parse_header(data)
    off, out = h.length, []
    for _ in range(3):
        tag, n = int.from_bytes(data[off:off + 2], "little"), int.from_bytes(
            data[off + 2:off + 6], "little")
        out.append((tag, n))
        off += 6 + n
    return out, off


@pytest.mark.parametrize("name", ["img_raw.ota", "img_deflate.ota", "core_v2.ota",
                                  "core_256k.ota", "board_esp_v2z.ota"])
def test_both_parsers_list_exactly_our_elements(node, name):
    import zigpy.ota.image as zimg
    path = os.path.join(DATA, name)
    data = open(path, "rb").read()
    ours, end = our_elements(data)
    assert [t for t, _ in ours] == OURS and end == len(data)
    got = herdsman_elements(node, path)[0]
    assert "error" not in got, got
    assert [(e["tag"], e["length"]) for e in got["elements"]] == ours
    image, rest = zimg.parse_ota_image(data)
    assert type(image) is zimg.OTAImage and rest == b""
    assert [(int(e.tag_id), len(e.data)) for e in image.subelements] == ours
    # and the bytes each parser hands out as the manifest are ours
    assert bytes(image.subelements[0].data) == data[fmt.parse_header(data).length + 6:][
        :ours[0][1]]


def test_no_vendor_meaning_for_our_tags():
    # neither parser's table of known tags names ours (zigpy's enum; herdsman's is checked
    # through its parser above: a tag it knew would change the element lengths)
    import zigpy.ota.image as zimg
    known = {int(v) for v in zimg.ElementTagId.__members__.values()}
    known.add(int(zimg.TelinkEncryptedSubElement.TELINK_ENCRYPTED_TAG_ID))
    assert not known & {fmt.TAG_MANIFEST, fmt.TAG_TABLE}
    assert fmt.TAG_MANIFEST != 0xF000 and 0xF000 <= fmt.TAG_MANIFEST <= 0xFFFF
    assert 0xF000 < fmt.TAG_TABLE <= 0xFFFF


def test_old_tag_was_misread(node, tmp_path):
    # the reason for the tags: an element tagged 0xF000 is read by herdsman as Telink's AES
    # element, with two more header bytes, and the elements after it come out wrong
    data = bytearray(open(os.path.join(DATA, "img_raw.ota"), "rb").read())
    hl = fmt.parse_header(data).length
    data[hl:hl + 2] = (0xF000).to_bytes(2, "little")
    p = tmp_path / "old.ota"
    p.write_bytes(bytes(data))
    got = herdsman_elements(node, str(p))[0]
    assert "error" in got or [e["tag"] for e in got["elements"]] != [0xF000] + OURS[1:]


class _Port:
    def __init__(self, port):
        self.port = port


@pytest.fixture(scope="module")
def imgs(tmp_path_factory):
    from host_tools.lab import Lab
    d = str(tmp_path_factory.mktemp("herdsman"))
    lab = Lab(d)
    lab.keygen("dev")
    import random
    rnd = random.Random(9)
    for name, size, ver in (("v1", 6000, 1), ("v2", 14000 + 77, 2)):
        with open(lab.path(name + ".bin"), "wb") as f:
            f.write(rnd.randbytes(size))
        lab.sign(name + ".bin", name + ".ota", ver, ver)
    return d


@pytest.mark.parametrize("mode", ["page", "block"])
def test_herdsman_ota_session_updates_the_device(node, imgs, tmp_path, mode):
    """zigbee-herdsman's OtaSession (its block and page serving, its Zcl.Frame codec) updates
    the device running on MicroPython over UDP, started by an Image Notify."""
    from host_tools.lab import Lab, free_udp_port
    lab = Lab(str(tmp_path))
    for f in os.listdir(imgs):
        if f.endswith((".ota", ".pem")):
            os.link(os.path.join(imgs, f), lab.path(f))
    port = free_udp_port()
    srv = subprocess.Popen([node, os.path.join(HERE, "ota_server.js"), lab.path("v2.ota"),
                            str(port), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    dev = lab.device(_Port(port), "dev.flash", "v1.ota")
    try:
        out, err = srv.communicate(timeout=150)
    finally:
        if srv.poll() is None:
            srv.kill()
        lab.power_cut(dev)
    stats = json.loads(out.strip().splitlines()[-1])
    print(stats)
    assert srv.returncode == 0, (stats, err, lab.device_log())
    assert stats["elements"] == OURS
    assert stats["versionBefore"] == 1 and stats["versionAfter"] == 2
    assert stats["endStatus"] == 0
    assert stats["notifyToQueryMs"] < 1000
    log = lab.device_log()
    assert "health check passed: confirmed" in log
    if mode == "page":
        assert stats["pageRequests"] > 0 and stats["pagesRefused"] == 0
        assert stats["blockRequests"] == 0
    else:
        assert stats["pagesRefused"] == 1 and stats["blockRequests"] > 14000 // 50
        assert "no page requests (status 0x81), using block requests" in log
