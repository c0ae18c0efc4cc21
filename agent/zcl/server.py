# The server's side of the ZigBee OTA Upgrade cluster: it decodes what a device sends
# (client to server) and encodes the server's frames (server to client), with host
# conveniences. Used by the host's update server (host_tools.server.Hub) and the tests,
# never on a device (agent/package.json and the freeze manifests leave it out); it runs on
# MicroPython too. It carries every shared declaration of agent.zcl.frames, so that host
# code imports this one module, and the declarations only the server's side uses (layouts
# in agent.zcl.frames).
import struct

from agent.zcl.frames import *  # noqa: F401,F403 (all shared declarations, for host code)
from agent.zcl import frames as device  # the device's side of the codec
from agent.errors import OtaError, BAD_FRAME

FC_GLOBAL = 0x00                      # frame type: global (profile-wide) command
CMD_FILE_REQ = 0x08                   # c>s, Query Device Specific File Request
S_NOT_AUTHORIZED = 0x7E
S_MALFORMED_COMMAND = 0x80
S_UNSUP_CLUSTER_COMMAND = 0x81
S_UNSUP_GENERAL_COMMAND = 0x82
S_UNSUP_MANUF_CLUSTER_COMMAND = 0x83
NOTIFY_FMT = "<BBHHI"                 # Image Notify, all four payload types' fields
FILE_REQ_FMT = "<8sHHIH"              # Query Device Specific File Request (18 bytes):
#   8s   request node IEEE address
#   H    manufacturer code
#   H    image type
#   I    file version
#   H    current ZigBee stack version
DEFAULT_RSP_FMT = "<BB"               # Default Response (global command 0x0B, 2 bytes):
#   B    command id answered
#   B    status
ACTIVATE_FMT = "<32sI"                # Activate Image (36 bytes)
ACTIVATE_RSP_FMT = "<B32s"            # Activate Response (33 bytes)


# -- decoding: client to server ---------------------------------------------------------
# Each decoder fills f from the payload buf[off:off + p] (p >= 1).

def _query(buf, off, p, f):
    fc = buf[off]
    size(f, p, 11 if fc & FCQ_HW else 9)
    (f.field_control, f.manufacturer, f.image_type,
     f.file_version) = struct.unpack_from(QUERY_FMT, buf, off)
    if fc & FCQ_HW:
        f.hw_version = struct.unpack_from(U16_FMT, buf, off + 9)[0]


def _request(buf, off, f, q):
    # the fields an Image Block Request and an Image Page Request share, and the IEEE
    # address after the q bytes of fixed fields; returns the offset after it
    (f.field_control, f.manufacturer, f.image_type, f.file_version, f.offset,
     f.max_size) = struct.unpack_from(BLOCK_REQ_FMT, buf, off)
    q += off
    if f.field_control & FCB_IEEE:
        f.ieee = bytes(buf[q:q + 8])
        q += 8
    return q


def _block_req(buf, off, p, f):
    fc = buf[off]
    size(f, p, 14 + (8 if fc & FCB_IEEE else 0) + (2 if fc & FCB_PERIOD else 0))
    q = _request(buf, off, f, 14)
    if fc & FCB_PERIOD:
        f.min_period = struct.unpack_from(U16_FMT, buf, q)[0]


def _page_req(buf, off, p, f):
    size(f, p, 18 + (8 if buf[off] & FCB_IEEE else 0))
    _request(buf, off, f, 18)
    f.page_size, f.spacing = struct.unpack_from(PAGE_REQ_FMT, buf, off)[6:]


def _end(buf, off, p, f):
    size(f, p, 9)
    (f.status, f.manufacturer, f.image_type,
     f.file_version) = struct.unpack_from(END_FMT, buf, off)


def _file_req(buf, off, p, f):
    size(f, p, 18)
    (f.ieee, f.manufacturer, f.image_type, f.file_version,
     f.stack_version) = struct.unpack_from(FILE_REQ_FMT, buf, off)


def _alert(buf, off, p, f):
    fc = buf[off]
    if fc & 0xFC:
        bad(f, "field control 0x%02X" % fc)
    size(f, p, 7 + (HASH_SIZE if fc & FCA_HASH else 0) + (4 if fc & FCA_EXTRA else 0))
    (f.field_control, f.alert_seq, f.alert_code,
     f.reason) = struct.unpack_from(ALERT_FMT, buf, off)
    q = off + 7
    if fc & FCA_HASH:
        f.hash_off = q
        q += HASH_SIZE
    if fc & FCA_EXTRA:
        f.extra = struct.unpack_from(U32_FMT, buf, q)[0]


def _activate_rsp(buf, off, p, f):
    size(f, p, 33)
    if buf[off] > 3:
        bad(f, "outcome %d" % buf[off])
    f.outcome = buf[off]
    f.hash_off = off + 1


_DECODERS = {
    CMD_QUERY_NEXT: _query,
    CMD_BLOCK_REQ: _block_req,
    CMD_PAGE_REQ: _page_req,
    CMD_UPGRADE_END: _end,
    CMD_FILE_REQ: _file_req,
    CMD_ALERT: _alert,
    CMD_ACTIVATE_RSP: _activate_rsp,
}


