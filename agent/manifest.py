# Freeze manifest of the agent (MicroPython manifest.py syntax): the agent package, the hal
# interfaces every board uses and the board-independent adapters. A board's manifest
# (boards/<name>/manifest.py) includes this file and adds its own package.
package("agent", base_path="..", opt=3)
package("hal", files=("__init__.py", "flash.py", "boot.py", "clock.py", "bootsim.py"),
        base_path="..", opt=3)
package("boards", files=("__init__.py", "bdev.py", "trust.py"), base_path="..", opt=3)
