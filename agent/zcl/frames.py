# ZigBee OTA Upgrade cluster (ZCL cluster 0x0019): the declarations both sides of the cluster
# share, and the device's side of the codec.
#
# Payloads as ZCL rev 8 section 11.13 (the same bytes as zigpy.zcl.clusters.general.Ota).
# All fields little-endian. Declared once here: command ids, statuses, each command's struct
# format, the byte offsets the device's per-block path uses, the decoded Frame, the ZCL
# header, and the decoding both sides run before their own commands' fields.
# The device's codec is here too: it decodes what a server sends (server to client) and
# encodes the device's requests and answers (client to server); the agent's modules import
# this module itself (as zcl), as a second module naming what they use of it would cost a
# device about 240 B of heap and 540 B of code. agent.zcl.server is the reverse direction
# and the declarations only the server uses (the host's update server and the tests, never
# on a device).
# Encoders write one frame into a caller's bytearray and return its length; a decoder fills
# a reusable Frame, giving an Image Block Response's data and a hash as offsets into the
# frame buffer (data_off/data_len, hash_off), so nothing is copied.
# A truncated frame, a length that does not match the command's fields, a known command in
# the wrong direction or a reserved frame type is OtaError(BAD_FRAME). A command the
# receiving side does not parse (the other side's, or one nobody here knows) decodes with
# known False (header fields and payload_off set).
import struct
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent import errors as E

_CLUSTER_ID = const(0x0019)

# ZCL header without / with manufacturer code (3 / 5 bytes):
HDR_FMT = "<BBB"
#   B    frame control
#   B    transaction sequence number
#   B    command id
_HDR_MFR_FMT = const("<BHBB")
#   B    frame control (FC_MFR set)
#   H    manufacturer code
#   B    transaction sequence number
#   B    command id
# bits 0-1 frame type: 0 global (profile-wide) command (FC_GLOBAL, agent.zcl.server), 1:
FC_CLUSTER = const(0x01)         # cluster-specific command
FC_MFR = const(0x04)             # manufacturer-specific: header carries a manufacturer code
FC_TO_CLIENT = const(0x08)       # direction server to client (clear: client to server)
FC_NO_DEFAULT_RSP = const(0x10)  # disable default response (then sent on error only)

# Cluster commands: (c>s) client to server, (s>c) server to client
CMD_IMAGE_NOTIFY = const(0x00)      # s>c
CMD_QUERY_NEXT = const(0x01)        # c>s
CMD_QUERY_NEXT_RSP = const(0x02)    # s>c
CMD_BLOCK_REQ = const(0x03)         # c>s
CMD_PAGE_REQ = const(0x04)          # c>s
CMD_BLOCK_RSP = const(0x05)         # s>c
CMD_UPGRADE_END = const(0x06)       # c>s
CMD_UPGRADE_END_RSP = const(0x07)   # s>c
# 0x08 c>s Query Device Specific File Request: agent.zcl.server (a device sends none)
CMD_FILE_RSP = const(0x09)          # s>c, Query Device Specific File Response
_STD_TO_CLIENT = const(0x2A5)       # bit i set: standard command i is s>c
CMD_DEFAULT_RSP = const(0x0B)       # global command, either direction

# Status codes
S_SUCCESS = const(0x00)
# (NOT_AUTHORIZED 0x7E, MALFORMED_COMMAND 0x80, the UNSUP_* 0x81-0x83: agent.zcl.server)
S_ABORT = const(0x95)
S_INVALID_IMAGE = const(0x96)
S_WAIT_FOR_DATA = const(0x97)
S_NO_IMAGE_AVAILABLE = const(0x98)
S_REQUIRE_MORE_IMAGE = const(0x99)

UPGRADE_WAIT = const(0xFFFFFFFF)    # Upgrade End Response upgrade time: wait for Activate Image

