"""The Cortex-M tier: MicroPython's qemu port (board MPS2_AN385, a Cortex-M3) under
qemu-system-arm, with the agent frozen in or loaded as .mpy from a ROMFS image.

  python -m host_tools.mcu build       both firmwares (make mcu)
  python -m host_tools.mcu check       exit 1 with the apt-get line when a package is missing
  python -m host_tools.mcu status      one line: can the Cortex-M tier run here

The source is MICROPYTHON_SRC (a folder or a .tgz of the tree) or, when unset, a shallow
fetch of PIN from upstream; boards/qemu/*.patch is applied to it (a run-time heap size).
Builds go to build/mcu: fw-agent (the agent frozen in, boards/qemu/manifest.py) and
fw-bare (nothing frozen). The firmware's REPL is on the emulated UART, which QEMU connects
to its stdin and stdout; Mcu drives it with the raw REPL.
"""
import os
import select
import shutil
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIN = "1c3c201149f37fe8d81246191b3127bb198d6306"
UPSTREAM = "https://github.com/micropython/micropython"
BUILD = os.path.join(ROOT, "build", "mcu")
SRC = os.path.join(BUILD, "micropython")
BOARD = "MPS2_AN385"
MACHINE = "mps2-an385"
FIRMWARES = {"agent": "boards/qemu/manifest.py", "bare": "boards/qemu/manifest_bare.py"}
HEAP_MAX = 1024 * 1024       # static heap of the firmware; the run-time size is at most this
ROMFS_ADDR = 0x21000000      # boards/qemu/layout.py has the memory map
ROMFS_MAX = 0x400000
HEAP_WORD = 0x21F00000
PSRAM_SIZE = 0x1000000
ICOUNT = "shift=0,align=off,sleep=off"   # one guest instruction = 1 ns of virtual time
PACKAGES = ("qemu-system-arm", "gcc-arm-none-eabi", "libnewlib-arm-none-eabi")
APT_LINE = "apt-get install -y " + " ".join(PACKAGES)


class McuError(Exception):
    """The Cortex-M tier cannot go on (a missing tool, a failed build, a dead emulator)."""


def missing_packages():
    """The Debian packages of PACKAGES whose tools are not here."""
    out = []
    if not shutil.which("qemu-system-arm"):
        out.append("qemu-system-arm")
    gcc = shutil.which("arm-none-eabi-gcc")
    if not gcc:
        out.append("gcc-arm-none-eabi")
    if not gcc or not os.path.isabs(subprocess.run(
            [gcc, "-print-file-name=libc.a"], capture_output=True, text=True).stdout.strip()):
        out.append("libnewlib-arm-none-eabi")
    return out


def unavailable():
    """Why the Cortex-M tier cannot run here (one line), or None when it can."""
    miss = missing_packages()
    if miss:
        return "missing %s (%s)" % (", ".join(miss), APT_LINE)
    return None


def _run(cmd, log, cwd=None, env=None):
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(cmd))
        f.flush()
        r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode:
        with open(log) as f:
            tail = f.read().splitlines()[-15:]
        raise McuError("%s failed (log %s):\n  %s" % (cmd[0], log, "\n  ".join(tail)))


def fetch_source(log):
    """build/mcu/micropython from MICROPYTHON_SRC or upstream; returns its path. A tree
    already there is kept unless MICROPYTHON_SRC names another origin; a new one is made
    beside it and takes its place only when complete."""
    src = os.environ.get("MICROPYTHON_SRC")
    stamp = os.path.join(SRC, ".origin")
    try:
        with open(stamp) as f:
            have = f.read()
    except OSError:
        have = None
    if have is not None and (not src or have == src):
        return SRC
    new = SRC + ".new"
    shutil.rmtree(new, ignore_errors=True)
    if src and os.path.isdir(src):
        shutil.copytree(src, new, ignore=shutil.ignore_patterns(".git", "build*"))
    elif src:
        if not os.path.isfile(src):
            raise McuError("MICROPYTHON_SRC: no such file or folder %s" % src)
        os.makedirs(new)
        with tarfile.open(src) as t:
            t.extractall(new)
        tops = os.listdir(new)
        if len(tops) == 1 and os.path.isdir(os.path.join(new, tops[0], "py")):
            inner = os.path.join(new, tops[0])
            for name in os.listdir(inner):
                os.rename(os.path.join(inner, name), os.path.join(new, name))
            os.rmdir(inner)
    else:
        os.makedirs(new)
        for cmd in (["git", "init", "-q"], ["git", "fetch", "-q", "--depth", "1", UPSTREAM, PIN],
                    ["git", "checkout", "-q", "FETCH_HEAD"]):
            _run(cmd, log, cwd=new)
    if not os.path.isdir(os.path.join(new, "ports", "qemu")):
        raise McuError("%s holds no ports/qemu" % (src or UPSTREAM))
    _patch(log, new)
    with open(os.path.join(new, ".origin"), "w") as f:
        f.write(src or UPSTREAM + "@" + PIN)
    shutil.rmtree(SRC, ignore_errors=True)
    os.rename(new, SRC)
    return SRC


