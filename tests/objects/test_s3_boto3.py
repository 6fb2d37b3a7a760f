"""boto3, unchanged, against every S3 operation served, on SQLite and PostgreSQL (one server per store)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
from typing import Any

import crc32c
import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking
from tests.objects.conftest import received, s3
from tests.server.conftest import Served
from triggerfish.objects.checksums import checksum

pytestmark = pytest.mark.asyncio(loop_scope="module")


def code_of(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return str(caught.value.response["Error"]["Code"])


async def test_buckets(served: Served) -> None:
    c = s3(served.url)

    def work() -> None:
        assert "uploads" in [b["Name"] for b in c.list_buckets()["Buckets"]]  # declared by @app.on_object
        c.create_bucket(Bucket="bk-one")
        c.head_bucket(Bucket="bk-one")
        assert c.get_bucket_location(Bucket="bk-one")["LocationConstraint"] == "local"
        assert code_of(c.create_bucket, Bucket="bk-one") == "BucketAlreadyOwnedByYou"
        assert code_of(c.create_bucket, Bucket="Bad_Name") == "InvalidBucketName"
        assert code_of(c.head_bucket, Bucket="no-such-bucket") == "404"
        assert code_of(c.list_objects_v2, Bucket="no-such-bucket") == "NoSuchBucket"
        c.put_object(Bucket="bk-one", Key="k", Body=b"x")
        assert code_of(c.delete_bucket, Bucket="bk-one") == "BucketNotEmpty"
        c.delete_object(Bucket="bk-one", Key="k")
        c.delete_bucket(Bucket="bk-one")
        assert "bk-one" not in [b["Name"] for b in c.list_buckets()["Buckets"]]

    await blocking(work)


async def test_objects_round_trip_with_their_headers_and_md5_etag(served: Served) -> None:
    c = s3(served.url)
    body = os.urandom(300_000)

    def work() -> None:
        c.create_bucket(Bucket="bk-rt")
        put = c.put_object(
            Bucket="bk-rt",
            Key="dir/ünï cödé+%.bin",
            Body=body,
            ContentType="application/x-test",
            ContentDisposition="attachment",
            CacheControl="no-cache",
            Metadata={"owner": "ann", "n": "7"},
        )
        assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        got = c.get_object(Bucket="bk-rt", Key="dir/ünï cödé+%.bin")
        assert got["Body"].read() == body
        assert got["ContentType"] == "application/x-test"
        assert got["ContentDisposition"] == "attachment"
        assert got["CacheControl"] == "no-cache"
        assert got["Metadata"] == {"owner": "ann", "n": "7"}
        assert got["ContentLength"] == len(body)
        head = c.head_object(Bucket="bk-rt", Key="dir/ünï cödé+%.bin")
        assert head["ETag"] == put["ETag"]
        assert head["ContentLength"] == len(body)
        assert code_of(c.head_object, Bucket="bk-rt", Key="missing") == "404"
        assert code_of(c.get_object, Bucket="bk-rt", Key="missing") == "NoSuchKey"
        c.put_object(Bucket="bk-rt", Key="empty", Body=b"")
        assert c.get_object(Bucket="bk-rt", Key="empty")["Body"].read() == b""

    await blocking(work)


async def test_ranges_and_conditions(served: Served) -> None:
    c = s3(served.url)

    def work() -> None:
        c.create_bucket(Bucket="bk-range")
        etag = c.put_object(Bucket="bk-range", Key="k", Body=b"0123456789")["ETag"]
        get = c.get_object
        assert get(Bucket="bk-range", Key="k", Range="bytes=2-4")["Body"].read() == b"234"
        assert get(Bucket="bk-range", Key="k", Range="bytes=7-")["Body"].read() == b"789"
        assert get(Bucket="bk-range", Key="k", Range="bytes=-3")["Body"].read() == b"789"
        assert get(Bucket="bk-range", Key="k", Range="bytes=5-100")["ContentRange"] == "bytes 5-9/10"
        assert code_of(get, Bucket="bk-range", Key="k", Range="bytes=10-") == "InvalidRange"
        assert get(Bucket="bk-range", Key="k", IfMatch=etag)["Body"].read() == b"0123456789"
        assert code_of(get, Bucket="bk-range", Key="k", IfMatch='"nope"') == "PreconditionFailed"
        assert code_of(get, Bucket="bk-range", Key="k", IfNoneMatch=etag) == "304"
        modified = c.head_object(Bucket="bk-range", Key="k")["LastModified"]
        assert code_of(get, Bucket="bk-range", Key="k", IfModifiedSince=modified) == "304"
        assert get(Bucket="bk-range", Key="k", IfUnmodifiedSince=modified)["ContentLength"] == 10
        earlier = modified.replace(year=2000)
        assert code_of(get, Bucket="bk-range", Key="k", IfUnmodifiedSince=earlier) == "PreconditionFailed"
        # a conditional create: only if nothing is there yet
        assert code_of(c.put_object, Bucket="bk-range", Key="k", Body=b"x", IfNoneMatch="*") == "PreconditionFailed"

    await blocking(work)


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256", "SHA1"])
async def test_checksums_sent_are_checked_and_given_back(served: Served, algorithm: str) -> None:
    c = s3(served.url)
    bucket = f"bk-sum-{algorithm.lower()}"

    def work() -> None:
        c.create_bucket(Bucket=bucket)
        put = c.put_object(Bucket=bucket, Key="k", Body=b"hello world", ChecksumAlgorithm=algorithm)
        assert put[f"Checksum{algorithm}"]
        got = c.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")  # boto3 checks the value it gets
        assert got["Body"].read() == b"hello world"
        assert got[f"Checksum{algorithm}"] == put[f"Checksum{algorithm}"]
        wrong = {f"Checksum{algorithm}": checksum(algorithm.lower(), b"something else")}
        assert code_of(c.put_object, Bucket=bucket, Key="bad", Body=b"hello", **wrong) == "BadDigest"
        assert code_of(c.get_object, Bucket=bucket, Key="bad") == "NoSuchKey"

    await blocking(work)


async def test_crc32c_is_checked(served: Served) -> None:
    # boto3 computes CRC32C only with the AWS CRT installed; a value sent is checked all the same.
    c = s3(served.url)
    good = base64.b64encode(crc32c.crc32c(b"hello").to_bytes(4, "big")).decode()

    def work() -> None:
        c.create_bucket(Bucket="bk-sum-crc32c")
        assert (
            c.put_object(Bucket="bk-sum-crc32c", Key="k", Body=b"hello", ChecksumCRC32C=good)["ChecksumCRC32C"] == good
        )
        assert (
            code_of(c.put_object, Bucket="bk-sum-crc32c", Key="k2", Body=b"jello", ChecksumCRC32C=good) == "BadDigest"
        )

    await blocking(work)


async def test_content_md5_is_checked(served: Served) -> None:
    c = s3(served.url)

    def work() -> None:
        c.create_bucket(Bucket="bk-md5")
        assert (
            code_of(c.put_object, Bucket="bk-md5", Key="k", Body=b"abc", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
            == "BadDigest"
        )

    await blocking(work)


async def test_listing_v2_and_v1_with_prefix_delimiter_and_pages(served: Served) -> None:
    c = s3(served.url)
    keys = sorted([f"a/{i:02d}" for i in range(12)] + [f"b/x/{i}" for i in range(3)] + ["c", "d d", "b/y"])

    def work() -> None:
        c.create_bucket(Bucket="bk-list")
        c.create_bucket(Bucket="bk-list-empty")
        for key in keys:
            c.put_object(Bucket="bk-list", Key=key, Body=key.encode())
        pages = c.get_paginator("list_objects_v2").paginate(Bucket="bk-list", PaginationConfig={"PageSize": 5})
        assert [o["Key"] for page in pages for o in page.get("Contents", [])] == keys
        first = c.list_objects_v2(Bucket="bk-list", MaxKeys=5)
        assert first["IsTruncated"]
        assert first["KeyCount"] == 5
        assert "NextContinuationToken" in first
        top = c.list_objects_v2(Bucket="bk-list", Delimiter="/")
        assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/"]
        assert [o["Key"] for o in top["Contents"]] == ["c", "d d"]
        nested = c.list_objects_v2(Bucket="bk-list", Prefix="b/", Delimiter="/")
        assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["b/x/"]
        assert [o["Key"] for o in nested["Contents"]] == ["b/y"]
        # a page boundary in the middle of rolled-up prefixes does not repeat them
        rolled = c.get_paginator("list_objects_v2").paginate(
            Bucket="bk-list", Delimiter="/", PaginationConfig={"PageSize": 1}
        )
        seen = [p["Prefix"] for page in rolled for p in page.get("CommonPrefixes", [])]
        seen += [
            o["Key"]
            for page in c.get_paginator("list_objects_v2").paginate(
                Bucket="bk-list", Delimiter="/", PaginationConfig={"PageSize": 1}
            )
            for o in page.get("Contents", [])
        ]
        assert sorted(seen) == ["a/", "b/", "c", "d d"]
        after = c.list_objects_v2(Bucket="bk-list", StartAfter="b/x/2")
        assert [o["Key"] for o in after["Contents"]] == ["b/y", "c", "d d"]
        v1 = c.get_paginator("list_objects").paginate(Bucket="bk-list", PaginationConfig={"PageSize": 4})
        assert [o["Key"] for page in v1 for o in page.get("Contents", [])] == keys
        marker = c.list_objects(Bucket="bk-list", Marker="b/y")
        assert [o["Key"] for o in marker["Contents"]] == ["c", "d d"]
        assert c.list_objects_v2(Bucket="bk-list-empty")["KeyCount"] == 0
        listed = c.list_objects_v2(Bucket="bk-list", Prefix="a/00")["Contents"][0]
        assert listed["Size"] == 4
        assert listed["ETag"] == f'"{hashlib.md5(b"a/00").hexdigest()}"'

    await blocking(work)


async def test_delete_objects(served: Served) -> None:
    c = s3(served.url)

    def work() -> None:
        c.create_bucket(Bucket="bk-del")
        for i in range(5):
            c.put_object(Bucket="bk-del", Key=f"k{i}", Body=b"x")
        result = c.delete_objects(
            Bucket="bk-del", Delete={"Objects": [{"Key": f"k{i}"} for i in range(4)] + [{"Key": "never"}]}
        )
        assert sorted(d["Key"] for d in result["Deleted"]) == ["k0", "k1", "k2", "k3", "never"]
        assert [o["Key"] for o in c.list_objects_v2(Bucket="bk-del")["Contents"]] == ["k4"]
        c.delete_object(Bucket="bk-del", Key="never")  # deleting what is not there succeeds, as on S3

    await blocking(work)


async def test_copy_object(served: Served) -> None:
    c = s3(served.url)

    def work() -> None:
        c.create_bucket(Bucket="bk-copy")
        put = c.put_object(
            Bucket="bk-copy", Key="src key", Body=b"payload", Metadata={"a": "1"}, ContentType="text/plain"
        )
        copied = c.copy_object(Bucket="bk-copy", Key="same", CopySource={"Bucket": "bk-copy", "Key": "src key"})
        assert copied["CopyObjectResult"]["ETag"] == put["ETag"]
        same = c.get_object(Bucket="bk-copy", Key="same")
        assert same["Body"].read() == b"payload"
        assert same["Metadata"] == {"a": "1"}
        assert same["ContentType"] == "text/plain"
        c.copy_object(
            Bucket="bk-copy", Key="new", CopySource="bk-copy/src key", MetadataDirective="REPLACE", Metadata={"b": "2"}
        )
        assert c.head_object(Bucket="bk-copy", Key="new")["Metadata"] == {"b": "2"}
        assert code_of(c.copy_object, Bucket="bk-copy", Key="src key", CopySource="bk-copy/src key") == "InvalidRequest"
        assert code_of(c.copy_object, Bucket="bk-copy", Key="x", CopySource="bk-copy/missing") == "NoSuchKey"
        # the copy has bytes of its own: overwriting the source does not change it
        c.put_object(Bucket="bk-copy", Key="src key", Body=b"changed")
        assert c.get_object(Bucket="bk-copy", Key="same")["Body"].read() == b"payload"

    await blocking(work)


async def test_multipart_upload(served: Served) -> None:
    c = s3(served.url)
    mib = 1024 * 1024
    first, source, last = os.urandom(5 * mib), os.urandom(6 * mib), os.urandom(1000)
    copied = source[10 : 10 + 5 * mib]

    def work() -> None:
        c.create_bucket(Bucket="bk-mp")
        c.put_object(Bucket="bk-mp", Key="source", Body=source)
        started = c.create_multipart_upload(Bucket="bk-mp", Key="big", ContentType="video/mp4", Metadata={"m": "1"})
        upload_id = started["UploadId"]
        p1 = c.upload_part(Bucket="bk-mp", Key="big", UploadId=upload_id, PartNumber=1, Body=first)
        p2 = c.upload_part_copy(
            Bucket="bk-mp",
            Key="big",
            UploadId=upload_id,
            PartNumber=2,
            CopySource="bk-mp/source",
            CopySourceRange=f"bytes=10-{10 + 5 * mib - 1}",
        )
        p3 = c.upload_part(Bucket="bk-mp", Key="big", UploadId=upload_id, PartNumber=3, Body=last)
        listed = c.list_parts(Bucket="bk-mp", Key="big", UploadId=upload_id)["Parts"]
        assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * mib), (2, 5 * mib), (3, 1000)]
        assert [u["UploadId"] for u in c.list_multipart_uploads(Bucket="bk-mp")["Uploads"]] == [upload_id]
        etags = [p1["ETag"], p2["CopyPartResult"]["ETag"], p3["ETag"]]
        parts = [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2, 3), etags, strict=True)]

        def complete(chosen: list[dict[str, Any]]) -> str:
            return code_of(
                c.complete_multipart_upload,
                Bucket="bk-mp",
                Key="big",
                UploadId=upload_id,
                MultipartUpload={"Parts": chosen},
            )

        assert complete([parts[1], parts[0]]) == "InvalidPartOrder"
        assert complete([{"PartNumber": 1, "ETag": '"0000"'}]) == "InvalidPart"
        assert complete([parts[2], {"PartNumber": 4, "ETag": etags[0]}]) == "InvalidPart"
        done = c.complete_multipart_upload(
            Bucket="bk-mp", Key="big", UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        md5s = b"".join(hashlib.md5(p).digest() for p in (first, copied, last))
        assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
        got = c.get_object(Bucket="bk-mp", Key="big")
        assert got["Body"].read() == first + copied + last
        assert got["ContentType"] == "video/mp4"
        assert got["Metadata"] == {"m": "1"}
        assert c.get_object(Bucket="bk-mp", Key="big", PartNumber=3)["Body"].read() == last
        assert code_of(c.list_parts, Bucket="bk-mp", Key="big", UploadId=upload_id) == "NoSuchUpload"
        # a part but the last under 5 MiB is refused
        small = c.create_multipart_upload(Bucket="bk-mp", Key="small")["UploadId"]
        tags = [
            c.upload_part(Bucket="bk-mp", Key="small", UploadId=small, PartNumber=n, Body=b"x")["ETag"] for n in (1, 2)
        ]
        assert (
            code_of(
                c.complete_multipart_upload,
                Bucket="bk-mp",
                Key="small",
                UploadId=small,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), tags, strict=True)]},
            )
            == "EntityTooSmall"
        )
        c.abort_multipart_upload(Bucket="bk-mp", Key="small", UploadId=small)
        assert (
            code_of(c.upload_part, Bucket="bk-mp", Key="small", UploadId=small, PartNumber=3, Body=b"x")
            == "NoSuchUpload"
        )
        assert code_of(c.head_object, Bucket="bk-mp", Key="small") == "404"

    await blocking(work)


async def test_upload_fires_on_object_and_the_bus(served: Served) -> None:
    c = s3(served.url)

    def work() -> None:
        c.put_object(Bucket="uploads", Key="images/red flower.jpg", Body=b"12345")
        c.put_object(Bucket="uploads", Key="images/skip.png", Body=b"no")  # the suffix does not match
        c.put_object(Bucket="uploads", Key="docs/skip.jpg", Body=b"no")  # the prefix does not match
        c.copy_object(Bucket="uploads", Key="images/copy.jpg", CopySource="uploads/images/red flower.jpg")
        c.delete_object(Bucket="uploads", Key="images/red flower.jpg")

    await blocking(work)
    records = await received(served.platform, "seen", 3)
    assert [r["eventName"] for r in sorted(records, key=lambda r: r["eventTime"] + r["eventName"])] == [
        "ObjectCreated:Put",
        "ObjectCreated:Copy",
        "ObjectRemoved:Delete",
    ] or sorted(r["eventName"] for r in records) == ["ObjectCreated:Copy", "ObjectCreated:Put", "ObjectRemoved:Delete"]
    put = next(r for r in records if r["eventName"] == "ObjectCreated:Put")
    assert put["s3"]["object"]["key"] == "images/red+flower.jpg"
    assert put["s3"]["object"]["size"] == 5
    assert put["s3"]["object"]["eTag"] == hashlib.md5(b"12345").hexdigest()
    assert put["s3"]["bucket"]["name"] == "uploads"
    removed = next(r for r in records if r["eventName"] == "ObjectRemoved:Delete")
    assert removed["s3"]["object"]["key"] == put["s3"]["object"]["key"]
    assert removed["s3"]["object"]["sequencer"] > put["s3"]["object"]["sequencer"]  # S3's order per key
    wanted = {"images/red flower.jpg", "images/skip.png", "docs/skip.jpg"}

    def keys(events: list[dict[str, Any]]) -> set[str]:
        return {e["data"]["object"]["key"] for e in events}

    bus = await received(served.platform, "bus-seen", until=lambda got: keys(got) >= wanted)
    # the function gets the CloudEvent: EventBridge's detail is its data, detail-type its type
    assert keys(bus) >= wanted
    mine = [e for e in bus if e["data"]["bucket"]["name"] == "uploads"]
    assert all(e["source"] == "aws.s3" and e["type"] == "Object Created" for e in mine)
    assert all(e["resources"] == '["arn:aws:s3:::uploads"]' for e in mine)


async def test_bad_keys_and_sizes_are_refused_with_s3s_codes(served: Served) -> None:
    c = s3(served.url)
    put_url = c.generate_presigned_url("put_object", Params={"Bucket": "uploads", "Key": "huge.bin"}, ExpiresIn=60)
    address, _, path = put_url.split("//", 1)[1].partition("/")
    host, _, port = address.partition(":")

    def work() -> None:
        assert code_of(c.put_object, Bucket="uploads", Key="k" * 1025, Body=b"x") == "KeyTooLongError"
        assert code_of(c.get_object, Bucket="uploads", Key="k" * 1025) == "KeyTooLongError"
        # 6 GiB announced: refused before a byte of the body is read (the client has sent none)
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.putrequest("PUT", f"/{path}")
            connection.putheader("Content-Length", str(6 * 1024**3))
            connection.endheaders()
            answer = connection.getresponse()
            body = answer.read()
        finally:
            connection.close()
        assert answer.status == 400
        assert b"<Code>EntityTooLarge</Code>" in body

    await blocking(work)
