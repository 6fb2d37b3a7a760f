"""S3's REST API on `/-/aws`, path-style (`/-/aws/BUCKET/KEY`), with bodies streamed to disk.

    s3 = S3Endpoint(identify, platform_for)
    await s3(scope, receive, send)        # AwsEndpoint hands it every request signed for `s3`

The other AWS services buffer their (small) bodies; S3 cannot, so this is a plain ASGI app of its
own: it authenticates from the headers (or a presigned URL's query) before reading a byte, routes
by method, path and query as S3 does, then streams the body through the aws-chunked decoder and
the checksums into the object store (triggerfish.objects), and streams objects back out of files.
Errors are S3's XML error documents with S3's codes.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote

from starlette.types import Message, Receive, Scope, Send

from triggerfish.aws import s3_xml
from triggerfish.aws.credentials import Caller, Identify
from triggerfish.aws.protocol import request_id
from triggerfish.aws.s3_auth import STREAMING, UNSIGNED, Signed, authenticate
from triggerfish.aws.s3_chunked import ChunkedDecoder
from triggerfish.aws.s3_xml import Pairs, http_date, iso8601, xml_document
from triggerfish.errors import InvalidInputError, StoreError
from triggerfish.identity import REGION
from triggerfish.objects.blobs import READ_BYTES, read_range
from triggerfish.objects.checksums import ALGORITHMS, Checksums
from triggerfish.objects.model import ObjectError, ObjectMeta, check_bucket_name
from triggerfish.objects.service import Content, ObjectStore, Requester

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

log = logging.getLogger("triggerfish.aws.s3")

_CONTENT_HEADERS = ("content-encoding", "content-disposition", "content-language", "cache-control", "expires")
_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}
#: Most of a refused request's body read past so that its connection can carry the next request.
_DRAIN_BYTES = 8 * 1024 * 1024
#: The operations that read; any other needs `publish` (objects) or `configure` (buckets).
_READS = {"GET", "HEAD"}


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

    @property
    def requester(self) -> Requester:
        client = self.scope.get("client") or ("127.0.0.1", 0)
        return Requester(self.rid, str(client[0]), self.signed.caller.access_key_id)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


PlatformFor = Callable[[str | None], "Platform | None"]


class S3Endpoint:
    def __init__(
        self,
        identify: Identify,
        platform_for: PlatformFor,
        *,
        prefix: str = "/-/aws",
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._identify = identify
        self._platform_for = platform_for
        self._prefix = prefix
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rid = request_id()
        method = scope.get("method", "GET")
        body = _Received(receive)
        try:
            request = await self._prepare(scope, body, rid)
            reply = await _dispatch(request, send)
        except ObjectError as exc:
            reply = _error(exc.status, exc.code, exc.message, rid, exc.resource, method)
        except InvalidInputError as exc:
            reply = _error(400, "InvalidArgument", str(exc), rid, "", method)
        except StoreError as exc:
            log.warning("S3 request %s failed in the store: %s", rid, exc)
            reply = _error(503, "ServiceUnavailable", f"the platform's store failed: {exc}", rid, "", method)
        if reply is not None:
            if not await body.drain(_declared_length(scope)):
                # A refused body too large to read past: the connection cannot carry another request.
                reply = Reply(reply.status, [*reply.headers, ("connection", "close")], reply.body)
            await _send(send, reply, rid)

    async def _prepare(self, scope: Scope, receive: Receive, rid: str) -> S3Request:
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        headers = {name.lower(): value for name, value in raw_headers}
        raw_query = scope.get("query_string", b"").decode("latin-1")
        raw_path = (scope.get("raw_path") or scope.get("path", "").encode()).decode("latin-1").split("?", 1)[0]
        signed = await authenticate(
            self._identify,
            method=scope.get("method", "GET"),
            raw_path=raw_path,
            raw_query=raw_query,
            headers=raw_headers,
            found=headers,
            now=self._clock(),
        )
        path = scope.get("path", "")[len(self._prefix) :].lstrip("/")
        bucket, _, key = path.partition("/")
        # A presigned URL's signature and the SDK's operation hint are no operation's parameters.
        query = {k: v for k, v in parse_qsl(raw_query, keep_blank_values=True) if k not in _PRESIGN}
        method = scope.get("method", "GET")
        _authorize(signed.caller, method, bucket, key, query)
        platform = self._platform_for(signed.caller.app)
        if platform is None:
            raise ObjectError(
                "InvalidAccessKeyId",
                f"the app of access key {signed.caller.access_key_id} is not deployed here",
                status=403,
            )
        if bucket:
            check_bucket_name(bucket)
        return S3Request(scope, receive, method, bucket, key, query, headers, rid, signed, platform.objects)


class _Received:
    """The request's `receive`, remembering whether the body was read to its end (to drain it when refused)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.ended = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.ended = True
        return message

    async def drain(self, declared: int | None) -> bool:
        """Read what is left of a body of at most _DRAIN_BYTES; whether it ended. A larger one (or one of unknown
        length) is not waited for: its client may be holding it back until it hears an answer."""
        if declared is None or declared > _DRAIN_BYTES:
            return self.ended
        read = 0
        while not self.ended and read <= _DRAIN_BYTES:
            read += len((await self()).get("body", b""))
        return self.ended


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length" and value.isdigit():
            return int(value)
    return None


