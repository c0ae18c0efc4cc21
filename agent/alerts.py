# Alerts: what the device reports to the server (GBCS codes where they exist), which alerts
# carry the Manufacturer Image hash, and the queue that keeps them until acknowledged.
#
# An alert is saved in the state record (agent.store.state, at most state.ALERTS of them,
# the oldest dropped first) by the same journal save as the change it reports, sent once
# that save is done, sent again at every session until the server acknowledges its id
# (agent.zcl.client), and forgotten then. A refusal before a signature verified is not
# saved (anyone can send such images: they must not wear flash): it is sent from RAM, at
# most once per QUIET_S, with the number of refusals since the last one as its value.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.store import state as S

ALERT_VERIFY_OK = const(0x8F72)            # Firmware Verification Successful: the whole
                                           # image received and verified; value: version
ALERT_VERIFY_FAIL = const(0x8F1C)          # Firmware Verification Failed: with a reason
ALERT_BOOT_VERIFY_FAIL = const(0x8F1B)     # Firmware Verification Failed At Power On (or a
                                           # trial boot that failed, or no fallback)
ALERT_VERSION_CHANGED = const(0x8F43)      # the executing firmware version changed
                                           # (a confirmed activation); value: version
ALERT_FUTURE_ACTIONED = const(0x8F66)      # a future-dated activation was actioned
ALERT_FUTURE_NOT_ACTIONED = const(0x8F67)  # a future-dated activation was not actioned

# the alerts that carry the Manufacturer Image hash (as GBCS does for these events)
_HASHED = const((ALERT_VERIFY_OK, ALERT_VERIFY_FAIL, ALERT_VERSION_CHANGED,
                 ALERT_FUTURE_ACTIONED))

QUIET_S = const(60)  # a refusal before a signature verified: at most one alert a minute


def digest(code, st):
    """The hash an alert of this code carries: the Manufacturer Image hash of the state
    record st (agent.store.state.State), or None."""
    return st.mi_hash if code in _HASHED else None


class Queue:
    """The alerts of a device whose state record is st. add() queues an alert in the record;
    the owner saves the record, then calls send(sink): sink.alert(code, reason, alert_id,
    value) for each alert added since."""

    def __init__(self, st):
        self.st = st
        self.out = []             # added, sent after the next save
        self._quiet = [None, 0]   # last RAM-only alert (clock seconds), refusals since

    def add(self, code, reason=0, value=0):
        st = self.st
        a = [code, reason, st.next_alert, value]
        st.next_alert = (st.next_alert + 1) & 0xFF
        st.alerts.append(a)
        if len(st.alerts) > S.ALERTS:
            st.alerts.pop(0)
        self.out.append(a)

    def send(self, sink):
        out = self.out
        self.out = []
        if sink is not None:
            for a in out:
                sink.alert(a[0], a[1], a[2], a[3])

    def drop(self):
        """Forget what was added since the last save (the record is loaded again)."""
        self.out = []

    def ack(self, alert_id):
        """The server acknowledged alert_id: True when it was kept (the owner saves)."""
        al = self.st.alerts
        for i in range(len(al)):
            if al[i][2] == alert_id:
                al.pop(i)
                return True
        return False

    def unacked(self):
        return list(self.st.alerts)

    def quiet(self, sink, now, reason):
        """A refusal that is not saved (ALERT_VERIFY_FAIL with reason): sent at most once
        per QUIET_S of the clock's seconds `now`; its value counts the refusals since the
        last one sent."""
        q = self._quiet
        q[1] += 1
        if q[0] is not None and now - q[0] < QUIET_S:
            return
        st = self.st
        aid = st.next_alert
        st.next_alert = (aid + 1) & 0xFF
        n = q[1]
        q[0] = now
        q[1] = 0
        if sink is not None:
            sink.alert(ALERT_VERIFY_FAIL, reason, aid, n)
