# Freeze manifest of an ESP32 firmware with the OTA agent. Build from ports/esp32 with
# boards/esp32/partitions.csv as the partition table and app rollback enabled:
#   make BOARD=ESP32_GENERIC BOARD_VARIANT=OTA FROZEN_MANIFEST=<repo>/boards/esp32/manifest.py
include("$(PORT_DIR)/boards/manifest.py")
include("../manifest_agent.py")
package("boards", files=("esp32/__init__.py", "esp32/board.py", "esp32/bootctl.py",
                         "esp32/image.py", "esp32/layout.py"), base_path="../..", opt=3)
module("hal/udp.py", base_path="../..", opt=3)
module("hal/serial.py", base_path="../..", opt=3)
