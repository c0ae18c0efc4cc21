# Decompress one per-sector raw-deflate chunk: into a buffer (inflate_into), or as a stream
# read with readinto (stream: a delta sector's op stream). MicroPython's deflate module on
# the device, zlib under CPython.
from agent.errors import OtaError, BAD_ENCODING

try:
    import deflate as _deflate
    import io as _io
except ImportError:
    _deflate = None
    import zlib as _zlib


def inflate_into(chunk, out, wbits):
    """Decode chunk (raw deflate, window 2**wbits) into out; returns len(out)."""
    want = len(out)
    try:
        if _deflate is not None:
            d = _deflate.DeflateIO(_io.BytesIO(chunk), _deflate.RAW, wbits)
            n = d.readinto(out)
            extra = d.readinto(bytearray(1))
        else:
            z = _zlib.decompressobj(-wbits)
            data = z.decompress(bytes(chunk), want)
            n = len(data)
            out[:n] = data
            extra = len(z.decompress(z.unconsumed_tail, 1)) + len(z.flush())
            if not z.eof:
                raise OtaError(BAD_ENCODING, "chunk does not end its deflate stream")
    except (OSError, ValueError) as e:
        raise OtaError(BAD_ENCODING, "inflate: %s" % e)
    except Exception as e:  # zlib.error under CPython
        if isinstance(e, (OtaError, MemoryError)):
            raise  # a heap too small for the window says nothing about the chunk
        raise OtaError(BAD_ENCODING, "inflate: %s" % e)
    if n != want or extra:
        raise OtaError(BAD_ENCODING, "chunk decodes to %s bytes, want %d"
                       % ("more" if extra else n, want))
    return n


def stream(chunk, wbits):
    """A reader (readinto) of the raw-deflate chunk's decoded bytes."""
    if _deflate is not None:
        return _deflate.DeflateIO(_io.BytesIO(chunk), _deflate.RAW, wbits)
    return _Stream(chunk, wbits)


class _Stream:
    # deflate.DeflateIO's readinto under CPython: 0 at the stream's end; OtaError for
    # bytes that are not one whole raw deflate stream
    def __init__(self, chunk, wbits):
        self.z = _zlib.decompressobj(-wbits)
        self.rest = bytes(chunk)

    def readinto(self, buf):
        want = len(buf)
        try:
            data = self.z.decompress(self.rest, want)
        except Exception as e:  # zlib.error
            raise OtaError(BAD_ENCODING, "inflate: %s" % e)
        self.rest = self.z.unconsumed_tail
        if not data and not self.z.eof:
            raise OtaError(BAD_ENCODING, "chunk does not end its deflate stream")
        buf[:len(data)] = data
        return len(data)
