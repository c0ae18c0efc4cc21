# hal.clock: ZigBee time (UTC seconds since 2000-01-01) from the system clock, the tick
# counter, and the fake clock the tests and the emulation drive by hand.
import time

from hal.clock import SystemClock, ZIGBEE_EPOCH
from hal.sim.clock import FakeClock
from tutil import eq, skip


def test_zigbee_epoch_is_2000_in_unix_seconds():
    # 30 years from 1970, seven of them leap years (1972 .. 1996)
    eq(ZIGBEE_EPOCH, (30 * 365 + 7) * 86400)
    if hasattr(time, "gmtime") and time.gmtime(0)[0] == 1970:
        eq(tuple(time.gmtime(ZIGBEE_EPOCH)[:6]), (2000, 1, 1, 0, 0, 0))


def test_system_clock_now_counts_from_2000():
    if not hasattr(time, "time"):
        skip("no wall clock on this port (time.time)")
    c = SystemClock()
    t0 = time.time()
    now = c.now()
    t1 = time.time()
    eq(type(now), int, "whole seconds")
    if t0 > ZIGBEE_EPOCH:  # a Unix-epoch clock (CPython, the unix port): shifted to 2000
        assert int(t0) - ZIGBEE_EPOCH <= now <= int(t1) - ZIGBEE_EPOCH + 1, (now, t0)
        assert now > 24 * 365 * 86400, "a clock set to this century"
    else:  # a port whose clock already counts from 2000
        assert int(t0) <= now <= int(t1) + 1, (now, t0)


def test_system_clock_ticks_and_sleep():
    c = SystemClock()
    a = c.ticks_ms()
    c.sleep_ms(25)
    b = c.ticks_ms()
    d = c.ticks_diff(b, a)
    assert 25 <= d < 5000, d
    eq(c.ticks_diff(a, b), -d, "the other way round")
    eq(c.ticks_diff(5, 3), 2)


def test_fake_clock_moves_only_when_told():
    c = FakeClock(1000)
    eq((c.now(), c.ticks_ms()), (1000, 1000000), "starts where told")
    t = c.ticks_ms()
    eq(c.ticks_ms(), t, "does not move by itself")
    c.sleep_ms(999)
    eq(c.now(), 1000, "999 ms: still the same second")
    c.sleep_ms(1)
    eq(c.now(), 1001, "a whole second")
    eq(c.ticks_diff(c.ticks_ms(), t), 1000)
    c.advance(3600)
    eq(c.now(), 4601, "advance() by seconds")
    eq(c.ticks_diff(t, c.ticks_ms()), -3601000)
    eq(FakeClock().now(), 0, "starts at 0 by default")
