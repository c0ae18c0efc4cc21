# Streaming parser of the image file. Fed bytes in blocks of any size (1 byte to 4 KiB);
# never holds the payload. It checks the structure, the manifest signature (with the OTA
# header as external_aad), the manifest against the header and the device's policy, the
# sector table digest and the optional GBCS supplier trailer, and hands the table and
# payload bytes to a sink as they pass:
#   sink.on_manifest(parser)  manifest verified; parser.manifest, .header, .header_bytes()
#   sink.on_table(mv)         sector table bytes (any split)
#   sink.on_table_end()       table complete, digest checked
#   sink.on_payload(mv)       payload element bytes (any split)
#   sink.on_done(parser)      whole image parsed; parser.trailer holds the GBCS trailer or None
# and, where the sink has them: sink.presize(payload) (the manifest's payload, unverified,
# before its signature is checked) and sink.work (a buffer lent to that check).
# The Manufacturer Image hash and the supplier signature over it are checked from flash after
# the download (agent.store.check), so that resume and re-fetching a sector cannot skew them.
import hashlib
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from agent.image import fmt
from agent import errors as E
from agent.errors import OtaError
from agent.image.manifest import decode as decode_manifest

_S_HEADER = const(0)
_S_ELEM = const(1)
_S_MANIFEST = const(2)
_S_TABLE = const(3)
_S_PAYLOAD = const(4)
_S_TRAILER = const(5)
_S_DONE = const(6)


