# Activation: how a held, verified image becomes the running one, and back.
#
# The device (functions over an agent.update.Device d, which has them as methods):
#   schedule(d, when)   the held image activates now, at a device time, or on a command
#   tick(d)             runs an activation whose time has come
#   activate(d, hash)   an Activate Image naming the held image: a GBCS CS06 outcome
#   power_on(d, run)    after a reset: a trial boot, a confirmation the journal missed, an
#                       activation the bootloader gave up; fall_back(d, run) when the
#                       running slot fails its power-on check
#   confirm(d) / revert(d) / run_health(d)   the end of a trial boot
# Each activation checks the held image from flash first (what is activated is what is in
# flash) and is saved in the journal before the bootloader is told.
#
# The server (functions over an agent.zcl.client.Client cl): what a network peer can make
# the device do, and what it cannot.
# - An Activate Image acts only on the held image whose Manufacturer Image hash it names; an
#   Upgrade End Response only when its manufacturer, image type and file version are those
#   of the held, verified image (wildcards name nothing). Neither acts while a download is
#   open, so a late or replayed one for an older image does nothing.
# - An activation time more than HORIZON (366 days) ahead is refused: reason TIME_RANGE
#   and alert 0x8F67. An Upgrade End Response's 0xFFFFFFFF keeps its ZCL meaning (wait for
#   an Activate Image); an Activate Image's time 0 means now.
# - A WAIT_FOR_DATA delay is capped at the client's wait_cap_s and at the stall budget left;
#   the block is then asked for again and the stall timeout still ends the session.
# - A wait longer than TICK_MAX_MS is measured with the clock's seconds, as ticks_ms wraps
#   after about 6 days on a 32-bit port (a 30-bit counter).
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.store import state as S
from agent.store import check as verify
from agent.alerts import ALERT_VERIFY_FAIL, ALERT_BOOT_VERIFY_FAIL, ALERT_VERSION_CHANGED, \
    ALERT_FUTURE_ACTIONED, ALERT_FUTURE_NOT_ACTIONED
from agent.errors import OtaError, DOWNLOAD_ACTIVE, NOT_HELD_IMAGE, TIME_RANGE, NO_IMAGE, \
    NOT_IN_TRIAL, ACTIVATION_FAILED, HASH_MISMATCH, ROLLBACK, SLOT_INVALID, NO_FALLBACK, \
    message

# Activation outcomes (GBCS CS06)
ACT_SUCCESS = const(0)
ACT_NO_IMAGE = const(1)
ACT_HASH_MISMATCH = const(2)
ACT_FAILURE = const(3)

HORIZON = const(31622400)     # latest activation a server may set: 366 days ahead (s), so
                              # an activation time always fits its u32 field
TICK_MAX_MS = const(3600000)  # longest wait measured with ticks_ms alone: an hour


# -- the device ----------------------------------------------------------------------------

def schedule(d, when):
    """Activate the held image at device time `when` (seconds; 0 or past = now; at most
    HORIZON ahead) or on a command (state.WAIT_COMMAND). Returns the activation outcome if
    it ran now."""
    st = d.st
    if st.phase != S.HELD:
        raise OtaError(NO_IMAGE)
    if d.loading:
        raise OtaError(DOWNLOAD_ACTIVE)
    now = d.board.clock.now()
    if when != S.WAIT_COMMAND and (when < 0 or when - now > HORIZON or when >= S.WAIT_COMMAND):
        raise OtaError(TIME_RANGE, "activation at %d, now %d" % (when, now))
    st.act_time = when
    st.flags = S.F_FUTURE if when != S.WAIT_COMMAND and when > now else 0
    d._save()
    return tick(d)


def tick(d):
    """Runs an activation whose time has come: its outcome, or None."""
    st = d.st
    if st.phase != S.HELD or st.act_time == S.WAIT_COMMAND or d.loading:
        return None
    if d.board.clock.now() < st.act_time:
        return None
    return _activate(d, st.flags & S.F_FUTURE)


def _refusal(d, mi_hash):
    # the outcome that refuses an activation of the image named by mi_hash now, or None
    st = d.st
    if st.phase != S.HELD:
        return ACT_NO_IMAGE
    if bytes(mi_hash) != st.mi_hash:
        return ACT_HASH_MISMATCH
    if d.loading:  # never in the middle of a download
        return ACT_FAILURE
    return None


