# ZigBee OTA Upgrade cluster (ZCL cluster 0x0019) frames: one definition for device and host.
#
# Payloads as ZCL rev 8 section 11.13 (the same bytes as zigpy.zcl.clusters.general.Ota).
# All fields little-endian. Encoders write one frame into a caller's bytearray and return
# its length. decode() fills a reusable Frame; an Image Block Response's data and a hash are
# given as offsets into the frame buffer (data_off/data_len, hash_off), so nothing is copied.
# A truncated frame, a length that does not match the command's fields, a known command in
# the wrong direction or a reserved frame type is OtaError(BAD_FRAME). A command this module
# does not parse decodes with known False (header fields and payload_off set).
# The encoders of the server's commands, which a device never sends, are in agent.zcl.server.
import struct
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.errors import OtaError, BAD_FRAME

CLUSTER_ID = const(0x0019)

# ZCL header without / with manufacturer code (3 / 5 bytes):
HDR_FMT = "<BBB"
#   B    frame control
#   B    transaction sequence number
#   B    command id
HDR_MFR_FMT = "<BHBB"
#   B    frame control (FC_MFR set)
#   H    manufacturer code
#   B    transaction sequence number
#   B    command id
FC_GLOBAL = const(0x00)          # bits 0-1 frame type: global (profile-wide) command
FC_CLUSTER = const(0x01)         # bits 0-1 frame type: cluster-specific command
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
CMD_FILE_REQ = const(0x08)          # c>s, Query Device Specific File Request
CMD_FILE_RSP = const(0x09)          # s>c, Query Device Specific File Response
_STD_TO_CLIENT = const(0x2A5)       # bit i set: standard command i is s>c
CMD_DEFAULT_RSP = const(0x0B)       # global command, either direction

# Status codes
S_SUCCESS = const(0x00)
S_NOT_AUTHORIZED = const(0x7E)
S_MALFORMED_COMMAND = const(0x80)
S_UNSUP_CLUSTER_COMMAND = const(0x81)
S_UNSUP_GENERAL_COMMAND = const(0x82)
S_UNSUP_MANUF_CLUSTER_COMMAND = const(0x83)
S_ABORT = const(0x95)
S_INVALID_IMAGE = const(0x96)
S_WAIT_FOR_DATA = const(0x97)
S_NO_IMAGE_AVAILABLE = const(0x98)
S_REQUIRE_MORE_IMAGE = const(0x99)

UPGRADE_WAIT = const(0xFFFFFFFF)    # Upgrade End Response upgrade time: wait for Activate Image

# Image Notify (2, 4, 6 or 10 bytes by payload type 0..3):
NOTIFY_FMT = "<BBHHI"
#   B    payload type: 0 jitter; 1 + manufacturer; 2 + image type; 3 + file version
#   B    query jitter (1..100)
#   H    manufacturer code (payload type >= 1)
#   H    image type (payload type >= 2)
#   I    new file version (payload type 3)
_NOTIFY_LEN = b"\x02\x04\x06\x0a"
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
# Query Device Specific File Request (18 bytes):
FILE_REQ_FMT = "<8sHHIH"
#   8s   request node IEEE address
#   H    manufacturer code
#   H    image type
#   I    file version
#   H    current ZigBee stack version
# Default Response (global command 0x0B, 2 bytes):
DEFAULT_RSP_FMT = "<BB"
#   B    command id answered
#   B    status

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
# Alert Ack (2 bytes):
ALERT_ACK_FMT = "<H"
#   H    alert sequence id
# Activate Image (36 bytes):
ACTIVATE_FMT = "<32sI"
#   32s  Manufacturer Image SHA-256 of the image to activate
#   I    activation time, UTC seconds since 2000 (0: now)
# Activate Response (33 bytes):
ACTIVATE_RSP_FMT = "<B32s"
#   B    outcome (GBCS CS06): 0 success, 1 no image held, 2 hash mismatch, 3 failure
#   32s  Manufacturer Image SHA-256 named by the Activate Image command
HASH_SIZE = const(32)

