# What both sides of the ZCL OTA Upgrade cluster share (agent.zcl.frames): every command
# through the encoder of the side that sends it and the decoder of the side that receives
# it, the struct sizes and the byte offsets declared once, the ZCL header, and the decoding
# both sides run first (Default Response, direction rules, unknown commands).
import struct

from agent.zcl import frames as zcl, server as zsrv
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


def encode_file_request(buf, seq, ieee, manufacturer, image_type, file_version, stack):
    # Query Device Specific File Request: the device never sends one; the server decodes it
    o = zcl.encode_header(buf, zcl.FC_CLUSTER, seq, zsrv.CMD_FILE_REQ)
    struct.pack_into(zsrv.FILE_REQ_FMT, buf, o, ieee, manufacturer, image_type, file_version,
                     stack)
    return o + 18


# (encoder, args, command, direction to_client, header manufacturer code, fields)
# fields lists every payload field that is set; "data" and "digest" are read from the buffer.
CASES = (
    (zsrv.encode_image_notify, (1, 0, 50), 0x00, DOWN, None,
     {"payload_type": 0, "jitter": 50}),
    (zsrv.encode_image_notify, (2, 1, 1, MFR), 0x00, DOWN, None,
     {"payload_type": 1, "jitter": 1, "manufacturer": MFR}),
    (zsrv.encode_image_notify, (3, 2, 100, MFR, 0x0203), 0x00, DOWN, None,
     {"payload_type": 2, "jitter": 100, "manufacturer": MFR, "image_type": 0x0203}),
    (zsrv.encode_image_notify, (4, 3, 100, MFR, 0x0203, 0x01020304), 0x00, DOWN, None,
     {"payload_type": 3, "jitter": 100, "manufacturer": MFR, "image_type": 0x0203,
      "file_version": 0x01020304}),
    (zcl.encode_query_next, (5, MFR, 0xFFFF, 0x10000001), 0x01, UP, None,
     {"field_control": 0, "manufacturer": MFR, "image_type": 0xFFFF,
      "file_version": 0x10000001}),
    (zcl.encode_query_next, (6, MFR, 7, 0x20, 0x0102), 0x01, UP, None,
     {"field_control": 1, "manufacturer": MFR, "image_type": 7, "file_version": 0x20,
      "hw_version": 0x0102}),
    (zsrv.encode_query_next_response, (7, 0x00, MFR, 7, 0x21, 123456), 0x02, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "image_size": 123456}),
    (zsrv.encode_query_next_response, (8, 0x98), 0x02, DOWN, None, {"status": 0x98}),
    (zsrv.encode_query_next_response, (9, 0x7E), 0x02, DOWN, None, {"status": 0x7E}),
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
    (zsrv.encode_block_response, (16, MFR, 7, 0x21, 4096, DATA[:48]), 0x05, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 4096, "data": DATA[:48]}),
    (zsrv.encode_block_response, (17, MFR, 7, 0x21, 0, b""), 0x05, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 0, "data": b""}),
    (zsrv.encode_block_response, (18, MFR, 7, 0x21, 9, DATA + DATA[:55]), 0x05, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21,
      "offset": 9, "data": DATA + DATA[:55]}),
    (zsrv.encode_block_wait, (19, 700000000, 700000060, 500), 0x05, DOWN, None,
     {"status": 0x97, "current_time": 700000000, "request_time": 700000060,
      "min_period": 500}),
    (zsrv.encode_block_status, (20,), 0x05, DOWN, None, {"status": 0x95}),
    (zsrv.encode_block_status, (21, 0x98), 0x05, DOWN, None, {"status": 0x98}),
    (zcl.encode_upgrade_end, (22, 0x00, MFR, 7, 0x21), 0x06, UP, None,
     {"status": 0, "manufacturer": MFR, "image_type": 7, "file_version": 0x21}),
    (zcl.encode_upgrade_end, (23, 0x96, MFR, 7, 0x21), 0x06, UP, None,
     {"status": 0x96, "manufacturer": MFR, "image_type": 7, "file_version": 0x21}),
    (zcl.encode_upgrade_end, (24, 0x99, MFR, 7, 0x21), 0x06, UP, None,
     {"status": 0x99, "manufacturer": MFR, "image_type": 7, "file_version": 0x21}),
    (zsrv.encode_upgrade_end_response, (25, MFR, 7, 0x21, 700000000, 0xFFFFFFFF), 0x07, DOWN,
     None, {"manufacturer": MFR, "image_type": 7, "file_version": 0x21,
            "current_time": 700000000, "upgrade_time": 0xFFFFFFFF}),
    (zsrv.encode_upgrade_end_response, (26, MFR, 7, 0x21, 0, 30), 0x07, DOWN, None,
     {"manufacturer": MFR, "image_type": 7, "file_version": 0x21, "current_time": 0,
      "upgrade_time": 30}),
    (encode_file_request, (27, IEEE, MFR, 0xFFC0, 0x21, 2), 0x08, UP, None,
     {"ieee": IEEE, "manufacturer": MFR, "image_type": 0xFFC0, "file_version": 0x21,
      "stack_version": 2}),
    (zsrv.encode_file_response, (28, 0, MFR, 0xFFC0, 0x21, 999), 0x09, DOWN, None,
     {"status": 0, "manufacturer": MFR, "image_type": 0xFFC0, "file_version": 0x21,
      "image_size": 999}),
    (zsrv.encode_file_response, (29, 0x98), 0x09, DOWN, None, {"status": 0x98}),
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
    (zsrv.encode_alert_ack, (34, MFR, 0xFFFF), 0xF1, DOWN, MFR, {"alert_seq": 0xFFFF}),
    (zsrv.encode_activate, (35, MFR, HASH, 0), 0xF2, DOWN, MFR,
     {"digest": HASH, "activation_time": 0}),
    (zsrv.encode_activate, (36, MFR, HASH, 800000000), 0xF2, DOWN, MFR,
     {"digest": HASH, "activation_time": 800000000}),
    (zcl.encode_activate_response, (37, MFR, 0, HASH), 0xF3, UP, MFR,
     {"outcome": 0, "digest": HASH}),
    (zcl.encode_activate_response, (38, MFR, 3, HASH), 0xF3, UP, MFR,
     {"outcome": 3, "digest": HASH}),
    (zsrv.encode_default_response, (39, True, 0x06, 0x00), 0x0B, DOWN, None,
     {"rsp_command": 0x06, "status": 0}),
    (zsrv.encode_default_response, (40, False, 0x05, 0x81), 0x0B, UP, None,
     {"rsp_command": 0x05, "status": 0x81}),
    (zsrv.encode_default_response, (41, True, 0xF0, 0x83, MFR), 0x0B, DOWN, MFR,
     {"rsp_command": 0xF0, "status": 0x83}),
)


