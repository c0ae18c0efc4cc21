# The power-cut campaign (a subset for time; `otatool powercut` runs the whole one).
from hal.sim import powercut
from tutil import read_data, eq


def _images():
    """The update, the factory image and the keys, read when a test runs (not at import,
    so a heap too small for them skips that test alone)."""
    return read_data("core_v2.ota"), read_data("core_v1.ota"), [read_data("core_pub.bin")]


def _clean(res, what):
    for k in ("bricked", "lost_confirmed_image", "resumed_from_zero", "resumed_behind",
              "extra_erases"):
        eq(res[k], 0, "%s %s" % (what, k))
    assert res["max_extra_erases"] <= 1


def test_clean_run_wear_and_phases():
    c = powercut.Campaign(*_images())
    r = c.clean()
    for ph in powercut.PHASES:
        assert r[ph][1] > r[ph][0], ph
    cs = c.clean_stats
    eq(cs["slot_erases"], cs["min_erases"], "erases per update are the minimum")
    assert cs["journal_records"] <= 16


def test_every_cut_and_tear_download_ws16_erased00():
    update, factory, keys = _images()
    res = powercut.run(update, factory, keys, ("download", "verify"), True, (16,), (0x00,))
    assert res["cut_points"] > 90 and res["torn_points"] > 90
    _clean(res, "download")


def test_every_cut_and_tear_activation_confirm_revert():
    update, factory, keys = _images()
    res = powercut.run(update, factory, keys, ("activate", "confirm", "revert"), True,
                       (1, 8), (0xFF, 0x00))
    assert res["cut_points"] >= 40
    _clean(res, "activation")


def test_random_multi_cuts():
    update, factory, keys = _images()
    res = powercut.run(update, factory, keys, (), True, (4,), (0xFF,), 5, 8)
    eq(res["runs"], 8, "runs")
    _clean(res, "random")


def test_campaign_catches_a_broken_agent():
    # the campaign must be able to fail: an agent that forgets its checkpoint resumes
    # from zero, and the campaign says so
    from agent import update as core
    saved = core.Device._on_sector

    def forgetful(self, nxt, mi):
        self.st.next = 0  # the journal is told sector 0 ...
        self.st.fails = 0
        if mi is not None:
            self.st.mi_hash = mi
        self._save()
        self.st.next = nxt  # ... while the download goes on from the writer's checkpoint
    core.Device._on_sector = forgetful
    try:
        c = powercut.Campaign(*_images())
        c.clean()
        c._cut_run("download", [60], False, "download")
    finally:
        core.Device._on_sector = saved
    eq(c.stats["resumed_from_zero"], 1, "caught")
