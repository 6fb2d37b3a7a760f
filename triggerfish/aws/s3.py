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
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote

from starlette.types import Message, Receive, Scope, Send

from triggerfish.aws import s3_xml
from triggerfish.aws.credentials import Caller, Identify
from triggerfish.aws.protocol import request_id
from triggerfish.aws.s3_auth import authenticate
from triggerfish.aws.s3_get import etag_matches, get_object, precondition
from triggerfish.aws.s3_multipart import (
    complete_upload,
    create_upload,
    list_parts,
    list_uploads,
    upload_part,
    upload_part_copy,
)
from triggerfish.aws.s3_notification import get_notification, put_notification
from triggerfish.aws.s3_request import (
    OVERRIDES,
    Body,
    Reply,
    S3Request,
    check_length,
    content_of,
    copy_source,
    encode_headers,
    read_all,
    xml_reply,
)
from triggerfish.aws.s3_xml import Pairs, iso8601, xml_document
from triggerfish.errors import InvalidInputError, StoreError
from triggerfish.identity import REGION
from triggerfish.objects.model import ObjectError, ObjectMeta, check_bucket_name

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

log = logging.getLogger("triggerfish.aws.s3")

#: Most of a refused request's body read past so that its connection can carry the next request.
_DRAIN_BYTES = 8 * 1024 * 1024
#: The operations that read; any other needs `publish` (objects) or `configure` (buckets).
_READS = {"GET", "HEAD"}


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
        return S3Request(scope, receive, method, bucket, key, query, headers, rid, signed, platform.objects, platform)


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
    if method in _READS:
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
            return xml_reply(s3_xml.location_document(REGION))
        if method == "GET" and "uploads" in q:
            return await list_uploads(r)
        if method == "GET" and "notification" in q:
            return await get_notification(r)
        if method == "PUT" and "notification" in q:
            return await put_notification(r)
        if method == "GET" and "versioning" in q:
            await r.objects.require_bucket(r.bucket)
            return xml_reply(xml_document("VersioningConfiguration", []))
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
                return await upload_part_copy(r)
            return await upload_part(r)
        if "x-amz-copy-source" in r.headers and not q:
            return await _copy_object(r)
        if not q:
            return await _put_object(r)
    if method == "GET" and "uploadId" in q:
        return await list_parts(r)
    if method in ("GET", "HEAD") and not (set(q) - set(OVERRIDES) - {"partNumber", "versionId"}):
        return await get_object(r, send)
    if method == "DELETE":
        if "uploadId" in q:
            await r.objects.abort_upload(r.bucket, r.key, q["uploadId"])
            return Reply(204, [])
        if not q:
            await r.objects.delete_object(r.bucket, r.key, requester=r.requester)
            return Reply(204, [])
    if method == "POST" and "uploads" in q:
        return await create_upload(r)
    if method == "POST" and "uploadId" in q:
        return await complete_upload(r)
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


# --- buckets ---


async def _list_buckets(r: S3Request) -> Reply:
    buckets = await r.objects.index.buckets()
    pairs: Pairs = [
        ("Owner", [("ID", "triggerfish"), ("DisplayName", "triggerfish")]),
        ("Buckets", [("Bucket", [("Name", b.name), ("CreationDate", iso8601(b.created))]) for b in buckets]),
    ]
    return xml_reply(xml_document("ListAllMyBucketsResult", pairs))


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
    return xml_reply(xml_document("ListBucketResult", pairs))


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
    document = s3_xml.parse(await read_all(r), "Delete")
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
    return xml_reply(xml_document("DeleteResult", results))


# --- objects ---


async def _put_object(r: S3Request) -> Reply:
    check_length(r)
    body = Body(r)
    meta = await r.objects.put_object(
        r.bucket,
        r.key,
        body.chunks(),
        content=content_of(r),
        check=body.check,
        requester=r.requester,
        if_none_match=r.headers.get("if-none-match", "").strip() == "*",
        content_md5=r.headers.get("content-md5"),
    )
    headers = [("etag", f'"{meta.etag}"')]
    headers += [(f"x-amz-checksum-{a}", v) for a, v in meta.checksums.items()]
    return Reply(200, headers)


async def _copy_object(r: S3Request) -> Reply:
    source = copy_source(r)
    original = await r.objects.head(*source)
    _copy_conditions(r, original)
    replace = r.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
    meta = await r.objects.copy_object(
        source, r.bucket, r.key, content=content_of(r) if replace else None, requester=r.requester
    )
    body = xml_document("CopyObjectResult", [("LastModified", iso8601(meta.modified)), ("ETag", f'"{meta.etag}"')])
    return xml_reply(body)


def _copy_conditions(r: S3Request, meta: ObjectMeta) -> None:
    h = r.headers
    prefix = "x-amz-copy-source-"
    if prefix + "if-match" in h and not etag_matches(h[prefix + "if-match"], meta.etag):
        raise precondition()
    if prefix + "if-none-match" in h and etag_matches(h[prefix + "if-none-match"], meta.etag):
        raise precondition()


# --- multipart ---


# --- replies ---


def _error(status: int, code: str, message: str, rid: str, resource: str, method: str) -> Reply:
    body = b"" if method == "HEAD" else s3_xml.error_document(code, message, rid, resource)
    return Reply(status, [("content-type", "application/xml")], body)


async def _send(send: Send, reply: Reply, rid: str) -> None:
    headers = [*encode_headers(reply.headers, rid), (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
