"""Progress bars on stderr for the host tools, drawn by tqdm.

A bar is shown when its stream is a terminal (only once the work has run for DELAY seconds,
so quick jobs print nothing) or when forced: force(True), otatool --progress, or
OTATOOL_PROGRESS=1. force(False), --no-progress or OTATOOL_PROGRESS=0 hide it everywhere.
Bars show the amount done, the rate and the time left; write() prints a line above the
bars instead of in the middle of one. A bar that starts part-way (a resumed download) counts
its rate from where it started, and skip() moves it forward without counting the jump.
"""
import os
import shutil
import sys

from tqdm import tqdm

DELAY = 1.0        # seconds before a bar appears on a terminal
INTERVAL = 0.1     # seconds between redraws
WIDTH = 28         # characters in the bar itself

_forced = None


def force(on):
    """True: always show; False: never show; None: only on a terminal."""
    global _forced
    _forced = on


def _mode():
    if _forced is not None:
        return _forced
    env = os.environ.get("OTATOOL_PROGRESS", "")
    if env in ("1", "yes", "on", "always"):
        return True
    if env in ("0", "no", "off", "never"):
        return False
    return None


def write(text, stream=None):
    """Print one line on stream (default stdout) above any bar being drawn."""
    stream = stream if stream is not None else sys.stdout
    tqdm.write(text, file=stream)
    stream.flush()


def _size(n):
    if n >= 1 << 20:
        return "%.1f MiB" % (n / 1048576.0)
    if n >= 1 << 10:
        return "%.1f KiB" % (n / 1024.0)
    return "%d B" % n


class _Bar(tqdm):
    """tqdm with sizes in KiB and MiB (fields size_done, size_total, size_rate)."""

    @property
    def format_dict(self):
        d = super().format_dict
        n, elapsed = d["n"], d["elapsed"]
        rate = d["rate"]
        if rate is None and elapsed:
            rate = (n - d["initial"]) / elapsed
        d.update(size_done=_size(n), size_total=_size(d["total"] or 0),
                 size_rate=("%s/s" % _size(rate)) if rate is not None else "? B/s")
        return d


def _format(unit, running):
    head = "{desc} [{bar:%d}] {percentage:3.0f}%%  " % WIDTH
    if unit == "B":
        amount = "{size_done}/{size_total}  {size_rate}"
    else:
        amount = "{n_fmt}/{total_fmt} %s" % unit
    return head + amount + ("  ETA {remaining}" if running else "")


class Progress:
    """Progress of a job of `total` units (bytes when unit="B", else a count), from
    `initial` (already done before this run).

    Use update(done) or advance(n), then close(ok); or use it as a context manager.
    """

    def __init__(self, total, label="", stream=None, unit="B", show=None, initial=0):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        self.done = min(initial, self.total) if self.total else initial
        mode = _mode() if show is None else show
        if mode is None:
            isatty = getattr(self.stream, "isatty", None)
            self.enabled = bool(isatty and isatty())
            delay = DELAY
        else:
            self.enabled = bool(mode)
            delay = 0.0
        byte = unit == "B"
        self._bar = _Bar(total=self.total, initial=self.done, desc=label, file=self.stream,
                         disable=not self.enabled, delay=delay, mininterval=INTERVAL,
                         unit=unit, bar_format=_format(unit, True), leave=True,
                         dynamic_ncols=False, nrows=shutil.get_terminal_size().lines)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(exc_type is None)
        return False

    @property
    def start(self):
        """When the bar started (time.time()); moving it back ages the bar."""
        return getattr(self._bar, "start_t", 0.0)

    @start.setter
    def start(self, t):
        b = self._bar
        if hasattr(b, "start_t"):
            shift = t - b.start_t
            b.start_t += shift
            b.last_print_t += shift

    def advance(self, n):
        self.update(self.done + n)

    def update(self, done):
        done = min(done, self.total) if self.total else done
        step, self.done = done - self.done, done
        if self.enabled and step:
            self._bar.update(step)

    def skip(self, done):
        """Move to `done` without counting the jump as work done now (a download that
        resumed from its checkpoint)."""
        done = min(done, self.total) if self.total else done
        jump, self.done = done - self.done, done
        b = self._bar
        if self.enabled and jump:
            b.initial += jump
            b.n += jump
            b.last_print_n += jump

    def close(self, ok=True):
        """Finish the bar: on success draw it full and end the line; on failure erase it."""
        if not self.enabled:
            return
        self.enabled = False
        b = self._bar
        if ok:
            if self.total and self.done < self.total:
                b.update(self.total - self.done)
                self.done = self.total
            b.bar_format = _format(self.unit, False)
            if b.last_print_t >= b.start_t + b.delay:   # drawn: the final line is shorter,
                b.clear()                               # so no padding is left after it
        else:
            b.leave = False
        b.close()
        self.stream.flush()
