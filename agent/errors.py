# One exception class for the whole agent, with an integer reason code.
# Reason codes are grouped by layer; message() gives a one-line text for each (from
# agent/errtext.py, which the host tools and tests have and a device leaves out).
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Every reason code, by name: " NAME code" pairs, grouped by layer. A name is read from here
# when it is imported or looked up (`from agent.errors import BUSY`, errors.BUSY: the module's
# __getattr__), so a device keeps the table in its code (in flash when frozen) instead of a
# dict of some 75 entries made at import. The codes never change (alerts and logs carry
# them); a new one gets a free number in its layer's range.
CODES = const(
    # Image file format (OTA header, sub-elements, trailer)
    " BAD_MAGIC 1 BAD_HEADER_VERSION 2 BAD_HEADER_LENGTH 3 BAD_FIELD_CONTROL 4 TRUNCATED 5 "
    "SIZE_MISMATCH 6 BAD_ELEMENT 7 UNKNOWN_ELEMENT 8 DUPLICATE_ELEMENT 9 MISSING_ELEMENT 10 "
    "TRAILING_DATA 11 BAD_TRAILER 12 "
    # Manifest and signatures
    "BAD_CBOR 20 BAD_COSE 21 BAD_MANIFEST 22 UNSUPPORTED_FORMAT 23 UNSUPPORTED_ALG 24 "
    "UNKNOWN_KEY 25 BAD_SIGNATURE 26 HEADER_MISMATCH 27 SUPPLIER_SIG_REQUIRED 28 "
    "BAD_SUPPLIER_SIG 29 BAD_KEY 30 "
    # Compatibility and anti-rollback
    "WRONG_MANUFACTURER 40 WRONG_IMAGE_TYPE 41 WRONG_HARDWARE 42 ROLLBACK 43 TOO_LARGE 44 "
    "BAD_SECTOR_SIZE 45 "
    # Image identity, addressing and device hardening
    "WRONG_DESTINATION 46 HIGH_S 47 LAYOUT_NO_FIT 48 REVERTED_IMAGE 49 NO_FALLBACK 50 "
    # Payload integrity
    "BAD_TABLE_DIGEST 60 BAD_TABLE 61 SECTOR_CRC 62 PAYLOAD_DIGEST 63 PAYLOAD_CRC 64 "
    "BAD_ENCODING 65 BASE_MISMATCH 66 "
    # Flash, slots and journal
    "FLASH_ALIGN 80 FLASH_RANGE 81 FLASH_NOT_ERASED 82 FLASH_IO 83 JOURNAL_CORRUPT 84 "
    "JOURNAL_FULL 85 SLOT_EMPTY 86 SLOT_INVALID 87 BAD_LAYOUT 88 "
    # Activation and boot
    "NO_IMAGE 100 HASH_MISMATCH 101 ACTIVATION_FAILED 102 NOT_IN_TRIAL 103 BUSY 104 "
    # Activation and times named by a network peer
    "DOWNLOAD_ACTIVE 105 NOT_HELD_IMAGE 106 TIME_RANGE 107 SECTOR_CHANGED 108 "
    # Protocol and transport
    "BAD_FRAME 120 SERVER_ABORT 122 TIMEOUT 124 LINK_IO 126 "
    # Board adapters
    "BOARD 140 NOT_APP_IMAGE 141 "
)


def __getattr__(name):
    # the code named `name`, from CODES
    t = CODES
    i = t.find(" " + name + " ")
    if i < 0 or " " in name or not "A" <= name[:1] <= "Z":
        raise AttributeError(name)
    i += len(name) + 2
    return int(t[i:t.find(" ", i)])


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
