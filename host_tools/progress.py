"""A small progress bar on stderr for the host tools.

Shown when the stream is a terminal (only once the work has run for DELAY seconds, so quick
jobs print nothing) or when forced: force(True), otatool --progress, or OTATOOL_PROGRESS=1.
force(False), --no-progress or OTATOOL_PROGRESS=0 hide it everywhere.
"""
import os
import sys
import time

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


def _size(n):
    if n >= 1 << 20:
        return "%.1f MiB" % (n / 1048576.0)
    if n >= 1 << 10:
        return "%.1f KiB" % (n / 1024.0)
    return "%d B" % n


class Progress:
    """Progress of a job of `total` units (bytes when unit="B", else a count).

    Use update(done) or advance(n), then close(ok); or use it as a context manager.
    """

    def __init__(self, total, label="", stream=None, unit="B", show=None):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        self.done = 0
        self.drawn = False
        self.start = time.monotonic()
        self._last = 0.0
        self._width = 0
        mode = _mode() if show is None else show
        if mode is None:
            isatty = getattr(self.stream, "isatty", None)
            self.enabled = bool(isatty and isatty())
            self.delay = DELAY
        else:
            self.enabled = bool(mode)
            self.delay = 0.0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(exc_type is None)
        return False

    def advance(self, n):
        self.update(self.done + n)

    def update(self, done):
        self.done = min(done, self.total) if self.total else done
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.delay or (self.drawn and now - self._last < INTERVAL):
            return
        self._last = now
        self._draw(now)

    def line(self, now=None):
        """The text of the bar as it would be drawn now."""
        now = time.monotonic() if now is None else now
        frac = (float(self.done) / self.total) if self.total else 1.0
        fill = int(frac * WIDTH)
        bar = "#" * fill + "-" * (WIDTH - fill)
        elapsed = max(now - self.start, 1e-9)
        if self.unit == "B":
            amount = "%s/%s  %s/s" % (_size(self.done), _size(self.total),
                                      _size(int(self.done / elapsed)))
        else:
            amount = "%d/%d %s" % (self.done, self.total, self.unit)
        return "%s [%s] %3d%%  %s" % (self.label, bar, int(frac * 100), amount)

    def _draw(self, now):
        text = self.line(now)
        pad = " " * max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self.drawn = True

    def close(self, ok=True):
        """Finish the bar: on success draw it full and end the line; on failure erase it."""
        if not self.enabled:
            return
        self.enabled = False
        if ok and (self.drawn or self.delay == 0.0):
            if self.total:
                self.done = self.total
            self._draw(time.monotonic())
            self.stream.write("\n")
        elif self.drawn:
            self.stream.write("\r" + " " * self._width + "\r")
        self.stream.flush()
