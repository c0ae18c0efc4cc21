# The OTA client (agent.zcl.client on agent.zcl.session) against the scripted Hub of
# tests/kit/hubkit.py on a fake clock, no sockets: retransmission after a lost request or a
# lost answer, on the measured timeout and with back-off, duplicates ignored; losses never
# end a session by themselves, only the stall timeout does; WAIT_FOR_DATA; Activate Image
# commands and their responses; alerts sent with the hash, resent each session until acked.
from agent.zcl import client as C
from agent.zcl import frames as zcl, server as zcl_server
from agent.store import state as S
from hal.sim.clock import FakeClock
from devkit import Rig, MAN
from hubkit import Hub
from tutil import eq, Image

V2 = Image("core_v2.ota")
T0 = 800000000
VERIFY_OK = 0x8F72                # GBCS alert: Firmware Verification Successful
ACT_SUCCESS, ACT_HASH_MISMATCH = 0, 2  # GBCS CS06 activation outcomes


def _rig():
    r = Rig()
    r.provision()
    return r


def _client(r, hub, page=0, **kw):
    r.board.clock = hub.clock
    cl = C.Client(r.dev, hub, hub.clock, 48, **kw)
    cl.page = page  # Image Block Requests unless a test says otherwise
    return cl


def _hub(**kw):
    return Hub(FakeClock(T0), V2, 2, limit_s=86400, **kw)


def _requests(hub, off):
    return [(t, f.seq) for t, f in zip(hub.times, hub.sent(zcl.CMD_BLOCK_REQ))
            if f.offset == off]


def _gaps(ts):
    return [b - a for a, b in zip(ts, ts[1:])]


def test_a_lost_request_is_sent_again_on_the_measured_timeout_with_back_off():
    r = _rig()
    hub = _hub()
    off = 48 * 60

    def lose(h, f):
        return f.command == zcl.CMD_BLOCK_REQ and f.offset == off and len(h.lost) < 3
    hub.lose = lose
    cl = _client(r, hub)
    eq(C.OUTCOMES[cl.session()], "held", "outcome")
    # round trips of 2 ms: the timeout is the floor, 20 ms, doubled at each retry
    got = _requests(hub, off)
    eq(len(got), 1, "the server saw the request once")
    times = [t for t, _f in hub.lost] + [got[0][0]]
    eq(_gaps(times), [20, 40, 80], "retransmission gaps, ms")
    eq(set(f.seq for _t, f in hub.lost), set([got[0][1]]), "one sequence number")
    eq(cl.retransmits, 3, "retransmissions")
    eq(r.dev.st.phase, S.HELD, "phase")


def test_the_first_request_waits_the_initial_timeout():
    r = _rig()
    hub = _hub()

    def lose(h, f):
        return f.command == zcl.CMD_QUERY_NEXT and not h.lost
    hub.lose = lose
    cl = _client(r, hub, timeout_ms=700)
    eq(C.OUTCOMES[cl.session()], "held", "outcome")
    query = hub.sent(zcl.CMD_QUERY_NEXT)[0]
    eq(hub.lost[0][1].seq, query.seq, "the same query again")
    eq(hub.times[0] - hub.lost[0][0], 700 + 2, "no round trip measured yet: 700 ms")


def test_a_lost_answer_brings_the_same_request_again():
    r = _rig()
    hub = _hub(rtt_ms=30)
    offs = (48 * 50, 48 * 51)

    def hook(h, f):
        if f.offset in offs and len(_requests(h, f.offset)) == 1:
            return False  # the server answers; the answer is lost
    hub.hook = hook
    cl = _client(r, hub)
    eq(C.OUTCOMES[cl.session()], "held", "outcome")
    rto = cl._rto()
    assert 30 <= rto < 40, rto  # the round trip and a small deviation
    first = _requests(hub, offs[0])
    second = _requests(hub, offs[1])
    eq(len(first), 2, "requests for the first block")
    eq(first[0][1], first[1][1], "same sequence number")
    # the timeout is that of the 30 ms round trips, the same at the next loss
    eq(_gaps([t for t, _s in first]), _gaps([t for t, _s in second]), "the same timeout")
    assert 30 <= first[1][0] - first[0][0] < 40, first
    eq(cl.retransmits, 2, "retransmissions")


def test_duplicate_answers_are_ignored():
    r = _rig()
    hub = _hub()

    def hook(h, f):
        h.block(f)  # every block answered twice
    hub.hook = hook
    cl = _client(r, hub)
    eq(C.OUTCOMES[cl.session()], "held", "outcome")
    offs = [f.offset for f in hub.sent(zcl.CMD_BLOCK_REQ)]
    eq(offs, sorted(set(offs)), "each block asked for once, in order")
    eq(cl.retransmits, 0, "retransmissions")
    eq(cl.bytes, len(V2), "bytes taken")
    eq(r.dev.st.held_version, 2, "held")


def test_twenty_losses_in_a_row_do_not_end_the_session():
    r = _rig()
    hub = _hub(cur=0, up=0)  # activate at once

    def lose(h, f):
        return f.command == zcl.CMD_BLOCK_REQ and h.blocks >= 50 and len(h.lost) < 20
    hub.lose = lose
    out = _client(r, hub, retries=8).session()
    eq(len(hub.lost), 20, "lost")
    eq(C.OUTCOMES[out], "activate", "outcome")
    assert r.reboot().trial


