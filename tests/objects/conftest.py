"""A real platform on a loopback socket with an `@app.on_object` app (SQLite and PostgreSQL), and S3 clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import pytest_asyncio
from botocore.config import Config

from tests.backends import platform_store
from tests.server.conftest import Served, serve_app
from triggerfish.server.platform import Platform

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


#: The clients the running test made, closed when it ends (no pooled socket left to the garbage collector).
_CLIENTS: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def s3(url: str, **options: Any) -> Any:
    """boto3's S3 client as a user points it at Triggerfish (an IP endpoint: path-style by default)."""
    made = boto3.client(
        "s3",
        endpoint_url=f"{url}/-/aws",
        region_name="local",
        aws_access_key_id=options.pop("aws_access_key_id", "test"),
        aws_secret_access_key=options.pop("aws_secret_access_key", "test"),
        config=Config(retries={"max_attempts": 1}, read_timeout=60, **options),
    )
    _CLIENTS.append(made)
    return made


@pytest_asyncio.fixture(loop_scope="module", scope="module", params=["sqlite", "postgres"])
async def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    tmp_path: Path = tmp_path_factory.mktemp("objects")
    async with platform_store(request.param) as store_url:
        async for found in serve_app(tmp_path, OBJECT_APP, store_url=store_url):
            yield found


async def received(
    platform: Platform,
    queue: str,
    count: int = 1,
    *,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
    within: float = 30.0,
) -> list[dict[str, Any]]:
    """The JSON messages of a queue the app sends to: the first `count`, or as many as it takes for `until`."""
    found: list[dict[str, Any]] = []
    done = until or (lambda got: len(got) >= count)
    deadline = asyncio.get_running_loop().time() + within
    while not done(found) and asyncio.get_running_loop().time() < deadline:
        messages = await platform.store.queues.receive(queue, max_messages=10, wait=0.5)
        found += [json.loads(m.body) for m in messages]
        await platform.store.queues.ack_many(queue, [m.receipt for m in messages])
    return found


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> bool:
    """Whether `condition()` came to hold within `seconds`, checked every 50 ms (the caller asserts)."""
    for _ in range(int(seconds / 0.05) + 1):
        if await condition():
            return True
        await asyncio.sleep(0.05)
    return False
