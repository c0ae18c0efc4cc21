# ZCL OTA Upgrade cluster frames: every command both ways, sizes, malformed frames.
import struct
import binascii

from agent.zcl import frames as zcl, server as zcl_server
from agent.errors import BAD_FRAME
from tutil import raises, eq

MFR = 0x1234
HASH = bytes(range(0xE0, 0x100))
IEEE = b"\x11\x22\x33\x44\x55\x66\x77\x88"
DATA = bytes((i * 37) & 0xFF for i in range(200))

PAYLOAD_FIELDS = (
    "status", "payload_type", "jitter", "field_control", "manufacturer", "image_type",
    "file_version", "hw_version", "image_size", "offset", "max_size", "ieee", "min_period",
    "page_size", "spacing", "current_time", "request_time", "upgrade_time", "stack_version",
    "rsp_command", "alert_seq", "alert_code", "reason", "extra", "activation_time", "outcome")

UP = False
DOWN = True

# (encoder, args, command, direction to_client, header manufacturer code, fields)
# fields lists every payload field that is set; "data" and "digest" are read from the buffer.
CASES = (
    (zcl_server.encode_image_notify, (1, 0, 50), 0x00, DOWN, None,
     {"payload_type": 0, "jitter": 50}),
    (zcl_server.encode_image_notify, (2, 1, 1, MFR), 0x00, DOWN, None,
     {"payload_type": 1, "jitter": 1, "manufacturer": MFR}),
    (zcl_server.encode_image_notify, (3, 2, 100, MFR, 0x0203), 0x00, DOWN, None,
     {"payload_type": 2, "jitter": 100, "manufacturer": MFR, "image_type": 0x0203}),
    (zcl_server.encode_image_notify, (4, 3, 100, MFR, 0x0203, 0x01020304), 0x00, DOWN, None,
     {"payload_type": 3, "jitter": 100, "manufacturer": MFR, "image_type": 0x0203,
      "file_version": 0x01020304}),
    (zcl.encode_query_next, (5, MFR, 0xFFFF, 0x10000001), 0x01, UP, None,
     {"field_control": 0, "manufacturer": MFR, "image_type": 0xFFFF,
      "file_version": 0x10000001}),
    (zcl.encode_query_next, (6, MFR, 7, 0x20, 0x0102), 0x01, UP, None,
     {"field_control": 1, "manufacturer": MFR, "image_type": 7, "file_version": 0x20,
      "hw_version": 0x0102}),
    (zcl_server.encode_query_next_response, (7, 0x00, MFR, 7, 0x21, 123456), 0x02, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "image_size": 123456}),
    (zcl_server.encode_query_next_response, (8, 0x98), 0x02, DOWN, None, {"status": 0x98}),
    (zcl_server.encode_query_next_response, (9, 0x7E), 0x02, DOWN, None, {"status": 0x7E}),
    (zcl.encode_block_request, (10, MFR, 7, 0x21, 0, 48), 0x03, UP, None,
     {"field_control": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 0, "max_size": 48}),
    (zcl.encode_block_request, (11, MFR, 7, 0x21, 0xFFFFFFFF, 63, IEEE), 0x03, UP, None,
     {"field_control": 1, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 0xFFFFFFFF, "max_size": 63, "ieee": IEEE}),
    (zcl.encode_block_request, (12, MFR, 7, 0x21, 4096, 63, None, 250), 0x03, UP, None,
     {"field_control": 2, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 4096, "max_size": 63, "min_period": 250}),
    (zcl.encode_block_request, (13, MFR, 7, 0x21, 5, 255, IEEE, 0xFFFF), 0x03, UP, None,
     {"field_control": 3, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 5, "max_size": 255, "ieee": IEEE, "min_period": 0xFFFF}),
    (zcl.encode_page_request, (14, MFR, 7, 0x21, 64, 50, 1024, 100), 0x04, UP, None,
     {"field_control": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 64, "max_size": 50, "page_size": 1024, "spacing": 100}),
    (zcl.encode_page_request, (15, MFR, 7, 0x21, 64, 50, 1024, 100, IEEE), 0x04, UP, None,
     {"field_control": 1, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 64, "max_size": 50, "page_size": 1024, "spacing": 100, "ieee": IEEE}),
    (zcl_server.encode_block_response, (16, MFR, 7, 0x21, 4096, DATA[:48]), 0x05, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 4096, "data": DATA[:48]}),
    (zcl_server.encode_block_response, (17, MFR, 7, 0x21, 0, b""), 0x05, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 0, "data": b""}),
    (zcl_server.encode_block_response, (18, MFR, 7, 0x21, 9, DATA + DATA[:55]), 0x05, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 9, "data": DATA + DATA[:55]}),
    (zcl_server.encode_block_wait, (19, 700000000, 700000060, 500), 0x05, DOWN, None,
     {"status": 0x97, "current_time": 700000000, "request_time": 700000060,
      "min_period": 500}),
    (zcl_server.encode_block_status, (20,), 0x05, DOWN, None, {"status": 0x95}),
    (zcl_server.encode_block_status, (21, 0x98), 0x05, DOWN, None, {"status": 0x98}),
    (zcl.encode_upgrade_end, (22, 0x00, MFR, 7, 0x21), 0x06, UP, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21}),
    (zcl.encode_upgrade_end, (23, 0x96, MFR, 7, 0x21), 0x06, UP, None,
     {"status": 0x96, "manufacturer": MFR, "image_type": 7, "file_version": 0x21}),
    (zcl.encode_upgrade_end, (24, 0x99, MFR, 7, 0x21), 0x06, UP, None,
     {"status": 0x99, "manufacturer": MFR, "image_type": 7, "file_version": 0x21}),
    (zcl_server.encode_upgrade_end_response, (25, MFR, 7, 0x21, 700000000, 0xFFFFFFFF), 0x07, DOWN,
     None, {"manufacturer": MFR, "image_type": 7, "file_version": 0x21,
            "current_time": 700000000, "upgrade_time": 0xFFFFFFFF}),
    (zcl_server.encode_upgrade_end_response, (26, MFR, 7, 0x21, 0, 30), 0x07, DOWN, None,
     {"manufacturer": MFR, "image_type": 7, "file_version": 0x21, "current_time": 0,
      "upgrade_time": 30}),
    (zcl.encode_file_request, (27, IEEE, MFR, 0xFFC0, 0x21, 2), 0x08, UP, None,
     {"ieee": IEEE, "manufacturer": MFR, "image_type": 0xFFC0, "file_version": 0x21,
      "stack_version": 2}),
    (zcl_server.encode_file_response, (28, 0, MFR, 0xFFC0, 0x21, 999), 0x09, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 0xFFC0, "file_version": 0x21,
      "image_size": 999}),
    (zcl_server.encode_file_response, (29, 0x98), 0x09, DOWN, None, {"status": 0x98}),
    (zcl.encode_alert, (30, MFR, 1, 0x8F1B, 87), 0xF0, UP, MFR,
     {"field_control": 0, "alert_seq": 1, "alert_code": 0x8F1B, "reason": 87}),
    (zcl.encode_alert, (31, MFR, 2, 0x8F72, 0, HASH), 0xF0, UP, MFR,
     {"field_control": 1, "alert_seq": 2, "alert_code": 0x8F72, "reason": 0,
      "digest": HASH}),
    (zcl.encode_alert, (32, MFR, 3, 0x8F43, 0, None, 0x00010203), 0xF0, UP, MFR,
     {"field_control": 2, "alert_seq": 3, "alert_code": 0x8F43, "reason": 0,
      "extra": 0x00010203}),
    (zcl.encode_alert, (33, MFR, 0xFFFF, 0x8F1C, 63, HASH, 0xFFFFFFFF), 0xF0, UP, MFR,
     {"field_control": 3, "alert_seq": 0xFFFF, "alert_code": 0x8F1C, "reason": 63,
      "digest": HASH, "extra": 0xFFFFFFFF}),
    (zcl_server.encode_alert_ack, (34, MFR, 0xFFFF), 0xF1, DOWN, MFR, {"alert_seq": 0xFFFF}),
    (zcl_server.encode_activate, (35, MFR, HASH, 0), 0xF2, DOWN, MFR,
     {"digest": HASH, "activation_time": 0}),
    (zcl_server.encode_activate, (36, MFR, HASH, 800000000), 0xF2, DOWN, MFR,
     {"digest": HASH, "activation_time": 800000000}),
    (zcl.encode_activate_response, (37, MFR, 0, HASH), 0xF3, UP, MFR,
     {"outcome": 0, "digest": HASH}),
    (zcl.encode_activate_response, (38, MFR, 3, HASH), 0xF3, UP, MFR,
     {"outcome": 3, "digest": HASH}),
    (zcl.encode_default_response, (39, True, 0x06, 0x00), 0x0B, DOWN, None,
     {"rsp_command": 0x06, "status": 0}),
    (zcl.encode_default_response, (40, False, 0x05, 0x81), 0x0B, UP, None,
     {"rsp_command": 0x05, "status": 0x81}),
    (zcl.encode_default_response, (41, True, 0xF0, 0x83, MFR), 0x0B, DOWN, MFR,
     {"rsp_command": 0xF0, "status": 0x83}),
)


