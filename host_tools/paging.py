"""Image Page Requests in the update server (host_tools.server.Hub).

A page is answered as a run of Image Block Responses, each through the Hub's own block
path (so WAIT_FOR_DATA, ABORT, logging and every link fault apply per frame), with the
request's sequence number, at most the request's maximum data size (and the Hub's block
size) each, spaced by the response spacing the client asked for on top of the emulated
airtime. A status other than SUCCESS ends the page. A block-only server (`--no-page`)
answers Default Response UNSUP_CLUSTER_COMMAND, as the ZCL says a server without the
command must.
"""
import time

from agent.zcl import server as zcl


def serve_page(hub, dev, fr):
    if not getattr(hub, "pages", True):
        n = zcl.encode_default_response(hub._buf, fr.seq, True, zcl.CMD_PAGE_REQ,
                                        zcl.S_UNSUP_CLUSTER_COMMAND)
        hub.log(dev, "page_refused", offset=fr.offset)
        hub._send(memoryview(hub._buf)[:n], dev.addr)
        return
    end = fr.offset + fr.page_size
    img = hub._find(fr, dev)
    if img is not None and end > img.size:
        end = img.size
    hub.log(dev, "page", offset=fr.offset, size=end - fr.offset)
    size = fr.max_size
    off = fr.offset
    while True:
        fr.offset = off
        fr.max_size = min(size, end - off) if end > off else size
        hub._block(dev, fr)
        b = hub._buf
        if b[2] != zcl.CMD_BLOCK_RSP or b[3] != zcl.S_SUCCESS:
            return
        k = b[16]
        off += k
        if k == 0 or off >= end:
            return
        if fr.spacing:
            time.sleep(fr.spacing / 1000.0)


NOTIFY_IDLE_S = 1.0    # a device quiet this long is sent an Image Notify (--notify) ...
NOTIFY_AGAIN_S = 10.0  # ... and again after this long


def notify_idle(hub):
    """--notify: a unicast Image Notify (payload type 0, query jitter 100, as ZCL requires
    of a unicast one) to each device that has been quiet NOTIFY_IDLE_S, logged as "notify";
    the device's Query Next Image should follow at once."""
    if not getattr(hub, "notify", False):
        return
    from agent.zcl import server as zcl_server
    now = time.monotonic()
    for dev in hub.devices.values():
        heard = getattr(dev, "heard_at", None)
        last = getattr(dev, "notified_at", None)
        if heard is None or now - heard < NOTIFY_IDLE_S or \
                (last is not None and (last > heard or now - last < NOTIFY_AGAIN_S)):
            continue
        dev.notified_at = now
        n = zcl_server.encode_image_notify(hub._buf, hub._next_seq(), 0, 100)
        hub.log(dev, "notify")
        hub._send(memoryview(hub._buf)[:n], dev.addr, faulty=False)