def _authorize(caller: Caller, method: str, bucket: str, key: str, query: dict[str, str]) -> None:
    if method in _READS or (method == "POST" and "select" in query):
        action = "read"
    elif not key and method in ("PUT", "DELETE"):
        action = "configure"
    else:
        action = "publish"
    if caller.may(action) or (action == "publish" and caller.may("configure")):
        return
    raise ObjectError(
        "AccessDenied", f"Access Denied: access key {caller.access_key_id}'s role does not hold {action!r}", status=403
    )


async def _dispatch(r: S3Request, send: Send) -> Reply | None:
    method, q = r.method, r.query
    if not r.bucket:
        if method == "GET":
            return await _list_buckets(r)
        raise _not_implemented(f"{method} /")
    if not r.key:
        if method == "PUT" and not q:
            await r.objects.create_bucket(r.bucket)
            return Reply(200, [("location", f"/{r.bucket}")])
        if method == "HEAD":
            await r.objects.require_bucket(r.bucket)
            return Reply(200, [("x-amz-bucket-region", REGION)])
        if method == "DELETE" and not q:
            await r.objects.delete_bucket(r.bucket)
            return Reply(204, [])
        if method == "GET" and "location" in q:
            await r.objects.require_bucket(r.bucket)
            return _xml_reply(s3_xml.location_document(REGION))
        if method == "GET" and "uploads" in q:
            return await _list_uploads(r)
        if method == "GET" and "versioning" in q:
            await r.objects.require_bucket(r.bucket)
            return _xml_reply(xml_document("VersioningConfiguration", []))
        if method == "GET" and not (
            set(q)
            - {
                "list-type",
                "prefix",
                "delimiter",
                "continuation-token",
                "start-after",
                "max-keys",
                "encoding-type",
                "marker",
                "fetch-owner",
            }
        ):
            return await _list_objects(r)
        if method == "POST" and "delete" in q:
            return await _delete_objects(r)
        raise _not_implemented(f"{method} bucket ?{'&'.join(q)}")
    if method == "PUT":
        if "partNumber" in q and "uploadId" in q:
            if "x-amz-copy-source" in r.headers:
                return await _upload_part_copy(r)
            return await _upload_part(r)
        if "x-amz-copy-source" in r.headers and not q:
            return await _copy_object(r)
        if not q:
            return await _put_object(r)
    if method in ("GET", "HEAD") and "uploadId" in q and method == "GET":
        return await _list_parts(r)
    if method in ("GET", "HEAD") and not (set(q) - set(_OVERRIDES) - {"partNumber", "versionId"}):
        return await _get_object(r, send)
    if method == "DELETE":
        if "uploadId" in q:
            await r.objects.abort_upload(r.bucket, r.key, q["uploadId"])
            return Reply(204, [])
        if not q:
            await r.objects.delete_object(r.bucket, r.key, requester=r.requester)
            return Reply(204, [])
    if method == "POST" and "uploads" in q:
        return await _create_upload(r)
    if method == "POST" and "uploadId" in q:
        return await _complete_upload(r)
    raise _not_implemented(f"{method} object ?{'&'.join(q)}")


_PRESIGN = {
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "x-id",
}


def _not_implemented(what: str) -> ObjectError:
    return ObjectError(
        "NotImplemented",
        f"A header or query you provided implies functionality that is not implemented ({what});"
        " docs/objects.md lists the operations served",
        status=501,
    )


# --- bodies ---


class _Body:
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


