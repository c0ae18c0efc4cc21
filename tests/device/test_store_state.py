# agent.store.state: the agent's state record, as the journal saves it. Its layout is on
# flash in every device: it must not move.
import struct

from agent.store import state as S
from agent.store.journal import REC_HDR, CRC_SIZE
from agent.crypto import sha256r
from tutil import eq


def _full():
    st = S.State()
    st.phase = S.ACTIVATING
    st.slot = 1
    st.flags = S.F_FUTURE | S.F_REVERTED
    st.next_alert = 0xFE
    st.fails = 2
    st.seq = 0x01020304
    st.next = 0x0A0B0C0D
    st.act_time = 0xFFFFFFFE
    st.held_version = 0x11223344
    st.held_seq = 7
    st.run_version = 0x55667788
    st.ident = bytes(range(32))
    st.mi_hash = bytes(range(100, 132))
    st.mi_state[:] = bytes(range(1, 101))
    st.sig_ok = b"\xA5" * 16
    st.alerts = [[0x8F72, 0, 0xFC, 2], [0x8F1C, 62, 0xFD, 0xFFFFFFFF]]
    return st


def test_sizes():
    eq(S.STATE_BASE, struct.calcsize(S.STATE_FMT), "record before the alerts")
    eq(S.ALERT_SIZE, struct.calcsize(S.ALERT_FMT), "alert")
    eq(S.STATE_SIZE, S.STATE_BASE + S.ALERTS * S.ALERT_SIZE, "record")
    eq(len(S.State().mi_state), sha256r.STATE_SIZE, "hash state")
    assert S.STATE_SIZE + REC_HDR + CRC_SIZE <= 256, "a journal record fits 256 bytes"


def test_round_trip():
    st = _full()
    buf = st.pack(bytearray(S.STATE_SIZE))
    got = S.State().unpack(buf)
    for name in ("phase", "slot", "flags", "next_alert", "fails", "seq", "next", "act_time",
                 "held_version", "held_seq", "run_version", "ident", "mi_hash", "sig_ok",
                 "alerts"):
        eq(getattr(got, name), getattr(st, name), name)
    eq(bytes(got.mi_state), bytes(st.mi_state), "mi_state")
    eq(bytes(got.pack(bytearray(S.STATE_SIZE))), bytes(buf), "packed again")


def test_layout_on_flash():
    # where each field lies in a saved record
    buf = _full().pack(bytearray(S.STATE_SIZE))
    eq(bytes(buf[0:8]), bytes((S.ACTIVATING, 1, 3, 2, 0xFE, 2, 0, 0)), "bytes")
    eq(struct.unpack_from("<6I", buf, 8),
       (0x01020304, 0x0A0B0C0D, 0xFFFFFFFE, 0x11223344, 7, 0x55667788), "words")
    eq(bytes(buf[32:64]), bytes(range(32)), "ident")
    eq(bytes(buf[64:96]), bytes(range(100, 132)), "mi_hash")
    eq(bytes(buf[96:196]), bytes(range(1, 101)), "mi_state")
    eq(bytes(buf[196:212]), b"\xA5" * 16, "sig_ok")
    eq(bytes(buf[212:220]), b"\x72\x8F\x00\xFC\x02\x00\x00\x00", "first alert")
    eq(bytes(buf[220:228]), b"\x1C\x8F\x3E\xFD\xFF\xFF\xFF\xFF", "second alert")
    eq(bytes(buf[228:244]), bytes(16), "no more alerts")
    eq(S.STATE_SIZE, 244, "size")


def test_fresh_state_and_alert_count():
    st = S.State()
    eq((st.phase, st.next, st.act_time, st.alerts), (S.IDLE, 0, S.WAIT_COMMAND, []), "fresh")
    buf = st.pack(bytearray(S.STATE_SIZE))
    eq(S.State().unpack(buf).act_time, S.WAIT_COMMAND, "act_time")
    # a count beyond ALERTS (a record of another build) reads ALERTS alerts, no more
    full = S.State()
    full.alerts = [[0x8F43, 0, i, i] for i in range(S.ALERTS)]
    buf = full.pack(bytearray(S.STATE_SIZE))
    buf[3] = 200
    got = S.State().unpack(buf)
    eq(len(got.alerts), S.ALERTS, "alerts read")
    eq([a[2] for a in got.alerts], list(range(S.ALERTS)), "ids")
