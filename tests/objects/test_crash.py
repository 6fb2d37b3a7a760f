"""Faults: kill -9 right after an acknowledged PUT (its notification still runs after a restart), kill -9
during a multipart upload (the uploaded parts survive), and a client cut off mid-body (nothing visible)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from tests.aws.conftest import blocking
from tests.aws.conftest import client as aws_client
from tests.objects.conftest import OBJECT_APP, eventually, received, s3
from tests.server.conftest import serve_app
from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.objects.blobs import Blobs

ROOT = Path(__file__).resolve().parents[2]

#: A platform that acknowledges uploads but runs no asynchronous invocation (a gateway node): whatever an
#: upload triggers can only run after the restart.
CHILD = """
import asyncio, sys
from pathlib import Path
from typing import Any
from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

async def main(app, data, store_url=None):
    platform = Platform(app, data_dir=Path(data), store_url=store_url, run_async=False)
    await platform.start()
    async with GatewayServer(platform_asgi(platform), port=0) as server:
        print(server.url, flush=True)
        await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


@contextmanager
def child_platform(tmp_path: Path, store_url: str | None = None) -> Iterator[tuple[subprocess.Popen[str], str]]:
    (tmp_path / "app.py").write_text(textwrap.dedent(OBJECT_APP))
    store = [store_url] if store_url is not None else []
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "app.py"), str(tmp_path / "data"), *store],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://"), "the child platform did not start"
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def test_an_acknowledged_upload_runs_its_handler_after_kill_9(tmp_path: Path) -> None:
    with child_platform(tmp_path) as (process, url):
        client = s3(url)
        put = await blocking(client.put_object, Bucket="uploads", Key="images/last words.jpg", Body=b"said")
        os.kill(process.pid, signal.SIGKILL)  # right after the acknowledgement
        process.wait()
    async for served in serve_app(tmp_path, OBJECT_APP):
        records = await received(served.platform, "seen", 1)
        assert [r["s3"]["object"]["key"] for r in records] == ["images/last+words.jpg"]
        assert f'"{records[0]["s3"]["object"]["eTag"]}"' == put["ETag"]
        got = await blocking(s3(served.url).get_object, Bucket="uploads", Key="images/last words.jpg")
        assert got["Body"].read() == b"said"


async def test_an_acknowledged_upload_has_its_queue_message_after_kill_9(tmp_path: Path) -> None:
    # The bucket's notification configuration sends to a queue: the message commits with the object.
    with child_platform(tmp_path) as (process, url):
        client = s3(url)
        sqs = aws_client(url, "sqs")
        await blocking(sqs.create_queue, QueueName="crash-seen")
        sqs.close()
        config = {
            "QueueConfigurations": [
                {"QueueArn": "arn:aws:sqs:local:000000000000:crash-seen", "Events": ["s3:ObjectCreated:*"]}
            ]
        }
        await blocking(client.put_bucket_notification_configuration, Bucket="uploads", NotificationConfiguration=config)
        await blocking(client.put_object, Bucket="uploads", Key="docs/final.txt", Body=b"said")
        os.kill(process.pid, signal.SIGKILL)  # right after the acknowledgement
        process.wait()
    async for served in serve_app(tmp_path, OBJECT_APP):
        bodies = await received(served.platform, "crash-seen", 2)
        assert bodies[0]["Event"] == "s3:TestEvent"
        assert [r["s3"]["object"]["key"] for r in bodies[1]["Records"]] == ["docs/final.txt"]


async def test_parts_of_a_multipart_upload_survive_kill_9(tmp_path: Path) -> None:
    part = os.urandom(5 * 1024 * 1024)
    with child_platform(tmp_path) as (process, url):
        client = s3(url)
        upload = (await blocking(client.create_multipart_upload, Bucket="uploads", Key="images/big.jpg"))["UploadId"]
        first = await blocking(
            client.upload_part, Bucket="uploads", Key="images/big.jpg", UploadId=upload, PartNumber=1, Body=part
        )
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    async for served in serve_app(tmp_path, OBJECT_APP):
        client = s3(served.url)
        parts = await blocking(client.list_parts, Bucket="uploads", Key="images/big.jpg", UploadId=upload)
        assert [(p["PartNumber"], p["ETag"]) for p in parts["Parts"]] == [(1, first["ETag"])]
        last = await blocking(
            client.upload_part, Bucket="uploads", Key="images/big.jpg", UploadId=upload, PartNumber=2, Body=b"end"
        )
        await blocking(
            client.complete_multipart_upload,
            Bucket="uploads",
            Key="images/big.jpg",
            UploadId=upload,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": last["ETag"]}]
            },
        )
        records = await received(served.platform, "seen", 1)
        assert records[0]["eventName"] == "ObjectCreated:CompleteMultipartUpload"
        got = await blocking(read_all, client, "uploads", "images/big.jpg")
        assert got == part + b"end"


