# agent.alerts: the GBCS codes, which alerts carry the Manufacturer Image hash, the queue kept
# in the state record until the server acknowledges each alert, and the refusals sent from
# RAM at most once a minute.
from agent import alerts as AL
from agent.store import state as S
from agent.zcl import client as C
from agent.zcl import frames as zcl, server as zcl_server
from agent.errors import BAD_SIGNATURE, TIME_RANGE
from hal.sim.clock import FakeClock
from devkit import Rig, Alerts, MAN
from hubkit import Hub
from tutil import eq, Image

V2 = Image("core_v2.ota")


def test_codes():
    codes = (AL.ALERT_VERIFY_OK, AL.ALERT_VERIFY_FAIL, AL.ALERT_BOOT_VERIFY_FAIL,
             AL.ALERT_VERSION_CHANGED, AL.ALERT_FUTURE_ACTIONED, AL.ALERT_FUTURE_NOT_ACTIONED)
    eq(codes, (0x8F72, 0x8F1C, 0x8F1B, 0x8F43, 0x8F66, 0x8F67), "GBCS codes")


def test_which_alerts_carry_the_hash():
    st = S.State()
    st.mi_hash = b"\x5A" * 32
    for code in (AL.ALERT_VERIFY_OK, AL.ALERT_VERIFY_FAIL, AL.ALERT_VERSION_CHANGED,
                 AL.ALERT_FUTURE_ACTIONED):
        eq(AL.digest(code, st), st.mi_hash, "0x%04X" % code)
    for code in (AL.ALERT_BOOT_VERIFY_FAIL, AL.ALERT_FUTURE_NOT_ACTIONED, 0x1234):
        eq(AL.digest(code, st), None, "0x%04X" % code)


def test_queue_ids_and_the_oldest_dropped():
    st = S.State()
    st.next_alert = 0xFE
    q = AL.Queue(st)
    for i in range(S.ALERTS + 2):
        q.add(AL.ALERT_VERSION_CHANGED, 0, i)
    eq([a[2] for a in st.alerts], [(0xFE + i) & 0xFF for i in range(2, S.ALERTS + 2)],
       "ids wrap at 256, the oldest dropped")
    eq(st.next_alert, (0xFE + S.ALERTS + 2) & 0xFF, "next id")
    eq(len(q.out), S.ALERTS + 2, "all of them sent after the save")
    sink = Alerts()
    q.send(sink)
    eq([a[2] for a in sink.got], list(range(S.ALERTS + 2)), "sent in order")
    eq(q.out, [], "sent once")
    q.send(sink)
    eq(len(sink.got), S.ALERTS + 2, "not again")
    q.add(AL.ALERT_VERIFY_OK)
    q.drop()
    q.send(sink)
    eq(len(sink.got), S.ALERTS + 2, "dropped: not sent")
    q.send(None)  # no sink: nothing to do


def test_ack_and_unacked():
    st = S.State()
    q = AL.Queue(st)
    q.add(AL.ALERT_VERIFY_OK, 0, 2)
    q.add(AL.ALERT_VERIFY_FAIL, BAD_SIGNATURE, 0)
    kept = q.unacked()
    eq([a[2] for a in kept], [0, 1], "ids")
    kept.pop()
    eq(len(q.unacked()), 2, "unacked() is a copy")
    eq(q.ack(7), False, "unknown id")
    eq(q.ack(0), True, "acked")
    eq(q.ack(0), False, "once")
    eq(q.unacked(), [[AL.ALERT_VERIFY_FAIL, BAD_SIGNATURE, 1, 0]], "left")


def test_quiet_alerts_at_most_once_a_minute():
    st = S.State()
    q = AL.Queue(st)
    sink = Alerts()
    t = 5000
    q.quiet(sink, t, BAD_SIGNATURE)
    eq(sink.got, [(AL.ALERT_VERIFY_FAIL, BAD_SIGNATURE, 1)], "the first, at once")
    for i in range(4):
        q.quiet(sink, t + AL.QUIET_S - 1, BAD_SIGNATURE)
    eq(len(sink.got), 1, "the others within the minute: counted, not sent")
    eq(st.next_alert, 1, "no id spent on them")
    q.quiet(sink, t + AL.QUIET_S, BAD_SIGNATURE)
    eq(sink.got[-1], (AL.ALERT_VERIFY_FAIL, BAD_SIGNATURE, 5), "refusals since the last")
    eq(st.alerts, [], "nothing saved")


def test_alerts_are_kept_until_acknowledged_across_resets():
    r = Rig()
    r.provision()
    clk = FakeClock(800000000)
    r.board.clock = clk
    hub = Hub(clk, V2, 2)
    eq(C.OUTCOMES[C.Client(r.dev, hub, clk, 48).session()], "held", "session")
    got = hub.sent(zcl.CMD_ALERT)
    eq([a.alert_code for a in got], [AL.ALERT_VERIFY_OK], "alert")
    eq(got[0].digest, r.dev.st.mi_hash, "it carries the image's hash")
    aid = got[0].alert_seq
    # a refused activation time: an alert without the hash
    hub.end_response(hub.seq(), 2, 0, 400 * 86400)
    cl = C.Client(r.dev, hub, clk, 48)
    cl.idle(1000)
    last = hub.sent(zcl.CMD_ALERT)[-1]
    eq((last.alert_code, last.reason, last.digest),
       (AL.ALERT_FUTURE_NOT_ACTIONED, TIME_RANGE, None), "refusal")
    d = r.reboot()
    eq([a[0] for a in d.unacked()], [AL.ALERT_VERIFY_OK, AL.ALERT_FUTURE_NOT_ACTIONED],
       "kept in the journal")
    eq(d.ack(aid), True, "acknowledged")
    eq(d.ack(aid), False, "once")
    d = r.reboot()
    eq([a[0] for a in d.unacked()], [AL.ALERT_FUTURE_NOT_ACTIONED], "forgotten for good")
    # the next session sends what is still unacknowledged, with its id; the server's
    # acknowledgement empties the queue
    r.board.clock = clk
    cl = C.Client(d, hub, clk, 48)
    n = len(hub.sent(zcl.CMD_ALERT))
    cl.resend_alerts()
    again = hub.sent(zcl.CMD_ALERT)[n:]
    eq([(a.alert_code, a.alert_seq) for a in again], [(AL.ALERT_FUTURE_NOT_ACTIONED, aid + 1)],
       "resent")
    hub.put(zcl_server.encode_alert_ack, hub.seq(), MAN, aid + 1)
    cl.idle(1000)
    eq(d.unacked(), [], "acknowledged")
    eq(r.reboot().unacked(), [], "and saved")
