# The server's side of the ZCL OTA Upgrade cluster (agent.zcl.server, the host's and the
# tests'): the bytes of every frame it sends, written out by hand from the cluster
# definition; the devices' frames it decodes, from hand-written bytes too, and the ones it
# refuses; build() and parse(). (Every command through both sides: test_zcl_frames.)
import binascii

from agent.zcl import frames as zcl, server as zsrv
from agent.errors import BAD_FRAME
from tutil import raises, eq

MFR = 0x1234
HASH = bytes(range(0xE0, 0x100))
IEEE = b"\x11\x22\x33\x44\x55\x66\x77\x88"


def unhex(s):
    return binascii.unhexlify(s.replace(" ", ""))


def test_server_frame_bytes():
    b = zsrv.build
    eq(b(zsrv.encode_query_next_response, 2, 0x98), unhex("19 02 02 98"))
    eq(b(zsrv.encode_query_next_response, 2, 0, 0x1234, 0x5678, 9, 0x5000),
       unhex("19 02 02 00 3412 7856 09000000 00500000"))
    eq(b(zsrv.encode_file_response, 2, 0x98), unhex("19 02 09 98"))
    eq(b(zsrv.encode_block_response, 3, 0x1234, 0x5678, 9, 0x40, b"\x7e\x7d"),
       unhex("19 03 05 00 3412 7856 09000000 40000000 02 7E7D"))
    eq(b(zsrv.encode_block_wait, 4, 1, 2, 3), unhex("19 04 05 97 01000000 02000000 0300"))
    eq(b(zsrv.encode_block_status, 4), unhex("19 04 05 95"))
    eq(b(zsrv.encode_block_status, 4, 0x98), unhex("19 04 05 98"))
    eq(b(zsrv.encode_upgrade_end_response, 6, 0x1234, 0x5678, 9, 0, 0xFFFFFFFF),
       unhex("19 06 07 3412 7856 09000000 00000000 FFFFFFFF"))
    eq(b(zsrv.encode_image_notify, 7, 3, 0x64, 0x1234, 0x5678, 9),
       unhex("19 07 00 03 64 3412 7856 09000000"))
    eq(b(zsrv.encode_image_notify, 7, 0, 0x64), unhex("19 07 00 00 64"))
    eq(b(zsrv.encode_alert_ack, 9, 0xABCD, 0x0102), unhex("1D CDAB 09 F1 0201"))
    eq(b(zsrv.encode_activate, 10, 0xABCD, HASH, 0x0A0B0C0D),
       unhex("1D CDAB 0A F2") + HASH + unhex("0D0C0B0A"))
    eq(b(zsrv.encode_default_response, 12, True, 0xF0, 0x83, 0xABCD),
       unhex("1C CDAB 0C 0B F0 83"))
    eq(b(zsrv.encode_default_response, 12, False, 0x04, 0x81), unhex("10 0C 0B 04 81"))


def test_server_frames_ask_for_no_default_response():
    buf = bytearray(zcl.FRAME_MAX)
    zsrv.encode_block_response(buf, 1, MFR, 7, 1, 0, b"")
    eq(buf[0], zcl.FC_CLUSTER | zcl.FC_TO_CLIENT | zcl.FC_NO_DEFAULT_RSP)
    zsrv.encode_alert_ack(buf, 1, MFR, 1)
    eq(buf[0], zcl.FC_CLUSTER | zcl.FC_TO_CLIENT | zcl.FC_NO_DEFAULT_RSP | zcl.FC_MFR)


def test_encoder_argument_checks():
    buf = bytearray(zcl.FRAME_MAX)
    raises(BAD_FRAME, zsrv.encode_block_response, buf, 1, MFR, 7, 1, 0, bytes(256))
    raises(BAD_FRAME, zsrv.encode_image_notify, buf, 1, 4, 10)
    raises(BAD_FRAME, zsrv.encode_activate, buf, 1, MFR, HASH[:31], 0)
    eq(len(buf), zcl.FRAME_MAX, "a wrong-length field never resizes the buffer")
    eq(len(zsrv.build(zsrv.encode_block_response, 1, MFR, 7, 1, 0, bytes(255))),
       zcl.FRAME_MAX - 2, "the largest block")