def unhex(s):
    return binascii.unhexlify(s.replace(" ", ""))


def check(case, buf, n, f):
    enc, args, cmd, down, mfr, fields = case
    what = "%s%r" % (cmd, args[:3])
    eq(f.known, True, what)
    eq(f.command, cmd, what)
    eq(f.seq, args[0], what)
    eq(f.to_client, down, what)
    eq(f.mfr_code, mfr, what)
    eq(f.cluster, cmd != 0x0B, what)
    eq(f.payload_off, 3 if mfr is None else 5, what)
    for name in PAYLOAD_FIELDS:
        eq(getattr(f, name), fields.get(name), what + " " + name)
    if "data" in fields:
        eq(f.data_off + f.data_len, n, what)
        eq(bytes(buf[f.data_off:f.data_off + f.data_len]), fields["data"], what)
    else:
        eq(f.data_off, None, what)
        eq(f.data_len, None, what)
    if "digest" in fields:
        eq(bytes(buf[f.hash_off:f.hash_off + 32]), fields["digest"], what)
    else:
        eq(f.hash_off, None, what)


def test_struct_sizes():
    for fmt, size in ((zcl.HDR_FMT, 3), (zcl.HDR_MFR_FMT, 5), (zcl.NOTIFY_FMT, 10),
                      (zcl.QUERY_FMT, 9), (zcl.QUERY_RSP_FMT, 13), (zcl.BLOCK_REQ_FMT, 14),
                      (zcl.PAGE_REQ_FMT, 18), (zcl.BLOCK_RSP_FMT, 14), (zcl.WAIT_FMT, 11),
                      (zcl.END_FMT, 9), (zcl.END_RSP_FMT, 16), (zcl.FILE_REQ_FMT, 18),
                      (zcl.DEFAULT_RSP_FMT, 2), (zcl.ALERT_FMT, 7), (zcl.ALERT_ACK_FMT, 2),
                      (zcl.ACTIVATE_FMT, 36), (zcl.ACTIVATE_RSP_FMT, 33), (zcl.U16_FMT, 2),
                      (zcl.U32_FMT, 4)):
        eq(struct.calcsize(fmt), size, fmt)
        assert fmt[0] == "<" and " " not in fmt
    eq(zcl.FRAME_MAX, 5 + struct.calcsize(zcl.BLOCK_RSP_FMT) + 255, "FRAME_MAX")