class Parser:
    def __init__(self, policy, sink, verifier=None):
        self.policy = policy
        self.sink = sink
        self.verifier = verifier
        self._hdr = bytearray(fmt.HDR_MAX)
        self._man = bytearray(fmt.MANIFEST_MAX)
        self._small = bytearray(fmt.TRAILER_SIZE)
        self.reset()

    def reset(self):
        self.pos = 0              # bytes of the file consumed so far
        self.state = _S_HEADER
        self._fill = 0            # bytes gathered into the current small buffer
        self._need = fmt.HDR_PREFIX  # bytes wanted in the current state
        self._seen = 0            # elements seen: 1 manifest, 2 table, 3 payload
        self.header = None
        self.manifest = None
        self.kid = None
        self.cose_len = 0
        self.trailer = None
        self._tsha = None
        self.signed = False       # the manifest's signature has verified

    def release(self):
        """Give back the header's and the manifest's bytes and what was decoded of them,
        once the whole file is in flash: the final check decodes them anew from the slot's
        meta area, where they were written (agent.store.check.read_meta)."""
        self.header = self.manifest = self._hdr = self._man = None

    def header_bytes(self):
        return memoryview(self._hdr)[:self.header.length]

    def cose_bytes(self):
        return memoryview(self._man)[:self.cose_len]

    def payload_offset(self):
        """File offset of the payload element's data."""
        return self.header.length + 3 * fmt.ELEM_SIZE + self.cose_len + self.manifest.table_size

    def seek(self, pos):
        """Continue the payload from file offset pos (resume, or a sector fetched again)."""
        start = self.payload_offset()
        end = start + self.manifest.enc_size
        if self.state != _S_PAYLOAD or pos < start or pos > end:
            raise OtaError(E.BAD_ELEMENT, "offset %d outside the payload" % pos)
        self.pos = pos
        self._need = end - pos
        if not self._need:
            self._after_payload()

    def take(self, offset, data):
        """feed(data) when offset is where the parser stands, else nothing (a duplicate or
        late block); returns the offset wanted next. agent.update.Device.take is this method
        during a transfer: one call per block."""
        if offset == self.pos:
            n = len(data)
            if self.state == _S_PAYLOAD and n < self._need:  # as feed's common case
                self.pos = offset + n
                self._need -= n
                self.sink.on_payload(data)
                return offset + n
            self._feed(data, n)
        return self.pos

    def feed(self, data):
        n = len(data)
        if self.state == _S_PAYLOAD and n < self._need:  # the common case, allocating nothing
            self.pos += n
            self._need -= n
            self.sink.on_payload(data)
        else:
            self._feed(data, n)

    def _feed(self, data, n):
        mv = None
        i = 0
        while i < n:
            st = self.state
            if st == _S_DONE:
                raise OtaError(E.TRAILING_DATA, "at offset %d" % self.pos)
            take = self._need
            if take > n - i:
                take = n - i
            if take == n:
                chunk = data
            else:
                if mv is None:
                    mv = memoryview(data)
                chunk = mv[i:i + take]
            i += take
            self.pos += take
            self._need -= take
            if st == _S_PAYLOAD:
                self.sink.on_payload(chunk)
                if not self._need:
                    self._after_payload()
            elif st == _S_TABLE:
                self._tsha.update(chunk)
                self.sink.on_table(chunk)
                if not self._need:
                    if self._tsha.digest() != self.manifest.table_sha256:
                        raise OtaError(E.BAD_TABLE_DIGEST)
                    self._tsha = None
                    self.sink.on_table_end()
                    self._expect_elem()
            elif st == _S_MANIFEST:
                self._man[self._fill:self._fill + take] = chunk
                self._fill += take
                if not self._need:
                    self._check_manifest()
                    jump = self.sink.on_manifest(self)
                    if jump is not None:  # the sink resumes an earlier download
                        self._seen = 3
                        self.state = _S_PAYLOAD
                        self.seek(jump)
                        return
                    self._expect_elem()
            elif st == _S_ELEM:
                self._small[self._fill:self._fill + take] = chunk
                self._fill += take
                if not self._need:
                    self._element()
            elif st == _S_HEADER:
                self._hdr[self._fill:self._fill + take] = chunk
                self._fill += take
                if not self._need:
                    self._header()
            else:  # _S_TRAILER
                self._small[self._fill:self._fill + take] = chunk
                self._fill += take
                if not self._need:
                    self._trailer()

    def finish(self):
        """The whole file has been fed: anything missing is an error."""
        if self.state != _S_DONE:
            raise OtaError(E.TRUNCATED, "%d bytes, state %d" % (self.pos, self.state))

    # -- states --------------------------------------------------------------

    def _header(self):
        if self._fill == fmt.HDR_PREFIX:
            hlen = fmt.header_length_of(self._hdr)
            if hlen < fmt.HDR_SIZE or hlen > fmt.HDR_MAX:
                fmt.parse_header(self._hdr)  # reports bad magic or version first
                raise OtaError(E.BAD_HEADER_LENGTH, "%d" % hlen)
            self._need = hlen - fmt.HDR_PREFIX
            return
        h = fmt.parse_header(memoryview(self._hdr)[:self._fill])
        if h.hw_min is None:
            raise OtaError(E.BAD_HEADER_LENGTH, "hardware versions absent")
        if h.total_size < h.length + 3 * fmt.ELEM_SIZE:
            raise OtaError(E.SIZE_MISMATCH, "total image size %d" % h.total_size)
        if h.destination is not None and h.destination != self.policy.ieee:
            raise OtaError(E.WRONG_DESTINATION, "upgrade file destination differs from the "
                           "device's IEEE address")
        self.header = h
        self._expect_elem()

    def _expect_elem(self):
        self.state = _S_ELEM
        self._fill = 0
        self._need = fmt.ELEM_SIZE

    def _element(self):
        tag, length = fmt.unpack_elem(self._small)
        if tag == fmt.TAG_MANIFEST:
            order = 1
        elif tag == fmt.TAG_TABLE:
            order = 2
        elif tag == fmt.TAG_PAYLOAD:
            order = 3
        elif not self._seen:
            raise OtaError(E.MISSING_ELEMENT, "no signed manifest (0xF0A1) after the header, "
                           "tag 0x%04X instead" % tag)
        else:
            raise OtaError(E.UNKNOWN_ELEMENT, "tag 0x%04X" % tag)
        if order <= self._seen:
            raise OtaError(E.DUPLICATE_ELEMENT, "tag 0x%04X" % tag)
        if order != self._seen + 1:
            raise OtaError(E.MISSING_ELEMENT, "tag 0x%04X before its predecessor" % tag)
        if self.pos + length > self.header.total_size:
            raise OtaError(E.BAD_ELEMENT, "tag 0x%04X length %d past total size" % (tag, length))
        self._seen = order
        self._fill = 0
        self._need = length
        m = self.manifest
        if order == 1:
            if length == 0 or length > fmt.MANIFEST_MAX:
                raise OtaError(E.BAD_ELEMENT, "manifest of %d bytes" % length)
            self.cose_len = length
            self.state = _S_MANIFEST
        elif order == 2:
            if length != m.table_size:
                raise OtaError(E.BAD_TABLE, "%d bytes for %d sectors" % (length, m.sectors))
            self._tsha = hashlib.sha256()
            self.state = _S_TABLE
        else:
            if length != m.enc_size:
                raise OtaError(E.BAD_ENCODING, "payload element %d bytes, manifest %d"
                               % (length, m.enc_size))
            self.state = _S_PAYLOAD
            if not length:
                self._after_payload()

    def _check_manifest(self):
        from agent.crypto import cose
        h = self.header
        msg = cose.parse_sign1(self.cose_bytes())
        cose.check_low_s(msg)
        pub = self.policy.trust.find(msg.kid)
        pre = getattr(self.sink, "presize", None)
        if pre is not None:  # the sink may size its buffers before the verification
            pre(msg.payload)
        if not cose.verify_sign1(msg, self.header_bytes(), pub, self.verifier,
                                 getattr(self.sink, "work", None)):
            raise OtaError(E.BAD_SIGNATURE)
        self.signed = True
        m = decode_manifest(msg.payload)
        if m.kid != msg.kid:
            raise OtaError(E.BAD_MANIFEST, "key id differs from the COSE header's")
        m.check_header(h)
        m.check_policy(self.policy)
        self.kid = msg.kid
        self.manifest = m
        # the header's total size tells already whether a supplier trailer follows
        rest = h.total_size - self.payload_offset() - m.enc_size
        if rest != 0 and rest != fmt.TRAILER_SIZE:
            raise OtaError(E.SIZE_MISMATCH, "total image size %d" % h.total_size)
        if rest == 0 and self.policy.supplier_key is not None:
            raise OtaError(E.SUPPLIER_SIG_REQUIRED)

    def _after_payload(self):
        rest = self.header.total_size - self.pos
        if rest == 0:
            self._done()
        else:  # a trailer, as checked with the manifest
            self.state = _S_TRAILER
            self._fill = 0
            self._need = rest

    def _trailer(self):
        self.trailer = fmt.parse_trailer(self._small)
        self._done()

    def _done(self):
        self.state = _S_DONE
        self._need = 0x7FFFFFFF
        self.sink.on_done(self)