def activate(d, mi_hash):
    """Activation command naming the image by its Manufacturer Image hash: the outcome."""
    out = _refusal(d, mi_hash)
    return out if out is not None else _activate(d, False)


def refused(d, reason, value):
    """A server's activation time was refused (out of range): alert 0x8F67."""
    d.alerts.add(ALERT_FUTURE_NOT_ACTIONED, reason, value)
    d._save()


def _activate(d, future):
    st = d.st
    try:
        info = verify.check(d.board.slots[st.slot], d.policy(), d.board.verifier, st.mi_hash)
        if info.mi_hash != st.mi_hash:
            raise OtaError(HASH_MISMATCH, "image in flash changed")
        d.board.boot.set_pending(st.slot, d.cfg.trials)
    except OtaError as e:
        st.phase = S.IDLE
        d.alerts.add(ALERT_VERIFY_FAIL, e.reason, st.held_version)
        if future:
            d.alerts.add(ALERT_FUTURE_NOT_ACTIONED, e.reason, st.held_version)
        d._save()
        return ACT_FAILURE
    st.phase = S.ACTIVATING
    st.act_time = S.WAIT_COMMAND
    if future:
        d.alerts.add(ALERT_FUTURE_ACTIONED, 0, st.held_version)
    d._save()
    d.reset_needed = True
    return ACT_SUCCESS


def power_on(d, run):
    """After a reset into slot run: the journal's phase against what the bootloader did."""
    st = d.st
    b = d.board.boot
    if st.phase in (S.HELD, S.ACTIVATING) and st.slot == run and b.in_trial():
        d.trial = True
        if st.phase != S.ACTIVATING:
            st.phase = S.ACTIVATING
            d._save()
    elif st.phase == S.ACTIVATING and st.slot == run:
        _confirmed(d)   # confirmed before the journal said so
    elif st.phase == S.ACTIVATING and b.pending() != st.slot:
        why = b.boot_info()[1] or ACTIVATION_FAILED
        st.phase = S.IDLE
        if why == ACTIVATION_FAILED:  # never confirmed in its trials
            st.flags |= S.F_REVERTED
        d.alerts.add(ALERT_BOOT_VERIFY_FAIL, why, st.held_version)
        d._save()
    elif st.phase in (S.DOWNLOADING, S.HELD) and st.slot == run:
        st.phase = S.IDLE   # never write into, or activate, the running slot
        d._save()


def fall_back(d, run):
    """The running slot failed its power-on check: revert a trial boot; else make the other
    slot's image the confirmed one if it passes the full check and is not below the
    anti-rollback floor (a reset is then needed), or run on and say so."""
    st = d.st
    if d.trial:
        revert(d, SLOT_INVALID)
        return
    other = 1 - run
    try:
        p = d.policy()
        info = verify.check(d.board.slots[other], p, d.board.verifier,
                            st.mi_hash if st.slot == other else None)
        m = info.manifest
        if m.seq < p.seq:  # never below the floor, as a downgrade-preventing bootloader
            raise OtaError(ROLLBACK, "slot %d seq %d < %d" % (other, m.seq, p.seq))
    except OtaError:
        # nothing acceptable to run instead: stay on the running image and say so
        d.alerts.add(ALERT_BOOT_VERIFY_FAIL, NO_FALLBACK, st.run_version)
        d._save()
        return
    d.stuck = 0
    st.sig_ok = info.tag
    d.board.boot.set_confirmed(other)
    if st.slot == other:
        st.phase = S.IDLE
    st.run_version = m.version
    d._save()
    d.reset_needed = True


def run_health(d):
    """On a trial boot, the application's health check decides: confirm or revert."""
    h = d.cfg.health
    if not d.trial or h is None:
        return None
    if h():
        confirm(d)
        return True
    revert(d)
    return False


def confirm(d):
    """The new image is healthy: make it permanent, then raise the sequence number."""
    if not d.trial:
        raise OtaError(NOT_IN_TRIAL)
    d.board.boot.confirm()
    _confirmed(d)


def _confirmed(d):
    st = d.st
    d.trial = False
    if st.held_seq > st.seq:
        st.seq = st.held_seq
    st.run_version = st.held_version
    st.phase = S.IDLE
    d.alerts.add(ALERT_VERSION_CHANGED, 0, st.run_version)
    d._save()


