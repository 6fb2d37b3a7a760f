"""`Content-Encoding: aws-chunked` bodies, as S3 clients stream them, decoded as they arrive.

    decoder = ChunkedDecoder(signer)          # signer: None for STREAMING-UNSIGNED-PAYLOAD-TRAILER
    for piece in decoder.feed(received):      # the object's bytes, chunk framing removed
        ...
    trailers = decoder.finish()               # {"x-amz-checksum-crc32": "..."}; raises when cut short

Each chunk is `<hex size>[;chunk-signature=<sig>]\\r\\n<bytes>\\r\\n`; a zero-size chunk ends the
body, followed by trailing headers (`name:value\\r\\n`) and an empty line. With a `ChunkSigner`
each chunk's signature is checked as SigV4's streaming form defines it: the chain
`HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\\n" date scope previous-signature SHA256("") SHA256(chunk))`,
seeded with the request's own signature. The trailer's signature is not checked: the checksum it
carries is checked against the body itself. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from triggerfish.aws.sigv4 import EMPTY_SHA256, CredentialScope, signature
from triggerfish.objects.model import ObjectError

#: Longest chunk header or trailer line taken (a size, a signature, a checksum header).
_MAX_LINE = 4096


@dataclass(slots=True)
class ChunkSigner:
    secret: bytes
    scope: CredentialScope
    amz_date: str
    #: The signature of the previous chunk (first: the request's).
    previous: str

    def check(self, chunk_sha256: str, sent: str) -> None:
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", self.amz_date, str(self.scope), self.previous, EMPTY_SHA256, chunk_sha256]
        )
        expected = signature(self.secret, self.scope, to_sign)
        if not hmac.compare_digest(expected, sent):
            raise ObjectError(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided (a chunk signature"
                " of the aws-chunked body). Check your key and signing method.",
                status=403,
            )
        self.previous = sent


def _malformed(what: str) -> ObjectError:
    return ObjectError("IncompleteBody", f"the aws-chunked body is malformed: {what}")


class ChunkedDecoder:
    def __init__(self, signer: ChunkSigner | None = None) -> None:
        self.signer = signer
        self._buffer = bytearray()
        self._state = "size"
        self._remaining = 0
        self._chunk_signature = ""
        self._chunk_hash = hashlib.sha256()
        self.trailers: dict[str, str] = {}

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> list[bytes]:
        """The object bytes `data` completes (possibly none); raises ObjectError for a malformed body."""
        out: list[bytes] = []
        if self._state == "data" and not self._buffer and len(data) <= self._remaining:
            # The common case for large chunks: the received piece is all chunk data, taken without copying.
            self._take(data, out)
            return out
        self._buffer += data
        while True:
            if self._state == "data":
                if not self._buffer:
                    return out
                piece = bytes(self._buffer[: self._remaining])
                del self._buffer[: len(piece)]
                self._take(piece, out)
                continue
            if self._state == "done":
                if self._buffer.strip():
                    raise _malformed("bytes after the end of the body")
                return out
            line = self._line()
            if line is None:
                return out
            if self._state == "size":
                self._start_chunk(line)
            elif self._state == "crlf":
                if line:
                    raise _malformed("a chunk's data is longer than its size says")
                self._state = "size"
            elif self._state == "trailer":
                if not line:
                    self._state = "done"
                else:
                    name, sep, value = line.partition(":")
                    if not sep:
                        raise _malformed(f"trailer line {line[:80]!r} is not name:value")
                    self.trailers[name.strip().lower()] = value.strip()

    def _take(self, piece: bytes, out: list[bytes]) -> None:
        if self.signer is not None:
            self._chunk_hash.update(piece)
        out.append(piece)
        self._remaining -= len(piece)
        if self._remaining == 0:
            self._end_chunk()
            self._state = "crlf"

    def _line(self) -> str | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_LINE:
                raise _malformed("a chunk header or trailer line is too long")
            return None
        line = bytes(self._buffer[:end]).decode("latin-1")
        del self._buffer[: end + 2]
        return line

    def _start_chunk(self, line: str) -> None:
        size_text, _, extension = line.partition(";")
        try:
            size = int(size_text.strip(), 16)
        except ValueError:
            raise _malformed(f"chunk size {size_text[:20]!r} is not hexadecimal") from None
        self._chunk_signature = ""
        if extension:
            name, _, value = extension.partition("=")
            if name.strip() == "chunk-signature":
                self._chunk_signature = value.strip()
        if self.signer is not None and not self._chunk_signature:
            raise _malformed("a chunk of a signed streaming body carries no chunk-signature")
        self._chunk_hash = hashlib.sha256()
        self._remaining = size
        if size == 0:
            self._end_chunk()
            self._state = "trailer"
        else:
            self._state = "data"

    def _end_chunk(self) -> None:
        if self.signer is not None:
            self.signer.check(self._chunk_hash.hexdigest(), self._chunk_signature)

    def finish(self) -> dict[str, str]:
        """The trailing headers; raises ObjectError when the body ended before its last chunk."""
        if self._state == "trailer" and not self._buffer:
            self._state = "done"  # some clients end with the zero chunk and no empty line
        if self._state != "done":
            raise ObjectError(
                "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header"
            )
        return self.trailers