def test_round_trip_every_command():
    buf = bytearray(zcl.FRAME_MAX)
    f = zcl.Frame()
    for case in CASES:
        n = case[0](buf, *case[1])
        assert 3 <= n <= zcl.FRAME_MAX
        g = zcl.decode(buf, n, f)
        assert g is f
        check(case, buf, n, f)
        # the same frame from a memoryview, a bytes copy and a longer buffer
        check(case, buf, n, zcl.decode(memoryview(buf), n))
        check(case, buf, n, zcl.decode(bytes(buf[:n]), n))


def test_known_bytes():
    # layouts written out by hand from the ZCL OTA cluster definition
    b = zcl_server.build(zcl.encode_block_request, 0x10, 0x1234, 0x5678, 0x01020304, 0x100, 0x30)
    eq(b, unhex("01 10 03 00 3412 7856 04030201 00010000 30"))
    b = zcl_server.build(zcl.encode_block_request, 1, 0x1234, 0x5678, 1, 2, 3, IEEE, 0x0A0B)
    eq(b, unhex("01 01 03 03 3412 7856 01000000 02000000 03 1122334455667788 0B0A"))
    b = zcl_server.build(zcl.encode_query_next, 0xFF, 0x1234, 0x5678, 0x01020304, 0x0001)
    eq(b, unhex("01 FF 01 01 3412 7856 04030201 0100"))
    b = zcl_server.build(zcl_server.encode_query_next_response, 2, 0x98)
    eq(b, unhex("19 02 02 98"))
    b = zcl_server.build(zcl_server.encode_block_response, 3, 0x1234, 0x5678, 9, 0x40, b"\x7e\x7d")
    eq(b, unhex("19 03 05 00 3412 7856 09000000 40000000 02 7E7D"))
    b = zcl_server.build(zcl_server.encode_block_wait, 4, 1, 2, 3)
    eq(b, unhex("19 04 05 97 01000000 02000000 0300"))
    b = zcl_server.build(zcl.encode_upgrade_end, 5, 0x96, 0x1234, 0x5678, 9)
    eq(b, unhex("01 05 06 96 3412 7856 09000000"))
    b = zcl_server.build(zcl_server.encode_upgrade_end_response, 6, 0x1234, 0x5678, 9, 0,
                         0xFFFFFFFF)
    eq(b, unhex("19 06 07 3412 7856 09000000 00000000 FFFFFFFF"))
    b = zcl_server.build(zcl_server.encode_image_notify, 7, 3, 0x64, 0x1234, 0x5678, 9)
    eq(b, unhex("19 07 00 03 64 3412 7856 09000000"))
    b = zcl_server.build(zcl.encode_alert, 8, 0xABCD, 0x0102, 0x8F72, 0x0033, HASH, 0x0A0B0C0D)
    eq(b, unhex("05 CDAB 08 F0 03 0201 728F 3300") + HASH + unhex("0D0C0B0A"))
    b = zcl_server.build(zcl_server.encode_alert_ack, 9, 0xABCD, 0x0102)
    eq(b, unhex("1D CDAB 09 F1 0201"))
    b = zcl_server.build(zcl_server.encode_activate, 10, 0xABCD, HASH, 0x0A0B0C0D)
    eq(b, unhex("1D CDAB 0A F2") + HASH + unhex("0D0C0B0A"))
    b = zcl_server.build(zcl.encode_activate_response, 11, 0xABCD, 2, HASH)
    eq(b, unhex("15 CDAB 0B F3 02") + HASH)
    b = zcl_server.build(zcl.encode_default_response, 12, True, 0xF0, 0x83, 0xABCD)
    eq(b, unhex("1C CDAB 0C 0B F0 83"))