async def _read_all(r: S3Request) -> bytes:
    body = _Body(r)
    chunks: list[bytes] = []
    size = 0
    async for chunk in body.chunks():
        size += len(chunk)
        if size > s3_xml.MAX_XML_BYTES:
            raise ObjectError("MaxMessageLengthExceeded", "Your request was too big.")
        chunks.append(chunk)
    body.check()
    return b"".join(chunks)


def _content(r: S3Request) -> Content:
    metadata = {
        name[len("x-amz-meta-") :]: value for name, value in r.headers.items() if name.startswith("x-amz-meta-")
    }
    size = sum(len(k) + len(v) for k, v in metadata.items())
    if size > 2048:
        raise ObjectError(
            "MetadataTooLarge", f"Your metadata headers exceed the maximum allowed metadata size ({size} of 2048 bytes)"
        )
    headers = {name: r.headers[name] for name in _CONTENT_HEADERS if name in r.headers}
    encoding = headers.get("content-encoding", "")
    if "aws-chunked" in encoding:
        rest = ",".join(p for p in (x.strip() for x in encoding.split(",")) if p and p != "aws-chunked")
        if rest:
            headers["content-encoding"] = rest
        else:
            headers.pop("content-encoding")
    return Content(r.headers.get("content-type", "binary/octet-stream"), headers, metadata)


def _object_headers(meta: ObjectMeta) -> list[tuple[str, str]]:
    headers = [
        ("etag", f'"{meta.etag}"'),
        ("last-modified", http_date(meta.modified)),
        ("content-type", meta.content_type),
        ("accept-ranges", "bytes"),
    ]
    headers += list(meta.headers.items())
    headers += [(f"x-amz-meta-{name}", value) for name, value in meta.metadata.items()]
    return headers


# --- buckets ---


async def _list_buckets(r: S3Request) -> Reply:
    buckets = await r.objects.index.buckets()
    pairs: Pairs = [
        ("Owner", [("ID", "triggerfish"), ("DisplayName", "triggerfish")]),
        ("Buckets", [("Bucket", [("Name", b.name), ("CreationDate", iso8601(b.created))]) for b in buckets]),
    ]
    return _xml_reply(xml_document("ListAllMyBucketsResult", pairs))


async def _list_objects(r: S3Request) -> Reply:
    q = r.query
    v2 = q.get("list-type") == "2"
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    try:
        max_keys = min(int(q.get("max-keys", "1000")), 1000)
    except ValueError:
        raise ObjectError("InvalidArgument", "Provided max-keys not an integer or within integer range") from None
    if max_keys < 0:
        raise ObjectError("InvalidArgument", "max-keys must be 0 or more")
    url = q.get("encoding-type") == "url"
    if url is False and "encoding-type" in q:
        raise ObjectError("InvalidArgument", "Invalid Encoding Method specified in Request: encoding-type takes url")

    def enc(value: str) -> str:
        return quote(value, safe="/") if url else value

    if v2:
        token = q.get("continuation-token")
        after = _read_token(token) if token else q.get("start-after") or None
    else:
        after = q.get("marker") or None
    listing = await r.objects.list_objects(r.bucket, prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys)
    pairs: Pairs = [("Name", r.bucket), ("Prefix", enc(prefix))]
    if v2:
        if "continuation-token" in q:
            pairs.append(("ContinuationToken", q["continuation-token"]))
        if "start-after" in q:
            pairs.append(("StartAfter", enc(q["start-after"])))
        pairs.append(("KeyCount", len(listing.objects) + len(listing.prefixes)))
    else:
        pairs.append(("Marker", enc(q.get("marker", ""))))
    pairs.append(("MaxKeys", max_keys))
    if delimiter:
        pairs.append(("Delimiter", enc(delimiter)))
    if url:
        pairs.append(("EncodingType", "url"))
    pairs.append(("IsTruncated", listing.truncated))
    if listing.truncated and listing.next_after is not None:
        if v2:
            pairs.append(("NextContinuationToken", _make_token(listing.next_after)))
        elif delimiter:
            pairs.append(("NextMarker", enc(listing.next_after.rstrip("\U0010ffff"))))
    owner = [("ID", "triggerfish"), ("DisplayName", "triggerfish")]
    for meta in listing.objects:
        entry: Pairs = [
            ("Key", enc(meta.key)),
            ("LastModified", iso8601(meta.modified)),
            ("ETag", f'"{meta.etag}"'),
            ("Size", meta.size),
            ("StorageClass", "STANDARD"),
        ]
        if meta.checksums:
            entry += [("ChecksumAlgorithm", a.upper()) for a in meta.checksums]
        if not v2 or q.get("fetch-owner") == "true":
            entry.append(("Owner", owner))
        pairs.append(("Contents", entry))
    for common in listing.prefixes:
        pairs.append(("CommonPrefixes", [("Prefix", enc(common))]))
    return _xml_reply(xml_document("ListBucketResult", pairs))


