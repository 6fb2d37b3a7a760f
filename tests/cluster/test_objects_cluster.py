"""Objects on a cluster: two `triggerfish serve` processes over one PostgreSQL database, each with a data
directory of its own. What one node stores, the other serves (the bytes are in the database), and each
change fires `@app.on_object` exactly once on the cluster."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.cluster.pg_cluster import Node, eventually, fresh_database, write_app
from tests.services import require_postgres
from triggerfish.aws.credentials import secret_access_key
from triggerfish.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

MIB = 1024 * 1024

#: One record per run of the handler: a change that ran twice shows as two keys with one sequencer.
FILES = """
import triggerfish

app = triggerfish.App("files")


@app.on_object("uploads", events=["created", "deleted"])
def seen(event, context):
    for record in event["Records"]:
        key = f"{record['s3']['object']['sequencer']}/{record['eventName']}/{context.aws_request_id}"
        context.call_platform("kv_put", {"namespace": "seen", "key": key, "value": "1"})
"""


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Node, Node, str]]:
    require_postgres()
    with fresh_database() as (_, url):
        first = Node(tmp_path / "a", url).start()
        key = (tmp_path / "a" / "data" / "admin.key").read_text().strip()
        started = [first]
        try:
            started.append(Node(tmp_path / "b", url).start(key))
            yield first, started[1], url
        finally:
            for node in started:
                node.stop()


def s3(node: Node, key: str) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=f"{node.server.url}/-/aws",
        region_name="local",
        aws_access_key_id="_".join(key.split("_")[:2]),
        aws_secret_access_key=secret_access_key(key),
        config=Config(retries={"max_attempts": 1}, read_timeout=60),
    )
    return client


def runs(url: str) -> Counter[tuple[str, str]]:
    """How many times the handler ran for each change: (event name, sequencer) → runs."""

    async def read() -> Counter[tuple[str, str]]:
        async with await open_store(url) as store:
            records = await store.kv.scan("app.files/seen", limit=100_000)
        return Counter((r.key.split("/")[1], r.key.split("/")[0]) for r in records)

    return asyncio.run(read())


def test_an_object_stored_through_one_node_is_served_by_the_other(
    nodes: tuple[Node, Node, str], tmp_path: Path
) -> None:
    a, b, url = nodes
    assert a.deploy("files", write_app(tmp_path / "app", FILES)).status_code == 201
    made = a.client.post("/-/api/v1/keys", json={"name": "uploader", "role": "deployer", "app": "files"}).json()
    eventually(lambda: b.client.get("/-/api/v1/apps/files").status_code == 200, 10.0, "the app on node B")
    via_a, via_b = s3(a, made["key"]), s3(b, made["key"])

    # a 5 MB object through node A, read whole and in ranges through node B
    data = os.urandom(5 * 1000 * 1000)
    put = via_a.put_object(Bucket="uploads", Key="big.bin", Body=data)
    got = via_b.get_object(Bucket="uploads", Key="big.bin")
    assert got["ETag"] == put["ETag"] == f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    assert got["Body"].read() == data
    for first, last in [(0, 99), (MIB - 10, MIB + 10), (len(data) - 5, len(data) - 1)]:
        part = via_b.get_object(Bucket="uploads", Key="big.bin", Range=f"bytes={first}-{last}")
        assert part["ContentRange"] == f"bytes {first}-{last}/{len(data)}"
        assert part["Body"].read() == data[first : last + 1]

    # a multipart upload begun on A, a part of it uploaded through B, completed on A, read through B
    pieces = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(123_457)]
    upload = via_a.create_multipart_upload(Bucket="uploads", Key="joined.bin")["UploadId"]
    etags = []
    for number, piece in enumerate(pieces, 1):
        client = via_b if number == 2 else via_a
        answer = client.upload_part(Bucket="uploads", Key="joined.bin", UploadId=upload, PartNumber=number, Body=piece)
        etags.append({"PartNumber": number, "ETag": answer["ETag"]})
    via_a.complete_multipart_upload(
        Bucket="uploads", Key="joined.bin", UploadId=upload, MultipartUpload={"Parts": etags}
    )
    whole = b"".join(pieces)
    assert via_b.get_object(Bucket="uploads", Key="joined.bin")["Body"].read() == whole
    seam = len(pieces[0])
    spanning = via_b.get_object(Bucket="uploads", Key="joined.bin", Range=f"bytes={seam - 3}-{seam + 3}")
    assert spanning["Body"].read() == whole[seam - 3 : seam + 4]
    second = via_b.get_object(Bucket="uploads", Key="joined.bin", PartNumber=2)
    assert second["Body"].read() == pieces[1]

    # deleted through B: gone from A's listing, and from A's GET
    via_b.delete_object(Bucket="uploads", Key="big.bin")
    via_b.delete_objects(Bucket="uploads", Delete={"Objects": [{"Key": "joined.bin"}]})
    assert via_a.list_objects_v2(Bucket="uploads")["KeyCount"] == 0
    with pytest.raises(via_a.exceptions.NoSuchKey):
        via_a.get_object(Bucket="uploads", Key="big.bin")

    # four changes, each handled once on the cluster (whichever node ran it)
    eventually(lambda: len(runs(url)) >= 4, 30.0, "the handler ran for the four changes")
    counted = runs(url)
    assert sorted(name for name, _ in counted) == [
        "ObjectCreated:CompleteMultipartUpload",
        "ObjectCreated:Put",
        "ObjectRemoved:Delete",
        "ObjectRemoved:Delete",
    ]
    assert set(counted.values()) == {1}, f"a change ran more than once: {counted}"
