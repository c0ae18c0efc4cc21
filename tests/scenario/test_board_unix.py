# The agent's core scenarios through boards/unix (file-backed strict flash, emulated
# bootloader), and the board's own behaviour.
import boardkit
from agent.errors import OtaError, BAD_LAYOUT
from tutil import eq, raises, ROOT

K = "unix"


def test_provision():
    boardkit.provision(K)


def test_update_confirm():
    boardkit.update_confirm(K)


def test_update_confirm_deflate():
    boardkit.update_confirm(K, "core_v2z.ota", 63)


def test_revert():
    boardkit.revert(K)


def test_trial_runs_out():
    boardkit.trial_runs_out(K, 2)


def test_rejections():
    boardkit.rejections(K)


def test_rollback():
    boardkit.rollback(K)


def test_resume():
    boardkit.resume(K)
    boardkit.resume(K, "core_v2z.ota")


def test_damaged_before_activation():
    boardkit.damaged_before_activation(K)


def test_state_survives_a_new_process():
    # a new FileFlash over the same file is what a restarted `otatool device` sees
    from boards.unix.board import make_board
    r = boardkit.BoardRig(K)
    r.provision()
    r.update()
    r.board.flash.close()
    b = make_board(r.path, r.layout, create=False)
    eq(b.power_on(), 1, "trial slot booted again")
    assert b.boot.in_trial()
    b.flash.close()
    r.board = b
    r.close()


def test_missing_file_and_wrong_size():
    from boards.unix.board import make_board
    from hal.sim.board import Layout
    path = ROOT + "/build/board_unix_missing.flash"
    raises(BAD_LAYOUT, make_board, path, None, False)
    b = make_board(path, Layout.for_image(4096, 16 * 1024))
    b.flash.close()
    try:
        raises(BAD_LAYOUT, make_board, path, Layout.for_image(4096, 32 * 1024))
    finally:
        import os
        os.remove(path)


def test_default_layout():
    from boards.unix import layout as L
    lay = L.layout()
    eq(lay.sector_size, 4096, "sector")
    from agent.store.slot import TABLE_OFF
    assert lay.slot_size - lay.meta_size >= L.SLOT_PAYLOAD
    assert lay.meta_size - TABLE_OFF >= L.TABLE_MAX, "room for the sector table"
    eq(lay.size, lay.slot_off[1] + lay.slot_size, "size")


def test_heap_collected_before_a_download():
    boardkit.collects(K)
