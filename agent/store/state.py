# The agent's persistent state: one fixed-size record, saved as a whole through the journal
# (agent.store.journal), so every change is atomic across a power cut.
import struct
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

IDLE = const(0)         # nothing in progress
DOWNLOADING = const(1)  # an image is being written into `slot`; `next` sectors are done
HELD = const(2)         # a verified image waits in `slot` for its activation
ACTIVATING = const(3)   # `slot` is pending in the bootloader or on trial

WAIT_COMMAND = const(0xFFFFFFFF)  # activation time: wait for an activation command (how
                                  # far ahead a time may be: agent.activation.HORIZON)
ALERTS = const(4)                 # alerts kept until the server acknowledges them

F_FUTURE = const(1)     # the activation time was in the future when it was set
F_REVERTED = const(2)   # the image of `ident` failed its trial: refused until another comes

STATE_FMT = "<BBBBBBBBIIIIII32s32s100s16s"
#   B    phase (IDLE, DOWNLOADING, HELD, ACTIVATING)
#   B    slot being downloaded, held or activated
#   B    flags (F_FUTURE, F_REVERTED)
#   B    number of queued alerts
#   B    next alert id (wraps at 256)
#   B    failures of the current sector (re-fetches)
#   B    reserved
#   B    reserved
#   I    device sequence number (anti-rollback; raised on confirm)
#   I    the download's checkpoint: payload sectors in flash and checked, where a
#        resumed download goes on (moved by agent.store.writer alone)
#   I    activation time (UTC seconds since 2000) or WAIT_COMMAND
#   I    firmware version of the held image
#   I    sequence number of the held image
#   I    firmware version running (confirmed)
#   32s  download identity: SHA-256 of the OTA header and the COSE manifest
#   32s  Manufacturer Image hash of the held image
#   100s state of the Manufacturer Image hash of a compressed download (agent.crypto.sha256r)
#   16s  first 16 bytes of SHA-256(OTA header, COSE manifest) of the last manifest whose
#        signature verified from flash (agent.store.check.sig_tag): the power-on check verifies
#        a running image's signature once, not at every boot
ALERT_FMT = "<HBBI"
#   H    alert code (agent.alerts: 0x8F72, 0x8F1C, ...)
#   B    reason code (agent.errors)
#   B    alert id, echoed by the server's acknowledgement
#   I    value: firmware version, or activation time
STATE_BASE = const(212)  # struct.calcsize(STATE_FMT): where the alerts start
ALERT_SIZE = const(8)    # struct.calcsize(ALERT_FMT)
STATE_SIZE = const(STATE_BASE + ALERTS * ALERT_SIZE)  # 244 at most, so that a journal
                                                      # record (12 bytes more) fits 256


class State:
    def __init__(self):
        self.phase = IDLE
        self.slot = 0
        self.flags = 0
        self.next_alert = 0
        self.fails = 0
        self.seq = 0
        self.next = 0
        self.act_time = WAIT_COMMAND
        self.held_version = 0
        self.held_seq = 0
        self.run_version = 0
        self.ident = bytes(32)
        self.mi_hash = bytes(32)
        self.mi_state = bytearray(100)
        self.sig_ok = bytes(16)  # see STATE_FMT
        self.alerts = []  # [code, reason, id, value]

    def pack(self, buf):
        struct.pack_into(STATE_FMT, buf, 0, self.phase, self.slot, self.flags, len(self.alerts),
                         self.next_alert, self.fails, 0, 0, self.seq, self.next, self.act_time,
                         self.held_version, self.held_seq, self.run_version, self.ident,
                         self.mi_hash, self.mi_state, self.sig_ok)
        off = STATE_BASE
        for i in range(ALERTS):
            a = self.alerts[i] if i < len(self.alerts) else (0, 0, 0, 0)
            struct.pack_into(ALERT_FMT, buf, off, a[0], a[1], a[2], a[3])
            off += ALERT_SIZE
        return buf

    def unpack(self, buf):
        (self.phase, self.slot, self.flags, n, self.next_alert, self.fails, _r1, _r2, self.seq,
         self.next, self.act_time, self.held_version, self.held_seq, self.run_version,
         self.ident, self.mi_hash, mi_state, self.sig_ok) = struct.unpack_from(STATE_FMT, buf, 0)
        self.mi_state[:] = mi_state
        self.alerts = []
        for i in range(n if n <= ALERTS else ALERTS):
            self.alerts.append(list(struct.unpack_from(ALERT_FMT, buf, STATE_BASE + i * ALERT_SIZE)))
        return self
