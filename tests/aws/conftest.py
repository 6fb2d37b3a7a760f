"""A real platform served on a loopback socket, and boto3 clients pointed at its `/-/aws`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from botocore.config import Config

from tests.server.conftest import Served, serve_app

T = TypeVar("T")

#: An app with a queue-triggered function that leaves what it received in a queue for the test to read.
QUEUE_APP = """
import json
import triggerfish

app = triggerfish.App("shop")


@app.on_queue("orders")
def take_order(event, context):
    for record in event["Records"]:
        context.send("taken", json.dumps({
            "body": record["body"],
            "attributes": record["messageAttributes"],
            "md5": record.get("md5OfMessageAttributes"),
        }))


@app.on_event({"source": ["shop"]})
def on_shop_event(event, context):
    context.send("events-seen", json.dumps(event))


@app.on_topic("shipments")
def on_shipment(event, context):
    for record in event["Records"]:
        context.send("shipments-seen", json.dumps(record["Sns"]))
"""


#: The clients the running test made, closed when it ends: a pooled socket left to the garbage collector
#: warns (an error here) in whichever later test the collection happens to run.
_CLIENTS: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def client(url: str, service: str, **options: Any) -> Any:
    """A boto3 client as a user makes one for Triggerfish: the endpoint URL, any region, any credentials."""
    made = boto3.client(
        service,
        endpoint_url=f"{url}/-/aws",
        region_name=options.pop("region_name", "local"),
        aws_access_key_id=options.pop("aws_access_key_id", "test"),
        aws_secret_access_key=options.pop("aws_secret_access_key", "test"),
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        **options,
    )
    _CLIENTS.append(made)
    return made


async def blocking(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a boto3 call in a thread: the server answering it runs on this test's event loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_app(tmp_path, QUEUE_APP):
        yield served
