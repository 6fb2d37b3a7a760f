"""S3's GetObject and HeadObject: conditions in S3's order, one range or one part, the stored checksum on request,
and the bytes streamed out of their blob in pieces (or at once, when small)."""

from __future__ import annotations

from starlette.types import Send

from triggerfish.aws.s3_request import OVERRIDES, Reply, S3Request, encode_headers, object_headers
from triggerfish.objects.blob_backend import BlobReader
from triggerfish.objects.model import ObjectError, ObjectMeta

#: A body sent in one message rather than streamed piece by piece.
SMALL_BYTES = 1024 * 1024


async def get_object(r: S3Request, send: Send) -> Reply | None:
    if r.method == "HEAD":
        meta = await r.objects.head(r.bucket, r.key)
        file: BlobReader | None = None
    else:
        meta, file = await r.objects.open(r.bucket, r.key)
    try:
        status = _conditions(r, meta)
        headers = object_headers(meta)
        for name, header in OVERRIDES.items():
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
        # A small body is read before anything is sent: it then goes out with the headers, in one message.
        small = None
        if file is not None and length <= SMALL_BYTES:
            small = b"".join([piece async for piece in file.read(start, length)])
        await send({"type": "http.response.start", "status": status, "headers": encode_headers(headers, r.rid)})
        if file is None or small is not None:
            await send({"type": "http.response.body", "body": small or b""})
            return None
        await _stream(file, start, length, send)
        return None
    finally:
        if file is not None:
            file.close()


async def _stream(file: BlobReader, start: int, length: int, send: Send) -> None:
    async for piece in file.read(start, length):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _conditions(r: S3Request, meta: ObjectMeta) -> int:
    """200, or 304 (not modified); raises PreconditionFailed (412). S3's order of the four headers."""
    h = r.headers
    if "if-match" in h:
        if not etag_matches(h["if-match"], meta.etag):
            raise precondition()
    elif "if-unmodified-since" in h:
        since = _parse_http_date(h["if-unmodified-since"])
        if since is not None and int(meta.modified) > since:
            raise precondition()
    if "if-none-match" in h:
        if etag_matches(h["if-none-match"], meta.etag):
            return 304
    elif "if-modified-since" in h:
        since = _parse_http_date(h["if-modified-since"])
        if since is not None and int(meta.modified) <= since:
            return 304
    return 200


def etag_matches(header: str, etag: str) -> bool:
    wanted = [v.strip().removeprefix("W/").strip('"') for v in header.split(",")]
    return "*" in wanted or etag in wanted


def _parse_http_date(text: str) -> int | None:
    from email.utils import parsedate_to_datetime

    try:
        return int(parsedate_to_datetime(text).timestamp())
    except (TypeError, ValueError):
        return None


def precondition() -> ObjectError:
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
