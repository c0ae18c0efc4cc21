# Boot control interface: what the agent asks of a bootloader. Slots are numbered 0 and 1.
#
#   running()            slot executing now
#   confirmed()          slot the bootloader falls back to (last confirmed image)
#   in_trial()           True while the running slot is on trial (not yet confirmed)
#   trials_left()        boots left before the bootloader reverts a trial slot
#   set_pending(slot, trials)
#                        from the next reset, boot `slot` on trial for at most `trials`
#                        boots; without confirm() the bootloader then reverts.
#                        Power loss: either the old or the new setting holds.
#   confirm()            make the running trial slot the confirmed one (cancel rollback).
#                        Power loss: either still on trial or confirmed.
#   revert()             abandon the running trial slot: the next reset boots confirmed().
#   reset()              reboot the device (does not return on a real board).
#
# Implementations: hal.bootsim.SimBoot (emulated bootloader over emulated flash),
# boards/esp32 (ESP-IDF otadata and rollback), boards/rp2 (boot record + boot.py selector).