def _patch(log, tree):
    """Apply boards/qemu/*.patch; a patch whose change the tree already has is skipped."""
    pdir = os.path.join(ROOT, "boards", "qemu")
    for name in sorted(os.listdir(pdir)):
        if not name.endswith(".patch"):
            continue
        p = os.path.join(pdir, name)
        rev = subprocess.run(["patch", "-p1", "-R", "--dry-run", "-s", "-f", "-i", p],
                             cwd=tree, capture_output=True)
        if rev.returncode == 0:
            continue
        _run(["patch", "-p1", "-f", "-i", p], log, cwd=tree)


def mpy_cross():
    return os.path.join(SRC, "mpy-cross", "build", "mpy-cross")


def firmware(kind):
    return os.path.join(BUILD, "fw-" + kind, "firmware.elf")


def build(quiet=False, jobs=2):
    """Fetch, patch, build mpy-cross and both firmwares. Returns {kind: elf}."""
    why = unavailable()
    if why:
        raise McuError(why)
    os.makedirs(BUILD, exist_ok=True)
    log = os.path.join(BUILD, "build.log")
    open(log, "w").close()
    t0 = time.monotonic()
    fetch_source(log)
    _run(["make", "-C", os.path.join(SRC, "mpy-cross"), "-j%d" % jobs], log)
    libdir = os.path.join(BUILD, "mpy-lib")  # the manifest step wants a micropython-lib
    os.makedirs(libdir, exist_ok=True)
    with open(os.path.join(libdir, "README.md"), "w") as f:
        f.write("stand-in: nothing here is used\n")
    out = {}
    for kind, manifest in sorted(FIRMWARES.items()):
        _run(["make", "-C", os.path.join(SRC, "ports", "qemu"), "-j%d" % jobs,
              "BOARD=" + BOARD, "BUILD=" + os.path.join(BUILD, "fw-" + kind),
              "FROZEN_MANIFEST=" + os.path.join(ROOT, manifest), "MPY_LIB_DIR=" + libdir,
              "MICROPY_HEAP_SIZE=%d" % HEAP_MAX], log)
        out[kind] = firmware(kind)
        if not quiet:
            print("mcu: %s (%d bytes of text and data)" % (os.path.relpath(out[kind], ROOT),
                                                           image_bytes(out[kind])))
    if not quiet:
        print("mcu: built in %.0f s" % (time.monotonic() - t0))
    return out


def image_bytes(elf):
    """Bytes the firmware image occupies: text + data (arm-none-eabi-size)."""
    r = subprocess.run(["arm-none-eabi-size", elf], capture_output=True, text=True)
    fields = r.stdout.splitlines()[1].split()
    return int(fields[0]) + int(fields[1])


# ---- ROMFS ----------------------------------------------------------------------------

# Device modules a ROMFS image leaves out: the port runs a ROMFS .mpy's bytecode in place,
# but copies native code into the heap at import (agent.zcl.streamn, the pager's native
# loop: 2.9 KB more heap after import, and the raw update's heap minimum from 63 to 70 KiB;
# agent.crypto.p256v, the P-256 NAF's: 1 KiB more in three of the bench's five layouts).
# Without them the pager and the NAF run their plain code, as on a port without the emitter.
ROMFS_LEAVES_OUT = ("agent/zcl/streamn.py", "agent/crypto/p256v.py")


def romfs_sources():
    """The device modules (host_tools.mpy.sources) a ROMFS image holds."""
    from host_tools.mpy import sources
    return [r for r in sources() if r.replace(os.sep, "/") not in ROMFS_LEAVES_OUT]


def compile_to(src, dst, arch="armv7m"):
    """mpy-cross src into dst (skipped when dst is newer)."""
    if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    rel = os.path.relpath(src, ROOT)
    r = subprocess.run([mpy_cross(), "-march=" + arch, "-s", rel, "-o", dst, src],
                       capture_output=True, text=True)
    if r.returncode:
        raise McuError("mpy-cross %s: %s" % (rel, r.stderr.strip()))


