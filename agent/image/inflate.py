# Decompress per-sector raw-deflate chunks, one after another: into a buffer
# (Inflater.into), or as a stream read with readinto (Inflater.open: a delta sector's op
# stream). MicroPython's deflate module on the device, zlib under CPython.
#
# On the device each chunk is decoded from one source buffer made with the Inflater (so no
# copy of the chunk is made per sector), and the last chunk's decoder is kept until the
# next one is made: its 4 KiB window (and its Huffman tables) stay where they are while the
# download's small allocations come and go, and are given back just before the next
# decoder's are made, which find that place free. A window made anew per sector would need
# a fresh 4 KiB hole each time in a heap the download keeps fragmenting.
from agent.errors import OtaError, BAD_ENCODING

try:
    import deflate as _deflate
    import io as _io
except ImportError:  # CPython: zlib, through agent.image.zinflate (not on a device)
    _deflate = None


class Inflater:
    """Decodes chunks of at most cap bytes; wbits: the window they need, made here (with a
    decoder's tables) by decoding an empty stream: where the Inflater is made early, as the
    agent makes it, its chunks' decoders find their place ready later."""

    def __init__(self, cap, wbits=0):
        self.src = _io.BytesIO(cap) if _deflate is not None else None
        self.d = None
        self.one = bytearray(1)
        self.n = 0
        if wbits and _deflate is not None:
            self.into(b"\x03\x00", memoryview(self.one)[:0], wbits)  # one empty final
                                                                     # fixed-Huffman block

    def open(self, chunk, wbits):
        """A reader (readinto) of chunk's decoded bytes (raw deflate, window 2**wbits),
        good until the next open or into; end() tells whether the stream ended inside the
        chunk."""
        self.n = len(chunk)
        if _deflate is None:
            from agent.image.zinflate import Stream
            self.d = Stream(chunk, wbits)
            return self.d
        s = self.src
        s.seek(0)
        s.write(chunk)
        s.seek(0)
        d = _deflate.DeflateIO(s, _deflate.RAW, wbits)
        self.d = d  # the last chunk's decoder is garbage from here: its window's place is
        return d    # free for d's, made at d's first read

    def end(self):
        """After the decoded bytes were read: whether the stream ends (no byte more) within
        the chunk."""
        try:
            more = self.d.readinto(self.one)
        except (OtaError, OSError, ValueError, EOFError):  # bytes that are no whole stream
            return False
        if self.src is not None:
            return not more and self.src.tell() <= self.n
        return not more and self.d.z.eof

    def into(self, chunk, out, wbits):
        """Decode chunk into out, which it must fill exactly; returns len(out)."""
        want = len(out)
        try:
            n = self.open(chunk, wbits).readinto(out)
            if n == want and not self.end():
                raise OtaError(BAD_ENCODING, "chunk decodes to more bytes than %d, or does "
                               "not end its deflate stream" % want)
        except (OSError, ValueError, EOFError) as e:
            raise OtaError(BAD_ENCODING, "inflate: %r" % e)
        if n != want:
            raise OtaError(BAD_ENCODING, "chunk decodes to %d bytes, want %d" % (n, want))
        return n


def inflate_into(chunk, out, wbits):
    """Decode one chunk (raw deflate, window 2**wbits) into out; returns len(out)."""
    return Inflater(len(chunk) or 1).into(chunk, out, wbits)