def _make_token(after: str) -> str:
    import base64

    return base64.urlsafe_b64encode(after.encode("utf-8")).decode()


def _read_token(token: str) -> str:
    import base64
    import binascii

    try:
        return base64.urlsafe_b64decode(token.encode()).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ObjectError("InvalidArgument", "The continuation token provided is incorrect") from None


async def _delete_objects(r: S3Request) -> Reply:
    await r.objects.require_bucket(r.bucket)
    document = s3_xml.parse(await _read_all(r), "Delete")
    quiet = (s3_xml.text(document, "Quiet") or "").strip().lower() == "true"
    entries = s3_xml.children(document, "Object")
    if len(entries) > 1000:
        raise ObjectError("MalformedXML", "DeleteObjects takes at most 1000 keys")
    results: Pairs = []
    for entry in entries:
        key = s3_xml.text(entry, "Key") or ""
        try:
            await r.objects.delete_object(r.bucket, key, requester=r.requester)
        except ObjectError as exc:
            results.append(("Error", [("Key", key), ("Code", exc.code), ("Message", exc.message)]))
            continue
        if not quiet:
            results.append(("Deleted", [("Key", key)]))
    return _xml_reply(xml_document("DeleteResult", results))


# --- objects ---


async def _put_object(r: S3Request) -> Reply:
    _check_length(r)
    body = _Body(r)
    meta = await r.objects.put_object(
        r.bucket,
        r.key,
        body.chunks(),
        content=_content(r),
        check=body.check,
        requester=r.requester,
        if_none_match=r.headers.get("if-none-match", "").strip() == "*",
        content_md5=r.headers.get("content-md5"),
    )
    headers = [("etag", f'"{meta.etag}"')]
    headers += [(f"x-amz-checksum-{a}", v) for a, v in meta.checksums.items()]
    return Reply(200, headers)


def _check_length(r: S3Request) -> None:
    declared = r.headers.get("x-amz-decoded-content-length") or r.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > r.objects.max_put_bytes:
        raise ObjectError(
            "EntityTooLarge",
            f"Your proposed upload exceeds the maximum allowed size: {declared} bytes, over the"
            f" {r.objects.max_put_bytes} one PUT takes (use a multipart upload)",
        )