def romfs(tree, out):
    """A ROMFS image of the folder tree (files as they are), written to out."""
    from mpremote.romfs import VfsRomWriter
    w = VfsRomWriter()

    def walk(d):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.isdir(p):
                w.opendir(name)
                walk(p)
                w.closedir()
            else:
                with open(p, "rb") as f:
                    w.mkfile(name, f.read())
    walk(tree)
    data = w.finalise()
    if len(data) > ROMFS_MAX:
        raise McuError("ROMFS image of %d bytes, more than %d" % (len(data), ROMFS_MAX))
    with open(out, "wb") as f:
        f.write(data)
    return len(data)


# ---- the emulator and its raw REPL ----------------------------------------------------

def qemu_cmd(elf, heap=None, rom=None, icount=False, psram=None):
    """The qemu-system-arm command line: the UART on stdio; heap: run-time heap bytes;
    rom: a ROMFS image; psram: a host file of PSRAM_SIZE bytes behind the PSRAM."""
    cmd = ["qemu-system-arm", "-machine", MACHINE, "-display", "none", "-monitor", "none",
           "-semihosting", "-serial", "stdio", "-kernel", elf]
    if icount:
        cmd += ["-icount", ICOUNT]
    if psram:
        cmd += ["-object", "memory-backend-file,id=psram,size=%d,mem-path=%s,share=on"
                % (PSRAM_SIZE, psram), "-machine", "memory-backend=psram"]
    if rom:
        cmd += ["-device", "loader,file=%s,addr=0x%X,force-raw=on" % (rom, ROMFS_ADDR)]
    word = ((heap or 0) << 32) | (0x50414548 if heap else 0)
    cmd += ["-device", "loader,addr=0x%X,data=0x%X,data-len=8" % (HEAP_WORD, word)]
    return cmd


def _die_with_parent():
    # the emulator is killed when the process that started it ends (Linux prctl)
    try:
        import ctypes
        import signal
        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Mcu:
    """One run of the emulator, driven over its raw REPL."""

    def __init__(self, elf, heap=None, rom=None, icount=False, psram=None, log=None):
        self.cmd = qemu_cmd(elf, heap, rom, icount, psram)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=ROOT,
                                     preexec_fn=_die_with_parent)
        self.fd = self.proc.stdout.fileno()
        self.buf = b""
        self.log = log
        self._raw = False

    def read_until(self, marker, timeout, alt=None):
        """Bytes up to and including marker (or alt, the first of either); McuError on
        timeout or the emulator's end."""
        end = time.monotonic() + timeout
        while marker not in self.buf and (alt is None or alt not in self.buf):
            left = end - time.monotonic()
            if left <= 0:
                raise McuError("no %r from the firmware in %.0f s (got %r)"
                               % (marker, timeout, self.buf[-200:]))
            r, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if r:
                data = os.read(self.fd, 65536)
                if not data:
                    err = self.proc.stderr.read().decode(errors="replace").strip()
                    raise McuError("the emulator ended: %s" % (err or self.buf[-200:]))
                if self.log:
                    self.log.write(data)
                self.buf += data
        i = min(self.buf.find(m) + len(m) for m in (marker, alt) if m and m in self.buf)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def raw(self, timeout=30):
        """Enter the raw REPL."""
        self.write(b"\r\x03\x03\x01")
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", timeout)
        self._raw = True

    def exec(self, code, timeout=600):
        """Run code; returns (stdout, stderr text) of the run."""
        if not self._raw:
            self.raw()
        if isinstance(code, str):
            code = code.encode()
        self.write(code + b"\x04")
        self.read_until(b"OK", 30)
        out = self.read_until(b"\x04", timeout)[:-1]
        err = self.read_until(b"\x04", 30)[:-1]
        self.read_until(b">", 30)
        return out.decode(errors="replace"), err.decode(errors="replace")

    def eval_ok(self, code, timeout=600):
        """exec, raising McuError with the device's traceback when it raised."""
        out, err = self.exec(code, timeout)
        if err:
            raise McuError("on the device: %s" % err.strip())
        return out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for s in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m host_tools.mcu")
    ap.add_argument("what", choices=("build", "check", "status"))
    a = ap.parse_args(argv)
    why = unavailable()
    if a.what == "status":
        print("Cortex-M tier: not run: %s" % (why or "make test leaves it to make test-mcu"))
        return 0
    if a.what == "check":
        if why:
            print("mcu: %s" % why, file=sys.stderr)
            return 1
        return 0
    try:
        build()
    except McuError as e:
        print("mcu: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