def test_block_data_not_copied():
    buf = bytearray(zcl.FRAME_MAX)
    n = zcl_server.encode_block_response(buf, 1, MFR, 7, 1, 0, DATA[:63])
    mv = memoryview(buf)
    f = zcl.decode(mv, n)
    view = mv[f.data_off:f.data_off + f.data_len]
    buf[f.data_off] ^= 0xFF  # the view shares the frame buffer
    eq(view[0], DATA[0] ^ 0xFF)


def test_encoder_writes_into_a_memoryview_at_an_offset():
    big = bytearray(zcl.FRAME_MAX + 10)
    n = zcl.encode_block_request(memoryview(big)[10:], 3, MFR, 7, 1, 2, 50, IEEE, 9)
    f = zcl.decode(memoryview(big)[10:], n)
    eq((f.offset, f.max_size, f.ieee, f.min_period), (2, 50, IEEE, 9))


def test_every_truncation_and_extension_is_bad_frame():
    buf = bytearray(zcl.FRAME_MAX + 1)
    for case in CASES:
        n = case[0](buf, *case[1])
        frame = bytes(buf[:n])
        for k in range(n):
            raises(BAD_FRAME, zcl.decode, frame, k)
        raises(BAD_FRAME, zcl.decode, frame + b"\x00", n + 1)
        raises(BAD_FRAME, zcl.decode, frame, n + 1)  # n beyond the buffer


