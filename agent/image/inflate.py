# Decompress one per-sector raw-deflate chunk into a buffer: MicroPython's deflate module
# on the device, zlib under CPython. The chunk must decode to exactly len(out) bytes.
from agent.errors import OtaError, BAD_ENCODING

try:
    import deflate as _deflate
    import io as _io
except ImportError:
    _deflate = None
    import zlib as _zlib


def source(cap):
    """A stream that inflate_into can copy chunks of up to cap bytes into, made once: on
    MicroPython io.BytesIO copies a chunk it is given, so without one each chunk makes a
    buffer its own length. None under CPython (zlib reads the chunk itself)."""
    return _io.BytesIO(cap) if _deflate is not None else None


def inflate_into(chunk, out, wbits, src=None):
    """Decode chunk (raw deflate, window 2**wbits) into out; returns len(out). src: a
    stream from source() to copy the chunk into (then out may overlap chunk)."""
    want = len(out)
    try:
        if _deflate is not None:
            if src is None:
                src = _io.BytesIO(chunk)
            else:  # bytes of a longer chunk before stay past this one's end
                src.seek(0)
                src.write(chunk)
                src.seek(0)
            d = _deflate.DeflateIO(src, _deflate.RAW, wbits)
            n = d.readinto(out)
            extra = d.readinto(bytearray(1))
            if src.tell() > len(chunk):
                raise OtaError(BAD_ENCODING, "chunk does not end its deflate stream")
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
