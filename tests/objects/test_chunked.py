"""aws-chunked bodies: framing, chunk signatures (signed as botocore's streaming signer does) and trailers."""

from __future__ import annotations

import hashlib

import pytest

from triggerfish.aws.s3_chunked import ChunkedDecoder, ChunkSigner
from triggerfish.aws.sigv4 import EMPTY_SHA256, CredentialScope, signature, signing_secret
from triggerfish.objects.model import ObjectError

SCOPE = CredentialScope("AKIDEXAMPLE", "20130524", "us-east-1", "s3")
SECRET = signing_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
DATE = "20130524T000000Z"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"


def signed_body(chunks: list[bytes]) -> bytes:
    out, previous = b"", SEED
    for chunk in [*chunks, b""]:
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", DATE, str(SCOPE), previous, EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()]
        )
        previous = signature(SECRET, SCOPE, to_sign)
        out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + b"\r\n"
    return out


def feed_in_pieces(decoder: ChunkedDecoder, body: bytes, size: int) -> bytes:
    return b"".join(b"".join(decoder.feed(body[i : i + size])) for i in range(0, len(body), size))


def test_the_example_of_awss_streaming_signature_documentation() -> None:
    # AWS's worked example: 65 KiB of 'a' in a 64 KiB chunk, a 1 KiB chunk and the final one.
    body = signed_body([b"a" * 65536, b"a" * 1024])
    assert b"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648" in body
    decoder = ChunkedDecoder(ChunkSigner(SECRET, SCOPE, DATE, SEED))
    assert feed_in_pieces(decoder, body, 7000) == b"a" * 66560
    assert decoder.finish() == {}


@pytest.mark.parametrize("size", [1, 5, 4096, 1 << 20])
def test_any_split_of_the_received_bytes_decodes_alike(size: int) -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
    decoder = ChunkedDecoder()
    assert feed_in_pieces(decoder, body, size) == b"hello world"
    assert decoder.finish() == {"x-amz-checksum-crc32": "DUoRhQ=="}


def test_a_tampered_chunk_is_refused() -> None:
    body = signed_body([b"hello"]).replace(b"hello", b"jello")
    decoder = ChunkedDecoder(ChunkSigner(SECRET, SCOPE, DATE, SEED))
    with pytest.raises(ObjectError) as caught:
        decoder.feed(body)
    assert caught.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    "body",
    [b"5\r\nhel", b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX\r\n0\r\n\r\n", b""],
)
def test_a_cut_or_malformed_body_is_an_incomplete_body(body: bytes) -> None:
    def decode() -> None:
        decoder = ChunkedDecoder()
        decoder.feed(body)
        decoder.finish()

    with pytest.raises(ObjectError) as caught:
        decode()
    assert caught.value.code == "IncompleteBody"
