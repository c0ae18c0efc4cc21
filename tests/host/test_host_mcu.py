"""The Cortex-M tier's host side (host_tools/mcu.py, host_tools/mcu_device.py): the emulator's
command line, the run-time heap word, the ROMFS image, the split of the UART's output into
frames and log lines, and what `make test` says when the tier cannot run."""
import os

from host_tools import mcu, mcu_device
from host_tools.link import Deframer, frame_bytes


def test_heap_word_is_little_endian_magic_then_size():
    cmd = " ".join(mcu.qemu_cmd("fw.elf", heap=64 * 1024))
    assert "loader,addr=0x21F00000,data=0x1000050414548,data-len=8" in cmd
    # no heap given: a word without the magic, so the firmware keeps its built-in size
    assert "data=0x0,data-len=8" in " ".join(mcu.qemu_cmd("fw.elf"))


def test_command_line_options():
    cmd = mcu.qemu_cmd("fw.elf", rom="r.img", icount=True, psram="/tmp/f")
    text = " ".join(cmd)
    assert cmd[:3] == ["qemu-system-arm", "-machine", "mps2-an385"]
    assert "-icount shift=0,align=off,sleep=off" in text
    assert "loader,file=r.img,addr=0x21000000,force-raw=on" in text
    assert "memory-backend-file,id=psram,size=16777216,mem-path=/tmp/f,share=on" in text
    assert "-serial stdio" in text and "-kernel fw.elf" in text
    assert "-icount" not in " ".join(mcu.qemu_cmd("fw.elf"))


def test_memory_map_agrees_with_the_board():
    from boards.qemu import layout as L
    assert mcu.ROMFS_ADDR == L.ROMFS_ADDR and mcu.ROMFS_MAX == L.ROMFS_MAX
    assert mcu.HEAP_WORD == L.HEAP_WORD and mcu.PSRAM_SIZE == L.PSRAM_SIZE
    assert mcu_device.PSRAM_FLASH == L.FLASH_ADDR - L.PSRAM_ADDR
    assert mcu_device.FLASH_MAX == L.FLASH_MAX
    assert L.ROMFS_ADDR + L.ROMFS_MAX <= L.BLANK_ADDR < L.FLASH_ADDR
    assert L.FLASH_ADDR + L.FLASH_MAX <= L.HEAP_WORD < L.PSRAM_ADDR + L.PSRAM_SIZE
    assert L.layout().size <= L.FLASH_MAX


def test_psram_file_has_the_flash_erased(tmp_path):
    p = str(tmp_path / "dev.flash")
    mcu_device.psram_file(p)
    with open(p, "rb") as f:
        data = f.read()
    assert len(data) == mcu.PSRAM_SIZE
    assert data[mcu_device.PSRAM_FLASH - 1] == 0
    assert set(data[mcu_device.PSRAM_FLASH:mcu_device.PSRAM_FLASH + mcu_device.FLASH_MAX]) \
        == {0xFF}
    with open(p, "r+b") as f:
        f.write(b"kept")
    mcu_device.psram_file(p)   # an existing file is kept as it is
    with open(p, "rb") as f:
        assert f.read(4) == b"kept"


def test_romfs_image(tmp_path):
    tree = tmp_path / "t"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "a.bin").write_bytes(b"abc" * 100)
    out = str(tmp_path / "x.romfs")
    n = mcu.romfs(str(tree), out)
    data = open(out, "rb").read()
    assert n == len(data) and n % 2 == 0
    assert data[:3] == b"\xd2\xcd\x31"    # the ROMFS record kind 0x14a6b1
    assert b"a.bin" in data and b"abc" * 100 in data


class _Link:
    def __init__(self):
        self.wire = b""

    def to_server(self, wire):
        self.wire += wire


def test_relay_splits_frames_from_log_lines(capsys):
    link = _Link()
    relay = mcu_device.Relay(link)
    f1 = bytes(frame_bytes(b"\x19\x01\x01\x7e\x04\x7d"))
    f2 = bytes(frame_bytes(b"\x01\x02\x03"))
    out = b"device: boot\r\n" + f1 + b"progress 10 20\r\n" + f2[:3]
    assert relay.feed(out) is None
    assert relay.feed(f2[3:] + b"E12 refused\r\ndevice-exit 3\r\n\x04tail") == b"tail"
    frames = Deframer().feed(link.wire)
    assert [bytes(f) for f in frames] == [b"\x19\x01\x01\x7e\x04\x7d", b"\x01\x02\x03"]
    assert relay.lines == ["device: boot", "progress 10 20", "E12 refused", "device-exit 3"]
    o = capsys.readouterr()
    assert "device: boot" in o.out and "progress 10 20" in o.out
    assert "device-exit" not in o.out
    assert "otatool: E12 refused" in o.err


def test_status_says_why_the_tier_did_not_run(monkeypatch, capsys):
    monkeypatch.setattr(mcu.shutil, "which", lambda name: None)
    why = mcu.unavailable()
    assert "qemu-system-arm" in why and mcu.APT_LINE in why
    assert mcu.main(["status"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("Cortex-M tier: not run: missing qemu-system-arm, "
                           "gcc-arm-none-eabi, libnewlib-arm-none-eabi")
    assert "passed" not in line
    assert mcu.main(["check"]) == 1
    assert mcu.APT_LINE in capsys.readouterr().err


def test_source_fetch_refuses_a_missing_path(monkeypatch, tmp_path):
    monkeypatch.setenv("MICROPYTHON_SRC", str(tmp_path / "nothing.tgz"))
    monkeypatch.setattr(mcu, "SRC", str(tmp_path / "src"))
    try:
        mcu.fetch_source(str(tmp_path / "log"))
    except mcu.McuError as e:
        assert "nothing.tgz" in str(e)
    else:
        raise AssertionError("a missing MICROPYTHON_SRC was taken")


def test_patch_is_a_unified_diff_of_the_qemu_main():
    p = os.path.join(mcu.ROOT, "boards", "qemu", "heap.patch")
    text = open(p).read()
    assert text.startswith("--- a/ports/qemu/main.c\n+++ b/ports/qemu/main.c\n")
    assert "0x50414548" in text and "MCU_HEAP_OVERRIDE_ADDR (0x%08X)" % mcu.HEAP_WORD in text


def test_a_device_traceback_in_one_line():
    from host_tools.bench_mcu import failure
    err = """Traceback (most recent call last):
  File "<stdin>", line 3, in <module>
  File "bench/mp_update.py", line 151, in update
  File "agent/crypto/p256.py", line 1, in _odd_multiples
MemoryError: memory allocation failed, allocating 66 bytes
"""
    assert failure(err) == ("agent/crypto/p256.py _odd_multiples: MemoryError: memory "
                            "allocation failed, allocating 66 bytes")
    assert failure("OSError: 19\n") == "OSError: 19"
    assert failure("") == "no output"
