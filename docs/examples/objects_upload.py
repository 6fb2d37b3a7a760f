"""An upload with boto3 runs the function watching the bucket, with S3's notification event."""

import asyncio
import json
import tempfile
from pathlib import Path

import boto3

from triggerfish.gateway import GatewayServer
from triggerfish.server.http import platform_asgi
from triggerfish.server.platform import Platform

APP = """
import json
from urllib.parse import unquote_plus

import triggerfish

app = triggerfish.App("photos")


@app.on_object("uploads", events=["s3:ObjectCreated:*"], prefix="images/", suffix=".jpg")
def on_image(event, context):
    for record in event["Records"]:
        s3 = record["s3"]
        key = unquote_plus(s3["object"]["key"])  # S3 URL-encodes keys in notifications
        context.send("seen", json.dumps({"key": key, "size": s3["object"]["size"], "event": record["eventName"]}))
"""


def upload(url: str) -> str:
    s3 = boto3.client(
        "s3",
        endpoint_url=f"{url}/-/aws",
        region_name="local",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    # `uploads` exists: a function watches it. Only keys under images/ ending in .jpg fire it.
    s3.put_object(Bucket="uploads", Key="notes/readme.txt", Body=b"not an image")
    put = s3.put_object(Bucket="uploads", Key="images/red fish.jpg", Body=b"\xff\xd8 a jpeg")
    assert s3.get_object(Bucket="uploads", Key="images/red fish.jpg")["Body"].read() == b"\xff\xd8 a jpeg"
    return put["ETag"]


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        app_file = Path(directory) / "app.py"
        app_file.write_text(APP)
        async with (
            Platform(str(app_file), data_dir=Path(directory) / ".triggerfish") as platform,
            GatewayServer(platform_asgi(platform), port=0) as server,
        ):
            etag = await asyncio.to_thread(upload, server.url)  # boto3 blocks: in a thread
            assert etag == '"679ab6d343ab26eee1c1cc29480b655c"'  # the MD5 of the body, as S3 gives it
            (seen,) = await platform.store.queues.receive("seen", wait=10)
            assert json.loads(seen.body) == {"key": "images/red fish.jpg", "size": 9, "event": "ObjectCreated:Put"}


asyncio.run(main())
