# Freeze manifest of MicroPython's qemu port (MPS2_AN385, Cortex-M3) with the OTA agent,
# the emulated board of boards/qemu and the hal modules its tests and its device use:
#   make -C ports/qemu BOARD=MPS2_AN385 FROZEN_MANIFEST=<repo>/boards/qemu/manifest.py
# (host_tools/mcu.py builds it; `make mcu`.)
include("../manifest_agent.py")
# what no real device carries but the tests use: the server side of the ZCL codec (the
# scripted Hub), the image-writing side of the format and the reason texts
package("agent", files=("zcl/server.py", "image/pack.py", "errtext.py"), base_path="../..",
        opt=3)
package("boards", files=("qemu/__init__.py", "qemu/board.py", "qemu/layout.py",
                         "qemu/run.py", "unix/__init__.py", "unix/run.py",
                         "unix/layout.py", "unix/board.py"), base_path="../..", opt=3)
package("hal", files=("sim/__init__.py", "sim/mem.py", "sim/memv.py", "sim/nor.py",
                      "sim/faults.py", "sim/boot.py", "sim/board.py", "sim/clock.py",
                      "sim/powercut.py", "sim/imagecheck.py", "serial.py", "sigcheck.py"),
        base_path="../..", opt=3)