def test_wrong_direction_is_bad_frame():
    buf = bytearray(zcl.FRAME_MAX)
    for case in CASES:
        if case[2] == 0x0B:
            continue  # Default Response goes either way
        n = case[0](buf, *case[1])
        buf[0] ^= zcl.FC_TO_CLIENT
        e = raises(BAD_FRAME, zcl.decode, buf, n)
        assert "direction" in e.detail


def test_reserved_frame_type_is_bad_frame():
    raises(BAD_FRAME, zcl.decode, unhex("02 01 01"), 3)
    raises(BAD_FRAME, zcl.decode, unhex("1B 01 05 95"), 4)


def test_bad_payload_values():
    # Image Notify payload type 4
    raises(BAD_FRAME, zcl.decode, unhex("19 01 00 04 64"), 5)
    # Block Response SUCCESS whose data size overruns / underruns the frame
    ok = zcl_server.build(zcl_server.encode_block_response, 1, MFR, 7, 1, 0, b"abcd")
    bad = bytearray(ok)
    bad[16] = 5
    raises(BAD_FRAME, zcl.decode, bad, len(bad))
    bad[16] = 3
    raises(BAD_FRAME, zcl.decode, bad, len(bad))
    # Query Next Image Response: fields after a non-SUCCESS status
    raises(BAD_FRAME, zcl.decode, unhex("19 01 02 98 3412"), 6)
    # Alert with a reserved field control bit
    a = bytearray(zcl_server.build(zcl.encode_alert, 1, MFR, 1, 0x8F1B, 0))
    a[5] = 0x04
    raises(BAD_FRAME, zcl.decode, a, len(a))
    # Activate Response outcome out of range
    r = bytearray(zcl_server.build(zcl.encode_activate_response, 1, MFR, 3, HASH))
    r[5] = 4
    raises(BAD_FRAME, zcl.decode, r, len(r))
    # a cluster command with no payload
    raises(BAD_FRAME, zcl.decode, unhex("19 01 05"), 3)