# Image Notify (2, 4, 6 or 10 bytes by payload type 0..3; NOTIFY_FMT in agent.zcl.server):
#   B    payload type: 0 jitter; 1 + manufacturer; 2 + image type; 3 + file version
#   B    query jitter (1..100)
#   H    manufacturer code (payload type >= 1)
#   H    image type (payload type >= 2)
#   I    new file version (payload type 3)
NOTIFY_LEN = b"\x02\x04\x06\x0a"  # payload bytes by payload type
# Query Next Image Request (9 bytes, + 2):
QUERY_FMT = "<BHHI"
#   B    field control: bit 0 hardware version present
#   H    manufacturer code
#   H    image type
#   I    current file version
#   [H   hardware version]
FCQ_HW = const(0x01)
# Query Next Image Response and Query Device Specific File Response (13 bytes; 1 unless SUCCESS):
QUERY_RSP_FMT = "<BHHII"
#   B    status: SUCCESS, NO_IMAGE_AVAILABLE or NOT_AUTHORIZED
#   H    manufacturer code
#   H    image type
#   I    file version
#   I    image size
# Image Block Request (14 bytes, + 8, + 2):
BLOCK_REQ_FMT = "<BHHIIB"
#   B    field control: bit 0 IEEE address present, bit 1 minimum block period present
#   H    manufacturer code
#   H    image type
#   I    file version
#   I    file offset
#   B    maximum data size
#   [8s  request node IEEE address, in wire order]
#   [H   minimum block period, ms]
FCB_IEEE = const(0x01)
FCB_PERIOD = const(0x02)
# Image Page Request (18 bytes, + 8):
PAGE_REQ_FMT = "<BHHIIBHH"
#   B    field control: bit 0 IEEE address present
#   H    manufacturer code
#   H    image type
#   I    file version
#   I    file offset
#   B    maximum data size
#   H    page size
#   H    response spacing, ms
#   [8s  request node IEEE address]
# Image Block Response, SUCCESS (14 bytes + data):
BLOCK_RSP_FMT = "<BHHIIB"
#   B    status SUCCESS
#   H    manufacturer code
#   H    image type
#   I    file version
#   I    file offset
#   B    data size, followed by that many bytes of data
# Image Block Response, WAIT_FOR_DATA (11 bytes); any other status is the status byte alone:
WAIT_FMT = "<BIIH"
#   B    status WAIT_FOR_DATA
#   I    current time (UTC seconds since 2000)
#   I    request time: ask again at this time
#   H    minimum block period, ms
# Upgrade End Request (9 bytes):
END_FMT = "<BHHI"
#   B    status: SUCCESS, INVALID_IMAGE, REQUIRE_MORE_IMAGE or ABORT
#   H    manufacturer code
#   H    image type
#   I    file version
# Upgrade End Response (16 bytes):
END_RSP_FMT = "<HHIII"
#   H    manufacturer code
#   H    image type
#   I    file version
#   I    current time (0: upgrade time is relative)
#   I    upgrade time (UPGRADE_WAIT: wait for an Activate Image command)

# Manufacturer-specific commands of this cluster. Header: frame control with FC_MFR and
# FC_CLUSTER, the device's manufacturer code, sequence number, command id. A server that
# does not know them ignores them or answers Default Response UNSUP_MANUF_CLUSTER_COMMAND.
# Their ids lie above the standard ones, so a server that looks only at the command id
# (zigpy's stock Ota cluster does) cannot take them for a standard command.
CMD_ALERT = const(0xF0)         # c>s, answered by Alert Ack
CMD_ALERT_ACK = const(0xF1)     # s>c
CMD_ACTIVATE = const(0xF2)      # s>c, answered by Activate Response
CMD_ACTIVATE_RSP = const(0xF3)  # c>s
_MFR_TO_CLIENT = const(0x6)     # bit (id - 0xF0) set: s>c
# Alert (7 bytes, + 32, + 4):
ALERT_FMT = "<BHHH"
#   B    field control: bit 0 hash present, bit 1 extra present, others zero
#   H    alert sequence id, echoed by Alert Ack (a repeated alert keeps its id)
#   H    alert code (GBCS, e.g. 0x8F72)
#   H    reason (agent.errors code; 0 none)
#   [32s Manufacturer Image SHA-256]
#   [I   extra, e.g. firmware version]
FCA_HASH = const(0x01)
FCA_EXTRA = const(0x02)
# Activate Image (36 bytes; ACTIVATE_FMT in agent.zcl.server, the device reads it in place):
#   32s  Manufacturer Image SHA-256 of the image to activate
#   I    activation time, UTC seconds since 2000 (0: now)
# Activate Response (33 bytes; ACTIVATE_RSP_FMT in agent.zcl.server):
#   B    outcome (GBCS CS06): 0 success, 1 no image held, 2 hash mismatch, 3 failure
#   32s  Manufacturer Image SHA-256 named by the Activate Image command
# Alert Ack (2 bytes):
ALERT_ACK_FMT = "<H"
#   H    alert sequence id
HASH_SIZE = const(32)

