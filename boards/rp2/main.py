# main.py of an rp2 device running the OTA agent (copied to the device's root by
# `otatool deploy --board rp2`). It runs at every hard reset, never on a soft reset into the
# raw REPL. The running slot's bundle is mounted at /app; its app.py is the application,
# which runs the agent (boards.rp2.board.make_board, agent.update.Device) and confirms a trial
# boot once it is healthy. A trial bundle that fails to start resets the board, so the trial
# count runs down and the selector goes back to the confirmed bundle.
import sys
import machine
from boards.rp2 import select

select.run()
try:
    import app  # type: ignore[import-not-found]  # the bundle's entry module, from /app
    app.main()
except Exception as e:
    sys.print_exception(e)
    from boards.rp2.board import make_board
    if make_board().boot.in_trial():
        machine.reset()
    raise
