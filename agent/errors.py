# One exception class for the whole agent, with an integer reason code.
# Reason codes are grouped by layer; message() gives a one-line text for each (from
# agent/errtext.py, which the host tools and tests have and a device leaves out).
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


def message(reason):
    """One line of text for a reason code (agent/errtext.py, "error" for an unknown code), or
    "" where that table is left out, as on a device."""
    try:
        from agent.errtext import text
    except ImportError:
        return ""
    return text(reason)


class OtaError(Exception):
    """The agent's only exception: reason is one of the codes above."""

    def __init__(self, reason, detail=""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self):
        s = "E%d" % self.reason
        t = message(self.reason)
        if t:
            s += " " + t
        if self.detail:
            s += ": " + self.detail
        return s
