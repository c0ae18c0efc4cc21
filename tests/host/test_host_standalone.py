"""The repository stands alone: nothing under tests/ or the tools reads data from beside it."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# a path that climbs out of the repository into a sibling folder
OUTSIDE = re.compile(r"""["'/]\.\.["'/,]\s*["']?shared|\.\./shared""")


def _sources():
    for top in ("agent", "hal", "boards", "host_tools", "tests", "bench"):
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith((".py", ".json", ".toml", ".txt")):
                    yield os.path.join(dirpath, name)


def test_no_source_reads_outside_the_repository():
    offenders = []
    for path in _sources():
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if OUTSIDE.search(line) and path != os.path.abspath(__file__):
                    offenders.append("%s:%d" % (os.path.relpath(path, ROOT), n))
    assert offenders == []


def test_fixtures_are_in_the_repository_with_their_readme():
    fx = os.path.join(ROOT, "tests", "fixtures")
    for sub in ("gbcs", "wycheproof"):
        assert os.path.isfile(os.path.join(fx, sub, "README.md"))
    assert os.path.getsize(os.path.join(fx, "gbcs", "rtds_esme_11x_image.bin")) == 361
    assert os.path.getsize(os.path.join(fx, "gbcs", "rtds_ppmid_11x_image.bin")) == 295
    with open(os.path.join(fx, "README.md")) as f:
        text = f.read()
    assert "Apache License 2.0" in text and "GPL-3.0" in text
