# Decompress per-sector raw-deflate chunks, one after another: piece by piece through a
# small buffer, each piece given to a sink (Inflater.into: the slot writer streams a sector
# to flash so), or as a stream read with readinto (Inflater.open: a delta sector's op
# stream). MicroPython's deflate module on the device, zlib under CPython.
#
# A chunk is decoded from the Inflater's source (src, a BytesIO made once, of cap bytes),
# the only place its bytes are held: the slot writer gathers each chunk there, block by
# block (src.write), and reads it back out of it where it needs the bytes (src.readinto);
# put() writes a chunk held elsewhere. deflate.DeflateIO reads a stream, and a BytesIO
# made of a buffer would copy it.
#
# The last chunk's decoder is kept until the next one is made: its 4 KiB window (and its
# Huffman tables) stay where they are while the download's small allocations come and go,
# and are given back just before the next decoder's are made, which find that place free.
# A window made anew per sector would need a fresh 4 KiB hole each time in a heap the
# download keeps fragmenting. Given back means collected: in a small heap (small()) the
# owner's collect (the board's gc.collect) runs between the two, as the next decoder's first
# allocation would otherwise make it run between its tables and its window, the tables
# taking the start of the old window's place and the window finding none. The collections
# cost time: a whole delta update of the Cortex-M tier took 1.7 % more instructions in a
# 56 KiB heap and 6.7 % more in a 64 KiB one (about 140 k and 410 k a decoded sector, of
# a delta sector's 1 M), where its heap minimum moved from 52-56 KiB over the bench's heap
# layouts to 52-53 KiB. A larger heap has holes enough, and is not collected so.
import io as _io
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.errors import OtaError, BAD_ENCODING

try:
    import deflate as _deflate
except ImportError:  # CPython: zlib, through agent.image.zinflate (not on a device)
    _deflate = None

SMALL = const(65536)  # the largest heap, bytes, collected before each chunk's decoder


def small():
    """Whether the heap is at most SMALL bytes (MicroPython's gc; never under CPython).
    Each call scans the heap's table: the owner asks once a download."""
    try:
        from gc import mem_free, mem_alloc
    except ImportError:
        return False
    return mem_free() + mem_alloc() <= SMALL


class Inflater:
    """Decodes chunks of at most cap bytes, each the first n bytes of src; wbits: the window
    they need, made here (with a decoder's tables) by decoding an empty stream: where the
    Inflater is made early, as the agent makes it, its chunks' decoders find their place
    ready later."""

    def __init__(self, cap, wbits=0):
        self.cap = cap
        self.wbits = wbits  # the window its chunks' decoders make (0: none made here)
        self.src = _io.BytesIO(cap) if _deflate is not None else _io.BytesIO()
        self.d = None
        self.one = bytearray(1)
        self.n = 0
        self.collect = None  # called before each chunk's decoder is made (small())
        if wbits and _deflate is not None:
            self.into(self.put(b"\x03\x00"), 0, self.one, None, wbits)  # one empty final
                                                                  # fixed-Huffman block

    def put(self, chunk):
        """chunk's bytes into src, where open and into find them; returns len(chunk)."""
        s = self.src
        s.seek(0)
        return s.write(chunk)

    def open(self, n, wbits):
        """A reader (readinto) of the decoded bytes of the chunk src's first n bytes hold
        (raw deflate, window 2**wbits), good until the next open or into; end() tells
        whether the stream ended inside the chunk."""
        self.n = n
        s = self.src
        s.seek(0)
        self.d = None  # the last chunk's decoder is garbage from here
        if self.collect is not None:
            self.collect()  # its window's place is free for d's, made at d's first read
        if _deflate is None:
            from agent.image.zinflate import Stream
            self.d = Stream(s.read(n), wbits)  # a copy: the host's
            return self.d
        d = self.d = _deflate.DeflateIO(s, _deflate.RAW, wbits)
        return d

    def end(self):
        """After the decoded bytes were read: whether the stream ends (no byte more) within
        the chunk."""
        try:
            more = self.d.readinto(self.one)
        except (OtaError, OSError, ValueError, EOFError):  # bytes that are no whole stream
            return False
        if _deflate is not None:  # src holds older bytes past the chunk's n
            return not more and self.src.tell() <= self.n
        return not more and self.d.z.eof

    def into(self, n, size, piece, sink, wbits):
        """Decode the chunk of n bytes in src, which must decode to exactly size bytes:
        given to sink(view) piece by piece, each read into piece (a memoryview: the view
        given is piece itself, or its start for the last piece); returns size. The sink's
        own errors pass through; bytes that are no such chunk raise OtaError(BAD_ENCODING)."""
        rd = self.open(n, wbits)
        t = len(piece)
        left = size
        while left:
            m = t if left > t else left
            p = piece if m == t else piece[:m]
            i = 0
            try:
                while i < m:
                    k = rd.readinto(p[i:] if i else p)
                    if not k:
                        break
                    i += k
            except (OSError, ValueError, EOFError) as e:
                raise OtaError(BAD_ENCODING, "inflate: %r" % e)
            if i < m:
                raise OtaError(BAD_ENCODING, "chunk decodes to %d bytes, want %d"
                               % (size - left + i, size))
            sink(p)
            left -= m
        if not self.end():
            raise OtaError(BAD_ENCODING, "chunk decodes to more bytes than %d, or does not "
                           "end its deflate stream" % size)
        return size
