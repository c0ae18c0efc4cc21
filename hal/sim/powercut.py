# The power-cut campaign over the emulated board (runs under MicroPython and CPython).
#
# A clean update (factory image confirmed -> update downloaded, verified, activated,
# trial-booted, confirmed; or reverted) is run once to count its flash operations per
# phase. Then, for every operation of the chosen phases, the run is repeated from the
# phase's start with power cut after that operation (or during it, torn), the device is
# rebooted and driven to the end, and the campaign checks that:
#   - after every reboot the bootloader runs an image that passes the full check
#     (signature, digests): otherwise the device is counted as bricked;
#   - the confirmed slot always holds a valid image: otherwise lost_confirmed_image;
#   - a cut download continues from its last checkpoint: otherwise resumed_from_zero;
#   - no slot sector is erased more than once beyond what the clean run erases it.
from agent.store import state as S
from agent.store import check as verify
from agent.update import Config, Device
from agent.errors import OtaError
from agent.crypto.trust import Trust
from agent.image.fmt import parse_header, MANIFEST_END_MAX
from hal.sim.board import EmuBoard, Layout
from hal.sim.nor import NorFlash, PowerCut

PHASES = ("download", "verify", "activate", "confirm", "revert")


def _room(img):
    # the slot room an image needs: its file (raw), or its sectors whole (a compressed or
    # delta image, whose file is smaller than what it installs)
    from agent.image.pack import peek
    m = peek(img[:MANIFEST_END_MAX])
    n = m.sectors * m.sector
    return n if n > len(img) else len(img)


