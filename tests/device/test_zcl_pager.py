# Image Page Requests and Image Notify in the OTA client, against an in-memory server on a
# fake clock: pages answered as runs of block responses with frames lost, doubled and
# reordered one by one; only what was lost is asked for again, one request per run of lost
# blocks, never a block the device already has; the next requests go out while the server
# still sends (pipelining), and a server that drops requests arriving while it sends a page
# (as zigbee-herdsman does) gets one request at a time after a few; servers that send
# their own sequence numbers or smaller blocks than asked are served too; a server that
# refuses page requests (Default Response UNSUP_CLUSTER_COMMAND) or never answers them gets
# block requests; a notify selects the device by the ZCL rules and ends its idle wait.
from agent.zcl import client as C
from agent.zcl import pager as P
from agent.zcl import server as zcl, server as zcl_server  # the hub below: the server side
import hashlib

from hal.sim.clock import FakeClock
from devkit import Rig, MAN, TYPE
from tutil import Image, eq

V2 = Image("core_v2.ota")  # read a block at a time (the Cortex-M tier's heap is small)


class Rnd:
    """A small LCG (MicroPython's random has no Random class)."""

    def __init__(self, seed):
        self.x = seed

    def random(self):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) / float(1 << 23)


class PageHub:
    """Answers Query Next Image, Image Block and Page Requests and Upgrade End; each frame
    it sends is lost, doubled or held back (reordered) by the given odds; the device reads a
    frame a millisecond. busy: a page request that comes while the server sends a page
    (a millisecond a block, lost ones included) is dropped, and counted in ignored with
    the pager's pipelining state then; echo False: blocks carry the server's own sequence
    numbers; cap: the largest block it sends."""

    def __init__(self, img, clock, pages=True, refuse=False, drop=0.0, dup=0.0, late=0.0,
                 seed=1, busy=False, echo=True, cap=255):
        self.img = img
        self.clock = clock
        self.pages = pages      # answers page requests (else ignores them)
        self.refuse = refuse    # answers them with Default Response UNSUP_CLUSTER_COMMAND
        self.drop = drop
        self.dup = dup
        self.late = late
        self.busy = busy
        self.echo = echo
        self.cap = cap
        self.rnd = Rnd(seed)
        self.q = []
        self.held = None
        self.f = zcl.Frame()
        self.page_reqs = []      # (offset, page size) of each page request
        self.served = 0          # bytes asked for by the page requests that reached it
        self.block_reqs = []     # offset of each block request
        self.sent = 0            # block responses sent (lost ones included)
        self.have = bytearray(len(img))  # 1: the device has read a block holding the byte
        self.again = []          # (offset, page size) of requests for a block it had read
        self.piped = 0           # page requests sent while blocks were still queued
        self.ignored = []        # the pager's .pipe when a request was dropped (busy)
        self.until = 0           # busy: the clock's ms when the page being sent ends
        self.cl = None
        self._seq = 100

    def _out(self, b, n):
        fr = bytes(b[:n])
        r = self.rnd
        if self.drop and r.random() < self.drop:
            return
        if self.late and self.held is None and r.random() < self.late:
            self.held = fr
            return
        self.q.append(fr)
        if self.dup and r.random() < self.dup:
            self.q.append(fr)
        if self.held is not None:
            self.q.append(self.held)
            self.held = None

    def _block(self, b, seq, off, size):
        self.sent += 1
        if not self.echo:
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
        return zcl_server.encode_block_response(b, seq, MAN, TYPE, 2, off,
                                                self.img[off:off + size])

    def send(self, data):
        f = zcl.decode(data, len(data), self.f)
        b = bytearray(zcl.FRAME_MAX)
        if f.command == zcl.CMD_PAGE_REQ:
            self.page_reqs.append((f.offset, f.page_size))
            if self.q:
                self.piped += 1
            for o in range(f.offset, min(f.offset + f.page_size, len(self.img))):
                if self.have[o]:
                    self.again.append((f.offset, f.page_size))
                    break
            if self.busy and self.clock.ticks_ms() < self.until:
                self.ignored.append(self.cl.pager.pipe)
                return
        if self.drop and self.rnd.random() < self.drop:
            return  # the request is lost on its way
        if f.command == zcl.CMD_QUERY_NEXT:
            self._out(b, zcl_server.encode_query_next_response(
                b, f.seq, zcl.S_SUCCESS, MAN, TYPE, 2, len(self.img)))
        elif f.command == zcl.CMD_BLOCK_REQ:
            self.block_reqs.append(f.offset)
            self._out(b, self._block(b, f.seq, f.offset, f.max_size))
        elif f.command == zcl.CMD_PAGE_REQ:
            self.served += f.page_size
            if self.refuse:
                self._out(b, zcl.encode_default_response(b, f.seq, True, zcl.CMD_PAGE_REQ,
                                                         zcl.S_UNSUP_CLUSTER_COMMAND))
                return
            if not self.pages:
                return
            off, end = f.offset, min(f.offset + f.page_size, len(self.img))
            self.until = self.clock.ticks_ms() + (end - off + f.max_size - 1) // f.max_size
            while off < end:
                k = min(f.max_size, self.cap, end - off)
                self._out(b, self._block(b, f.seq, off, k))
                off += k
        elif f.command == zcl.CMD_UPGRADE_END:
            now = self.clock.now()
            self._out(b, zcl_server.encode_upgrade_end_response(b, f.seq, MAN, TYPE, 2,
                                                                now, now))

    def recv(self, buf, timeout_ms):
        if not self.q:
            self.clock.sleep_ms(timeout_ms)
            return 0
        fr = self.q.pop(0)
        buf[0:len(fr)] = fr
        if len(fr) > 17 and fr[2] == zcl.CMD_BLOCK_RSP and fr[3] == zcl.S_SUCCESS:
            o = fr[12] | fr[13] << 8 | fr[14] << 16 | fr[15] << 24
            for i in range(o, o + fr[16]):
                self.have[i] = 1
        self.clock.sleep_ms(1)
        return len(fr)


