# One request and its answer (agent.zcl.session.Session) over a scripted link on a fake
# clock: the retransmission timeout estimated from measured round trips (RFC 6298), Karn's
# rule, back-off and retries, which frame answers a request and what happens to the others,
# the Image Block Response recognized in place.
from agent.zcl import frames as zcl, server as zsrv
from agent.zcl.session import Session, BLOCK, STALL_MAX_S, request
from hal.sim.clock import FakeClock
from tutil import eq

MFR = 0x1234


class Link:
    """Each frame sent is recorded (clock ms, bytes) and handed to answer(link, frame),
    which may schedule frames for the device with later(ms, frame)."""

    def __init__(self, clock, answer=None):
        self.clock = clock
        self.answer = answer
        self.sent = []
        self.due = []  # (clock ms, frame), in order

    def later(self, ms, frame):
        self.due.append((self.clock.ticks_ms() + ms, frame))
        self.due.sort(key=lambda d: d[0])

    def send(self, v):
        b = bytes(v)
        self.sent.append((self.clock.ticks_ms(), b))
        if self.answer:
            self.answer(self, b)

    def recv(self, buf, timeout_ms):
        now = self.clock.ticks_ms()
        if not self.due or self.due[0][0] > now + timeout_ms:
            self.clock.sleep_ms(timeout_ms)
            return 0
        t, b = self.due.pop(0)
        if t > now:
            self.clock.sleep_ms(t - now)
        buf[0:len(b)] = b
        return len(b)


class Recorder(Session):
    def __init__(self, link, clock, **kw):
        Session.__init__(self, link, clock, MFR, **kw)
        self.other = []

    def _unsolicited(self, f):
        self.other.append((f.command, f.seq))


def answering(ms_list):
    """Query Next Image answered after each of ms_list in turn (None: not answered)."""
    it = iter(ms_list)

    def answer(link, b):
        ms = next(it)
        if ms is not None:
            link.later(ms, zsrv.build(zsrv.encode_query_next_response, b[1], 0x98))
    return answer


def query(s):
    n = zcl.encode_query_next(s._tx, s._next_seq(), MFR, 7, 1)
    return request(s, memoryview(s._tx)[:n], zcl.CMD_QUERY_NEXT_RSP)


def rfc6298(samples, k=4):
    # the estimator in floating point: SRTT, RTTVAR, RTO = SRTT + K * RTTVAR
    srtt = var = None
    for r in samples:
        if srtt is None:
            srtt, var = r, r / 2.0
        else:
            var = 0.75 * var + 0.25 * abs(srtt - r)
            srtt = 0.875 * srtt + 0.125 * r
    return srtt + k * var


def test_timeout_from_measured_round_trips():
    clk = FakeClock(1000)
    rtts = [100, 100, 120, 180, 80, 90, 100, 100, 150, 60]  # each within the timeout
    s = Session(Link(clk, answering(rtts)), clk, MFR, timeout_ms=700, min_timeout_ms=20)
    eq(s._rto(), 700, "no round trip measured yet")
    for i in range(len(rtts)):
        f = query(s)
        eq((f.command, f.status), (zcl.CMD_QUERY_NEXT_RSP, 0x98), "answer")
        want = rfc6298(rtts[:i + 1])
        assert abs(s._rto() - want) <= 4, (i, s._rto(), want)  # integer ms, x8 and x4
    eq(s.retransmits, 0, "retransmissions")
    # fast round trips: the floor
    s = Session(Link(clk, answering([1] * 20)), clk, MFR, min_timeout_ms=20)
    for _ in range(20):
        query(s)
    eq(s._rto(), 20, "at least min_timeout_ms")


def test_back_off_doubles_up_to_8_s_and_the_retries_run_out():
    clk = FakeClock(1000)
    link = Link(clk, answering([None] * 20))
    s = Session(link, clk, MFR, timeout_ms=500, retries=7)
    eq(query(s), None, "no answer")
    times = [t for t, _b in link.sent]
    eq(len(times), 8, "one request and 7 retries")
    eq([b - a for a, b in zip(times, times[1:])], [500, 1000, 2000, 4000, 8000, 8000, 8000],
       "waits")
    eq(set(b for _t, b in link.sent), set([link.sent[0][1]]), "the same frame every time")


def test_karn_an_answer_after_a_retransmission_is_not_timed():
    clk = FakeClock(1000)
    plan = [100] * 10
    link = Link(clk)
    s = Session(link, clk, MFR)

    def answer(lk, b):
        ms = plan.pop(0)
        if ms is not None:
            lk.later(ms, zsrv.build(zsrv.encode_query_next_response, b[1], 0x98))
    link.answer = answer
    for _ in range(10):
        query(s)
    rto = s._rto()
    assert 100 < rto < 150, rto
    # the next answer comes late: 5 ms after the retransmission (an answer to the first
    # copy or to the second; nobody can tell), then round trips go on at 100 ms
    plan[:] = [rto + 5, None] + [100] * 10
    f = query(s)
    eq((f.command, len(link.sent)), (zcl.CMD_QUERY_NEXT_RSP, 12), "answered after one retry")
    eq(s._rto(), rto, "not timed")
    eq(s.retransmits, 1, "retransmissions")
    query(s)
    eq(len(link.sent), 13, "answered at once")
    assert s._rto() < rto, (s._rto(), rto)  # timed again: the deviation shrinks


