# Freeze manifest of a MicroPython unix port with the OTA agent and its emulated board:
#   make -C ports/unix FROZEN_MANIFEST=<repo>/boards/unix/manifest.py
include("$(PORT_DIR)/variants/manifest.py")
include("../../agent/manifest.py")
package("boards", files=("unix/__init__.py", "unix/board.py", "unix/layout.py", "unix/run.py"),
        base_path="../..", opt=3)
package("hal", files=("nor.py", "emu.py", "powercut.py", "imagecheck.py", "serial.py",
                      "udp.py"), base_path="../..", opt=3)
