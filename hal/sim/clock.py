# The clock of emulated devices and tests: hal/clock.py's interface (now, ticks_ms,
# ticks_diff, sleep_ms) on a time that moves only when told, so that timeouts, back-offs and
# activation times run in no time and the same way on every run.


class FakeClock:
    """A clock that moves only when told: sleep_ms() and advance() move it."""

    def __init__(self, now=0):
        self.t_ms = now * 1000

    def now(self):
        return self.t_ms // 1000

    def ticks_ms(self):
        return self.t_ms

    def ticks_diff(self, a, b):
        return a - b

    def sleep_ms(self, ms):
        self.t_ms += ms

    def advance(self, seconds):
        self.t_ms += seconds * 1000