def test_what_answers_a_request_and_what_does_not():
    clk = FakeClock(1000)
    link = Link(clk)
    s = Recorder(link, clk)

    def answer(lk, b):
        seq = b[1]
        lk.later(1, zsrv.build(zsrv.encode_query_next_response, (seq + 1) & 0xFF, 0x98))
        lk.later(2, zsrv.build(zsrv.encode_block_status, seq))            # another command
        lk.later(3, zsrv.build(zsrv.encode_alert_ack, 9, MFR, 4))          # manufacturer's
        lk.later(4, b"\x19\x05\x02\x00\x34")                              # malformed
        lk.later(5, b)                                                     # our own, echoed
        lk.later(6, zsrv.build(zsrv.encode_query_next_response, seq, 0x7E))
    link.answer = answer
    f = query(s)
    eq((f.status, f.seq), (0x7E, link.sent[0][1][1]), "the answer")
    seq = f.seq
    eq(s.other, [(zcl.CMD_QUERY_NEXT_RSP, (seq + 1) & 0xFF), (zcl.CMD_BLOCK_RSP, seq),
                 (zcl.CMD_ALERT_ACK, 9), (zcl.CMD_QUERY_NEXT, seq)], "handed on")
    eq((s.retransmits, len(link.sent)), (0, 1), "no retransmission")


def test_the_block_answer_is_recognized_in_place():
    clk = FakeClock(1000)
    link = Link(clk)
    s = Recorder(link, clk)
    zcl.encode_block_request(s._bq, 0, MFR, 7, 0x21, 0, 0)
    data = bytes(range(48))

    def answer(lk, b):
        seq, off = b[1], b[12] | b[13] << 8
        lk.later(1, zsrv.build(zsrv.encode_block_response, seq - 1, MFR, 7, 0x21, off, data))
        lk.later(2, zsrv.build(zsrv.encode_block_response, seq, MFR, 7, 0x21, off, data))
    link.answer = answer
    zcl.set_block_request(s._bq, s._next_seq(), 480, 48)
    f = request(s, s._bq, zcl.CMD_BLOCK_RSP)
    assert f is BLOCK, f
    eq(bytes(s._data(48)), data, "the data, in the receive buffer")
    eq(s.other, [(zcl.CMD_BLOCK_RSP, 0)], "an older block handed on")
    # a block that echoes other fields with our sequence number answers too, decoded: the
    # client checks its fields
    s.other = []
    zcl.set_block_request(s._bq, s._next_seq(), 960, 48)
    link.answer = lambda lk, b: lk.later(2, zsrv.build(zsrv.encode_block_response, b[1], MFR,
                                                       7, 0x22, 960, data))
    f = request(s, s._bq, zcl.CMD_BLOCK_RSP)
    assert f is not BLOCK
    eq((f.command, f.file_version, f.offset, s.other), (zcl.CMD_BLOCK_RSP, 0x22, 960, []),
       "decoded")


def test_sequence_numbers_and_the_stall_budget():
    clk = FakeClock(1000)
    s = Session(Link(clk), clk, MFR, stall_s=10 ** 7)
    eq(s.stall_s, STALL_MAX_S, "at most a day")
    eq(Session(Link(clk), clk, MFR, stall_s=30).stall_s, 30, "as given")
    seqs = [s._next_seq() for _ in range(300)]
    eq((seqs[0], seqs[254], seqs[255], seqs[256]), (1, 255, 0, 1), "one byte, wrapping")


def test_the_send_buffer_holds_the_longest_frame_the_device_sends():
    # _tx is sized for an Alert with the image's hash and an extra, the longest frame the
    # device builds there (the Activate Response, Query Next Image and Upgrade End are shorter)
    s = Session(Link(FakeClock()), FakeClock(), MFR)
    n = zcl.encode_alert(s._tx, 1, MFR, 7, 0x8F72, 3, b"\x5a" * zcl.HASH_SIZE, 0x01020304)
    eq(n, len(s._tx), "alert with hash and extra")
    f = zsrv.parse(bytes(s._tx[:n]))
    eq((f.alert_code, f.extra), (0x8F72, 0x01020304), "alert decoded")
    assert zcl.encode_activate_response(s._tx, 2, MFR, 0, b"\x5a" * zcl.HASH_SIZE) < n
    assert zcl.encode_query_next(s._tx, 3, MFR, 7, 1, 2) < n
    assert zcl.encode_upgrade_end(s._tx, 4, 0, MFR, 7, 1) < n
