# Clock interface and implementations. now() is UTC seconds (int) since 2000-01-01, as
# ZigBee's UTCTime; ticks_ms() is a monotonic millisecond counter; sleep_ms() waits.
try:
    import time
    _ticks_ms = time.ticks_ms
    _ticks_diff = time.ticks_diff
except AttributeError:  # CPython
    import time

    def _ticks_ms():
        return int(time.monotonic() * 1000)

    def _ticks_diff(a, b):
        return a - b

ZIGBEE_EPOCH = 946684800  # 2000-01-01T00:00:00Z in Unix seconds


class SystemClock:
    """The host's (or board's RTC) wall clock. ticks_ms and ticks_diff are the port's own
    functions, bound to the instance: the pager reads the clock at every block, and a
    method around them would cost a Python call each time."""

    def __init__(self):
        self.ticks_ms = _ticks_ms
        self.ticks_diff = _ticks_diff

    def now(self):
        t = time.time()
        if t > ZIGBEE_EPOCH:  # CPython and unix port: Unix epoch
            t -= ZIGBEE_EPOCH
        return int(t)

    def sleep_ms(self, ms):
        if hasattr(time, "sleep_ms"):
            time.sleep_ms(ms)
        else:
            time.sleep(ms / 1000)
