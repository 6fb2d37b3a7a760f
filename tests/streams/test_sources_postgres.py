"""The sources' checkpoints on PostgreSQL: MQTT and Redis Streams messages stored in a PostgreSQL store, read in
order, and a restarted platform resuming after the last committed batch (what test_mqtt_platform shows on SQLite)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.services import POSTGRES_URL, drop_schema, require_postgres, require_service
from tests.streams.running import wait_for
from triggerfish.names import SOURCE_GROUP, source_stream
from triggerfish.server.platform import Platform

APP = """
import base64, json, triggerfish
app = triggerfish.App("home")

@app.{decorator}({target!r}, batch_size=10, parallelization=2)
def ingest(event, context):
    with open({out!r}, "a") as f:
        for record in event["Records"]:
            body = record[{kind!r}]
            f.write(json.dumps([body["partitionKey"], base64.b64decode(body["data"]).decode()]) + "\\n")
"""


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}&pool_size=4"
    finally:
        await drop_schema(schema)


def rows(out: Path) -> list[list[str]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


async def run_twice(
    tmp_path: Path, pg_url: str, app_source: str, toml: str, kind: str, send: Callable[[int, int], Any]
) -> tuple[list[list[str]], int]:
    """Run the app, send 0-39, stop; send 40-49 while it is down; run it again. What it handled, and the
    checkpoints' sum in the PostgreSQL store."""
    (tmp_path / "app").mkdir()
    app = tmp_path / "app" / "app.py"
    app.write_text(app_source)
    (tmp_path / "app" / "triggerfish.toml").write_text(toml)
    out = tmp_path / "out.jsonl"

    async def started() -> Platform:
        platform = Platform(str(app), data_dir=tmp_path / "data", store_url=pg_url)
        await platform.start()
        clients = platform.sources.mqtt if kind == "mqtt" else platform.sources.clients[kind][0]
        assert clients is not None
        async with asyncio.timeout(10):
            await clients.wait_subscribed()
        return platform

    first = await started()
    try:
        await send(0, 40)
        await wait_for(lambda: len(rows(out)) >= 40, seconds=40)
    finally:
        await first.stop()
    await send(40, 50)
    second = await started()
    try:
        await wait_for(lambda: len(rows(out)) >= 50, seconds=40)
        log = second.store.log
        deadline = time.monotonic() + 40
        while True:  # the commit follows the handler's output: wait for it to land
            positions = [await log.position(source_stream(kind, "ingest", n), SOURCE_GROUP) for n in range(2)]
            checkpoints = sum(positions)
            if checkpoints >= 50 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    finally:
        await second.stop()
    return rows(out), checkpoints


def in_order(handled: list[list[str]]) -> dict[str, list[int]]:
    order: dict[str, list[int]] = {}
    for key, text in handled:
        order.setdefault(key, []).append(int(text))
    return order


async def test_mqtt_checkpoints_in_postgresql(tmp_path: Path, pg_url: str) -> None:
    require_service("Mosquitto", "127.0.0.1", 1883)
    aiomqtt = pytest.importorskip("aiomqtt", reason="MQTT tests need the mqtt extra")
    base, client = f"pg-{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:10]}"
    source = APP.format(decorator="on_mqtt", target=f"{base}/+", kind="mqtt", out=str(tmp_path / "out.jsonl"))
    toml = f'[mqtt]\nurl = "mqtt://127.0.0.1:1883"\nclient_id = "{client}"\n'

    async def send(first: int, last: int) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883) as publisher:
            for n in range(first, last):
                await publisher.publish(f"{base}/d{n % 3}", str(n), qos=1)

    try:
        handled, checkpoints = await run_twice(tmp_path, pg_url, source, toml, "mqtt", send)
    finally:
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"{client}-ingest", clean_session=True):
            pass
    assert in_order(handled) == {f"{base}/d{d}": list(range(d, 50, 3)) for d in range(3)}
    assert checkpoints == 50, "each partition's checkpoint is past every record, in the PostgreSQL store"


async def test_redis_stream_checkpoints_in_postgresql(tmp_path: Path, pg_url: str) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    aioredis = pytest.importorskip("redis.asyncio", reason="Redis tests need the redis extra")
    key = f"tf-pg-{uuid.uuid4().hex[:8]}"
    source = APP.format(decorator="on_redis_stream", target=key, kind="redis", out=str(tmp_path / "out.jsonl"))
    toml = '[redis]\nurl = "redis://127.0.0.1:6379/0"\n'
    client = aioredis.from_url("redis://127.0.0.1:6379/0")

    async def send(first: int, last: int) -> None:
        for n in range(first, last):
            await client.xadd(key, {"data": str(n)})

    try:
        handled, checkpoints = await run_twice(tmp_path, pg_url, source, toml, "redis", send)
    finally:
        await client.delete(key)
        await client.aclose()
    assert in_order(handled) == {key: list(range(50))}
    assert checkpoints == 50