def _session(hub, rig=None):
    r = rig or Rig()
    if rig is None:
        r.provision()
    r.board.clock = hub.clock
    cl = C.Client(r.dev, hub, hub.clock, 48, retries=8, stall_s=300)
    hub.cl = cl
    return r, cl, cl.session()


def test_pages_without_loss_ask_for_each_byte_once():
    hub = PageHub(V2, FakeClock(1000))
    r, cl, out = _session(hub)
    eq(C.OUTCOMES[out], "activate", "outcome")
    assert r.reboot().trial
    eq(hub.block_reqs, [], "block requests")
    # one request per page of whole blocks, each from where the last ended
    pages = hub.page_reqs
    assert len(pages) >= 2
    for (o1, n1), (o2, n2) in zip(pages, pages[1:]):
        assert o2 >= o1 + n1 or o2 < o1, (o1, n1, o2)  # forward, or a jump to the payload
    assert all(n % 48 == 0 or o + n == len(V2) for o, n in pages), pages
    assert all(n <= P.PAGE and o + n <= len(V2) for o, n in pages), pages


def test_lost_blocks_are_asked_for_again_alone():
    hub = PageHub(V2, FakeClock(1000), drop=0.2, dup=0.1, late=0.1, seed=3)
    r, cl, out = _session(hub)
    eq(C.OUTCOMES[out], "activate", "outcome")
    assert r.reboot().trial
    # re-requests cover one gap, not the rest of a page: with a fifth of the frames lost,
    # the bytes asked for by the requests that reached the server (a lost request is asked
    # for again whole) stay well below what re-asking whole pages would cost
    assert hub.served < len(V2) * 1.45, (hub.served, len(V2))
    small = [n for _, n in hub.page_reqs if n < P.PAGE // 2]
    assert small, "no gap-sized requests"
    eq(hub.block_reqs, [], "block requests")
    # every block response beyond the image's own count replaced a lost or refused one
    assert hub.sent < (len(V2) // 48 + 1) * 1.5, hub.sent


def test_only_lost_blocks_are_asked_for_again():
    # frames lost both ways, none late: the server answers requests in the order sent, so
    # a block of one request tells the device what the ones before it lost; it never asks
    # again for a block it has read, and asks for each run of lost blocks on its own
    for seed in (3, 5):
        hub = PageHub(V2, FakeClock(1000), drop=0.2, seed=seed)
        r, cl, out = _session(hub)
        eq(C.OUTCOMES[out], "activate", "outcome")
        eq(hub.again, [], "requests for blocks already read")
        gaps = [n for o, n in hub.page_reqs if n < P.PAGE // 2 and o + n < len(V2)]
        assert len(gaps) > 20 and all(n % 48 == 0 for n in gaps), gaps
        # about one request per loss: not one per page, not one per block of a page
        lost = hub.sent - (len(V2) + 47) // 48
        assert lost // 3 < len(gaps) < lost * 2, (len(gaps), lost)
        eq(hub.ignored, [], "ignored")


def test_next_requests_go_out_while_the_page_is_sent():
    # without loss, every request after the manifest's reaches the server while blocks of
    # the one before are still on their way, and nothing is asked for twice
    hub = PageHub(V2, FakeClock(1000))
    r, cl, out = _session(hub)
    eq(C.OUTCOMES[out], "activate", "outcome")
    eq(hub.again, [], "requests for blocks already read")
    eq(sum(n for _, n in hub.page_reqs) >= len(V2), True, "the whole image asked for")
    assert len(hub.page_reqs) >= 10, hub.page_reqs
    assert hub.piped >= len(hub.page_reqs) - 4, (hub.piped, hub.page_reqs)
    eq(cl.pager.pipe, True, "pipelining")
    eq(cl.retransmits, 0, "retransmits")


def test_a_server_that_drops_pipelined_requests():
    # zigbee-herdsman's way: a request that comes while it sends a page is dropped. The
    # device notices after PIPE_SILENT rounds and from then on sends one request at a time,
    # each once the one before has ended; the update goes through
    for drop in (0.0, 0.2):
        clk = FakeClock(1000)
        hub = PageHub(V2, clk, drop=drop, busy=True, seed=7)
        r, cl, out = _session(hub)
        eq(C.OUTCOMES[out], "activate", "outcome")
        eq(cl.pager.pipe, False, "pipelining")
        assert len(hub.ignored) >= P.PIPE_SILENT, hub.ignored
        if not drop:
            # no loss: no request dropped after the switch, none asked for twice
            eq([p for p in hub.ignored if not p], [], "requests dropped after the switch")
            eq(hub.again, [], "requests for blocks already read")
            assert len(hub.ignored) <= 2 * P.PIPE_SILENT, hub.ignored


def test_blocks_with_the_servers_own_sequence_numbers():
    # a server that does not echo the request's sequence number in its blocks: the device
    # tells the requests apart by offset, and still asks only for what was lost
    hub = PageHub(V2, FakeClock(1000), drop=0.2, echo=False, seed=4)
    r, cl, out = _session(hub)
    eq(C.OUTCOMES[out], "activate", "outcome")
    assert cl.pager._echo <= 0, cl.pager._echo  # not taken for an echo
    eq(hub.again, [], "requests for blocks already read")


def test_a_server_that_sends_smaller_blocks():
    # 40-byte blocks for 48 asked for: the window's slots become 40 bytes
    hub = PageHub(V2, FakeClock(1000), drop=0.2, cap=40, seed=6)
    r, cl, out = _session(hub)
    eq(C.OUTCOMES[out], "activate", "outcome")
    assert r.reboot().trial
    eq(cl.pager._s, 40, "slot size")
    eq(hub.block_reqs, [], "block requests")
    assert hub.sent < (len(V2) // 40 + 1) * 1.6, hub.sent


class Trace:
    """The hub's link, noting every frame the device sends and every read (the clock, the
    timeout and what came), so that two downloads can be compared step by step."""

    def __init__(self, hub):
        self.hub = hub
        self.log = []

    def send(self, data):
        self.log.append((self.hub.clock.ticks_ms(), bytes(data)))
        self.hub.send(data)

    def recv(self, buf, timeout_ms):
        n = self.hub.recv(buf, timeout_ms)
        self.log.append((self.hub.clock.ticks_ms(), timeout_ms, bytes(buf[:n]),
                         _state(self.hub.cl.pager)))
        return n


def _state(pg):
    # the pager's state when it reads the link (a digest: the tier's heap is small)
    if pg is None:
        return None
    return hashlib.sha256(repr((
        pg.pos, pg.hw, pg.end, pg.top, pg._h, pg._n, pg._fly, pg._qa, pg._qe, bytes(pg._qf),
        bytes(pg._qs), pg.on, pg.heard, pg.pipe, pg._pok, pg._ph, pg._miss, pg._prun,
        pg._echo, pg._ev, pg._em, pg.silent, pg._s, pg._ns, pg._r, pg._fresh, pg._dry,
        pg._got, pg._p0, pg._t0, pg._tn, pg._ts, pg._bt, pg._bo, pg._bs, pg._wait, pg._mg,
        pg._gave, pg._junk, pg._ia)).encode() + pg.held + pg.ask).digest()[:8]


def _traced(fast, native=True, **kw):
    hub = PageHub(V2, FakeClock(1000), **kw)
    r = Rig()
    r.provision()
    r.board.clock = hub.clock
    link = Trace(hub)
    cl = C.Client(r.dev, link, hub.clock, 48, retries=8, stall_s=300)
    hub.cl = cl
    pg = cl.pager = P.Pager(cl, cl.page)
    pg.fast = fast
    if not native:
        pg._go = None  # the plain loop
    calls = [0]
    one = pg._one

    def counted(k):
        calls[0] += 1
        return one(k)

    pg._one = counted  # frames that took the general way
    out = cl.session()
    eq(pg._go is not None, native and P._native is not None, "the native loop in use")
    return link.log, (C.OUTCOMES[out], cl.retransmits, pg.pipe, pg._echo, pg._ia, pg._mg,
                      pg._s, hub.sent, hub.page_reqs, hub.again), calls[0]


def test_in_order_blocks_take_the_same_way_fast():
    # _stream (a block in order, for the oldest request in flight), its native twin
    # (agent.zcl.streamn, where the port has the emitter) and _one (any frame) do the same:
    # the same requests at the same times, the same waits, the same state at every read of
    # the link, the same outcome, on links that lose, double and reorder frames and on one
    # whose server does not echo the sequence number; with few losses most blocks take
    # _stream (under heavy loss most come after a gap, and are held)
    for kw in (dict(drop=0.0), dict(drop=0.03, seed=5),
               dict(drop=0.2, dup=0.1, late=0.1, seed=3), dict(drop=0.2, echo=False, seed=4)):
        log2, st2, ones2 = _traced(False, **kw)
        for native in (True, False):
            log, st, ones = _traced(True, native, **kw)
            eq(st, st2, "outcome and state")
            eq(len(log), len(log2), "steps")
            for i in range(len(log)):
                if log[i] != log2[i]:
                    eq(log[i], log2[i], "step %d (native %s)" % (i, native))
            eq(st[0], "activate", "outcome")
            assert ones2 > 400 and ones < ones2, (ones, ones2)
            if kw["drop"] < 0.1:
                assert ones < ones2 // (2 if kw["drop"] else 20), (kw, ones, ones2)


def test_pager_attributes_fit_their_table():
    # MicroPython keeps an instance's attributes in a hash table of 59 slots, then 73: one
    # attribute more than 59 makes it grow, at a download's start, into a block of 584 B
    # (1,168 on a 64-bit port) that the fragmented heap must have whole
    hub = PageHub(V2, FakeClock(1000))
    r = Rig()
    r.provision()
    cl = C.Client(r.dev, Trace(hub), hub.clock, 48)
    hub.cl = cl
    pg = cl.pager = P.Pager(cl, cl.page)
    cl.session()
    d = getattr(pg, "__dict__", None)
    if d is not None:  # (a port without __dict__ on instances)
        assert 40 < len(d) <= 59, len(d)


def test_native_loop_where_the_port_has_the_emitter():
    # CPython has no native loop to give (the plain one runs); the unix port compiles
    # agent.zcl.streamn with its emitter (x64). (The Cortex-M tier's frozen firmware has it
    # compiled for Thumb; its ROMFS image leaves it out: see host_tools.mcu.ROMFS_LEAVES_OUT.)
    import sys
    run = P._native
    if sys.implementation.name != "micropython":
        eq(run, None, "CPython: the plain loop")
    elif sys.platform == "linux":
        assert run is not None, "the unix port's native emitter"


class _Cl:
    _rx = bytearray(80)


def test_mark_sets_each_slot_a_request_asks_for():
    # the slots _mark sets are those of the request's next offsets within the window, found
    # here offset by offset; the window starts at any slot and wraps round its end
    pg = P.Pager(_Cl())
    r = Rnd(7)
    for n in range(300):
        s = (16, 48, 64)[n % 3]
        pg._s = s
        pg._ns = min(1024 // s * 4, len(pg.ask))
        pg._r = int(r.random() * s)
        pg.pos = pg._r + int(r.random() * 300) * s + int(r.random() * s)
        pg.top = pg.pos - (pg.pos - pg._r) % s + pg._ns * s
        a = pg.pos - 3 * s + int(r.random() * (pg._ns + 6) * s)
        e = a + int(r.random() * (pg._ns + 6) * s)
        pg._qa[5], pg._qe[5], pg._qs[5] = a, e, n & 0xFF
        want = bytearray(len(pg.ask))
        lo = pg.pos - (pg.pos - pg._r) % s
        for o in range(a if a > lo else lo, e if e < pg.top else pg.top):
            want[(o - pg._r) // s % pg._ns] = (n & 0xFF) % 255 + 1
        pg.ask[:] = bytearray(len(pg.ask))
        pg._mark(5)
        eq(bytes(pg.ask), bytes(want), "slots of %r" % ((s, pg._r, pg.pos, a, e),))


def test_block_requests_after_unsup_cluster_command():
    hub = PageHub(V2, FakeClock(1000), refuse=True)
    r, cl, out = _session(hub)
    eq(C.OUTCOMES[out], "activate", "outcome")
    eq(len(hub.page_reqs), 1, "page requests")
    assert len(hub.block_reqs) > 100
    eq(cl.pager.on, False, "pages off")


def test_block_requests_after_silence():
    hub = PageHub(V2, FakeClock(1000), pages=False)
    r, cl, out = _session(hub)
    eq(C.OUTCOMES[out], "activate", "outcome")
    eq(len(hub.page_reqs), P.SILENT, "page requests before falling back")
    assert len(hub.block_reqs) > 100


def test_page_requests_off():
    hub = PageHub(V2, FakeClock(1000))
    r = Rig()
    r.provision()
    r.board.clock = hub.clock
    cl = C.Client(r.dev, hub, hub.clock, 48)
    cl.page = 0
    eq(C.OUTCOMES[cl.session()], "activate", "outcome")
    eq(hub.page_reqs, [], "page requests")


class _Cfg:
    manufacturer = MAN
    image_type = TYPE


class _St:
    run_version = 7


class _Dev:
    cfg = _Cfg()
    st = _St()


def _notify(ptype, jitter, man=0, itype=0, ver=0):
    return zcl_server.parse(zcl_server.build(zcl_server.encode_image_notify, 5, ptype,
                                             jitter, man, itype, ver))


def test_notify_rules():
    d = _Dev()
    sel = C.notify_selects
    assert sel(_notify(0, 100), d, lambda: 255)            # unicast: jitter 100
    assert not sel(_notify(0, 0), d, lambda: 0)            # jitter 0: never
    assert sel(_notify(0, 50), d, lambda: 49)              # draw 50 of 1..100
    assert not sel(_notify(0, 50), d, lambda: 50)          # draw 51
    assert sel(_notify(1, 100, MAN), d)
    assert sel(_notify(1, 100, 0xFFFF), d)                 # wildcard
    assert not sel(_notify(1, 100, MAN + 1), d)
    assert sel(_notify(2, 100, MAN, TYPE), d)
    assert not sel(_notify(2, 100, MAN, TYPE + 1), d)
    assert sel(_notify(2, 100, MAN, 0xFFFF), d)
    assert sel(_notify(3, 100, MAN, TYPE, 8), d)
    assert not sel(_notify(3, 100, MAN, TYPE, 7), d)       # the version it runs


class NotifyLink:
    """Nothing but one Image Notify, due at a given tick."""

    def __init__(self, clock, at, frame):
        self.clock = clock
        self.at = at
        self.frame = frame
        self.sent = []

    def send(self, data):
        self.sent.append(bytes(data))

    def recv(self, buf, timeout_ms):
        now = self.clock.ticks_ms()
        if self.frame is not None and now + timeout_ms >= self.at:
            if self.at > now:
                self.clock.sleep_ms(self.at - now)
            buf[0:len(self.frame)] = self.frame
            n = len(self.frame)
            self.frame = None
            return n
        self.clock.sleep_ms(timeout_ms)
        return 0


def test_notify_ends_the_idle_wait():
    clk = FakeClock(1000)
    r = Rig()
    r.provision()
    r.board.clock = clk
    fr = zcl_server.build(zcl_server.encode_image_notify, 9, 0, 100)
    link = NotifyLink(clk, clk.ticks_ms() + 1500, fr)
    cl = C.Client(r.dev, link, clk, 48)
    t0 = clk.ticks_ms()
    cl.idle(3600 * 1000)  # an hour's poll interval
    eq(cl.notified, True, "notified")
    waited = clk.ticks_ms() - t0
    assert 1500 <= waited < 1600, waited
    # a notify for another manufacturer does not wake it
    fr = zcl_server.build(zcl_server.encode_image_notify, 9, 1, 100, MAN + 1)
    link = NotifyLink(clk, clk.ticks_ms() + 1500, fr)
    cl = C.Client(r.dev, link, clk, 48)
    t0 = clk.ticks_ms()
    cl.idle(10000)
    eq(cl.notified, False, "notified")
    eq(clk.ticks_ms() - t0 >= 10000, True, "waited the whole poll")
