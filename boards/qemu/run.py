# The emulated device's firmware main on the Cortex-M board: boards/unix/run.py's device
# (the same options, sessions and exit codes) with the flash of boards/qemu (PSRAM outside
# the heap) and the serial link on the console UART. The host (`otatool device --target
# mcu`) starts it over the raw REPL, relays the frames to the update server, and restarts
# the emulator on REBOOT; the flash survives in the host file behind the PSRAM.
#
#   import boards.qemu.run as r; r.main(argv, now)     argv as boards/unix/run.py's,
#                                                      with --serial uart; now: UTC seconds
#                                                      since 2000 (the board has no RTC)
_now = [0]


def _board_for(o):
    from boards.qemu.board import make_board, TicksClock
    from boards.qemu.layout import layout
    return make_board(layout(o["sector"], o["slot-size"]), clock=TicksClock(_now[0]))


def _open_uart(path):
    from boards.qemu.board import Uart
    return Uart()


def main(argv, now=0):
    import hal.serial
    from boards.unix import run
    _now[0] = now
    run.board_for = _board_for
    hal.serial.open_tty = _open_uart
    return run.main(argv)