def decode(buf, n, frame=None, mfr=None):
    """Decode the frame in buf[:n] as the server receives it, into frame (or a new Frame),
    and return it. The server's own commands (server to client) are not parsed (known
    False). mfr: as in agent.zcl.frames.decode."""
    return decode_with(_payload, buf, n, frame, mfr)


def _payload(buf, off, p, f):
    fn = _DECODERS.get(f.command)
    if fn is None:  # the device's command
        return False
    fn(buf, off, p, f)
    return True


# -- encoding: server to client ---------------------------------------------------------

_DOWN = FC_CLUSTER | FC_TO_CLIENT | FC_NO_DEFAULT_RSP


def encode_image_notify(buf, seq, payload_type, jitter, manufacturer=0, image_type=0,
                        file_version=0):
    if payload_type > 3:
        raise OtaError(BAD_FRAME, "payload type %d" % payload_type)
    o = encode_header(buf, _DOWN, seq, CMD_IMAGE_NOTIFY)
    struct.pack_into(NOTIFY_FMT, buf, o, payload_type, jitter, manufacturer, image_type,
                     file_version)
    return o + NOTIFY_LEN[payload_type]


def _query_rsp(buf, seq, cmd, status, manufacturer, image_type, file_version, image_size):
    o = encode_header(buf, _DOWN, seq, cmd)
    if status != S_SUCCESS:
        buf[o] = status
        return o + 1
    struct.pack_into(QUERY_RSP_FMT, buf, o, status, manufacturer, image_type, file_version,
                     image_size)
    return o + 13


def encode_query_next_response(buf, seq, status, manufacturer=0, image_type=0,
                               file_version=0, image_size=0):
    return _query_rsp(buf, seq, CMD_QUERY_NEXT_RSP, status, manufacturer, image_type,
                      file_version, image_size)


def encode_file_response(buf, seq, status, manufacturer=0, image_type=0, file_version=0,
                         image_size=0):
    return _query_rsp(buf, seq, CMD_FILE_RSP, status, manufacturer, image_type,
                      file_version, image_size)


def encode_block_response(buf, seq, manufacturer, image_type, file_version, offset, data):
    n = len(data)
    if n > 255:
        raise OtaError(BAD_FRAME, "block of %d bytes" % n)
    o = encode_header(buf, _DOWN, seq, CMD_BLOCK_RSP)
    struct.pack_into(BLOCK_RSP_FMT, buf, o, S_SUCCESS, manufacturer, image_type,
                     file_version, offset, n)
    return put(buf, o + 14, data, n)


def encode_block_wait(buf, seq, current_time, request_time, min_period):
    o = encode_header(buf, _DOWN, seq, CMD_BLOCK_RSP)
    struct.pack_into(WAIT_FMT, buf, o, S_WAIT_FOR_DATA, current_time, request_time,
                     min_period)
    return o + 11


def encode_block_status(buf, seq, status=S_ABORT):
    o = encode_header(buf, _DOWN, seq, CMD_BLOCK_RSP)
    buf[o] = status
    return o + 1


def encode_upgrade_end_response(buf, seq, manufacturer, image_type, file_version,
                                current_time, upgrade_time):
    o = encode_header(buf, _DOWN, seq, CMD_UPGRADE_END_RSP)
    struct.pack_into(END_RSP_FMT, buf, o, manufacturer, image_type, file_version,
                     current_time, upgrade_time)
    return o + 16


def encode_alert_ack(buf, seq, mfr_code, alert_seq):
    o = encode_header(buf, _DOWN, seq, CMD_ALERT_ACK, mfr_code)
    struct.pack_into(ALERT_ACK_FMT, buf, o, alert_seq)
    return o + 2


def encode_activate(buf, seq, mfr_code, digest, activation_time):
    o = encode_header(buf, _DOWN, seq, CMD_ACTIVATE, mfr_code)
    o = put(buf, o, digest, HASH_SIZE)
    struct.pack_into(U32_FMT, buf, o, activation_time)
    return o + 4


def encode_default_response(buf, seq, to_client, command, status, mfr_code=None):
    """A Default Response (global command), server to client or, with to_client False, as
    a client would send it (tests)."""
    fc = FC_GLOBAL | FC_NO_DEFAULT_RSP | (FC_TO_CLIENT if to_client else 0)
    o = encode_header(buf, fc, seq, CMD_DEFAULT_RSP, mfr_code)
    struct.pack_into(DEFAULT_RSP_FMT, buf, o, command, status)
    return o + 2


# -- host conveniences ------------------------------------------------------------------

def build(encoder, *args):
    """Run an encoder into a fresh buffer and return the frame as bytes."""
    buf = bytearray(FRAME_MAX)
    return bytes(buf[:encoder(buf, *args)])


def parse(data, mfr=None):
    """Decode a bytes frame of either direction, as the side it goes to does (its
    direction bit: agent.zcl.frames.decode or decode above); adds .data (block bytes) and
    .digest (hash bytes) or None."""
    to_device = len(data) > 0 and data[0] & FC_TO_CLIENT
    f = (device.decode if to_device else decode)(data, len(data), None, mfr)
    f.data = None if f.data_off is None else bytes(data[f.data_off:f.data_off + f.data_len])
    f.digest = None if f.hash_off is None else bytes(data[f.hash_off:f.hash_off + HASH_SIZE])
    return f
