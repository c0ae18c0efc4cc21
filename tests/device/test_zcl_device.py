# The device's side of the ZCL OTA Upgrade cluster (agent.zcl.frames): the bytes of every
# request it sends, written out by hand from the cluster definition; the server's frames it
# decodes, from hand-written bytes too, and the ones it refuses. (Every command through both
# sides: test_zcl_frames.)
import binascii
import struct

from agent.zcl import frames as zcl
from agent.errors import BAD_FRAME
from tutil import raises, eq

MFR = 0x1234
HASH = bytes(range(0xE0, 0x100))
IEEE = b"\x11\x22\x33\x44\x55\x66\x77\x88"


def unhex(s):
    return binascii.unhexlify(s.replace(" ", ""))


def frame(encoder, *args):
    buf = bytearray(zcl.FRAME_MAX)
    return bytes(buf[:encoder(buf, *args)])


def test_request_bytes():
    eq(frame(zcl.encode_query_next, 0xFF, 0x1234, 0x5678, 0x01020304, 0x0001),
       unhex("01 FF 01 01 3412 7856 04030201 0100"))
    eq(frame(zcl.encode_query_next, 1, 0x1234, 0x5678, 9),
       unhex("01 01 01 00 3412 7856 09000000"))
    eq(frame(zcl.encode_block_request, 0x10, 0x1234, 0x5678, 0x01020304, 0x100, 0x30),
       unhex("01 10 03 00 3412 7856 04030201 00010000 30"))
    eq(frame(zcl.encode_block_request, 1, 0x1234, 0x5678, 1, 2, 3, IEEE, 0x0A0B),
       unhex("01 01 03 03 3412 7856 01000000 02000000 03 1122334455667788 0B0A"))
    eq(frame(zcl.encode_page_request, 2, 0x1234, 0x5678, 1, 0x40, 48, 0x800, 10),
       unhex("01 02 04 00 3412 7856 01000000 40000000 30 0008 0A00"))
    eq(frame(zcl.encode_page_request, 2, 0x1234, 0x5678, 1, 0x40, 48, 0x800, 10, IEEE),
       unhex("01 02 04 01 3412 7856 01000000 40000000 30 0008 0A00 1122334455667788"))
    eq(frame(zcl.encode_upgrade_end, 5, 0x96, 0x1234, 0x5678, 9),
       unhex("01 05 06 96 3412 7856 09000000"))
    eq(frame(zcl.encode_alert, 8, 0xABCD, 0x0102, 0x8F72, 0x0033, HASH, 0x0A0B0C0D),
       unhex("05 CDAB 08 F0 03 0201 728F 3300") + HASH + unhex("0D0C0B0A"))
    eq(frame(zcl.encode_alert, 8, 0xABCD, 0x0102, 0x8F1B, 0x0057),
       unhex("05 CDAB 08 F0 00 0201 1B8F 5700"))
    eq(frame(zcl.encode_activate_response, 11, 0xABCD, 2, HASH),
       unhex("15 CDAB 0B F3 02") + HASH)


def test_request_header_flags():
    buf = bytearray(zcl.FRAME_MAX)
    zcl.encode_query_next(buf, 1, MFR, 7, 1)
    eq(buf[0], zcl.FC_CLUSTER, "requests ask for a default response on error")
    zcl.encode_alert(buf, 1, MFR, 1, 0x8F72, 0)
    eq(buf[0], zcl.FC_CLUSTER | zcl.FC_MFR, "plain servers may answer an alert")
    zcl.encode_activate_response(buf, 1, MFR, 0, HASH)
    eq(buf[0], zcl.FC_CLUSTER | zcl.FC_MFR | zcl.FC_NO_DEFAULT_RSP)


def test_set_block_request_is_a_fresh_encoding():
    # the per-block update of a request encoded once equals encoding it anew
    buf = bytearray(zcl.BLOCK_REQ_SIZE)
    eq(zcl.encode_block_request(buf, 0, MFR, 7, 0x21, 0, 0), zcl.BLOCK_REQ_SIZE)
    for seq, off, mx in ((1, 48, 48), (0x1FF, 0xFFFFFFFF, 255), (7, 0x01020304, 1)):
        zcl.set_block_request(buf, seq, off, mx)
        eq(bytes(buf), frame(zcl.encode_block_request, seq, MFR, 7, 0x21, off, mx), off)


def test_encoder_writes_into_a_memoryview_at_an_offset():
    big = bytearray(zcl.FRAME_MAX + 10)
    n = zcl.encode_block_request(memoryview(big)[10:], 3, MFR, 7, 1, 2, 50, IEEE, 9)
    eq(bytes(big[:10]), bytes(10), "nothing before the view")
    eq(bytes(big[10:10 + n]), frame(zcl.encode_block_request, 3, MFR, 7, 1, 2, 50, IEEE, 9))