def receiver(down):
    """The decoder of the side a frame goes to."""
    return zcl.decode if down else zsrv.decode


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


def test_every_command_from_its_sender_to_its_receiver():
    buf = bytearray(zcl.FRAME_MAX)
    f = zcl.Frame()
    for case in CASES:
        n = case[0](buf, *case[1])
        assert 3 <= n <= zcl.FRAME_MAX
        decode = receiver(case[3])
        g = decode(buf, n, f)
        assert g is f
        check(case, buf, n, f)
        # the same frame from a memoryview, a bytes copy and a longer buffer
        check(case, buf, n, decode(memoryview(buf), n))
        check(case, buf, n, decode(bytes(buf[:n]), n))


def test_each_side_leaves_its_own_commands_unparsed():
    # a frame in the sender's own direction is not the sender's to decode
    buf = bytearray(zcl.FRAME_MAX)
    for case in CASES:
        if case[2] == 0x0B:
            continue  # Default Response: either side decodes it
        n = case[0](buf, *case[1])
        f = receiver(not case[3])(buf, n)
        eq((f.known, f.command, f.seq, f.status, f.manufacturer), (False, case[2], case[1][0],
                                                                   None, None), case[2])


def test_every_truncation_and_extension_is_bad_frame():
    buf = bytearray(zcl.FRAME_MAX + 1)
    for case in CASES:
        n = case[0](buf, *case[1])
        frame = bytes(buf[:n])
        decode = receiver(case[3])
        for k in range(n):
            raises(BAD_FRAME, decode, frame, k)
        raises(BAD_FRAME, decode, frame + b"\x00", n + 1)
        raises(BAD_FRAME, decode, frame, n + 1)  # n beyond the buffer


def test_wrong_direction_is_bad_frame_on_both_sides():
    buf = bytearray(zcl.FRAME_MAX)
    for case in CASES:
        if case[2] == 0x0B:
            continue  # Default Response goes either way
        for decode in (zcl.decode, zsrv.decode):
            n = case[0](buf, *case[1])
            buf[0] ^= zcl.FC_TO_CLIENT
            e = raises(BAD_FRAME, decode, buf, n)
            assert "direction" in e.detail


