# The pager's in-order loop (agent.zcl.pager.Pager._stream) for MicroPython's native emitter:
# every block of a download without loss passes through it, so it is a device's per-block
# path. The same steps as Pager._stream, on the Pager's own state (a friend of the class),
# with what does not change while it runs read once into locals: the request ring's
# arrays, the window's slots, the link's recv, the device's take and the clock's ticks (each
# bound once by the Pager: nothing is allocated here). Native code keeps its locals in its
# frame on the C stack, whatever their number; a bytecode function with this many would
# take its frame from the heap at every call, which is why Pager._stream, the plain path,
# reads them from the Pager instead. The pager imports this module with itself; a
# port or build without the emitter (or CPython) fails the import and the pager uses its
# plain path. The tests run both and compare them.
import micropython
from micropython import const

# the frame layout and flags, as agent.zcl.pager declares them
_SLOTS = const(128)       # slots of the window at most (ask and held have this many bytes)
_LOW = const(3)           # blocks still due when the next requests go out
_FC_BLOCK = const(0x09)   # a block response's frame control (cluster-specific, to the client)
_ROUTE = const(0x0F)      # the frame control bits that say so
_SEQ = const(1)           # a block response's sequence number,
_OFF = const(12)          # file offset,
_LEN = const(16)          # data size
_GAPS = const(16)         # requests in flight at most


@micropython.native
def run(p, k):
    """Pager._stream(k) of p: the same blocks taken, the same state left, the same result."""
    rx = p._rx
    s = p._s  # (the slot size: only _one changes it)
    qs = p._qs
    qa = p._qa
    qe = p._qe
    ask = p.ask
    held = p.held
    take = p._dev.take
    recv = p._recv
    ms = p._ms
    rh = p._rh
    w = p._w
    bv = p._bv  # (the block's data view and the slot count change only with the window:
    ns = p._ns  # read again after _reset and _drain)
    j = _SLOTS  # the slot at pos, once known: j - _SLOTS until the flags a block sets
    #             (got, heard, silent, junk, dry) are set in this call
    i = -1
    while k == p._k and rx[_LEN] == s and rx[0] & _ROUTE == _FC_BLOCK and rh == w:
        o = rx[_OFF] | rx[_OFF + 1] << 8 | rx[_OFF + 2] << 16 | rx[_OFF + 3] << 24
        if o != p.pos:
            return k
        p._tn = ms()
        if j == _SLOTS or i < 0 or qs[i] != rx[_SEQ]:
            # (else the block before, in order, was of the oldest request i, still in
            # flight, and heard)
            i = p._request(o)
            if i == -2:
                return k
            if i >= _GAPS:  # its first block
                i -= _GAPS
                k = 0
        if j == _SLOTS:  # (ask and held have _SLOTS bytes: ask[j - _SLOTS] is ask[j])
            j = (o - p._r) // s % ns - _SLOTS
        if i >= 0:  # as _take acks it (i is the oldest request now)
            if not k:
                pass
            elif p._tn <= p._t0:
                p._bs = -1
            elif p._bs != qs[i]:
                p._heard(i, o)
            elif o - p._bo >= 8 * s:
                k = p._clk.ticks_diff(p._tn, p._bt) << 3
                k //= (o - p._bo) // s
                p._ia += (k - p._ia) >> 3
            if ask[j] == qs[i] % 255 + 1:
                ask[j] = 0
            p._fly -= s
            k = qa[i] = o + s
            if k >= qe[i]:
                p._drop()
                i = -1
        k = take(o, bv)  # as _take hands it on
        if j < 0:  # the flags; the blocks after it in this call find them so
            j += _SLOTS
            p._got = p.heard = True
            p.silent = p._junk = 0
            p._dry = False
        if k != o + s:
            p._reset(k)
            bv = p._bv
            ns = p._ns
            i = -1
            j = _SLOTS
        else:
            p.pos = k
            p.top = k + ns * s
            if k > p.hw:
                p.hw = k
            j += 1
            if j == ns:
                j = 0
            if held[j]:
                p._ahead()
                p._drain()
                bv = p._bv
                ns = p._ns
                p._dry = False
                k = p.pos
                i = -1
                j = _SLOTS
        p._t0 = ms()
        if i >= 0:  # the oldest request is still i, its next offset o + s, and it was heard
            p._wait = (qe[i] - o - 1) // s * p._ia // 8 + p._mg
        else:
            p._wait = p._next()
        if k >= p.end or p._fly <= _LOW * s:  # (k: pos)
            return 0  # (Pager._run sees whether requests are due)
        k = recv(rx, p._wait)
    return k