# One optional field on its own:
U16_FMT = "<H"
#   H    16-bit field (hardware version, minimum block period, manufacturer code, ...)
U32_FMT = "<I"
#   I    32-bit field (file version, alert extra, activation time)

FRAME_MAX = const(274)  # 5-byte header + 14 + 255 bytes of block data


class Frame:
    """A decoded frame. Header: fc (frame control byte), cluster (cluster-specific, else
    global), to_client (direction), mfr_code (header manufacturer code or None), seq,
    command, known (parsed by this module), payload_off. Payload fields the command does
    not carry are None; ieee is 8 bytes in wire order; block data is
    buf[data_off:data_off + data_len] and a hash buf[hash_off:hash_off + 32]."""

    def __init__(self):
        self.clear()

    def clear(self):
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


def _bad(f, what):
    raise OtaError(BAD_FRAME, "command 0x%02X: %s" % (f.command, what))


def _size(f, have, want):
    if have != want:
        _bad(f, "%d payload bytes, expected %d" % (have, want))


def decode(buf, n, frame=None, mfr=None):
    """Decode the frame in buf[:n] into frame (or a new Frame) and return it.

    mfr: our manufacturer code; manufacturer-specific commands with another code are not
    parsed (known False). None accepts any code.
    """
    f = frame if frame is not None else Frame()
    f.clear()
    if n < 3 or n > len(buf):
        raise OtaError(BAD_FRAME, "%d bytes" % n)
    fc = buf[0]
    if fc & 3 > 1:
        raise OtaError(BAD_FRAME, "reserved frame type %d" % (fc & 3))
    off = 3
    if fc & FC_MFR:
        if n < 5:
            raise OtaError(BAD_FRAME, "%d bytes" % n)
        _, f.mfr_code, f.seq, f.command = struct.unpack_from(HDR_MFR_FMT, buf, 0)
        off = 5
    else:
        f.seq = buf[1]
        f.command = buf[2]
    f.fc = fc
    f.cluster = fc & FC_CLUSTER != 0
    f.to_client = fc & FC_TO_CLIENT != 0
    f.payload_off = off
    c = f.command
    p = n - off
    if not f.cluster:
        if c == CMD_DEFAULT_RSP:
            _size(f, p, 2)
            f.rsp_command = buf[off]
            f.status = buf[off + 1]
            f.known = True
        return f
    if fc & FC_MFR:
        if c < CMD_ALERT or c > CMD_ACTIVATE_RSP or (mfr is not None and mfr != f.mfr_code):
            return f
        down = (_MFR_TO_CLIENT >> (c - CMD_ALERT)) & 1
    elif c <= CMD_FILE_RSP:
        down = (_STD_TO_CLIENT >> c) & 1
    else:
        return f
    if down != f.to_client:
        _bad(f, "wrong direction")
    if p < 1:
        _bad(f, "empty payload")
    f.known = True
    b0 = buf[off]
    if c == CMD_IMAGE_NOTIFY:
        if b0 > 3:
            _bad(f, "payload type %d" % b0)
        _size(f, p, _NOTIFY_LEN[b0])
        f.payload_type = b0
        f.jitter = buf[off + 1]
        if b0 >= 1:
            f.manufacturer = struct.unpack_from(U16_FMT, buf, off + 2)[0]
        if b0 >= 2:
            f.image_type = struct.unpack_from(U16_FMT, buf, off + 4)[0]
        if b0 == 3:
            f.file_version = struct.unpack_from(U32_FMT, buf, off + 6)[0]
    elif c == CMD_QUERY_NEXT:
        _size(f, p, 11 if b0 & FCQ_HW else 9)
        (f.field_control, f.manufacturer, f.image_type,
         f.file_version) = struct.unpack_from(QUERY_FMT, buf, off)
        if b0 & FCQ_HW:
            f.hw_version = struct.unpack_from(U16_FMT, buf, off + 9)[0]
    elif c == CMD_QUERY_NEXT_RSP or c == CMD_FILE_RSP:
        f.status = b0
        if b0 == S_SUCCESS:
            _size(f, p, 13)
            (_, f.manufacturer, f.image_type, f.file_version,
             f.image_size) = struct.unpack_from(QUERY_RSP_FMT, buf, off)
        else:
            _size(f, p, 1)
    elif c == CMD_BLOCK_REQ or c == CMD_PAGE_REQ:
        q = 14 if c == CMD_BLOCK_REQ else 18
        want = q + (8 if b0 & FCB_IEEE else 0)
        if c == CMD_BLOCK_REQ and b0 & FCB_PERIOD:
            want += 2
        _size(f, p, want)
        (f.field_control, f.manufacturer, f.image_type, f.file_version, f.offset,
         f.max_size) = struct.unpack_from(BLOCK_REQ_FMT, buf, off)
        if c == CMD_PAGE_REQ:
            f.page_size, f.spacing = struct.unpack_from(PAGE_REQ_FMT, buf, off)[6:]
        if b0 & FCB_IEEE:
            f.ieee = bytes(buf[off + q:off + q + 8])
            q += 8
        if c == CMD_BLOCK_REQ and b0 & FCB_PERIOD:
            f.min_period = struct.unpack_from(U16_FMT, buf, off + q)[0]
    elif c == CMD_BLOCK_RSP:
        f.status = b0
        if b0 == S_SUCCESS:
            if p < 14:
                _bad(f, "%d payload bytes" % p)
            (_, f.manufacturer, f.image_type, f.file_version, f.offset,
             f.data_len) = struct.unpack_from(BLOCK_RSP_FMT, buf, off)
            _size(f, p, 14 + f.data_len)
            f.data_off = off + 14
        elif b0 == S_WAIT_FOR_DATA:
            _size(f, p, 11)
            (_, f.current_time, f.request_time,
             f.min_period) = struct.unpack_from(WAIT_FMT, buf, off)
        else:
            _size(f, p, 1)
    elif c == CMD_UPGRADE_END:
        _size(f, p, 9)
        (f.status, f.manufacturer, f.image_type,
         f.file_version) = struct.unpack_from(END_FMT, buf, off)
    elif c == CMD_UPGRADE_END_RSP:
        _size(f, p, 16)
        (f.manufacturer, f.image_type, f.file_version, f.current_time,
         f.upgrade_time) = struct.unpack_from(END_RSP_FMT, buf, off)
    elif c == CMD_FILE_REQ:
        _size(f, p, 18)
        (f.ieee, f.manufacturer, f.image_type, f.file_version,
         f.stack_version) = struct.unpack_from(FILE_REQ_FMT, buf, off)
    elif c == CMD_ALERT:
        if b0 & 0xFC:
            _bad(f, "field control 0x%02X" % b0)
        _size(f, p, 7 + (HASH_SIZE if b0 & FCA_HASH else 0) + (4 if b0 & FCA_EXTRA else 0))
        (f.field_control, f.alert_seq, f.alert_code,
         f.reason) = struct.unpack_from(ALERT_FMT, buf, off)
        q = off + 7
        if b0 & FCA_HASH:
            f.hash_off = q
            q += HASH_SIZE
        if b0 & FCA_EXTRA:
            f.extra = struct.unpack_from(U32_FMT, buf, q)[0]
    elif c == CMD_ALERT_ACK:
        _size(f, p, 2)
        f.alert_seq = struct.unpack_from(ALERT_ACK_FMT, buf, off)[0]
    elif c == CMD_ACTIVATE:
        _size(f, p, 36)
        f.hash_off = off
        f.activation_time = struct.unpack_from(U32_FMT, buf, off + HASH_SIZE)[0]
    else:  # CMD_ACTIVATE_RSP
        _size(f, p, 33)
        if b0 > 3:
            _bad(f, "outcome %d" % b0)
        f.outcome = b0
        f.hash_off = off + 1
    return f