def test_struct_sizes():
    assert zcl.encode_header(bytearray(5), 0, 1, 2, 0x1234) == 5  # with a manufacturer code
    for fmt, size in ((zcl.HDR_FMT, 3), (zsrv.NOTIFY_FMT, 10),
                      (zcl.QUERY_FMT, 9), (zcl.QUERY_RSP_FMT, 13), (zcl.BLOCK_REQ_FMT, 14),
                      (zcl.PAGE_REQ_FMT, 18), (zcl.BLOCK_RSP_FMT, 14), (zcl.WAIT_FMT, 11),
                      (zcl.END_FMT, 9), (zcl.END_RSP_FMT, 16), (zsrv.FILE_REQ_FMT, 18),
                      (zsrv.DEFAULT_RSP_FMT, 2), (zcl.ALERT_FMT, 7), (zcl.ALERT_ACK_FMT, 2),
                      (zsrv.ACTIVATE_FMT, 36), (zsrv.ACTIVATE_RSP_FMT, 33), (zcl.U16_FMT, 2),
                      (zcl.U32_FMT, 4)):
        eq(struct.calcsize(fmt), size, fmt)
        assert fmt[0] == "<" and " " not in fmt
    eq(zcl.FRAME_MAX, 5 + struct.calcsize(zcl.BLOCK_RSP_FMT) + 255, "FRAME_MAX")
    eq(list(zcl.NOTIFY_LEN), [2, 4, 6, 10], "Image Notify sizes by payload type")


def test_block_offsets_follow_from_the_formats():
    hdr = struct.calcsize(zcl.HDR_FMT)
    rsp = struct.calcsize(zcl.BLOCK_RSP_FMT)
    eq(zcl.BLOCK_STATUS, hdr, "status")
    eq(zcl.BLOCK_ECHO, hdr + struct.calcsize("<B"), "echo")
    eq(zcl.BLOCK_OFFSET, hdr + struct.calcsize(zcl.BLOCK_RSP_FMT[:-2]), "offset")
    eq(zcl.BLOCK_LEN, hdr + rsp - 1, "data size")
    eq(zcl.BLOCK_DATA, hdr + rsp, "data")
    eq(zcl.BLOCK_REQ_SIZE, hdr + struct.calcsize(zcl.BLOCK_REQ_FMT), "request")
    eq(zcl.FC_BLOCK_RSP, zcl.FC_CLUSTER | zcl.FC_TO_CLIENT, "frame control")
    eq(zcl.FC_ROUTE, 3 | zcl.FC_MFR | zcl.FC_TO_CLIENT, "routing bits")
    # and in real frames: a request and its answer echo the same 12 bytes
    q = zsrv.build(zcl.encode_block_request, 9, MFR, 7, 0x21, 0x0A0B0C0D, 48)
    r = zsrv.build(zsrv.encode_block_response, 9, MFR, 7, 0x21, 0x0A0B0C0D, DATA[:48])
    eq(len(q), zcl.BLOCK_REQ_SIZE, "request size")
    eq(q[zcl.BLOCK_ECHO:zcl.BLOCK_LEN], r[zcl.BLOCK_ECHO:zcl.BLOCK_LEN], "echo")
    eq(struct.unpack_from("<I", q, zcl.BLOCK_OFFSET)[0], 0x0A0B0C0D, "request offset")
    eq(q[zcl.BLOCK_LEN], 48, "maximum data size")
    eq((r[0] & zcl.FC_ROUTE, r[zcl.BLOCK_STATUS], r[zcl.BLOCK_LEN]),
       (zcl.FC_BLOCK_RSP, zcl.S_SUCCESS, 48), "response")
    eq(r[zcl.BLOCK_DATA:], DATA[:48], "data")


def test_header_encoder():
    buf = bytearray(zcl.FRAME_MAX)
    eq(zcl.encode_header(buf, zcl.FC_CLUSTER | zcl.FC_MFR, 0x1FF, 3), 3)
    eq(bytes(buf[:3]), b"\x01\xff\x03", "FC_MFR dropped without a code; seq masked")
    eq(zcl.encode_header(buf, zsrv.FC_GLOBAL, 2, 0x0B, 0xBEEF), 5)
    eq(bytes(buf[:5]), b"\x04\xef\xbe\x02\x0b")


