"""All the output files of a command, written together or not at all.

    out = Outputs(force=args.force, inputs=[args.infile, args.key])
    out.claim(args.out)                      # checked at once, before any work
    ...
    out.put(args.out, [header, body])        # data: bytes or a list of buffers
    out.commit()

claim() refuses, before the command does any work: an output that exists (unless force),
an output that is also one of the command's inputs (even with force), the same file named
for two outputs, and an output whose directory does not exist. commit() writes every file
to a temporary file in its own directory first; only when all of them are written does it
move them into place (a rename; without force a hard link, so a file that appeared in the
meantime is not overwritten). On any failure, Ctrl-C included, the temporary files are
removed and the outputs already moved into place are taken back (a file that --force
replaced gets its old contents back), so nothing is left behind.
"""
import errno
import os
import tempfile

from host_tools.report import Rejected


def _umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


def same_file(a, b):
    """True when paths a and b name the same file (or would, once created)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


class _Item:
    def __init__(self, path, mode, what):
        self.path = path
        self.mode = mode
        self.what = what
        self.parts = None
        self.tmp = None
        self.placed = False
        self.existed = False
        self.backup = None     # with force: a link to the file it replaces, until commit


class Outputs:
    """The output files of one command (see the module's text)."""

    def __init__(self, force=False, inputs=()):
        self.force = force
        self.inputs = [p for p in inputs if p is not None]
        self.items = []

    def claim(self, path, mode=None, what="output"):
        """Declare an output file; mode None: 0644 less the umask (0600 for a secret)."""
        if path is None:
            return None
        for it in self.items:
            if same_file(it.path, path):
                raise Rejected("outputs-clash", "%s is named for two outputs (%s and %s)"
                               % (path, it.what, what))
        for src in self.inputs:
            if same_file(src, path):
                raise Rejected("output-is-input", "%s: the %s would overwrite an input file"
                               % (path, what))
        if os.path.isdir(path):
            raise Rejected("output-is-directory", "%s is a directory" % path)
        if not self.force and os.path.lexists(path):
            raise Rejected("output-exists", "%s exists (use --force to overwrite)" % path)
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        item = _Item(path, 0o666 & ~_umask() if mode is None else mode, what)
        self.items.append(item)
        return item

    def put(self, path, data):
        """The data of a claimed output: bytes-like, or a list of bytes-like parts."""
        for it in self.items:
            if it.path == path:
                it.parts = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
                return
        raise ValueError("output not claimed: %s" % path)

    def commit(self):
        """Write every output that has data, all or none (see the module's text)."""
        todo = [it for it in self.items if it.parts is not None]
        try:
            for it in todo:
                self._write_temp(it)
            for it in todo:
                self._place(it)
        except BaseException as e:
            self._undo(todo)
            if isinstance(e, OSError) and e.filename is not None:
                for it in todo:
                    if e.filename == it.tmp:
                        raise OSError(e.errno, e.strerror, it.path) from None
            raise
        finally:
            for it in todo:
                self._remove_temp(it)

    def _write_temp(self, it):
        d, base = os.path.split(it.path)
        try:
            fd, it.tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".tmp", dir=d or ".")
        except OSError as e:
            raise OSError(e.errno, e.strerror, it.path) from None
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), it.mode)
            for p in it.parts:
                f.write(p)
            f.flush()
            os.fsync(f.fileno())

    def _place(self, it):
        it.existed = os.path.lexists(it.path)
        if self.force:
            if it.existed and not os.path.islink(it.path):
                try:
                    os.link(it.path, it.tmp + ".old")
                    it.backup = it.tmp + ".old"
                except OSError:
                    pass                       # no hard links here: it cannot be restored
            os.replace(it.tmp, it.path)
            it.tmp = None
            it.placed = True
            return
        try:
            os.link(it.tmp, it.path)
        except FileExistsError:
            raise Rejected("output-exists", "%s exists (use --force to overwrite)" % it.path)
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                               errno.EMLINK):
                raise
            if os.path.lexists(it.path):        # no hard links here: check, then rename
                raise Rejected("output-exists", "%s exists (use --force to overwrite)"
                               % it.path)
            os.rename(it.tmp, it.path)
            it.tmp = None
        it.placed = True

    def _undo(self, todo):
        for it in todo:
            try:
                if it.placed and it.backup is not None:
                    os.replace(it.backup, it.path)
                    it.backup = None
                elif it.placed and not it.existed:
                    os.remove(it.path)
            except OSError:
                pass
            it.placed = False

    def _remove_temp(self, it):
        for name in (it.tmp, it.backup):
            if name is not None:
                try:
                    os.remove(name)
                except OSError:
                    pass
        it.tmp = it.backup = None