def encode_header(buf, fc, seq, command, mfr_code=None):
    """Write a ZCL header; FC_MFR is set when mfr_code is given. Returns its length."""
    if mfr_code is None:
        struct.pack_into(HDR_FMT, buf, 0, fc & ~FC_MFR, seq & 0xFF, command)
        return 3
    struct.pack_into(HDR_MFR_FMT, buf, 0, fc | FC_MFR, mfr_code, seq & 0xFF, command)
    return 5


_UP = FC_CLUSTER  # client to server requests (server to client: agent.zcl.server)


def _put(buf, off, data, n):
    if n:
        if len(data) != n:
            raise OtaError(BAD_FRAME, "field of %d bytes, expected %d" % (len(data), n))
        buf[off:off + n] = data
    return off + n


# Client to server

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
        o = _put(buf, o, ieee, 8)
    if min_period is not None:
        struct.pack_into(U16_FMT, buf, o, min_period)
        o += 2
    return o


def set_block_request(buf, seq, offset, max_size):
    """Update an Image Block Request that encode_block_request wrote into buf without its
    options, for the next block: sequence number, file offset, maximum data size."""
    buf[1] = seq & 0xFF
    struct.pack_into(U32_FMT, buf, 12, offset)  # BLOCK_REQ_FMT's file offset, after the header
    buf[16] = max_size