def test_encoder_argument_checks():
    buf = bytearray(zcl.FRAME_MAX)
    raises(BAD_FRAME, zcl.encode_alert, buf, 1, MFR, 1, 0x8F72, 0, HASH + b"\x00")
    raises(BAD_FRAME, zcl.encode_block_request, buf, 1, MFR, 7, 1, 0, 50, IEEE[:7])
    raises(BAD_FRAME, zcl.encode_page_request, buf, 1, MFR, 7, 1, 0, 50, 64, 0, IEEE + b"x")
    raises(BAD_FRAME, zcl.encode_activate_response, buf, 1, MFR, 0, HASH[:31])
    eq(len(buf), zcl.FRAME_MAX, "a wrong-length field never resizes the buffer")


def dec(hexa, mfr=None):
    b = unhex(hexa)
    return zcl.decode(b, len(b), None, mfr)


def test_server_frames_decoded():
    f = dec("19 07 00 03 64 3412 7856 09000000")
    eq((f.command, f.seq, f.payload_type, f.jitter, f.manufacturer, f.image_type,
        f.file_version), (0, 7, 3, 100, 0x1234, 0x5678, 9), "Image Notify")
    f = dec("19 07 00 01 0A FFFF")
    eq((f.payload_type, f.jitter, f.manufacturer, f.image_type), (1, 10, 0xFFFF, None),
       "Image Notify, manufacturer only")
    f = dec("19 02 02 98")
    eq((f.command, f.status, f.manufacturer), (2, 0x98, None), "Query Next Image Response")
    f = dec("19 02 02 00 3412 7856 09000000 00500000")
    eq((f.status, f.manufacturer, f.image_type, f.file_version, f.image_size),
       (0, 0x1234, 0x5678, 9, 0x5000), "Query Next Image Response SUCCESS")
    b = unhex("19 03 05 00 3412 7856 09000000 40000000 02 7E7D")
    f = zcl.decode(b, len(b))
    eq((f.status, f.offset, f.data_len, b[f.data_off:]), (0, 0x40, 2, b"\x7e\x7d"), "block")
    f = dec("19 04 05 97 01000000 02000000 0300")
    eq((f.status, f.current_time, f.request_time, f.min_period, f.data_off),
       (0x97, 1, 2, 3, None), "WAIT_FOR_DATA")
    f = dec("19 06 07 3412 7856 09000000 00000000 FFFFFFFF")
    eq((f.command, f.current_time, f.upgrade_time), (7, 0, zcl.UPGRADE_WAIT), "end response")
    f = dec("1D CDAB 09 F1 0201")
    eq((f.mfr_code, f.command, f.alert_seq), (0xABCD, 0xF1, 0x0102), "Alert Ack")
    b = unhex("1D CDAB 0A F2") + HASH + unhex("0D0C0B0A")
    f = zcl.decode(b, len(b), None, 0xABCD)
    eq((f.activation_time, b[f.hash_off:f.hash_off + 32]), (0x0A0B0C0D, HASH), "Activate")


def test_bad_payload_values():
    # Image Notify payload type 4
    raises(BAD_FRAME, dec, "19 01 00 04 64")
    # Block Response SUCCESS whose data size overruns / underruns the frame, or too short
    ok = unhex("19 01 05 00 3412 0700 01000000 00000000 04 61626364")
    zcl.decode(ok, len(ok))
    bad = bytearray(ok)
    bad[16] = 5
    raises(BAD_FRAME, zcl.decode, bad, len(bad))
    bad[16] = 3
    raises(BAD_FRAME, zcl.decode, bad, len(bad))
    raises(BAD_FRAME, zcl.decode, ok, 16)
    # Query Next Image Response: fields after a non-SUCCESS status
    raises(BAD_FRAME, dec, "19 01 02 98 3412")
    # ABORT with more than its status
    raises(BAD_FRAME, dec, "19 01 05 95 00")
    # a cluster command with no payload
    raises(BAD_FRAME, dec, "19 01 05")


def test_block_data_not_copied():
    buf = bytearray(unhex("19 01 05 00 3412 0700 01000000 00000000 03 414243"))
    mv = memoryview(buf)
    f = zcl.decode(mv, len(buf))
    view = mv[f.data_off:f.data_off + f.data_len]
    buf[f.data_off] ^= 0xFF  # the view shares the frame buffer
    eq(bytes(view), b"\xbeBC")


def test_frame_is_cleared_between_decodes():
    f = zcl.Frame()
    b = unhex("19 01 05 00 3412 0700 01000000 00000000 03 78797A")
    zcl.decode(b, len(b), f)
    eq(f.data_len, 3)
    zcl.decode(unhex("19 02 05 95"), 4, f)
    eq((f.status, f.data_off, f.data_len, f.manufacturer, f.seq), (0x95, None, None, None, 2))


def test_requests_are_not_the_devices_to_decode():
    # a client's frame (another device's, or our own looped back) is left unparsed
    for enc, args in ((zcl.encode_query_next, (1, MFR, 7, 1)),
                      (zcl.encode_block_request, (2, MFR, 7, 1, 0, 48)),
                      (zcl.encode_alert, (3, MFR, 1, 0x8F72, 0, HASH))):
        b = frame(enc, *args)
        f = zcl.decode(b, len(b), None, MFR)
        eq((f.known, f.seq, f.field_control, f.offset), (False, args[0], None, None), args[0])
    eq(struct.calcsize(zcl.BLOCK_REQ_FMT) + 3, zcl.BLOCK_REQ_SIZE)
