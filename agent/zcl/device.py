# The device's side of the ZigBee OTA Upgrade cluster: it decodes what a server sends
# (server to client) and encodes the device's requests and answers (client to server).
# Frozen on the device; the formats and the shared decoding are in agent.zcl.frames, the
# server's side in agent.zcl.server (never on a device).
# The agent's modules import this one module: besides its own codec it names the shared
# declarations they use.
import struct

from agent.zcl.frames import decode_with, bad, size, encode_header, put, \
    FC_CLUSTER, FC_NO_DEFAULT_RSP, HASH_SIZE, BLOCK_OFFSET, BLOCK_LEN, NOTIFY_LEN, \
    CMD_IMAGE_NOTIFY, CMD_QUERY_NEXT, CMD_QUERY_NEXT_RSP, CMD_BLOCK_REQ, CMD_PAGE_REQ, \
    CMD_BLOCK_RSP, CMD_UPGRADE_END, CMD_UPGRADE_END_RSP, CMD_FILE_RSP, CMD_ALERT, \
    CMD_ALERT_ACK, CMD_ACTIVATE, CMD_ACTIVATE_RSP, S_SUCCESS, S_WAIT_FOR_DATA, \
    QUERY_FMT, FCQ_HW, QUERY_RSP_FMT, BLOCK_REQ_FMT, FCB_IEEE, FCB_PERIOD, PAGE_REQ_FMT, \
    BLOCK_RSP_FMT, WAIT_FMT, END_FMT, END_RSP_FMT, ALERT_FMT, FCA_HASH, FCA_EXTRA, \
    ALERT_ACK_FMT, U16_FMT, U32_FMT
from agent.zcl.frames import Frame, FRAME_MAX, UPGRADE_WAIT, S_ABORT, \
    S_INVALID_IMAGE, S_NO_IMAGE_AVAILABLE  # noqa: F401 (for the modules importing this one)


# -- decoding: server to client ---------------------------------------------------------
# Each decoder fills f from the payload buf[off:off + p] (p >= 1).

def _notify(buf, off, p, f):
    t = buf[off]
    if t > 3:
        bad(f, "payload type %d" % t)
    size(f, p, NOTIFY_LEN[t])
    f.payload_type = t
    f.jitter = buf[off + 1]
    if t >= 1:
        f.manufacturer = struct.unpack_from(U16_FMT, buf, off + 2)[0]
    if t >= 2:
        f.image_type = struct.unpack_from(U16_FMT, buf, off + 4)[0]
    if t == 3:
        f.file_version = struct.unpack_from(U32_FMT, buf, off + 6)[0]


def _query_rsp(buf, off, p, f):
    # Query Next Image Response and Query Device Specific File Response
    f.status = buf[off]
    if f.status != S_SUCCESS:
        size(f, p, 1)
        return
    size(f, p, 13)
    (_, f.manufacturer, f.image_type, f.file_version,
     f.image_size) = struct.unpack_from(QUERY_RSP_FMT, buf, off)


def _block_rsp(buf, off, p, f):
    st = f.status = buf[off]
    if st == S_SUCCESS:
        if p < 14:
            bad(f, "%d payload bytes" % p)
        (_, f.manufacturer, f.image_type, f.file_version, f.offset,
         f.data_len) = struct.unpack_from(BLOCK_RSP_FMT, buf, off)
        size(f, p, 14 + f.data_len)
        f.data_off = off + 14
    elif st == S_WAIT_FOR_DATA:
        size(f, p, 11)
        (_, f.current_time, f.request_time,
         f.min_period) = struct.unpack_from(WAIT_FMT, buf, off)
    else:
        size(f, p, 1)


def _end_rsp(buf, off, p, f):
    size(f, p, 16)
    (f.manufacturer, f.image_type, f.file_version, f.current_time,
     f.upgrade_time) = struct.unpack_from(END_RSP_FMT, buf, off)


def _alert_ack(buf, off, p, f):
    size(f, p, 2)
    f.alert_seq = struct.unpack_from(ALERT_ACK_FMT, buf, off)[0]


def _activate(buf, off, p, f):
    size(f, p, 36)
    f.hash_off = off
    f.activation_time = struct.unpack_from(U32_FMT, buf, off + HASH_SIZE)[0]


