# ZigBee OTA Upgrade cluster frames a server sends (server to client), and host
# conveniences: the other half of agent.zcl.frames, kept apart so that a device does not carry it.
# The host's update server and the tests use it; it runs on MicroPython too.
import struct

from agent.errors import OtaError, BAD_FRAME
from agent.zcl.frames import FC_CLUSTER, FC_TO_CLIENT, FC_NO_DEFAULT_RSP, FRAME_MAX, HASH_SIZE, \
    CMD_IMAGE_NOTIFY, CMD_QUERY_NEXT_RSP, CMD_FILE_RSP, CMD_BLOCK_RSP, CMD_UPGRADE_END_RSP, \
    CMD_ALERT_ACK, CMD_ACTIVATE, S_SUCCESS, S_WAIT_FOR_DATA, S_ABORT, NOTIFY_FMT, \
    QUERY_RSP_FMT, BLOCK_RSP_FMT, WAIT_FMT, END_RSP_FMT, ALERT_ACK_FMT, U32_FMT, \
    _NOTIFY_LEN, _put, encode_header, decode

_DOWN = FC_CLUSTER | FC_TO_CLIENT | FC_NO_DEFAULT_RSP  # server to client


# Server to client

def encode_image_notify(buf, seq, payload_type, jitter, manufacturer=0, image_type=0,
                        file_version=0):
    if payload_type > 3:
        raise OtaError(BAD_FRAME, "payload type %d" % payload_type)
    o = encode_header(buf, _DOWN, seq, CMD_IMAGE_NOTIFY)
    struct.pack_into(NOTIFY_FMT, buf, o, payload_type, jitter, manufacturer, image_type,
                     file_version)
    return o + _NOTIFY_LEN[payload_type]


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
    return _put(buf, o + 14, data, n)


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
    o = _put(buf, o, digest, HASH_SIZE)
    struct.pack_into(U32_FMT, buf, o, activation_time)
    return o + 4


# Host conveniences

def build(encoder, *args):
    """Run an encoder into a fresh buffer and return the frame as bytes."""
    buf = bytearray(FRAME_MAX)
    return bytes(buf[:encoder(buf, *args)])


def parse(data, mfr=None):
    """decode() a bytes frame; adds .data (block bytes) and .digest (hash bytes) or None."""
    f = decode(data, len(data), None, mfr)
    f.data = None if f.data_off is None else bytes(data[f.data_off:f.data_off + f.data_len])
    f.digest = None if f.hash_off is None else bytes(data[f.hash_off:f.hash_off + HASH_SIZE])
    return f
