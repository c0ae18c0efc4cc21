# The server's commands as the client carries them out (functions over an
# agent.zcl.client.Client cl, with the frame f its codec decoded): what a network peer can
# make the device do, and what it cannot. The device's side of each is agent.activation's.
# - An Activate Image acts only on the held image whose Manufacturer Image hash it names; an
#   Upgrade End Response only when its manufacturer, image type and file version are those
#   of the held, verified image (wildcards name nothing). Neither acts while a download is
#   open, so a late or replayed one for an older image does nothing.
# - An activation time more than HORIZON (366 days) ahead is refused: reason TIME_RANGE
#   and alert 0x8F67. An Upgrade End Response's 0xFFFFFFFF keeps its ZCL meaning (wait for
#   an Activate Image); an Activate Image's time 0 means now.
# - A WAIT_FOR_DATA delay is capped at the client's wait_cap_s and at the stall budget left;
#   the block is then asked for again and the stall timeout still ends the session.
# - A wait longer than _TICK_MAX_MS is measured with the clock's seconds, as ticks_ms wraps
#   after about 6 days on a 32-bit port (a 30-bit counter).
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent import activation as A
from agent.store import state as S
from agent.zcl import frames as zcl
from agent.errors import OtaError, DOWNLOAD_ACTIVE, NOT_HELD_IMAGE, TIME_RANGE

_TICK_MAX_MS = const(3600000)  # longest wait measured with ticks_ms alone: an hour


def command(cl, f):
    """Activate Image f (its hash in cl._rx): act, schedule or refuse; send the response."""
    h = bytes(memoryview(cl._rx)[f.hash_off:f.hash_off + zcl.HASH_SIZE])
    d = cl.dev
    t = f.activation_time
    ahead = t - d.board.clock.now()
    out = A.refusal(d, h)
    if out == A.ACT_FAILURE:
        _refuse(cl, DOWNLOAD_ACTIVE)
    elif out is None:
        if t == S.WAIT_COMMAND or (t and ahead > A.HORIZON):
            out = _refuse(cl, TIME_RANGE, t)
        elif t and ahead > 0:
            out = _schedule(cl, t, t)
        else:
            out = A.run(d, False)
    cl._say("activate command: outcome %d" % out)
    n = zcl.encode_activate_response(cl._tx, f.seq, cl.mfr, out, h)
    cl.link.send(memoryview(cl._tx)[:n])


def _refuse(cl, reason, t=None):
    cl._say("activation refused: %s" % OtaError(reason))
    if t is not None:
        A.refused(cl.dev, reason, t)
    return A.ACT_FAILURE


def end_response(cl, f):
    """Upgrade End Response f, answering ours or unsolicited: schedule the held image it
    names, or do nothing."""
    d = cl.dev
    if d.loading or not A.names_held(d, f.manufacturer, f.image_type, f.file_version):
        cl._say("upgrade end response ignored: %s"
                % OtaError(DOWNLOAD_ACTIVE if d.loading else NOT_HELD_IMAGE))
        return
    t = f.upgrade_time
    if t == zcl.UPGRADE_WAIT:
        A.schedule(d, S.WAIT_COMMAND)
        cl._say("activation: waiting for a command")
        return
    delay = t if f.current_time == 0 else t - f.current_time
    if delay > A.HORIZON:
        _refuse(cl, TIME_RANGE, t)
        return
    cl._say("activation in %d s" % (delay if delay > 0 else 0))
    _schedule(cl, d.board.clock.now() + delay if delay > 0 else 0, t)


def _schedule(cl, when, t):
    # the device's own checks stand too (a clock so far ahead that `when` would not fit)
    try:
        A.schedule(cl.dev, when)
    except OtaError as e:
        return _refuse(cl, e.reason, t)
    return A.ACT_SUCCESS


def wait_ms(cl, f, idle_ms):
    """The wait a WAIT_FOR_DATA response f asks for, in ms: capped at cl.wait_cap_s and at
    the stall budget left after idle_ms without progress."""
    delay = f.request_time if f.current_time == 0 else f.request_time - f.current_time
    if delay < 0:
        delay = 0
    if delay > cl.wait_cap_s:
        cl._say("server: wait %d s, capped at %d s" % (delay, cl.wait_cap_s))
        delay = cl.wait_cap_s
    else:
        cl._say("server: wait %d s" % delay)
    ms = delay * 1000 + (f.min_period or 0)
    left = cl.stall_s * 1000 - idle_ms
    if ms > left:
        ms = left if left > 0 else 0
    return ms


def wait(cl, ms, wake=False):
    """cl._idle(ms, wake) for any ms: beyond _TICK_MAX_MS in steps measured with the clock's
    seconds, at most as many as the wait needs (a clock set back cannot stretch it)."""
    if ms <= _TICK_MAX_MS:
        cl._idle(ms, wake)  # with wake, until an Image Notify selects the device
        return
    clk = cl.clock
    end = clk.now() + (ms + 999) // 1000
    steps = ms // _TICK_MAX_MS + 2
    while steps and not cl.dev.reset_needed and not (wake and cl.notified):
        left = end - clk.now()
        if left <= 0:
            return
        cl._idle(left * 1000 if left * 1000 < _TICK_MAX_MS else _TICK_MAX_MS, wake)
        steps -= 1

