# One request at a time to the OTA server, and its answer: the exchange agent.zcl.client
# builds on.
#
# A request is sent and its answer awaited: the command expected, with the request's
# sequence number. Without one in time it is sent again, up to `retries` times, each wait
# twice the one before (at most 8 s). The first wait is the retransmission timeout (RTO)
# estimated from the round trips measured so far: RFC 6298's smoothed round trip plus four
# mean deviations, at least min_timeout_ms; by Karn's rule only the answer to a request
# sent once is timed. A frame that answers nothing is handed to _unsolicited (the client
# acts on the server's commands there); a malformed one counts as lost. stall_s is the stall
# budget: how long the client goes on without progress (measured with ticks_ms, so at most
# a day); a request whose retries all ran out does not end a download by itself.
# The answer to the Image Block Request in _bq is recognized in place, at agent.zcl.frames'
# BLOCK_* offsets, without decoding: a block's round trip allocates nothing.
#
# The steps a block passes through are functions of the session s, each also a method of
# Session: called as functions, they are found at once (a method is looked up among the
# instance's attributes first, then class by class, at every call). They keep their frames
# small (locals and stack within MicroPython's 11 words), so that calling them takes no heap.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.zcl.frames import Frame, FRAME_MAX, FC_MFR, FC_ROUTE, FC_BLOCK_RSP, CMD_BLOCK_RSP, \
    S_SUCCESS, BLOCK_STATUS, BLOCK_ECHO, BLOCK_LEN, BLOCK_DATA, BLOCK_REQ_SIZE
from agent.zcl.frames import decode
from agent.errors import OtaError

STALL_MAX_S = const(86400)  # the longest stall budget: a day
_TX_MAX = const(48)         # the longest frame the device sends: an Alert with the image's
#                             hash and an extra (5-byte header + 7 + 32 + 4)
BLOCK = object()            # recv's answer for the Image Block Response awaited


def next_seq(s):
    s._seq = (s._seq + 1) & 0xFF
    return s._seq


def request(s, v, cmd):
    """Send the request frame v and wait for the answer `cmd` with the same sequence
    number, retrying with back-off: the decoded Frame, BLOCK, or None when every retry
    timed out."""
    s._cmd = cmd
    s._seqw = v[3] if v[0] & FC_MFR else v[1]
    if cmd == CMD_BLOCK_RSP:
        s._want[0] = s._seqw
        s._wk[:] = s._tk
    wait = rto(s)
    tries = s.retries + 1
    while tries:
        s.link.send(v)
        f = _await(s, wait, tries > s.retries)
        if f is not None:
            break
        s.retransmits += 1
        wait = wait * 2 if wait < 4000 else 8000
        tries -= 1
    s._cmd = 0
    return f


def _await(s, wait, first):
    # the answer to the request just sent, within wait ms
    t0 = s.clock.ticks_ms()
    left = wait
    while left > 0:
        f = recv(s, left)
        left = wait - since(s, t0)  # also sets _now
        if f is not None:
            if f is BLOCK or f.cluster and f.to_client and f.command == s._cmd \
                    and f.seq == s._seqw and f.mfr_code is None:
                if first:  # Karn: time only answers to a single transmission
                    sample(s, wait - left)
                return f
            s._unsolicited(f)
    return None


def recv(s, timeout_ms):
    """One frame for us, or None; BLOCK for the answer to the block request awaited."""
    n = s.link.recv(s._rx, timeout_ms)
    if not n:
        return None
    if s._cmd == CMD_BLOCK_RSP and _is_block(s, n):
        return BLOCK
    return decode_rx(s, n)


def _is_block(s, n):
    # rx[:n] is the SUCCESS Image Block Response, with data, to the request in _bq
    rx = s._rx
    n -= BLOCK_DATA
    if n <= 0 or rx[BLOCK_LEN] != n or rx[0] & FC_ROUTE != FC_BLOCK_RSP:
        return False
    return s._rk == s._want


def decode_rx(s, n):
    """The frame in rx[:n], decoded; None when malformed (as if lost)."""
    try:
        return decode(s._rx, n, s._f, s.mfr)
    except OtaError:
        return None


def block_data(s, n):
    """The n data bytes of the block response in rx, as a view made again only when n
    changes."""
    v = s._dv
    if v is None or len(v) != n:
        v = s._dv = memoryview(s._rx)[BLOCK_DATA:BLOCK_DATA + n]
    return v


def since(s, t0):
    """ms from ticks t0 to now; now (ticks_ms) is kept in s._now."""
    c = s.clock
    s._now = c.ticks_ms()
    return c.ticks_diff(s._now, t0)


def rto(s):
    """Retransmission timeout from the measured round trips (RFC 6298's estimator)."""
    if not s._srtt:
        return s.timeout_ms
    t = (s._srtt >> 3) + s._rttvar
    return t if t > s.min_timeout_ms else s.min_timeout_ms


def sample(s, ms):
    """A round trip of ms into the estimate."""
    if not s._srtt:
        s._srtt = ms << 3
        s._rttvar = ms << 1
        return
    err = ms - (s._srtt >> 3)
    s._srtt += err
    if err < 0:
        err = -err
    s._rttvar += err - (s._rttvar >> 2)


class Session:
    def __init__(self, link, clock, mfr, timeout_ms=1000, retries=8, stall_s=300,
                 min_timeout_ms=20):
        self.link = link
        self.clock = clock
        self.mfr = mfr                    # our manufacturer code
        self.timeout_ms = timeout_ms      # first retransmission timeout, before any RTT
        self.min_timeout_ms = min_timeout_ms
        self._srtt = 0                    # smoothed round trip, ms x 8 (0: no sample yet)
        self._rttvar = 0                  # its mean deviation, ms x 4
        self.retransmits = 0
        self.retries = retries
        self.stall_s = stall_s if stall_s < STALL_MAX_S else STALL_MAX_S
        self._tx = bytearray(_TX_MAX)
        self._rx = bytearray(FRAME_MAX + 8)
        self._bq = bytearray(BLOCK_REQ_SIZE)  # a download's block request, set per block
        # an answer's bytes from its sequence number to its echoed fields, and what they
        # must be: the request's sequence number, CMD_BLOCK_RSP, S_SUCCESS, and the 12 bytes
        # the request holds from BLOCK_ECHO on; views and buffers made once, so that a
        # block's round trip allocates nothing
        self._rk = memoryview(self._rx)[1:BLOCK_LEN]
        self._want = bytearray(BLOCK_LEN - 1)
        self._want[1] = CMD_BLOCK_RSP
        self._want[BLOCK_STATUS - 1] = S_SUCCESS
        self._wk = memoryview(self._want)[BLOCK_ECHO - 1:]
        self._tk = memoryview(self._bq)[BLOCK_ECHO:BLOCK_LEN]
        self._dv = None
        self._cmd = 0      # the answer awaited (0: none)
        self._seqw = 0     # its sequence number
        self._now = 0      # ticks_ms when the last frame arrived
        self._f = Frame()
        self._seq = 0

    def _unsolicited(self, f):
        """A frame f that answers no request (a subclass acts on it)."""

    _next_seq = next_seq
    _decode = decode_rx
    _data = block_data
    _since = since
    _rto = rto
    _sample = sample
