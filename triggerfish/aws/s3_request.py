"""What an S3 operation is given and answers: the request (with its app's object store), the reply, and the
request body as object bytes (aws-chunked framing removed, checksums and the payload hash checked on the way)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.types import Receive, Scope

from triggerfish.aws import s3_xml
from triggerfish.aws.s3_auth import STREAMING, UNSIGNED, Signed
from triggerfish.aws.s3_chunked import ChunkedDecoder
from triggerfish.aws.s3_xml import http_date
from triggerfish.objects.checksums import ALGORITHMS, Checksums
from triggerfish.objects.model import ObjectError, ObjectMeta, check_bucket_name
from triggerfish.objects.service import Content, ObjectStore, Requester

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

CONTENT_HEADERS = ("content-encoding", "content-disposition", "content-language", "cache-control", "expires")
OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


@dataclass(slots=True)
class S3Request:
    scope: Scope
    receive: Receive
    method: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    rid: str
    signed: Signed
    objects: ObjectStore
    platform: Platform

    @property
    def requester(self) -> Requester:
        client = self.scope.get("client") or ("127.0.0.1", 0)
        return Requester(self.rid, str(client[0]), self.signed.caller.access_key_id)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


class Body:
    """The request body as object bytes: aws-chunked framing removed, checksums and hashes computed on the way."""

    def __init__(self, r: S3Request) -> None:
        self.r = r
        payload = r.signed.payload
        self.streaming = payload in STREAMING or "aws-chunked" in r.headers.get("content-encoding", "")
        self.decoder = ChunkedDecoder(r.signed.signer) if self.streaming else None
        named = {a for a in ALGORITHMS if f"x-amz-checksum-{a}" in r.headers}
        for trailer in r.headers.get("x-amz-trailer", "").split(","):
            trailer = trailer.strip().lower()
            if trailer.startswith("x-amz-checksum-"):
                named.add(trailer.removeprefix("x-amz-checksum-"))
        self.sums = Checksums(named)
        self.sha256 = (
            hashlib.sha256() if r.signed.checked and payload not in STREAMING and payload != UNSIGNED else None
        )
        self.size = 0
        self.trailers: dict[str, str] = {}

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.r.receive()
            if message["type"] == "http.disconnect":
                raise ObjectError("IncompleteBody", "the client went away before the body was complete")
            data = message.get("body", b"")
            pieces = self.decoder.feed(data) if self.decoder is not None else [data] if data else []
            for piece in pieces:
                self.size += len(piece)
                self.sums.update(piece)
                if self.sha256 is not None:
                    self.sha256.update(piece)
                yield piece
            if not message.get("more_body", False):
                break
        if self.decoder is not None:
            self.trailers = self.decoder.finish()
        expected = (
            self.r.headers.get("x-amz-decoded-content-length")
            if self.streaming
            else self.r.headers.get("content-length")
        )
        if expected is not None and expected.isdigit() and int(expected) != self.size:
            raise ObjectError(
                "IncompleteBody",
                f"You did not provide the number of bytes specified by the Content-Length HTTP header ({expected} said,"
                f" {self.size} sent)",
            )
        if self.sha256 is not None and self.sha256.hexdigest() != self.r.signed.payload:
            raise ObjectError(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )

    def check(self) -> dict[str, str]:
        sent = {a: self.r.headers[f"x-amz-checksum-{a}"] for a in ALGORITHMS if f"x-amz-checksum-{a}" in self.r.headers}
        for name, value in self.trailers.items():
            if name.startswith("x-amz-checksum-"):
                sent[name.removeprefix("x-amz-checksum-")] = value
        return self.sums.check(sent)


async def read_all(r: S3Request) -> bytes:
    body = Body(r)
    chunks: list[bytes] = []
    size = 0
    async for chunk in body.chunks():
        size += len(chunk)
        if size > s3_xml.MAX_XML_BYTES:
            raise ObjectError("MaxMessageLengthExceeded", "Your request was too big.")
        chunks.append(chunk)
    body.check()
    return b"".join(chunks)


def content_of(r: S3Request) -> Content:
    metadata = {
        name[len("x-amz-meta-") :]: value for name, value in r.headers.items() if name.startswith("x-amz-meta-")
    }
    size = sum(len(k) + len(v) for k, v in metadata.items())
    if size > 2048:
        raise ObjectError(
            "MetadataTooLarge", f"Your metadata headers exceed the maximum allowed metadata size ({size} of 2048 bytes)"
        )
    headers = {name: r.headers[name] for name in CONTENT_HEADERS if name in r.headers}
    encoding = headers.get("content-encoding", "")
    if "aws-chunked" in encoding:
        rest = ",".join(p for p in (x.strip() for x in encoding.split(",")) if p and p != "aws-chunked")
        if rest:
            headers["content-encoding"] = rest
        else:
            headers.pop("content-encoding")
    return Content(r.headers.get("content-type", "binary/octet-stream"), headers, metadata)


def check_length(r: S3Request) -> None:
    declared = r.headers.get("x-amz-decoded-content-length") or r.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > r.objects.max_put_bytes:
        raise ObjectError(
            "EntityTooLarge",
            f"Your proposed upload exceeds the maximum allowed size: {declared} bytes, over the"
            f" {r.objects.max_put_bytes} one PUT takes (use a multipart upload)",
        )


def copy_source(r: S3Request) -> tuple[str, str]:
    source = unquote(r.headers["x-amz-copy-source"].split("?", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise ObjectError(
            "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"
        )
    return check_bucket_name(bucket), key


def object_headers(meta: ObjectMeta) -> list[tuple[str, str]]:
    headers = [
        ("etag", f'"{meta.etag}"'),
        ("last-modified", http_date(meta.modified)),
        ("content-type", meta.content_type),
        ("accept-ranges", "bytes"),
    ]
    headers += list(meta.headers.items())
    headers += [(f"x-amz-meta-{name}", value) for name, value in meta.metadata.items()]
    return headers


def xml_reply(body: bytes, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(200, [("content-type", "application/xml"), *(headers or [])], body)


def encode_headers(headers: list[tuple[str, str]], rid: str) -> list[tuple[bytes, bytes]]:
    out = [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers]
    out += [(b"x-amz-request-id", rid.encode()), (b"x-amz-id-2", rid.encode())]
    return out
