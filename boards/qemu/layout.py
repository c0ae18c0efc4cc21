# Memory map of the emulated Cortex-M board (MicroPython's qemu port, MPS2_AN385 under
# qemu-system-arm) and the flash layout of its emulated NOR flash.
#
#   0x00000000  4 MiB  SSRAM1: firmware, data, stack and MicroPython's heap
#   0x21000000 16 MiB  PSRAM, which the firmware does not otherwise touch:
#     ROMFS_ADDR    4 MiB  ROMFS image (QEMU's loader puts it there; mounted at /rom)
#     BLANK_ADDR    4 KiB  reserved (the flash starts one sector above it)
#     FLASH_ADDR           the emulated flash, FLASH_MAX bytes at most
#     HEAP_WORD     8 B    'HEAP' and a heap size: the run-time heap size of the firmware
# With `otatool device --target mcu` the PSRAM is a file on the host (QEMU's
# memory-backend-file, shared), so the flash outlives the emulator being killed.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

ROMFS_ADDR = const(0x21000000)
ROMFS_MAX = const(0x400000)
BLANK_ADDR = const(0x21400000)
FLASH_ADDR = const(0x21401000)
HEAP_WORD = const(0x21F00000)
FLASH_MAX = const(0x21F00000 - 0x21401000)
PSRAM_ADDR = const(0x21000000)
PSRAM_SIZE = const(0x1000000)

SECTOR = const(4096)
WRITE_SIZE = const(4)
ERASED = const(0xFF)
SLOT_PAYLOAD = const(256 * 1024)   # largest installed payload
TRIALS = const(3)


def layout(sector=SECTOR, payload=SLOT_PAYLOAD):
    """The hal.sim.board.Layout of the flash: [boot state][journal][slot 0][slot 1]."""
    from hal.sim.board import Layout
    return Layout.for_image(sector, payload, (payload // sector) * 28)