_DECODERS = {
    CMD_IMAGE_NOTIFY: _notify,
    CMD_QUERY_NEXT_RSP: _query_rsp,
    CMD_BLOCK_RSP: _block_rsp,
    CMD_UPGRADE_END_RSP: _end_rsp,
    CMD_FILE_RSP: _query_rsp,
    CMD_ALERT_ACK: _alert_ack,
    CMD_ACTIVATE: _activate,
}


def decode(buf, n, frame=None, mfr=None):
    """Decode the frame in buf[:n] as the device receives it, into frame (or a new Frame),
    and return it. The client's own commands (client to server) are not parsed (known
    False). mfr: our manufacturer code; manufacturer-specific commands with another code
    are not parsed either. None accepts any code."""
    return decode_with(_DECODERS, buf, n, frame, mfr)


# -- encoding: client to server ---------------------------------------------------------

_UP = FC_CLUSTER  # a request: the server may answer an error with a Default Response


def encode_query_next(buf, seq, manufacturer, image_type, file_version, hw_version=None):
    o = encode_header(buf, _UP, seq, CMD_QUERY_NEXT)
    struct.pack_into(QUERY_FMT, buf, o, 0 if hw_version is None else FCQ_HW,
                     manufacturer, image_type, file_version)
    if hw_version is None:
        return o + 9
    struct.pack_into(U16_FMT, buf, o + 9, hw_version)
    return o + 11


def encode_block_request(buf, seq, manufacturer, image_type, file_version, offset, max_size,
                         ieee=None, min_period=None):
    fcb = (0 if ieee is None else FCB_IEEE) | (0 if min_period is None else FCB_PERIOD)
    o = encode_header(buf, _UP, seq, CMD_BLOCK_REQ)
    struct.pack_into(BLOCK_REQ_FMT, buf, o, fcb, manufacturer, image_type, file_version,
                     offset, max_size)
    o += 14
    if ieee is not None:
        o = put(buf, o, ieee, 8)
    if min_period is not None:
        struct.pack_into(U16_FMT, buf, o, min_period)
        o += 2
    return o


def set_block_request(buf, seq, offset, max_size):
    """Update an Image Block Request that encode_block_request wrote into buf without its
    options, for the next block: sequence number, file offset, maximum data size."""
    buf[1] = seq & 0xFF
    struct.pack_into(U32_FMT, buf, BLOCK_OFFSET, offset)
    buf[BLOCK_LEN] = max_size


def encode_page_request(buf, seq, manufacturer, image_type, file_version, offset, max_size,
                        page_size, spacing, ieee=None):
    o = encode_header(buf, _UP, seq, CMD_PAGE_REQ)
    struct.pack_into(PAGE_REQ_FMT, buf, o, 0 if ieee is None else FCB_IEEE, manufacturer,
                     image_type, file_version, offset, max_size, page_size, spacing)
    return put(buf, o + 18, ieee, 0 if ieee is None else 8)


def encode_upgrade_end(buf, seq, status, manufacturer, image_type, file_version):
    o = encode_header(buf, _UP, seq, CMD_UPGRADE_END)
    struct.pack_into(END_FMT, buf, o, status, manufacturer, image_type, file_version)
    return o + 9


def encode_alert(buf, seq, mfr_code, alert_seq, alert_code, reason, digest=None, extra=None):
    o = encode_header(buf, _UP, seq, CMD_ALERT, mfr_code)
    fca = (0 if digest is None else FCA_HASH) | (0 if extra is None else FCA_EXTRA)
    struct.pack_into(ALERT_FMT, buf, o, fca, alert_seq, alert_code, reason)
    o = put(buf, o + 7, digest, 0 if digest is None else HASH_SIZE)
    if extra is not None:
        struct.pack_into(U32_FMT, buf, o, extra)
        o += 4
    return o


def encode_activate_response(buf, seq, mfr_code, outcome, digest):
    o = encode_header(buf, _UP | FC_NO_DEFAULT_RSP, seq, CMD_ACTIVATE_RSP, mfr_code)
    buf[o] = outcome
    return put(buf, o + 1, digest, HASH_SIZE)