# One optional field on its own:
U16_FMT = "<H"
#   H    16-bit field (hardware version, minimum block period, manufacturer code, ...)
U32_FMT = "<I"
#   I    32-bit field (file version, alert extra, activation time)

FRAME_MAX = const(274)  # 5-byte header + 14 + 255 bytes of block data

# Byte offsets in the frames of a download, for the device's per-block path, which checks
# and updates them in place (values follow from HDR_FMT, BLOCK_REQ_FMT and BLOCK_RSP_FMT):
# an Image Block Response with SUCCESS and no manufacturer code, and the Image Block
# Request without options that asked for it. The 12 bytes from BLOCK_ECHO (manufacturer,
# image type, file version, file offset) sit at the same offsets in both.
FC_ROUTE = const(0x0F)       # frame control bits that route a frame: type, FC_MFR, direction
FC_BLOCK_RSP = const(0x09)   # their value in an Image Block Response (FC_CLUSTER | FC_TO_CLIENT)
BLOCK_STATUS = const(3)      # status
BLOCK_ECHO = const(4)        # manufacturer code: the 12 echoed bytes start here
BLOCK_OFFSET = const(12)     # file offset
BLOCK_LEN = const(16)        # response: data size; request: maximum data size
BLOCK_DATA = const(17)       # response: the data
BLOCK_REQ_SIZE = const(17)   # the whole request


class Frame:
    """A decoded frame. Header: fc (frame control byte), cluster (cluster-specific, else
    global), to_client (direction), mfr_code (header manufacturer code or None), seq,
    command, known (parsed), payload_off. Payload fields the command does not carry are
    None; ieee is 8 bytes in wire order; block data is buf[data_off:data_off + data_len]
    and a hash buf[hash_off:hash_off + 32]."""

    def __init__(self):
        self.fc = self.seq = self.command = self.payload_off = 0
        self.cluster = self.to_client = self.known = False
        self.mfr_code = self.status = self.payload_type = self.jitter = None
        self.field_control = self.manufacturer = self.image_type = self.file_version = None
        self.hw_version = self.image_size = self.offset = self.max_size = self.ieee = None
        self.min_period = self.page_size = self.spacing = self.data_off = None
        self.data_len = self.current_time = self.request_time = self.upgrade_time = None
        self.stack_version = self.rsp_command = self.alert_seq = self.alert_code = None
        self.reason = self.hash_off = self.extra = self.activation_time = None
        self.outcome = None

    clear = __init__  # to reuse a Frame


def bad(f, what):
    """A decoder's refusal of frame f: OtaError(BAD_FRAME) naming its command."""
    raise E.OtaError(E.BAD_FRAME, "command 0x%02X: %s" % (f.command, what))


def size(f, have, want):
    """A decoder's length check: `have` payload bytes where the fields take `want`."""
    if have != want:
        bad(f, "%d payload bytes, expected %d" % (have, want))


