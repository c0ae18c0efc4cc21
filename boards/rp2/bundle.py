# An application bundle: the payload of an rp2 slot. A flat read-only archive of files,
# mounted as a filesystem (MicroPython's vfs.mount of a Python object) so the application
# imports its modules (.py or .mpy) straight from flash: nothing is unpacked, nothing is
# copied into RAM beyond a file's read buffer.
#
#   header   HDR_FMT
#   entries  count x (ENT_FMT, then the name: UTF-8, '/' separated, no leading '/')
#   data     the files' bytes
import struct
import io

from agent.errors import OtaError, NOT_APP_IMAGE

HDR_FMT = "<4sHHI"
#   4s   magic b"OTAB"
#   H    format version (1)
#   H    number of files
#   I    bundle size in bytes (header, entries and data)
HDR_SIZE = 12
ENT_FMT = "<HHII"
#   H    name length in bytes
#   H    flags (0)
#   I    data offset from the bundle's start
#   I    data length
ENT_SIZE = 12
MAGIC = b"OTAB"
VERSION = 1
NAME_MAX = 128
_S_IFDIR = 0x4000
_S_IFREG = 0x8000
_ENOENT = 2
_EROFS = 30


def pack(files):
    """The bundle of files [(name, bytes)], as bytes (host side)."""
    head = b""
    off = HDR_SIZE + sum(ENT_SIZE + len(n.encode()) for n, _d in files)
    data = b""
    for name, d in files:
        nb = name.encode()
        head += struct.pack(ENT_FMT, len(nb), 0, off + len(data), len(d)) + nb
        data += d
    return struct.pack(HDR_FMT, MAGIC, VERSION, len(files), HDR_SIZE + len(head) + len(data)) \
        + head + data


class Bundle:
    """The bundle at offset 0 of a flash area (hal/flash.py): its directory in RAM as
    [(name, offset, length)], file bytes read from flash when asked."""

    def __init__(self, area, limit=None):
        self.area = area
        b = bytearray(HDR_SIZE)
        area.read(0, b)
        magic, ver, count, size = struct.unpack(HDR_FMT, b)
        limit = area.size if limit is None else limit
        if magic != MAGIC or ver != VERSION or size > limit:
            raise OtaError(NOT_APP_IMAGE, "not an application bundle")
        self.size = size
        self.files = []
        pos = HDR_SIZE
        e = bytearray(ENT_SIZE)
        for _ in range(count):
            area.read(pos, e)
            nl, _f, off, ln = struct.unpack(ENT_FMT, e)
            name = bytearray(nl)
            if nl == 0 or nl > NAME_MAX or pos + ENT_SIZE + nl > size:
                raise OtaError(NOT_APP_IMAGE, "bundle entry at %d" % pos)
            area.read(pos + ENT_SIZE, name)
            if off + ln > size:
                raise OtaError(NOT_APP_IMAGE, "bundle file past the end")
            self.files.append((name.decode(), off, ln))
            pos += ENT_SIZE + nl

    def find(self, name):
        for f in self.files:
            if f[0] == name:
                return f
        return None

    def is_dir(self, name):
        if name == "":
            return True
        p = name + "/"
        for f in self.files:
            if f[0].startswith(p):
                return True
        return False


class BundleFile(io.IOBase):
    """A file of a bundle, read-only: readinto, read, readline (a stream to MicroPython)."""

    def __init__(self, bundle, ent, text):
        self._a = bundle.area
        self._off = ent[1]
        self._len = ent[2]
        self._pos = 0
        self._text = text

    def readinto(self, buf):
        n = self._len - self._pos
        if n > len(buf):
            n = len(buf)
        if n > 0:
            self._a.read(self._off + self._pos, memoryview(buf)[:n])
            self._pos += n
        return n

    def read(self, n=-1):
        left = self._len - self._pos
        if n is None or n < 0 or n > left:
            n = left
        b = bytearray(n)
        self.readinto(b)
        return b.decode() if self._text else bytes(b)

    def readline(self):
        out = bytearray()
        c = bytearray(1)
        while self.readinto(c):
            out.extend(c)
            if c[0] == 10:
                break
        return out.decode() if self._text else bytes(out)

    def ioctl(self, req, arg):
        return 0

    def close(self):
        self._pos = self._len

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class BundleFS:
    """The filesystem interface MicroPython's vfs.mount() accepts, over a Bundle."""

    def __init__(self, bundle):
        self.b = bundle
        self._cwd = ""

    def _name(self, path):
        if not path.startswith("/"):
            path = self._cwd + "/" + path
        return path.strip("/")

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def stat(self, path):
        n = self._name(path)
        f = self.b.find(n)
        if f is not None:
            return (_S_IFREG, 0, 0, 0, 0, 0, f[2], 0, 0, 0)
        if self.b.is_dir(n):
            return (_S_IFDIR, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        raise OSError(_ENOENT)

    def ilistdir(self, path):
        n = self._name(path)
        if not self.b.is_dir(n):
            raise OSError(_ENOENT)
        p = n + "/" if n else ""
        seen = []
        for f in self.b.files:
            if not f[0].startswith(p):
                continue
            rest = f[0][len(p):]
            i = rest.find("/")
            if i < 0:
                seen.append((rest, _S_IFREG, 0, f[2]))
            elif not [s for s in seen if s[0] == rest[:i]]:
                seen.append((rest[:i], _S_IFDIR, 0, 0))
        return iter(seen)

    def open(self, path, mode):
        if "w" in mode or "a" in mode or "+" in mode:
            raise OSError(_EROFS)
        f = self.b.find(self._name(path))
        if f is None:
            raise OSError(_ENOENT)
        return BundleFile(self.b, f, "b" not in mode)

    def chdir(self, path):
        n = self._name(path)
        if not self.b.is_dir(n):
            raise OSError(_ENOENT)
        self._cwd = "/" + n if n else ""

    def getcwd(self):
        return self._cwd or "/"

    def statvfs(self, path):
        return (4096, 4096, (self.b.size + 4095) // 4096, 0, 0, 0, 0, 0, 0, NAME_MAX)

    def remove(self, path):
        raise OSError(_EROFS)

    def mkdir(self, path):
        raise OSError(_EROFS)

    def rename(self, a, b):
        raise OSError(_EROFS)

    def rmdir(self, path):
        raise OSError(_EROFS)