def test_a_dead_server_ends_the_session_after_the_stall_timeout():
    r = _rig()
    hub = _hub()

    def lose(h, f):
        return h.blocks >= 150
    hub.lose = lose
    clk = hub.clock
    t0 = clk.ticks_ms()
    out = _client(r, hub, retries=8, stall_s=120).session()
    eq(C.OUTCOMES[out], "stalled", "outcome")
    waited = clk.ticks_ms() - t0
    assert 120000 <= waited <= 140000, waited
    # the checkpoint is kept: a later session continues the download
    assert r.dev.st.next > 0
    hub.lose = None
    eq(C.OUTCOMES[_client(r, hub).session()], "held", "next session")
    assert hub.sent(zcl.CMD_BLOCK_REQ)[-1].offset >= r.dev.st.next - 48


def test_wait_for_data_asks_again_after_the_wait_then_paces_the_blocks():
    r = _rig()
    hub = _hub()
    clk = hub.clock

    def hook(h, f):
        if h.blocks == 10:
            h.wait(f.seq, clk.now(), clk.now() + 5, 250)  # in 5 s, then 250 ms apart
            return False
        if h.blocks == 20:
            h.wait(f.seq, 0, 3)  # relative: in 3 s
            return False
    hub.hook = hook
    cl = _client(r, hub)
    eq(C.OUTCOMES[cl.session()], "held", "outcome")
    reqs = hub.sent(zcl.CMD_BLOCK_REQ)
    eq(reqs[10].offset, reqs[9].offset, "the block waited for is asked for again")
    eq(hub.times[10] - hub.times[9], 2 + 5000 + 250, "the wait and the period, ms")
    eq(_gaps(hub.times[10:14]), [2 + 250] * 3, "blocks a period apart")
    eq(reqs[20].offset, reqs[19].offset, "again")
    eq(hub.times[20] - hub.times[19], 2 + 3000, "a relative wait; its period is 0")
    eq(cl.retransmits, 0, "no retransmission")


def _held():
    r = _rig()
    hub = _hub()
    cl = _client(r, hub)
    eq(C.OUTCOMES[cl.session()], "held", "outcome")
    eq(r.dev.st.act_time, S.WAIT_COMMAND, "waits for a command")
    return r, hub, cl


def test_activate_image_naming_the_held_image_activates_it():
    r, hub, cl = _held()
    digest = r.dev.st.mi_hash
    hub.activate(digest)
    n = len(hub.got)
    assert cl.idle(5000), "reset needed"
    rsp = hub.got[n:]
    eq([f.command for f in rsp], [zcl.CMD_ACTIVATE_RSP], "answers")
    eq((rsp[0].seq, rsp[0].mfr_code, rsp[0].outcome, rsp[0].digest),
       (hub._seq, MAN, ACT_SUCCESS, digest), "Activate Response")
    assert r.reboot().trial


def test_activate_image_with_another_hash_or_manufacturer():
    r, hub, cl = _held()
    hub.activate(bytes(32))
    hub.activate(r.dev.st.mi_hash, 0, 0x9999)  # not our manufacturer code: ignored
    n = len(hub.got)
    assert not cl.idle(5000), "no reset"
    rsp = hub.got[n:]
    eq([(f.command, f.outcome, f.digest) for f in rsp],
       [(zcl.CMD_ACTIVATE_RSP, ACT_HASH_MISMATCH, bytes(32))], "answers")
    eq(r.dev.st.phase, S.HELD, "still held")


def test_activate_image_at_a_time_is_scheduled():
    r, hub, cl = _held()
    hub.activate(r.dev.st.mi_hash, hub.clock.now() + 60)
    assert not cl.idle(1000), "not yet"
    eq(hub.got[-1].outcome, ACT_SUCCESS, "scheduled")
    assert not cl.idle(50000), "still not"
    assert cl.idle(10000), "activated at its time"


def test_alerts_carry_the_hash_and_are_sent_until_acknowledged():
    r = _rig()
    hub = _hub()
    eq(C.OUTCOMES[_client(r, hub).session()], "held", "outcome")
    a = hub.sent(zcl.CMD_ALERT)
    eq([(f.alert_code, f.mfr_code, f.digest) for f in a],
       [(VERIFY_OK, MAN, r.dev.st.mi_hash)], "alerts")
    # not acknowledged: the next session sends it again first, with its id
    n = len(hub.got)
    _client(r, hub).session()
    again = hub.got[n]
    eq((again.command, again.alert_code, again.alert_seq),
       (zcl.CMD_ALERT, VERIFY_OK, a[0].alert_seq), "resent")
    # an ack from another manufacturer code counts for nothing; ours does
    hub.put(zcl_server.encode_alert_ack, 1, 0x9999, a[0].alert_seq)
    hub.put(zcl_server.encode_alert_ack, 2, MAN, a[0].alert_seq)
    cl = _client(r, hub)
    cl.idle(1)  # one frame
    eq(len(r.dev.unacked()), 1, "after the foreign ack")
    cl.idle(1)  # one frame
    eq(len(r.dev.unacked()), 0, "after ours")
    n = len(hub.got)
    _client(r, hub).session()
    eq(hub.sent(zcl.CMD_ALERT)[len(a) + 1:], [], "nothing to send again")
    eq(hub.got[n].command, zcl.CMD_QUERY_NEXT, "the session starts with its query")


def test_a_server_that_acknowledges_at_once():
    r = _rig()
    hub = _hub(ack=True)
    eq(C.OUTCOMES[_client(r, hub).session()], "held", "outcome")
    eq(len(hub.sent(zcl.CMD_ALERT)), 1, "alerts")
    eq(r.dev.unacked(), [], "acknowledged within the session")
