# The boot selector of the rp2 board, run by main.py at every reset (not by boot.py: a soft
# reset into the raw REPL, which mpremote and IDEs do on every connection, runs boot.py but
# not main.py, and must not spend a trial boot).
#
#   slot, fs = run()    the boot decision (hal.bootrec: trial count saved before the slot
#                       runs, revert when none are left, the slot's CRC-32 checked), then
#                       the chosen slot's bundle mounted read-only at layout.MOUNT and put
#                       first on sys.path. fs is None when the slot holds no bundle yet
#                       (a new device: the application in the root filesystem runs).
import sys

from agent.errors import OtaError
from boards.rp2 import layout as L


def _vfs():
    try:
        import vfs
        return vfs
    except ImportError:  # MicroPython before 1.23
        import os
        return os


def mount(board, slot, point=L.MOUNT):
    """Mount slot's bundle at point; returns the BundleFS."""
    from agent.store import check as verify
    from boards.rp2.bundle import Bundle, BundleFS
    vfs = _vfs()
    m = verify.read_meta(board.slots[slot]).manifest
    fs = BundleFS(Bundle(board.slots[slot].area, m.size))
    try:
        vfs.umount(point)
    except OSError:
        pass
    vfs.mount(fs, point)
    if point not in sys.path:
        sys.path.insert(0, point)
    return fs


def run(board=None, point=L.MOUNT):
    if board is None:
        from boards.rp2.board import make_board
        board = make_board()
    slot = board.boot.boot()
    try:
        return slot, mount(board, slot, point)
    except OtaError as e:
        print("ota: slot %d not mounted: %s" % (slot, e))
        return slot, None
