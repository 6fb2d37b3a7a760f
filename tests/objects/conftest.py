"""A real platform on a loopback socket with an `@app.on_object` app, and S3 clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from botocore.config import Config

import boto3
from tests.server.conftest import Served, serve_app

#: Records every notification it gets in a queue the test reads, and a bus rule's view of uploads.
OBJECT_APP = """
import json
import triggerfish

app = triggerfish.App("files")


@app.on_object("uploads", events=["s3:ObjectCreated:*", "deleted"], prefix="images/", suffix=".jpg")
def on_image(event, context):
    for record in event["Records"]:
        context.send("seen", json.dumps(record))


@app.on_event({"source": ["aws.s3"], "detail-type": ["Object Created"]})
def on_bus(event, context):
    context.send("bus-seen", json.dumps(event))
"""


def s3(url: str, **options: Any) -> Any:
    """boto3's S3 client as a user points it at Triggerfish (path-style, as an IP endpoint gets by default)."""
    return boto3.client(
        "s3",
        endpoint_url=f"{url}/-/aws",
        region_name="local",
        aws_access_key_id=options.pop("aws_access_key_id", "test"),
        aws_secret_access_key=options.pop("aws_secret_access_key", "test"),
        config=Config(retries={"max_attempts": 1}, read_timeout=60, **options),
    )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    tmp_path: Path = tmp_path_factory.mktemp("objects")
    async for found in serve_app(tmp_path, OBJECT_APP):
        yield found
