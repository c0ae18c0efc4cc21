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
# What a server's commands may make the device do (an Activate Image, an Upgrade End
# Response, a WAIT_FOR_DATA) is decided by agent.zcl.commands over these functions.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.store import state as S
from agent.alerts import ALERT_VERIFY_FAIL, ALERT_BOOT_VERIFY_FAIL, ALERT_VERSION_CHANGED, \
    ALERT_FUTURE_ACTIONED, ALERT_FUTURE_NOT_ACTIONED
from agent import errors as E
from agent.errors import OtaError

# Activation outcomes (GBCS CS06)
ACT_SUCCESS = const(0)
ACT_NO_IMAGE = const(1)
ACT_HASH_MISMATCH = const(2)
ACT_FAILURE = const(3)

HORIZON = const(31622400)     # latest activation a server may set: 366 days ahead (s), so
                              # an activation time always fits its u32 field


# -- the device ----------------------------------------------------------------------------

def schedule(d, when):
    """Activate the held image at device time `when` (seconds; 0 or past = now; at most
    HORIZON ahead) or on a command (state.WAIT_COMMAND). Returns the activation outcome if
    it ran now."""
    st = d.st
    if st.phase != S.HELD:
        raise OtaError(E.NO_IMAGE)
    if d.loading:
        raise OtaError(E.DOWNLOAD_ACTIVE)
    now = d.board.clock.now()
    if when != S.WAIT_COMMAND and (when < 0 or when - now > HORIZON or when >= S.WAIT_COMMAND):
        raise OtaError(E.TIME_RANGE, "activation at %d, now %d" % (when, now))
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
    return run(d, st.flags & S.F_FUTURE)


def refusal(d, mi_hash):
    """The outcome that refuses an activation of the image named by mi_hash now, or None."""
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
    out = refusal(d, mi_hash)
    return out if out is not None else run(d, False)


def refused(d, reason, value):
    """A server's activation time was refused (out of range): alert 0x8F67."""
    d.alerts.add(ALERT_FUTURE_NOT_ACTIONED, reason, value)
    d._save()


def run(d, future):
    st = d.st
    try:
        info = d.check_slot(st.slot, d.policy(), st.mi_hash)
        if info.mi_hash != st.mi_hash:
            raise OtaError(E.HASH_MISMATCH, "image in flash changed")
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
        why = b.boot_info()[1] or E.ACTIVATION_FAILED
        st.phase = S.IDLE
        if why == E.ACTIVATION_FAILED:  # never confirmed in its trials
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
        revert(d, E.SLOT_INVALID)
        return
    other = 1 - run
    try:
        p = d.policy()
        info = d.check_slot(other, p, st.mi_hash if st.slot == other else None)
        m = info.manifest
        if m.seq < p.seq:  # never below the floor, as a downgrade-preventing bootloader
            raise OtaError(E.ROLLBACK, "slot %d seq %d < %d" % (other, m.seq, p.seq))
    except OtaError:
        # nothing acceptable to run instead: stay on the running image and say so
        d.alerts.add(ALERT_BOOT_VERIFY_FAIL, E.NO_FALLBACK, st.run_version)
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
        raise OtaError(E.NOT_IN_TRIAL)
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


def revert(d, reason=E.ACTIVATION_FAILED):
    """The new image is not healthy: go back to the confirmed one at the next reset."""
    if not d.trial:
        raise OtaError(E.NOT_IN_TRIAL)
    d.board.boot.revert()
    st = d.st
    d.trial = False
    st.phase = S.IDLE
    if reason == E.ACTIVATION_FAILED:  # unhealthy: not to be taken again (agent.update)
        st.flags |= S.F_REVERTED
    d.alerts.add(ALERT_BOOT_VERIFY_FAIL, reason, st.held_version)
    d._save()
    d.reset_needed = True


def names_held(d, man, itype, ver):
    """The image (manufacturer, image type, file version) is the held, verified one."""
    return d.st.phase == S.HELD and man == d.cfg.manufacturer and itype == d.cfg.image_type \
        and ver == d.st.held_version