class Campaign:
    def __init__(self, update, factory, keys, sector=4096, write_size=1, erased=0xFF,
                 block=64, trials=3):
        h = parse_header(update)
        self.update = update
        self.factory = factory
        self.block = block
        size = max(_room(update), _room(factory))
        self.layout = Layout.for_image(sector, size, 4096)
        self.flash = NorFlash(self.layout.size, sector, write_size, erased)
        self.cfg = Config(Trust(keys), h.manufacturer, h.image_type, h.hw_min, trials=trials)
        self.version = h.file_version
        self.stats = {"cut_points": 0, "torn_points": 0, "bricked": 0,
                      "lost_confirmed_image": 0, "resumed_from_zero": 0,
                      "max_extra_erases": 0, "max_extra_erases_multi": 0, "extra_erases": 0,
                      "resumed_behind": 0, "runs": 0,
                      "failures": []}

    # -- the device --------------------------------------------------------

    def boot(self):
        """Reset: bootloader, then the agent's start(). Checks the boot invariants."""
        while True:
            b = EmuBoard(self.flash, self.layout)
            run = b.power_on()
            self.board = b
            self.dev = Device(b, self.cfg)
            self._check_boot(b, run)
            self.dev.start()
            if not self.dev.reset_needed:
                return self.dev

    def _check_boot(self, b, run):
        if self._where == "factory":
            return
        pol = self.dev.policy()
        pol.seq = 0
        try:
            verify.check(b.slots[run], pol)
        except OtaError as e:
            self._fail("bricked", "boots slot %d: %s" % (run, e))
        if not b.boot.in_trial():
            try:
                verify.check(b.slots[b.boot.confirmed()], pol)
            except OtaError as e:
                self._fail("lost_confirmed_image", "slot %d: %s" % (b.boot.confirmed(), e))

    def _fail(self, key, why):
        self.stats[key] += 1
        if len(self.stats["failures"]) < 20:
            self.stats["failures"].append("%s: %s (%s)" % (key, why, self._where))

    def provision(self):
        self._where = "factory"
        d = self.boot()
        img = self.factory
        d.provision(lambda off, n: img[off:off + n], len(img))
        self._where = "clean"

    def download(self, marks=None):
        d = self.dev
        img = self.update
        if marks is not None:  # the download phase ends with the last sector's checkpoint
            saved = d.writer.on_sector

            def mark(nxt, mi):
                saved(nxt, mi)
                marks.setdefault("saved", []).append((self.flash.ops, nxt))
                if nxt == marks["sectors"]:
                    marks["dl"] = self.flash.ops
            d.writer.on_sector = mark
        off = d.begin()
        while not d.done():
            off = d.feed(off, img[off:off + self.block])

    def drive(self, goal, marks=None):
        """From whatever state the device is in, run the update to the goal."""
        activated = False
        for _ in range(40):
            d = self.dev
            if d.trial:
                activated = True
                if goal == "revert":
                    if marks is not None:
                        marks["trial"] = self.flash.ops
                    d.revert()
                else:
                    if marks is not None:
                        marks["trial"] = self.flash.ops
                    d.confirm()
                    if marks is not None:
                        marks["confirm"] = self.flash.ops
                self.boot()
                continue
            st = d.st
            if st.phase == S.ACTIVATING:
                self.boot()
                continue
            if st.phase == S.HELD:
                if marks is not None and "verify" not in marks:
                    marks["verify"] = self.flash.ops
                activated = True
                d.schedule(0)
                self.boot()
                continue
            if activated or st.flags & S.F_REVERTED:  # reverted: the image is not retaken
                return self._finished(goal)
            self.download(marks)
        self._fail("bricked", "no end after 40 steps")

    def _finished(self, goal):
        b = self.board
        run = b.boot.running()
        ver = self.dev.st.run_version
        if goal == "confirm" and ver != self.version:
            # several cuts can use up the trial boots: a legitimate revert, after which the
            # device refuses that image (agent.update, F_REVERTED) until another is offered
            if self.dev.st.flags & S.F_REVERTED:
                return None
            return self.drive(goal)
        if goal == "revert" and run != 0:
            self._fail("bricked", "did not revert")

    # -- the campaign ------------------------------------------------------

    def clean(self):
        """The clean runs: op counts per phase, snapshots where the phases start."""
        f = self.flash
        self.provision()
        # every run starts from this snapshot with a reset, the clean one included
        self.snap = {"download": (f.snapshot(), f.ops)}
        marks = {"sectors": _sectors(self.update), "start": f.ops}
        self.boot()
        j0 = self.dev.journal.seq
        b0 = self.board.boot._journal.seq
        self.drive("confirm", marks)
        self.base_erases = {"download": _delta(f, self.snap["download"])}
        self.saved = marks.get("saved", [])
        self.clean_stats = self._clean_stats(self.base_erases["download"], marks["sectors"],
                                             self.dev.journal.seq - j0,
                                             self.board.boot._journal.seq - b0)
        self.ranges = {
            "download": (marks["start"], marks["dl"]),
            "verify": (marks["dl"], marks["verify"]),
            "activate": (marks["verify"], marks["trial"]),
            "confirm": (marks["trial"], f.ops),
        }
        # the revert branch: from the trial boot of the same update
        f.restore(self.snap["download"][0])
        self.boot()
        self.download()
        self.dev.schedule(0)
        self.snap["revert"] = (f.snapshot(), f.ops)
        self.boot()
        self.drive("revert")
        self.base_erases["revert"] = _delta(f, self.snap["revert"])
        self.ranges["revert"] = (self.snap["revert"][1], f.ops)
        return self.ranges

    def _clean_stats(self, erases, sectors, records, boot_records):
        lay = self.layout
        ss = lay.sector_size

        def area(off, size):
            return sum(erases[off // ss:(off + size) // ss])
        meta = lay.meta_size // ss
        j = self.dev.journal
        return {
            "slot_erases": area(lay.slot_off[0], 2 * lay.slot_size),
            "min_erases": sectors * (self._image_sector() // ss) + meta,
            "journal_records": records,
            "journal_record_bytes": j.record_size,
            "journal_erases": area(lay.journal_off, lay.journal_size),
            "boot_records": boot_records,
            "boot_erases": area(lay.boot_off, lay.boot_size),
        }

    def _image_sector(self):
        return _manifest(self.update).sector

    def run_phase(self, phase, tear=False, progress=None):
        """Cut at every operation of one phase."""
        snap = "revert" if phase == "revert" else "download"
        base = self.snap[snap][1]
        lo, hi = self.ranges[phase]
        for k in range(lo - base + 1, hi - base + 1):
            self._cut_run(snap, [k], tear, phase)
            if progress:
                progress(1)

    def run_random(self, cuts, seed, tear=False):
        """Up to `cuts` cuts at pseudo-random operations of one whole update."""
        n = self.ranges["confirm"][1] - self.snap["download"][1]
        x = seed * 2654435761 + 1
        ks = []
        for _ in range(cuts):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            ks.append(1 + x % n)
        ks.sort()
        self._cut_run("download", ks, tear, "random seed %d" % seed)

    def _cut_run(self, snap, cuts, tear, phase):
        f = self.flash
        image, base = self.snap[snap]
        f.restore(image)
        self._where = "%s cut %s%s" % (phase, cuts, " torn" if tear else "")
        self.stats["runs"] += 1
        self.stats["torn_points" if tear else "cut_points"] += len(cuts)
        goal = "revert" if snap == "revert" else "confirm"
        todo = list(cuts)
        while True:
            if todo:
                k = todo.pop(0)
                n = base + k - f.ops
                f.fail_at(n if n > 0 else 1, tear, k)
            try:
                self.boot()
                self.drive(goal)
                f.fail_at(None)
                break
            except PowerCut:
                f.power_on()
            except OtaError as e:
                f.fail_at(None)
                f.power_on()
                self._fail("bricked", "error %s" % e)
                break
        # wear: no slot sector erased more than once beyond the clean run
        got = _delta(f, self.snap[snap])
        want = self.base_erases[snap]
        if snap == "download":
            self._resume_check(got, want, base + cuts[0] - (1 if tear else 0))
        first = self.layout.slot_off[0] // self.layout.sector_size
        worst = 0
        for i in range(first, len(got)):
            if got[i] - want[i] > worst:
                worst = got[i] - want[i]
        # each cut may cost the sector it interrupted one more erase
        if worst > len(cuts):
            self._fail("extra_erases", "a slot sector erased %d more times" % worst)
        key = "max_extra_erases" if len(cuts) == 1 else "max_extra_erases_multi"
        if worst > self.stats[key]:
            self.stats[key] = worst


    def _resume_check(self, got, want, done_ops):
        # Judged from outside: sectors whose checkpoint was saved before the first cut must
        # not be written again (erased again) by the download that follows.
        ckpt = 0
        for ops, nxt in self.saved:
            if ops <= done_ops:
                ckpt = nxt
        ss = self.layout.sector_size
        first = self.layout.slot_off[1] // ss
        per = self._image_sector() // ss
        for j in range(first, first + ckpt * per):
            if got[j] > want[j]:
                self._fail("resumed_from_zero" if j == first else "resumed_behind",
                           "sector %d written again, checkpoint %d" % ((j - first) // per, ckpt))
                return


def _delta(f, snap):
    before = snap[0][5]
    return [f.sector_erases[i] - before[i] for i in range(len(before))]


def _manifest(img):
    from agent.image.manifest import peek
    return peek(img)


def _sectors(img):
    return _manifest(img).sectors


def run(update, factory, keys, phases=PHASES, tear=False, alignments=(1,), erased=(0xFF,),
        random_cuts=0, seeds=0, sector=4096, block=64, progress=None):
    """The whole campaign over every geometry; returns the summary dict."""
    total = {"cut_points": 0, "torn_points": 0, "bricked": 0, "lost_confirmed_image": 0,
             "resumed_from_zero": 0, "max_extra_erases": 0, "max_extra_erases_multi": 0,
             "extra_erases": 0, "resumed_behind": 0, "runs": 0, "failures": [],
             "configs": []}
    for ws in alignments:
        for ev in erased:
            c = Campaign(update, factory, keys, sector, ws, ev, block)
            ranges = c.clean()
            for ph in phases:
                c.run_phase(ph, False, progress)
                if tear:
                    c.run_phase(ph, True, progress)
            for seed in range(seeds):
                c.run_random(random_cuts, seed, tear and seed & 1 == 1)
                if progress:
                    progress(1)
            st = c.stats
            for k in total:
                if k in ("max_extra_erases", "max_extra_erases_multi"):
                    if st[k] > total[k]:
                        total[k] = st[k]
                elif k == "failures":
                    total[k].extend(st[k][:5])
                elif k != "configs":
                    total[k] += st[k]
            cfg = {"write_size": ws, "erased": ev, "ops": {}}
            for ph in ranges:
                cfg["ops"][ph] = ranges[ph][1] - ranges[ph][0]
            cfg["clean"] = c.clean_stats
            for k in ("cut_points", "torn_points", "bricked", "lost_confirmed_image",
                      "resumed_from_zero", "max_extra_erases"):
                cfg[k] = st[k]
            total["configs"].append(cfg)
    return total


def count_points(update, factory, keys, phases, tear, sector=4096):
    """How many cut runs one geometry takes (for a progress bar)."""
    c = Campaign(update, factory, keys, sector)
    r = c.clean()
    n = 0
    for ph in phases:
        n += r[ph][1] - r[ph][0]
    return n * (2 if tear else 1)


def main(argv):
    # micropython -m hal.sim.powercut UPDATE FACTORY KEY.pem[,KEY.pem] PHASES TEAR ALIGN ERASED
    #     RANDOM_CUTS SEEDS  -> prints the summary as JSON
    import json
    from agent.crypto.trust import from_pem

    def rd(p):
        with open(p, "rb") as f:
            return f.read()
    keys = [from_pem(rd(k)) for k in argv[2].split(",")]
    res = run(rd(argv[0]), rd(argv[1]), keys, argv[3].split(","), argv[4] == "1",
              [int(x) for x in argv[5].split(",")], [int(x, 0) for x in argv[6].split(",")],
              int(argv[7]), int(argv[8]))
    print(json.dumps(res))


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