# Requests as devices send them, by hand: (bytes, fields)
REQUESTS = (
    ("01 FF 01 01 3412 7856 04030201 0100",
     {"command": 1, "seq": 0xFF, "field_control": 1, "manufacturer": 0x1234,
      "image_type": 0x5678, "file_version": 0x01020304, "hw_version": 1}),
    ("01 01 03 03 3412 7856 01000000 02000000 03 1122334455667788 0B0A",
     {"command": 3, "field_control": 3, "offset": 2, "max_size": 3, "ieee": IEEE,
      "min_period": 0x0A0B}),
    ("01 01 03 02 3412 7856 01000000 02000000 03 0B0A",
     {"command": 3, "field_control": 2, "ieee": None, "min_period": 0x0A0B}),
    ("01 02 04 01 3412 7856 01000000 40000000 30 0008 0A00 1122334455667788",
     {"command": 4, "offset": 0x40, "max_size": 48, "page_size": 0x800, "spacing": 10,
      "ieee": IEEE, "min_period": None}),
    ("01 05 06 96 3412 7856 09000000",
     {"command": 6, "status": 0x96, "manufacturer": 0x1234, "file_version": 9}),
    ("01 06 08 1122334455667788 3412 C0FF 21000000 0200",
     {"command": 8, "ieee": IEEE, "image_type": 0xFFC0, "file_version": 0x21,
      "stack_version": 2}),
    ("05 CDAB 08 F0 03 0201 728F 3300" + "E0" * 32 + "0D0C0B0A",
     {"command": 0xF0, "mfr_code": 0xABCD, "alert_seq": 0x0102, "alert_code": 0x8F72,
      "reason": 0x33, "hash_off": 12, "extra": 0x0A0B0C0D}),
    ("15 CDAB 0B F3 02" + "E0" * 32,
     {"command": 0xF3, "outcome": 2, "hash_off": 6}),
)


def test_requests_decoded():
    for hexa, fields in REQUESTS:
        b = unhex(hexa)
        f = zsrv.decode(b, len(b))
        eq(f.known, True, hexa)
        for k in fields:
            eq(getattr(f, k), fields[k], "%s %s" % (hexa[:12], k))
        for k in range(len(b)):
            raises(BAD_FRAME, zsrv.decode, b, k)
        raises(BAD_FRAME, zsrv.decode, b + b"\x00", len(b) + 1)


def test_bad_payload_values():
    # Alert with a reserved field control bit
    a = bytearray(unhex("05 3412 01 F0 00 0100 1B8F 0000"))
    eq(zsrv.decode(a, len(a)).alert_code, 0x8F1B)
    a[5] = 0x04
    raises(BAD_FRAME, zsrv.decode, a, len(a))
    # Activate Response outcome out of range
    r = bytearray(unhex("15 3412 01 F3 03") + HASH)
    eq(zsrv.decode(r, len(r)).outcome, 3)
    r[5] = 4
    raises(BAD_FRAME, zsrv.decode, r, len(r))
    # a block request whose field control promises an address it does not carry
    raises(BAD_FRAME, zsrv.decode, unhex("01 01 03 01 3412 7856 01000000 02000000 03"), 17)


def test_server_frames_are_not_the_servers_to_decode():
    for enc, args in ((zsrv.encode_block_response, (1, MFR, 7, 1, 0, b"ab")),
                      (zsrv.encode_query_next_response, (2, 0x98)),
                      (zsrv.encode_activate, (3, MFR, HASH, 0))):
        b = zsrv.build(enc, *args)
        f = zsrv.decode(b, len(b))
        eq((f.known, f.seq, f.status, f.hash_off), (False, args[0], None, None), args[0])


def test_parse_decodes_either_direction_and_adds_bytes():
    f = zsrv.parse(zsrv.build(zsrv.encode_block_response, 1, MFR, 7, 1, 0, b"hello"))
    eq((f.known, f.to_client, f.data, f.digest), (True, True, b"hello", None))
    f = zsrv.parse(zsrv.build(zsrv.encode_activate, 1, MFR, HASH, 0), MFR)
    eq((f.known, f.data, f.digest), (True, None, HASH))
    f = zsrv.parse(unhex("15 3412 01 F3 00") + HASH, MFR)
    eq((f.known, f.to_client, f.outcome, f.digest), (True, False, 0, HASH))
    f = zsrv.parse(unhex("01 05 06 96 3412 7856 09000000"))
    eq((f.known, f.status, f.data, f.digest), (True, 0x96, None, None))
    raises(BAD_FRAME, zsrv.parse, b"")
    raises(BAD_FRAME, zsrv.parse, unhex("19 03 05 00 3412"))


def test_host_code_finds_every_shared_declaration_here():
    for name in ("CMD_PAGE_REQ", "S_REQUIRE_MORE_IMAGE", "UPGRADE_WAIT", "FRAME_MAX",
                 "BLOCK_LEN", "Frame", "QUERY_FMT"):
        assert getattr(zsrv, name) is getattr(zcl, name), name
    # and those only the server's side uses, which a device does without
    eq((zsrv.FC_GLOBAL, zsrv.CMD_FILE_REQ, zsrv.S_NOT_AUTHORIZED, zsrv.S_MALFORMED_COMMAND,
        zsrv.S_UNSUP_CLUSTER_COMMAND, zsrv.S_UNSUP_GENERAL_COMMAND,
        zsrv.S_UNSUP_MANUF_CLUSTER_COMMAND), (0, 8, 0x7E, 0x80, 0x81, 0x82, 0x83))
    for name in ("CMD_FILE_REQ", "S_UNSUP_CLUSTER_COMMAND", "NOTIFY_FMT", "FILE_REQ_FMT"):
        assert not hasattr(zcl, name), name
