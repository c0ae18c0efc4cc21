# Two costs of the device's defences, under MicroPython (agent as .mpy):
#   - journal writes (and flash writes, erases) per 1,000 image headers refused before their
#     signature verified (here: a header whose signature fails), which must cost nothing;
#   - the power-on check of a 256 KiB running slot (agent.store.check.boot_check): with the
#     manifest's signature remembered (every later boot) the payload's CRC-32, and not (the
#     first boot of an image) the signature, the payload's SHA-256 and CRC-32.
#
#   MICROPYPATH=build/mpy micropython -X heapsize=4M bench/mp_hardening.py IMAGE PUB_HEX
#
# IMAGE is installed as the factory image of an emulated board in RAM. Prints one JSON
# object; times in ms, best of REPS.
import sys
import time
import json
import binascii

from agent.crypto.trust import Trust
from agent.update import Config, Device
from agent.image import fmt
from agent.store import check as verify
from hal.sim.nor import NorFlash
from hal.sim.board import EmuBoard, Layout

REPS = 5
REFUSALS = 1000


def ms(t0):
    return time.ticks_diff(time.ticks_us(), t0) / 1000.0


def main(argv):
    with open(argv[0], "rb") as f:
        img = f.read()
    pub = binascii.unhexlify(argv[1])
    h = fmt.parse_header(img)
    lay = Layout.for_image(4096, 256 * 1024, 64 * 28)
    flash = NorFlash(lay.size, 4096)
    board = EmuBoard(flash, lay)
    board.power_on()
    cfg = Config(Trust([pub]), h.manufacturer, h.image_type, h.hw_min)
    dev = Device(board, cfg)
    dev.start()
    dev.provision(lambda off, n: img[off:off + n], len(img))
    board.power_on()
    dev = Device(board, cfg)
    dev.start()
    # the refused headers: the header and manifest, one header byte changed
    hl = h.length
    head = bytearray(img[:hl + 6 + (img[hl + 2] | img[hl + 3] << 8)])
    head[40] ^= 1
    rec, wr, er = dev.journal.records, flash.writes, flash.erases
    t0 = time.ticks_us()
    for _ in range(REFUSALS):
        dev.begin()
        try:
            dev.feed(0, head)
        except Exception:
            pass
    refuse_ms = ms(t0) / REFUSALS
    out = {"refusals": REFUSALS, "journal_writes": dev.journal.records - rec,
           "flash_writes": flash.writes - wr, "flash_erases": flash.erases - er,
           "refusal_ms": refuse_ms}
    slot = board.slots[board.boot.running()]
    size = verify.read_meta(slot).manifest.size
    buf = dev.writer.scratch  # what the device lends its checks (Device._boot_check)
    known = verify.boot_check(slot, cfg.trust, None, None, buf).tag
    hit = miss = crc = None
    for _ in range(REPS):
        t0 = time.ticks_us()
        verify.boot_check(slot, cfg.trust, None, known, buf)
        t = ms(t0)
        hit = t if hit is None or t < hit else hit
        t0 = time.ticks_us()
        verify.boot_check(slot, cfg.trust, None, None, buf)
        t = ms(t0)
        miss = t if miss is None or t < miss else miss
        t0 = time.ticks_us()
        verify.check(slot, None, None, None, buf)
        t = ms(t0)
        crc = t if crc is None or t < crc else crc
    out.update({"slot_payload": size, "boot_check_ms": hit, "boot_check_first_ms": miss,
                "crc_check_ms": crc, "reps": REPS})
    print(json.dumps(out))


main(sys.argv[1:])