def _copy_source(r: S3Request) -> tuple[str, str]:
    source = unquote(r.headers["x-amz-copy-source"].split("?", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise ObjectError(
            "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"
        )
    return check_bucket_name(bucket), key


async def _copy_object(r: S3Request) -> Reply:
    source = _copy_source(r)
    original = await r.objects.head(*source)
    _copy_conditions(r, original)
    replace = r.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
    meta = await r.objects.copy_object(
        source, r.bucket, r.key, content=_content(r) if replace else None, requester=r.requester
    )
    body = xml_document("CopyObjectResult", [("LastModified", iso8601(meta.modified)), ("ETag", f'"{meta.etag}"')])
    return _xml_reply(body)


def _copy_conditions(r: S3Request, meta: ObjectMeta) -> None:
    h = r.headers
    prefix = "x-amz-copy-source-"
    if prefix + "if-match" in h and not _etag_matches(h[prefix + "if-match"], meta.etag):
        raise _precondition()
    if prefix + "if-none-match" in h and _etag_matches(h[prefix + "if-none-match"], meta.etag):
        raise _precondition()


async def _get_object(r: S3Request, send: Send) -> Reply | None:
    if r.method == "HEAD":
        meta = await r.objects.head(r.bucket, r.key)
        file = None
    else:
        meta, file = await r.objects.open(r.bucket, r.key)
    try:
        status = _conditions(r, meta)
        headers = _object_headers(meta)
        for name, header in _OVERRIDES.items():
            if name in r.query:
                headers = [(k, v) for k, v in headers if k != header] + [(header, r.query[name])]
        if status == 304:
            return Reply(304, [h for h in headers if h[0] in ("etag", "last-modified")])
        start, length = 0, meta.size
        status = 200
        span = _range(r.headers.get("range"), meta.size) if "range" in r.headers else None
        if span is None and "partNumber" in r.query and meta.parts:
            number = int(r.query["partNumber"])
            if not 1 <= number <= len(meta.parts):
                raise ObjectError("InvalidPartNumber", "The requested partnumber is not satisfiable", status=416)
            first = sum(meta.parts[: number - 1])
            span = (first, first + meta.parts[number - 1] - 1)
            headers.append(("x-amz-mp-parts-count", str(len(meta.parts))))
        if span is not None:
            start, length = span[0], span[1] - span[0] + 1
            status = 206
            headers.append(("content-range", f"bytes {span[0]}-{span[1]}/{meta.size}"))
        elif r.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
            headers += [(f"x-amz-checksum-{a}", v) for a, v in meta.checksums.items()]
        headers.append(("content-length", str(length)))
        await send({"type": "http.response.start", "status": status, "headers": _encode_headers(headers, r.rid)})
        if file is None or r.method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return None
        await _stream(file, start, length, send)
        return None
    finally:
        if file is not None:
            file.close()


async def _stream(file: Any, start: int, length: int, send: Send) -> None:
    import asyncio

    if length <= READ_BYTES:
        file.seek(start)
        await send({"type": "http.response.body", "body": file.read(length)})
        return
    pieces = read_range(file, start, length)
    while True:
        piece = await asyncio.to_thread(next, pieces, b"")
        if not piece:
            break
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _conditions(r: S3Request, meta: ObjectMeta) -> int:
    """200, or 304 (not modified); raises PreconditionFailed (412). S3's order of the four headers."""
    h = r.headers
    if "if-match" in h:
        if not _etag_matches(h["if-match"], meta.etag):
            raise _precondition()
    elif "if-unmodified-since" in h:
        since = _parse_http_date(h["if-unmodified-since"])
        if since is not None and int(meta.modified) > since:
            raise _precondition()
    if "if-none-match" in h:
        if _etag_matches(h["if-none-match"], meta.etag):
            return 304
    elif "if-modified-since" in h:
        since = _parse_http_date(h["if-modified-since"])
        if since is not None and int(meta.modified) <= since:
            return 304
    return 200


def _etag_matches(header: str, etag: str) -> bool:
    wanted = [v.strip().removeprefix("W/").strip('"') for v in header.split(",")]
    return "*" in wanted or etag in wanted


def _parse_http_date(text: str) -> int | None:
    from email.utils import parsedate_to_datetime

    try:
        return int(parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError):
        return None


def _precondition() -> ObjectError:
    return ObjectError(
        "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", status=412
    )


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a `Range: bytes=...` header; None to send the whole object; raises InvalidRange."""
    if header is None or not header.startswith("bytes=") or "," in header:
        return None  # S3 ignores what it does not understand, and serves one range only
    first_text, _, last_text = header[len("bytes=") :].strip().partition("-")
    try:
        if first_text == "":
            length = int(last_text)
            if length == 0 or size == 0:
                raise _invalid_range(size)
            return max(size - length, 0), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size or last < first:
        raise _invalid_range(size)
    return first, min(last, size - 1)


def _invalid_range(size: int) -> ObjectError:
    return ObjectError(
        "InvalidRange", f"The requested range is not satisfiable (the object has {size} bytes)", status=416
    )


# --- multipart ---


async def _create_upload(r: S3Request) -> Reply:
    algorithm = r.headers.get("x-amz-checksum-algorithm", "").lower()
    upload = await r.objects.create_upload(r.bucket, r.key, _content(r), algorithm)
    body = xml_document(
        "InitiateMultipartUploadResult", [("Bucket", r.bucket), ("Key", r.key), ("UploadId", upload.upload_id)]
    )
    headers = [("x-amz-checksum-algorithm", algorithm.upper())] if algorithm else []
    return _xml_reply(body, headers)


def _part_number(r: S3Request) -> int:
    try:
        return int(r.query["partNumber"])
    except ValueError:
        raise ObjectError("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive") from None


async def _upload_part(r: S3Request) -> Reply:
    _check_length(r)
    body = _Body(r)
    part = await r.objects.upload_part(
        r.bucket,
        r.key,
        r.query["uploadId"],
        _part_number(r),
        body.chunks(),
        check=body.check,
        content_md5=r.headers.get("content-md5"),
    )
    headers = [("etag", f'"{part.etag}"')] + [(f"x-amz-checksum-{a}", v) for a, v in part.checksums.items()]
    return Reply(200, headers)


async def _upload_part_copy(r: S3Request) -> Reply:
    source = _copy_source(r)
    span = None
    text = r.headers.get("x-amz-copy-source-range")
    if text is not None:
        first, _, last = text.removeprefix("bytes=").partition("-")
        if not first.isdigit() or not last.isdigit():
            raise ObjectError(
                "InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last"
            )
        span = (int(first), int(last))
    part = await r.objects.upload_part_copy(r.bucket, r.key, r.query["uploadId"], _part_number(r), source, span)
    body = xml_document("CopyPartResult", [("LastModified", iso8601(part.modified)), ("ETag", f'"{part.etag}"')])
    return _xml_reply(body)


async def _list_parts(r: S3Request) -> Reply:
    after = int(r.query.get("part-number-marker", "0") or 0)
    limit = max(1, min(int(r.query.get("max-parts", "1000") or 1000), 1000))
    upload_id = r.query["uploadId"]
    parts = await r.objects.list_parts(r.bucket, r.key, upload_id, after=after, limit=limit + 1)
    truncated = len(parts) > limit
    parts = parts[:limit]
    pairs: Pairs = [
        ("Bucket", r.bucket),
        ("Key", r.key),
        ("UploadId", upload_id),
        ("PartNumberMarker", after),
        ("NextPartNumberMarker", parts[-1].number if parts else after),
        ("MaxParts", limit),
        ("IsTruncated", truncated),
        ("StorageClass", "STANDARD"),
    ]
    for part in parts:
        entry: Pairs = [
            ("PartNumber", part.number),
            ("LastModified", iso8601(part.modified)),
            ("ETag", f'"{part.etag}"'),
            ("Size", part.size),
        ]
        entry += [(f"Checksum{a.upper()}", v) for a, v in part.checksums.items()]
        pairs.append(("Part", entry))
    return _xml_reply(xml_document("ListPartsResult", pairs))


async def _list_uploads(r: S3Request) -> Reply:
    await r.objects.require_bucket(r.bucket)
    uploads = await r.objects.index.uploads(r.bucket)
    pairs: Pairs = [
        ("Bucket", r.bucket),
        ("KeyMarker", ""),
        ("UploadIdMarker", ""),
        ("MaxUploads", 1000),
        ("IsTruncated", False),
    ]
    for upload in uploads:
        pairs.append(
            ("Upload", [("Key", upload.key), ("UploadId", upload.upload_id), ("Initiated", iso8601(upload.started))])
        )
    return _xml_reply(xml_document("ListMultipartUploadsResult", pairs))


async def _complete_upload(r: S3Request) -> Reply:
    document = s3_xml.parse(await _read_all(r), "CompleteMultipartUpload")
    chosen: list[tuple[int, str]] = []
    for part in s3_xml.children(document, "Part"):
        number = s3_xml.text(part, "PartNumber") or ""
        if not number.strip().isdigit():
            raise ObjectError("MalformedXML", "The XML you provided was not well-formed: a Part lacks its PartNumber")
        chosen.append((int(number), s3_xml.text(part, "ETag") or ""))
    meta = await r.objects.complete_upload(r.bucket, r.key, r.query["uploadId"], chosen, requester=r.requester)
    pairs: Pairs = [
        ("Location", f"/{r.bucket}/{quote(r.key)}"),
        ("Bucket", r.bucket),
        ("Key", r.key),
        ("ETag", f'"{meta.etag}"'),
    ]
    pairs += [(f"Checksum{a.upper()}", v) for a, v in meta.checksums.items()]
    return _xml_reply(xml_document("CompleteMultipartUploadResult", pairs))


# --- replies ---


def _xml_reply(body: bytes, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(200, [("content-type", "application/xml"), *(headers or [])], body)


def _error(status: int, code: str, message: str, rid: str, resource: str, method: str) -> Reply:
    body = b"" if method == "HEAD" else s3_xml.error_document(code, message, rid, resource)
    return Reply(status, [("content-type", "application/xml")], body)


def _encode_headers(headers: list[tuple[str, str]], rid: str) -> list[tuple[bytes, bytes]]:
    out = [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers]
    out += [(b"x-amz-request-id", rid.encode()), (b"x-amz-id-2", rid.encode())]
    return out


async def _send(send: Send, reply: Reply, rid: str) -> None:
    headers = [*_encode_headers(reply.headers, rid), (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
