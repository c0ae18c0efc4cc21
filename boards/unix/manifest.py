# Freeze manifest of a MicroPython unix port with the OTA agent and its emulated board:
#   make -C ports/unix FROZEN_MANIFEST=<repo>/boards/unix/manifest.py
include("$(PORT_DIR)/variants/manifest.py")
include("../manifest_agent.py")
package("boards", files=("unix/__init__.py", "unix/board.py", "unix/layout.py", "unix/run.py"),
        base_path="../..", opt=3)
package("hal", files=("sim/__init__.py", "sim/nor.py", "sim/faults.py", "sim/boot.py",
                      "sim/board.py", "sim/clock.py",
                      "sim/powercut.py", "sim/imagecheck.py", "serial.py", "udp.py"),
        base_path="../..", opt=3)
