# ESP32 flash layout for the OTA agent: everything the adapter needs to know about where
# things are. The partition table that goes with it is partitions.csv beside this file.
#
#   slot 0, slot 1   the OTA app partitions ota_0 and ota_1. A slot's payload is the
#                    ESP-IDF application image from the partition's first byte; the agent's
#                    meta area is the partition's last META_SIZE bytes (the bootloader reads
#                    only the image, so the tail is free).
#   ota_journal      a raw data partition of 4 sectors: sectors 0-1 the agent's state
#                    journal, sectors 2-3 the board's boot record (see boot.py).
#   otadata          ESP-IDF's own boot selection (2 sectors); the adapter only reads it,
#                    and changes it through esp32.Partition.set_boot() and
#                    mark_app_valid_cancel_rollback().
#
# Why the journal is a raw partition and not a file: the journal's power-safety argument
# rests on NOR rules (a record is programmed once into erased flash, never rewritten, and a
# torn record fails its CRC). A littlefs file offers no such contract: its writes go through
# a copy-on-write cache with its own commit points, and the journal could not tell a torn
# record from a stale block. A raw partition found by label keeps the argument exact.

SECTOR = 4096       # erase unit of the SPI flash and block size of esp32.Partition
WRITE_SIZE = 4      # program unit the agent uses (ESP-IDF accepts any; 4 keeps words whole)
ERASED = 0xFF
META_SIZE = 12288   # agent meta area at the end of each app partition: room for the
                    # sector table of a 1.5 MiB deflate image (384 x 28 bytes)
SLOT_LABELS = ("ota_0", "ota_1")
JOURNAL_LABEL = "ota_journal"
JOURNAL_OFF = 0          # agent journal: offset and size in ota_journal
JOURNAL_SIZE = 2 * 4096
RECORD_OFF = 2 * 4096    # board boot record: offset and size in ota_journal
RECORD_SIZE = 2 * 4096
OTADATA_SUBTYPE = 0      # data partition subtype "ota"
CHIP_ID = 0              # image header chip id the bootloader accepts: 0 = ESP32
                         # (2 S2, 5 C3, 9 S3, 12 C2, 13 C6, 16 H2, 18 P4)
TRIALS = 1               # ESP-IDF boots a new app once on trial
SECURE_BOOT = False      # True only for a firmware whose bootloader verifies the app's
                         # signature at every boot (ESP-IDF Secure Boot v2): the agent's
                         # power-on check is then CRC-32 only; False: the signature and
                         # SHA-256 at an image's first boot, CRC-32 at its later ones
                         # (agent.store.check.boot_check)