def decode_with(payload, buf, n, frame, mfr):
    """Decode the frame in buf[:n] into frame (or a new Frame) and return it: the header,
    a Default Response (either direction), the direction rules, then the payload of a
    cluster command by payload(buf, payload offset, payload length, frame), the receiving
    side's decoder (decode below, agent.zcl.server), which returns False for a command it
    does not parse (the other side's).

    mfr: our manufacturer code; manufacturer-specific commands with another code are not
    parsed (known False). None accepts any code.
    """
    f = frame if frame is not None else Frame()
    f.clear()
    # the ZCL header
    if n < 3 or n > len(buf):
        raise E.OtaError(E.BAD_FRAME, "%d bytes" % n)
    fc = buf[0]
    if fc & 3 > 1:
        raise E.OtaError(E.BAD_FRAME, "reserved frame type %d" % (fc & 3))
    off = 3
    if fc & FC_MFR:
        if n < 5:
            raise E.OtaError(E.BAD_FRAME, "%d bytes" % n)
        _, f.mfr_code, f.seq, f.command = struct.unpack_from(_HDR_MFR_FMT, buf, 0)
        off = 5
    else:
        f.seq = buf[1]
        f.command = buf[2]
    f.fc = fc
    f.cluster = fc & FC_CLUSTER != 0
    f.to_client = fc & FC_TO_CLIENT != 0
    f.payload_off = off
    p = n - off
    c = f.command
    if not f.cluster:
        if c == CMD_DEFAULT_RSP:
            size(f, p, 2)
            f.rsp_command = buf[off]
            f.status = buf[off + 1]
            f.known = True
        return f
    # the direction of a command of this cluster (server to client: 1); one this codec does
    # not know, or a manufacturer-specific one of another manufacturer than mfr, stays
    # unparsed
    if fc & FC_MFR:
        if c < CMD_ALERT or c > CMD_ACTIVATE_RSP or (mfr is not None and mfr != f.mfr_code):
            return f
        c = (_MFR_TO_CLIENT >> (c - CMD_ALERT)) & 1
    elif c <= CMD_FILE_RSP:
        c = (_STD_TO_CLIENT >> c) & 1
    else:
        return f
    if c != f.to_client:
        bad(f, "wrong direction")
    if p < 1:
        bad(f, "empty payload")
    f.known = payload(buf, off, p, f)
    return f


def encode_header(buf, fc, seq, command, mfr_code=None):
    """Write a ZCL header; FC_MFR is set when mfr_code is given. Returns its length."""
    if mfr_code is None:
        struct.pack_into(HDR_FMT, buf, 0, fc & ~FC_MFR, seq & 0xFF, command)
        return 3
    struct.pack_into(_HDR_MFR_FMT, buf, 0, fc | FC_MFR, mfr_code, seq & 0xFF, command)
    return 5


def put(buf, off, data, n):
    """Copy the n-byte field data (n 0: none) into buf at off; returns the offset after it."""
    if n:
        if len(data) != n:
            raise E.OtaError(E.BAD_FRAME, "field of %d bytes, expected %d" % (len(data), n))
        buf[off:off + n] = data
    return off + n


# -- decoding: server to client ---------------------------------------------------------

def _payload(buf, off, p, f):
    # the payload buf[off:off + p] (p >= 1) of the server-to-client command f into f: True,
    # or False for a command the device does not parse (the client's own)
    c = f.command
    if c == CMD_BLOCK_RSP:
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
    elif c == CMD_QUERY_NEXT_RSP or c == CMD_FILE_RSP:  # the same fields
        f.status = buf[off]
        if f.status != S_SUCCESS:
            size(f, p, 1)
        else:
            size(f, p, 13)
            (_, f.manufacturer, f.image_type, f.file_version,
             f.image_size) = struct.unpack_from(QUERY_RSP_FMT, buf, off)
    elif c == CMD_IMAGE_NOTIFY:
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
    elif c == CMD_UPGRADE_END_RSP:
        size(f, p, 16)
        (f.manufacturer, f.image_type, f.file_version, f.current_time,
         f.upgrade_time) = struct.unpack_from(END_RSP_FMT, buf, off)
    elif c == CMD_ALERT_ACK:
        size(f, p, 2)
        f.alert_seq = struct.unpack_from(ALERT_ACK_FMT, buf, off)[0]
    elif c == CMD_ACTIVATE:
        size(f, p, 36)
        f.hash_off = off
        f.activation_time = struct.unpack_from(U32_FMT, buf, off + HASH_SIZE)[0]
    else:
        return False
    return True


def decode(buf, n, frame=None, mfr=None):
    """Decode the frame in buf[:n] as the device receives it, into frame (or a new Frame),
    and return it. The client's own commands (client to server) are not parsed (known
    False). mfr: our manufacturer code; manufacturer-specific commands with another code
    are not parsed either. None accepts any code."""
    return decode_with(_payload, buf, n, frame, mfr)


# -- encoding: client to server ---------------------------------------------------------

_UP = const(0x01)  # FC_CLUSTER: a request: the server may answer an error with a Default Response
del const  # every const() above is folded (on MicroPython): its entry is free for what follows


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