def test_unknown_commands_are_left_unparsed():
    f = zcl.decode(unhex("01 07 0A 01 02"), 5)  # cluster command 0x0A
    eq((f.known, f.command, f.seq, f.payload_off, f.status), (False, 0x0A, 7, 3, None))
    f = zcl.decode(unhex("00 08 00 00 00"), 5)  # global Read Attributes
    eq((f.known, f.cluster, f.command, f.seq), (False, False, 0, 8))
    # a standard command id with the manufacturer-specific bit is another command
    f = zcl.decode(unhex("1D 3412 09 05 00"), 6)
    eq((f.known, f.mfr_code, f.command, f.payload_off), (False, MFR, 5, 5))
    # our manufacturer commands from another manufacturer, when we say who we are
    ack = zcl_server.build(zcl_server.encode_alert_ack, 3, 0x9999, 7)
    eq(zcl.decode(ack, len(ack), None, MFR).known, False)
    eq(zcl.decode(ack, len(ack), None, 0x9999).alert_seq, 7)
    eq(zcl.decode(ack, len(ack)).alert_seq, 7)
    # and without the manufacturer-specific bit 0xF1 is nothing known
    f = zcl.decode(unhex("19 03 F1 0700"), 5)
    eq(f.known, False)


def test_frame_is_cleared_between_decodes():
    buf = bytearray(zcl.FRAME_MAX)
    f = zcl.Frame()
    n = zcl_server.encode_block_response(buf, 1, MFR, 7, 1, 0, b"xyz")
    zcl.decode(buf, n, f)
    n = zcl_server.encode_block_status(buf, 2)
    zcl.decode(buf, n, f)
    eq((f.status, f.data_off, f.data_len, f.manufacturer, f.seq), (0x95, None, None, None, 2))


def test_header_flags():
    buf = bytearray(zcl.FRAME_MAX)
    zcl.encode_query_next(buf, 1, MFR, 7, 1)
    eq(buf[0], zcl.FC_CLUSTER, "requests ask for a default response on error")
    zcl_server.encode_block_response(buf, 1, MFR, 7, 1, 0, b"")
    eq(buf[0], zcl.FC_CLUSTER | zcl.FC_TO_CLIENT | zcl.FC_NO_DEFAULT_RSP)
    zcl.encode_alert(buf, 1, MFR, 1, 0x8F72, 0)
    eq(buf[0], zcl.FC_CLUSTER | zcl.FC_MFR, "plain servers may answer an alert")
    zcl.encode_activate_response(buf, 1, MFR, 0, HASH)
    eq(buf[0], zcl.FC_CLUSTER | zcl.FC_MFR | zcl.FC_NO_DEFAULT_RSP)
    eq(zcl.encode_header(buf, zcl.FC_CLUSTER | zcl.FC_MFR, 0x1FF, 3), 3)
    eq(bytes(buf[:3]), b"\x01\xff\x03", "FC_MFR dropped without a code; seq masked")
    eq(zcl.encode_header(buf, zcl.FC_GLOBAL, 2, 0x0B, 0xBEEF), 5)
    eq(bytes(buf[:5]), b"\x04\xef\xbe\x02\x0b")


def test_encoder_argument_checks():
    buf = bytearray(zcl.FRAME_MAX)
    raises(BAD_FRAME, zcl_server.encode_block_response, buf, 1, MFR, 7, 1, 0, bytes(256))
    raises(BAD_FRAME, zcl_server.encode_image_notify, buf, 1, 4, 10)
    raises(BAD_FRAME, zcl_server.encode_activate, buf, 1, MFR, HASH[:31], 0)
    raises(BAD_FRAME, zcl.encode_alert, buf, 1, MFR, 1, 0x8F72, 0, HASH + b"\x00")
    raises(BAD_FRAME, zcl.encode_block_request, buf, 1, MFR, 7, 1, 0, 50, IEEE[:7])
    eq(len(buf), zcl.FRAME_MAX, "a wrong-length field never resizes the buffer")


def test_parse_adds_bytes():
    f = zcl_server.parse(zcl_server.build(zcl_server.encode_block_response, 1, MFR, 7, 1, 0,
                                          b"hello"))
    eq((f.data, f.digest), (b"hello", None))
    f = zcl_server.parse(zcl_server.build(zcl_server.encode_activate, 1, MFR, HASH, 0), MFR)
    eq((f.data, f.digest), (None, HASH))
