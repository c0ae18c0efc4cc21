# One exception class for the whole agent, with an integer reason code.
# Reason codes are grouped by layer; message() gives a one-line text for each.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Image file format (OTA header, sub-elements, trailer)
BAD_MAGIC = const(1)
BAD_HEADER_VERSION = const(2)
BAD_HEADER_LENGTH = const(3)
BAD_FIELD_CONTROL = const(4)
TRUNCATED = const(5)
SIZE_MISMATCH = const(6)
BAD_ELEMENT = const(7)
UNKNOWN_ELEMENT = const(8)
DUPLICATE_ELEMENT = const(9)
MISSING_ELEMENT = const(10)
TRAILING_DATA = const(11)
BAD_TRAILER = const(12)
# Manifest and signatures
BAD_CBOR = const(20)
BAD_COSE = const(21)
BAD_MANIFEST = const(22)
UNSUPPORTED_FORMAT = const(23)
UNSUPPORTED_ALG = const(24)
UNKNOWN_KEY = const(25)
BAD_SIGNATURE = const(26)
HEADER_MISMATCH = const(27)
SUPPLIER_SIG_REQUIRED = const(28)
BAD_SUPPLIER_SIG = const(29)
BAD_KEY = const(30)
# Compatibility and anti-rollback
WRONG_MANUFACTURER = const(40)
WRONG_IMAGE_TYPE = const(41)
WRONG_HARDWARE = const(42)
ROLLBACK = const(43)
TOO_LARGE = const(44)
BAD_SECTOR_SIZE = const(45)
# Image identity, addressing and device hardening
WRONG_DESTINATION = const(46)
HIGH_S = const(47)
LAYOUT_NO_FIT = const(48)
REVERTED_IMAGE = const(49)
NO_FALLBACK = const(50)
# Payload integrity
BAD_TABLE_DIGEST = const(60)
BAD_TABLE = const(61)
SECTOR_CRC = const(62)
PAYLOAD_DIGEST = const(63)
PAYLOAD_CRC = const(64)
BAD_ENCODING = const(65)
# Flash, slots and journal
FLASH_ALIGN = const(80)
FLASH_RANGE = const(81)
FLASH_NOT_ERASED = const(82)
FLASH_IO = const(83)
JOURNAL_CORRUPT = const(84)
JOURNAL_FULL = const(85)
SLOT_EMPTY = const(86)
SLOT_INVALID = const(87)
BAD_LAYOUT = const(88)
# Activation and boot
NO_IMAGE = const(100)
HASH_MISMATCH = const(101)
ACTIVATION_FAILED = const(102)
NOT_IN_TRIAL = const(103)
BUSY = const(104)
# Activation and times named by a network peer
DOWNLOAD_ACTIVE = const(105)
NOT_HELD_IMAGE = const(106)
TIME_RANGE = const(107)
SECTOR_CHANGED = const(108)
# Protocol and transport
BAD_FRAME = const(120)
SERVER_ABORT = const(122)
TIMEOUT = const(124)
LINK_IO = const(126)
# Board adapters
BOARD = const(140)
NOT_APP_IMAGE = const(141)

# (code, text) pairs; a constant tuple, so it costs no heap until used.
_TEXT = (
    1, "bad magic number",
    2, "unsupported OTA header version",
    3, "bad OTA header length",
    4, "unsupported header field control",
    5, "image truncated",
    6, "sizes in header and file disagree",
    7, "sub-element overruns the image",
    8, "unknown sub-element",
    9, "duplicate sub-element",
    10, "required sub-element missing",
    11, "unexpected bytes after the image",
    12, "malformed supplier trailer",
    20, "malformed CBOR",
    21, "malformed COSE_Sign1",
    22, "malformed manifest",
    23, "unsupported manifest format version",
    24, "unsupported signature algorithm",
    25, "unknown signing key id",
    26, "manifest signature invalid",
    27, "manifest does not match OTA header",
    28, "supplier signature required",
    29, "supplier signature invalid",
    30, "malformed public key",
    40, "wrong manufacturer code",
    41, "wrong image type",
    42, "hardware version out of range",
    43, "sequence number below the device's (rollback)",
    44, "image larger than the slot",
    45, "unsupported sector size",
    46, "image addressed to another device",
    47, "signature s above n/2 (malleable)",
    48, "image sectors overrun the slot's payload area",
    49, "image failed its trial and was reverted",
    50, "no image at or above the rollback floor to fall back to",
    60, "sector table digest mismatch",
    61, "malformed sector table",
    62, "sector CRC-32 mismatch",
    63, "payload SHA-256 mismatch",
    64, "payload CRC-32 mismatch",
    65, "payload encoding invalid",
    80, "flash access misaligned",
    81, "flash access out of range",
    82, "flash write to non-erased bytes",
    83, "flash I/O error",
    84, "journal corrupt",
    85, "journal full",
    86, "slot empty",
    87, "slot image invalid",
    88, "bad flash layout",
    100, "no image held",
    101, "image hash mismatch",
    102, "activation failed",
    103, "not in trial boot",
    104, "busy",
    105, "activation refused while a download is in progress",
    106, "command names an image other than the one held",
    107, "time from the server beyond the device's horizon",
    108, "a written sector changed in flash before the final check",
    120, "malformed frame",
    122, "server aborted the transfer",
    124, "timed out",
    126, "link I/O error",
    140, "board error",
    141, "not an application image for this board",
)


def message(reason):
    t = _TEXT
    for i in range(0, len(t), 2):
        if t[i] == reason:
            return t[i + 1]
    return "error"


class OtaError(Exception):
    """The agent's only exception: reason is one of the codes above."""

    def __init__(self, reason, detail=""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self):
        if self.detail:
            return "E%d %s: %s" % (self.reason, message(self.reason), self.detail)
        return "E%d %s" % (self.reason, message(self.reason))