async def test_an_upload_cut_off_mid_body_leaves_nothing(tmp_path: Path) -> None:
    async for served in serve_app(tmp_path, OBJECT_APP):
        url = s3(served.url).generate_presigned_url(
            "put_object", Params={"Bucket": "uploads", "Key": "images/cut.jpg"}, ExpiresIn=300
        )
        target = url.split("//", 1)[1]
        address, _, path = target.partition("/")
        host, _, port = address.partition(":")

        def send_half(host: str, port: int, address: str, path: str) -> None:
            with socket.create_connection((host, port)) as connection:
                head = f"PUT /{path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 4000000\r\n\r\n"
                connection.sendall(head.encode() + b"x" * 1_000_000)
            # closed with three quarters of the body unsent

        await asyncio.to_thread(send_half, host, int(port), address, path)
        blobs = served.platform.objects.blobs
        assert isinstance(blobs, Blobs)  # a store on SQLite: its blobs are files

        async def dropped(tmp: Path = blobs.root / "tmp") -> bool:
            # the server saw the disconnect and dropped the write in progress
            return not await asyncio.to_thread(lambda: any(tmp.iterdir()))

        assert await eventually(dropped)
        listing = await blocking(s3(served.url).list_objects_v2, Bucket="uploads")
        assert listing["KeyCount"] == 0
        assert not any(p.is_file() for p in blobs.root.joinpath("blobs").rglob("*"))
        assert (await served.platform.store.queues.stats("fn.on_image")).depth == 0


async def test_an_upload_cut_off_mid_body_leaves_no_chunk_rows_on_postgresql(tmp_path: Path) -> None:
    require_postgres()
    import psycopg

    schema = f"t_blobs11_{uuid.uuid4().hex[:12]}"
    try:
        async for served in serve_app(tmp_path, OBJECT_APP, store_url=f"{POSTGRES_URL}?schema={schema}&pool_size=4"):
            url = s3(served.url).generate_presigned_url(
                "put_object", Params={"Bucket": "uploads", "Key": "images/cut.jpg"}, ExpiresIn=300
            )
            address, _, path = url.split("//", 1)[1].partition("/")
            host, _, port = address.partition(":")

            def send_most(host: str, port: int, address: str, path: str) -> None:
                with socket.create_connection((host, port)) as connection:
                    head = f"PUT /{path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 4000000\r\n\r\n"
                    connection.sendall(head.encode() + b"x" * 3_000_000)  # two chunks' worth stored by now
                # closed with a quarter of the body unsent

            await asyncio.to_thread(send_most, host, int(port), address, path)

            async def rows() -> int:
                async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as conn:
                    cursor = await conn.execute(
                        f"SELECT (SELECT count(*) FROM {schema}.blobs) + (SELECT count(*) FROM {schema}.blob_chunks)"
                    )
                    row = await cursor.fetchone()
                    return int(row[0]) if row else -1

            async def dropped() -> bool:
                return await rows() == 0  # the server saw the disconnect and dropped the rows written so far

            assert await eventually(dropped)
            listing = await blocking(s3(served.url).list_objects_v2, Bucket="uploads")
            assert listing["KeyCount"] == 0
            assert (await served.platform.store.queues.stats("fn.on_image")).depth == 0
    finally:
        await drop_schema(schema)


def read_all(client: Any, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


async def test_a_burst_killed_mid_way_has_exactly_one_notification_per_stored_object(tmp_path: Path) -> None:
    acknowledged: list[str] = []
    with child_platform(tmp_path) as (process, url):

        def uploader(n: int) -> None:
            client = s3(url)
            for i in range(10_000):
                key = f"images/{n}-{i}.jpg"
                try:
                    client.put_object(Bucket="uploads", Key=key, Body=os.urandom(100 + 50_000 * (i % 2)))
                except Exception:
                    return  # the platform was killed under this request: not acknowledged
                acknowledged.append(key)

        async def enough() -> bool:
            return len(acknowledged) >= 60

        threads = [asyncio.to_thread(uploader, n) for n in range(6)]
        running = asyncio.gather(*threads)
        assert await eventually(enough, 120)
        os.kill(process.pid, signal.SIGKILL)  # mid-burst: six uploads in flight
        process.wait()
        await running
    async for served in serve_app(tmp_path, OBJECT_APP):
        stored = await blocking(listed, s3(served.url), "uploads")
        assert set(acknowledged) <= set(stored)  # every acknowledged upload is there
        assert len(stored) - len(acknowledged) <= 6  # and at most the ones in flight besides
        records = await received(served.platform, "seen", len(stored))
        notified = [unquote_plus(r["s3"]["object"]["key"]) for r in records]
        assert sorted(notified) == sorted(stored)  # one notification per stored object, none for the lost
        queues = served.platform.store.queues

        async def all_run(queues: Any = queues) -> bool:
            return bool((await queues.stats("fn.on_image")).depth == 0)

        assert await eventually(all_run)
        assert (await queues.stats("seen")).depth == 0  # and no second one


def listed(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]
