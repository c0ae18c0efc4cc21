# deflate.DeflateIO's reading side under CPython, with zlib: what agent.image.inflate
# decodes with where MicroPython's deflate module is missing. Host and tests only: a device
# has the deflate module (host_tools/mpy.py HOST_ONLY).
import zlib

from agent.errors import OtaError, BAD_ENCODING


class Stream:
    """readinto of a raw deflate stream's decoded bytes: 0 at the stream's end;
    OtaError for bytes that are not one whole raw deflate stream."""

    def __init__(self, chunk, wbits):
        self.z = zlib.decompressobj(-wbits)
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
