# Freeze manifest of an rp2 firmware with the OTA agent (RP2040 or RP2350):
#   make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=<repo>/boards/rp2/manifest.py
# It freezes what the port's own manifest does, except the port's _boot.py: this
# directory's _boot.py mounts littlefs on the head of rp2.Flash() only, leaving the OTA
# regions of boards/rp2/layout.py at its tail alone.
freeze("$(PORT_DIR)/modules", ("rp2.py", "_boot_fat.py"))
include("$(MPY_DIR)/extmod/asyncio")
require("onewire")
require("ds18x20")
require("dht")
require("neopixel")
module("_boot.py")
include("../manifest_agent.py")
package("boards", files=("rp2/__init__.py", "rp2/board.py", "rp2/bundle.py", "rp2/layout.py",
                         "rp2/select.py"), base_path="../..", opt=3)
module("hal/serial.py", base_path="../..", opt=3)
