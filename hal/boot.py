# Boot control interface: what the agent asks of a bootloader. Slots are numbered 0 and 1.
#
#   running()            slot executing now
#   confirmed()          slot the bootloader falls back to (last confirmed image)
#   pending()            slot set to boot on trial and not yet confirmed, or None
#   in_trial()           True while the running slot is on trial (not yet confirmed)
#   trials_left()        boots left before the bootloader reverts a trial slot
#   boot_info()          (reverted, reason, boots) of the latest boot: reverted is True when
#                        the bootloader abandoned a trial slot, reason an agent.errors code
#   set_pending(slot, trials)
#                        from the next reset, boot `slot` on trial for at most `trials`
#                        boots; without confirm() the bootloader then reverts.
#                        Power loss: either the old or the new setting holds.
#   confirm()            make the running trial slot the confirmed one (cancel rollback).
#                        Power loss: either still on trial or confirmed.
#   revert()             abandon the running trial slot (or a pending one not yet booted):
#                        the next reset boots confirmed().
#   set_confirmed(slot)  make `slot` the confirmed one from the next reset (the agent's
#                        fall-back when the confirmed slot fails its check at power on).
#   reset()              reboot the device (does not return on a real board; the emulated
#                        bootloader raises hal.sim.boot.Reboot).
#
# Implementations: hal.bootrec.BootRecord (a boot record in flash whose boot() is the
# bootloader's decision at reset; reset() left to the board), used by boards/rp2 (with the
# selector its main.py runs) and by the emulated bootloader hal.sim.boot.SimBoot;
# boards/esp32 (ESP-IDF otadata and rollback).