def encode_page_request(buf, seq, manufacturer, image_type, file_version, offset, max_size,
                        page_size, spacing, ieee=None):
    o = encode_header(buf, _UP, seq, CMD_PAGE_REQ)
    struct.pack_into(PAGE_REQ_FMT, buf, o, 0 if ieee is None else FCB_IEEE, manufacturer,
                     image_type, file_version, offset, max_size, page_size, spacing)
    return _put(buf, o + 18, ieee, 0 if ieee is None else 8)


def encode_upgrade_end(buf, seq, status, manufacturer, image_type, file_version):
    o = encode_header(buf, _UP, seq, CMD_UPGRADE_END)
    struct.pack_into(END_FMT, buf, o, status, manufacturer, image_type, file_version)
    return o + 9


def encode_file_request(buf, seq, ieee, manufacturer, image_type, file_version, stack_version):
    o = encode_header(buf, _UP, seq, CMD_FILE_REQ)
    struct.pack_into(FILE_REQ_FMT, buf, o, b"", manufacturer, image_type, file_version,
                     stack_version)
    _put(buf, o, ieee, 8)
    return o + 18


def encode_alert(buf, seq, mfr_code, alert_seq, alert_code, reason, digest=None, extra=None):
    o = encode_header(buf, _UP, seq, CMD_ALERT, mfr_code)
    fca = (0 if digest is None else FCA_HASH) | (0 if extra is None else FCA_EXTRA)
    struct.pack_into(ALERT_FMT, buf, o, fca, alert_seq, alert_code, reason)
    o = _put(buf, o + 7, digest, 0 if digest is None else HASH_SIZE)
    if extra is not None:
        struct.pack_into(U32_FMT, buf, o, extra)
        o += 4
    return o


def encode_activate_response(buf, seq, mfr_code, outcome, digest):
    o = encode_header(buf, _UP | FC_NO_DEFAULT_RSP, seq, CMD_ACTIVATE_RSP, mfr_code)
    buf[o] = outcome
    return _put(buf, o + 1, digest, HASH_SIZE)


# Either direction

def encode_default_response(buf, seq, to_client, command, status, mfr_code=None):
    fc = FC_GLOBAL | FC_NO_DEFAULT_RSP | (FC_TO_CLIENT if to_client else 0)
    o = encode_header(buf, fc, seq, CMD_DEFAULT_RSP, mfr_code)
    struct.pack_into(DEFAULT_RSP_FMT, buf, o, command, status)
    return o + 2
