"""S3's multipart upload operations: create, upload part (and part copy), list parts and uploads, complete."""

from __future__ import annotations

from urllib.parse import quote

from triggerfish.aws import s3_xml
from triggerfish.aws.s3_request import (
    Body,
    Reply,
    S3Request,
    check_length,
    content_of,
    copy_source,
    read_all,
    xml_reply,
)
from triggerfish.aws.s3_xml import Pairs, iso8601, xml_document
from triggerfish.objects.model import ObjectError


async def create_upload(r: S3Request) -> Reply:
    algorithm = r.headers.get("x-amz-checksum-algorithm", "").lower()
    upload = await r.objects.create_upload(r.bucket, r.key, content_of(r), algorithm)
    body = xml_document(
        "InitiateMultipartUploadResult", [("Bucket", r.bucket), ("Key", r.key), ("UploadId", upload.upload_id)]
    )
    headers = [("x-amz-checksum-algorithm", algorithm.upper())] if algorithm else []
    return xml_reply(body, headers)


def part_number(r: S3Request) -> int:
    try:
        return int(r.query["partNumber"])
    except ValueError:
        raise ObjectError("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive") from None


async def upload_part(r: S3Request) -> Reply:
    check_length(r)
    body = Body(r)
    part = await r.objects.upload_part(
        r.bucket,
        r.key,
        r.query["uploadId"],
        part_number(r),
        body.chunks(),
        check=body.check,
        content_md5=r.headers.get("content-md5"),
    )
    headers = [("etag", f'"{part.etag}"')] + [(f"x-amz-checksum-{a}", v) for a, v in part.checksums.items()]
    return Reply(200, headers)


async def upload_part_copy(r: S3Request) -> Reply:
    source = copy_source(r)
    span = None
    text = r.headers.get("x-amz-copy-source-range")
    if text is not None:
        first, _, last = text.removeprefix("bytes=").partition("-")
        if not first.isdigit() or not last.isdigit():
            raise ObjectError(
                "InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last"
            )
        span = (int(first), int(last))
    part = await r.objects.upload_part_copy(r.bucket, r.key, r.query["uploadId"], part_number(r), source, span)
    body = xml_document("CopyPartResult", [("LastModified", iso8601(part.modified)), ("ETag", f'"{part.etag}"')])
    return xml_reply(body)


async def list_parts(r: S3Request) -> Reply:
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
    return xml_reply(xml_document("ListPartsResult", pairs))


async def list_uploads(r: S3Request) -> Reply:
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
    return xml_reply(xml_document("ListMultipartUploadsResult", pairs))


async def complete_upload(r: S3Request) -> Reply:
    document = s3_xml.parse(await read_all(r), "CompleteMultipartUpload")
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
    return xml_reply(xml_document("CompleteMultipartUploadResult", pairs))