def revert(d, reason=ACTIVATION_FAILED):
    """The new image is not healthy: go back to the confirmed one at the next reset."""
    if not d.trial:
        raise OtaError(NOT_IN_TRIAL)
    d.board.boot.revert()
    st = d.st
    d.trial = False
    st.phase = S.IDLE
    if reason == ACTIVATION_FAILED:  # unhealthy: not to be taken again (agent.update)
        st.flags |= S.F_REVERTED
    d.alerts.add(ALERT_BOOT_VERIFY_FAIL, reason, st.held_version)
    d._save()
    d.reset_needed = True


# -- the server ----------------------------------------------------------------------------
# The frames are the client's (agent.zcl): their codec is imported when one comes, so that
# the device side above does not load it.

def command(cl, f):
    """Activate Image f (its hash in cl._rx): act, schedule or refuse; send the response."""
    from agent.zcl import device as zcl
    h = bytes(memoryview(cl._rx)[f.hash_off:f.hash_off + zcl.HASH_SIZE])
    d = cl.dev
    t = f.activation_time
    ahead = t - d.board.clock.now()
    out = _refusal(d, h)
    if out == ACT_FAILURE:
        _refuse(cl, DOWNLOAD_ACTIVE)
    elif out is None:
        if t == S.WAIT_COMMAND or (t and ahead > HORIZON):
            out = _refuse(cl, TIME_RANGE, t)
        elif t and ahead > 0:
            out = _schedule(cl, t, t)
        else:
            out = _activate(d, False)
    cl._say("activate command: outcome %d" % out)
    n = zcl.encode_activate_response(cl._tx, f.seq, cl.mfr, out, h)
    cl.link.send(memoryview(cl._tx)[:n])


def _refuse(cl, reason, t=None):
    cl._say("activation refused: %s" % message(reason))
    if t is not None:
        refused(cl.dev, reason, t)
    return ACT_FAILURE


def names_held(d, man, itype, ver):
    """The image (manufacturer, image type, file version) is the held, verified one."""
    return d.st.phase == S.HELD and man == d.cfg.manufacturer and itype == d.cfg.image_type \
        and ver == d.st.held_version


def end_response(cl, f):
    """Upgrade End Response f, answering ours or unsolicited: schedule the held image it
    names, or do nothing."""
    from agent.zcl import device as zcl
    d = cl.dev
    if d.loading or not names_held(d, f.manufacturer, f.image_type, f.file_version):
        cl._say("upgrade end response ignored: %s"
                % message(DOWNLOAD_ACTIVE if d.loading else NOT_HELD_IMAGE))
        return
    t = f.upgrade_time
    if t == zcl.UPGRADE_WAIT:
        schedule(d, S.WAIT_COMMAND)
        cl._say("activation: waiting for a command")
        return
    delay = t if f.current_time == 0 else t - f.current_time
    if delay > HORIZON:
        _refuse(cl, TIME_RANGE, t)
        return
    cl._say("activation in %d s" % (delay if delay > 0 else 0))
    _schedule(cl, d.board.clock.now() + delay if delay > 0 else 0, t)


def _schedule(cl, when, t):
    # the device's own checks stand too (a clock so far ahead that `when` would not fit)
    try:
        schedule(cl.dev, when)
    except OtaError as e:
        return _refuse(cl, e.reason, t)
    return ACT_SUCCESS


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
    """cl._idle(ms, wake) for any ms: beyond TICK_MAX_MS in steps measured with the clock's
    seconds, at most as many as the wait needs (a clock set back cannot stretch it)."""
    if ms <= TICK_MAX_MS:
        _idle(cl, ms, wake)
        return
    clk = cl.clock
    end = clk.now() + (ms + 999) // 1000
    steps = ms // TICK_MAX_MS + 2
    while steps and not cl.dev.reset_needed and not (wake and cl.notified):
        left = end - clk.now()
        if left <= 0:
            return
        _idle(cl, left * 1000 if left * 1000 < TICK_MAX_MS else TICK_MAX_MS, wake)
        steps -= 1


def _idle(cl, ms, wake):
    if wake:
        cl._idle(ms, True)  # until an Image Notify selects the device
    else:
        cl._idle(ms)