def test_put_checks_the_field_length():
    buf = bytearray(8)
    eq(zcl.put(buf, 2, b"abc", 3), 5)
    eq(bytes(buf), b"\x00\x00abc\x00\x00\x00")
    eq(zcl.put(buf, 5, None, 0), 5, "an absent field")
    raises(BAD_FRAME, zcl.put, buf, 0, b"ab", 3)
    eq(len(buf), 8, "a wrong-length field never resizes the buffer")


def none(b, o, p, g):
    return False  # a side that parses no command


def test_shared_decoding_with_no_command_table():
    dec = zcl.decode_with
    # the header: reserved frame type, too short, beyond the buffer
    raises(BAD_FRAME, dec, none, b"\x02\x01\x01", 3, None, None)
    raises(BAD_FRAME, dec, none, b"\x1b\x01\x05\x95", 4, None, None)
    raises(BAD_FRAME, dec, none, b"\x19\x01", 2, None, None)
    raises(BAD_FRAME, dec, none, b"\x1d\x34\x12\x01", 4, None, None)  # FC_MFR: 5 bytes
    raises(BAD_FRAME, dec, none, b"\x19\x01\x05\x00", 5, None, None)
    # Default Response either way, and its size
    f = dec(none, b"\x18\x07\x0b\x04\x81", 5, None, None)
    eq((f.known, f.cluster, f.to_client, f.rsp_command, f.status), (True, False, True, 4, 0x81))
    f = dec(none, b"\x10\x07\x0b\x04\x81", 5, None, None)
    eq((f.known, f.to_client), (True, False))
    raises(BAD_FRAME, dec, none, b"\x18\x07\x0b\x04", 4, None, None)
    # a command the table lacks is left unparsed; the direction and an empty payload are
    # checked first all the same
    f = dec(none, b"\x19\x07\x05\x95", 4, None, None)
    eq((f.known, f.command, f.payload_off, f.status), (False, 5, 3, None))
    raises(BAD_FRAME, dec, none, b"\x11\x07\x05\x95", 4, None, None)  # s>c sent c>s
    raises(BAD_FRAME, dec, none, b"\x19\x07\x05", 3, None, None)     # empty payload
    # a side's decoder gets (buf, payload offset, payload length, frame); known is its answer
    seen = []
    f = dec(lambda b, o, p, g: seen.append((o, p, g.command)) or True, b"\x19\x07\x05\x95", 4,
            None, None)
    eq((f.known, seen), (True, [(3, 1, 5)]))
    f = dec(lambda b, o, p, g: seen.append(o) or False, b"\x19\x07\x05\x95", 4, None, None)
    eq((f.known, seen[-1]), (False, 3))


def test_unknown_commands_are_left_unparsed():
    for decode in (zcl.decode, zsrv.decode):
        f = decode(b"\x01\x07\x0a\x01\x02", 5)  # cluster command 0x0A
        eq((f.known, f.command, f.seq, f.payload_off, f.status), (False, 0x0A, 7, 3, None))
        f = decode(b"\x00\x08\x00\x00\x00", 5)  # global Read Attributes
        eq((f.known, f.cluster, f.command, f.seq), (False, False, 0, 8))
        # a standard command id with the manufacturer-specific bit is another command
        f = decode(b"\x1d\x34\x12\x09\x05\x00", 6)
        eq((f.known, f.mfr_code, f.command, f.payload_off), (False, MFR, 5, 5))
        # and without the manufacturer-specific bit 0xF1 is nothing known
        f = decode(b"\x19\x03\xf1\x07\x00", 5)
        eq(f.known, False)


def test_manufacturer_commands_of_another_manufacturer():
    ack = zsrv.build(zsrv.encode_alert_ack, 3, 0x9999, 7)
    eq(zcl.decode(ack, len(ack), None, MFR).known, False)
    eq(zcl.decode(ack, len(ack), None, 0x9999).alert_seq, 7)
    eq(zcl.decode(ack, len(ack)).alert_seq, 7)
    alert = zsrv.build(zcl.encode_alert, 3, 0x9999, 7, 0x8F72, 0)
    eq(zsrv.decode(alert, len(alert), None, MFR).known, False)
    eq(zsrv.decode(alert, len(alert), None, 0x9999).alert_seq, 7)


def test_frame_is_cleared():
    f = zcl.Frame()
    f.status = 1
    f.data_off = 20
    f.known = True
    f.clear()
    eq((f.status, f.data_off, f.known, f.seq), (None, None, False, 0))
