"""`@app.on_nats` and `@app.on_redis_stream` on the real platform, against NATS (JetStream) at 127.0.0.1:4222 and
Redis at 127.0.0.1:6379: in order per key, in batches, stored before acknowledged, starting positions, reclaim."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from tests.services import require_service
from tests.streams.running import handled, wait_for
from tests.streams.running import subscribed_platform as platform
from triggerfish.app import App
from triggerfish.config import load_config
from triggerfish.errors import DeclarationError

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"

APP = """
import base64, json, triggerfish
app = triggerfish.App("shop")

@app.{decorator}({target!r}, {options})
def ingest(event, context):
    rows = []
    for record in event["Records"]:
        body = record[{kind!r}]
        text = base64.b64decode(body["data"]).decode()
        if text == "poison":
            raise ValueError("a poison order")
        rows.append([body["partitionKey"], text, len(event["Records"])])
    with open({out!r}, "a") as f:
        f.writelines(json.dumps(row) + "\\n" for row in rows)
"""


def write_app(tmp_path: Path, decorator: str, target: str, kind: str, options: str = "") -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    app = tmp_path / "app" / "app.py"
    out = str(tmp_path / "out.jsonl")
    app.write_text(APP.format(decorator=decorator, target=target, kind=kind, options=options, out=out))
    (tmp_path / "app" / "triggerfish.toml").write_text(f'[nats]\nurl = "{NATS_URL}"\n[redis]\nurl = "{REDIS_URL}"\n')
    return app


def test_the_nats_and_redis_tables_of_triggerfish_toml(tmp_path: Path) -> None:
    (tmp_path / "triggerfish.toml").write_text(f'[nats]\nurl = "{NATS_URL}"\n[redis]\nurl = "{REDIS_URL}"\n')
    config = load_config(tmp_path)
    assert (config.nats, config.redis) == ({"url": NATS_URL}, {"url": REDIS_URL})
    (tmp_path / "triggerfish.toml").write_text('[redis]\nurl = "http://cache"\n')
    with pytest.raises(DeclarationError, match=r"\[redis\]: url 'http://cache' has scheme 'http'; use redis://"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda app: app.on_nats("orders.>.x"), "token 2 ('>') is empty, holds white space, or uses '*' or '>'"),
        (lambda app: app.on_nats("orders.>", durable="a.b"), "consumer name must be 1 to 64 letters"),
        (lambda app: app.on_redis_stream("read ings"), "the Redis stream key must be 1 to 128"),
        (lambda app: app.on_nats("o.>", starting_position="AT_TIMESTAMP"), "needs starting_position_timestamp"),
        (lambda app: app.on_redis_stream("r", starting_position="EARLIEST"), "starting_position must be one of"),
        (lambda app: app.on_redis_stream("r", window=0.5), "window must be at least 1 second"),
    ],
)
def test_bad_declarations_say_what_is_wrong(declare: Callable[[App], Any], message: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        declare(App("shop"))(handler)
    assert message in str(caught.value)


def handler(event: object, context: object) -> None:
    return None


# --- NATS JetStream ---------------------------------------------------------------------------


@pytest.fixture
async def jetstream() -> AsyncIterator[tuple[Any, list[str]]]:
    require_service("NATS", "127.0.0.1", 4222)
    nats = pytest.importorskip("nats", reason="NATS tests need the nats extra: pip install 'triggerfish[nats]'")
    connection = await nats.connect(NATS_URL)
    made: list[str] = []
    try:
        yield connection.jetstream(), made
    finally:
        for name in made:
            with suppress(Exception):
                await connection.jetstream().delete_stream(name)
        await connection.close()


async def test_jetstream_messages_reach_the_function_in_order_per_subject_and_stay_for_a_restart(
    tmp_path: Path, jetstream: tuple[Any, list[str]]
) -> None:
    js, made = jetstream
    token = f"tf{uuid.uuid4().hex[:8]}"
    made.append(token)
    await js.add_stream(name=token, subjects=[f"{token}.>"])
    for n in range(60):  # before the consumer exists: TRIM_HORIZON reads them
        await js.publish(f"{token}.store{n % 3}", str(n).encode())
    options = "batch_size=20, batch_window=0.2, parallelization=2, max_retries=4"
    app = write_app(tmp_path, "on_nats", f"{token}.>", "nats", options)
    async with platform(tmp_path, app, "nats") as running:
        await wait_for(lambda: len(handled(tmp_path)) >= 60)
        info = await js.consumer_info(token, "shop-ingest")
        status = running.sources.status()
    assert info.config.ack_wait == 3.0, "AckWait is the function's timeout"
    assert info.config.max_deliver == 5, "MaxDeliver is max_retries + 1"
    assert info.num_ack_pending == 0, "every stored message was acknowledged"
    assert status["nats"]["clients"]["ingest"]["received"] == 60
    order: dict[str, list[str]] = {}
    for key, text, _ in handled(tmp_path):
        order.setdefault(key, []).append(text)
    assert order == {f"{token}.store{s}": [str(n) for n in range(s, 60, 3)] for s in range(3)}
    assert max(row[2] for row in handled(tmp_path)) > 1, "messages came one per invocation, not in batches"
    # Published while no platform runs: the durable consumer keeps its place.
    await js.publish(f"{token}.store0", b"while-down")
    async with platform(tmp_path, app, "nats"):
        await wait_for(lambda: "while-down" in [row[1] for row in handled(tmp_path)])
    assert len(handled(tmp_path)) == 61


async def test_a_new_jetstream_consumer_at_latest_skips_what_was_there(
    tmp_path: Path, jetstream: tuple[Any, list[str]]
) -> None:
    js, made = jetstream
    token = f"tf{uuid.uuid4().hex[:8]}"
    made.append(token)
    await js.add_stream(name=token, subjects=[f"{token}.>"])
    await js.publish(f"{token}.a", b"old")
    app = write_app(tmp_path, "on_nats", f"{token}.>", "nats", 'starting_position="LATEST"')
    async with platform(tmp_path, app, "nats"):
        await js.publish(f"{token}.a", b"new")
        await wait_for(lambda: len(handled(tmp_path)) >= 1)
    assert [row[1] for row in handled(tmp_path)] == ["new"]


# --- Redis Streams ----------------------------------------------------------------------------


@pytest.fixture
async def redis_client() -> AsyncIterator[tuple[Any, list[str]]]:
    require_service("Redis", "127.0.0.1", 6379)
    aioredis = pytest.importorskip("redis.asyncio", reason="Redis tests need the redis extra")
    client = aioredis.from_url(REDIS_URL)
    keys: list[str] = []
    try:
        yield client, keys
    finally:
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_redis_stream_entries_reach_the_function_in_order_and_are_acknowledged(
    tmp_path: Path, redis_client: tuple[Any, list[str]]
) -> None:
    client, keys = redis_client
    key = f"tf-{uuid.uuid4().hex[:8]}"
    keys.append(key)
    for n in range(50):
        await client.xadd(key, {"data": str(n)})
    app = write_app(tmp_path, "on_redis_stream", key, "redis", "batch_size=25, batch_window=0.2")
    async with platform(tmp_path, app, "redis"):
        await wait_for(lambda: len(handled(tmp_path)) >= 50)
        await client.xadd(key, {"device": "d1", "t": "21.5"})
        await wait_for(lambda: len(handled(tmp_path)) >= 51)
        pending = await client.xpending(key, "shop.ingest")
    texts = [row[1] for row in handled(tmp_path)]
    assert texts[:50] == [str(n) for n in range(50)]
    assert json.loads(texts[50]) == {"device": "d1", "t": "21.5"}, "several fields arrive as a JSON object"
    assert pending["pending"] == 0, "every stored entry was acknowledged"


async def test_entries_a_dead_consumer_left_pending_are_reclaimed_with_xautoclaim(
    tmp_path: Path, redis_client: tuple[Any, list[str]]
) -> None:
    client, keys = redis_client
    key = f"tf-{uuid.uuid4().hex[:8]}"
    keys.append(key)
    await client.xgroup_create(key, "shop.ingest", id="0", mkstream=True)
    await client.xadd(key, {"data": "left-behind"})
    # Another node read it and died before acknowledging it.
    await client.xreadgroup("shop.ingest", "dead-node", {key: ">"}, count=10)
    app = write_app(tmp_path, "on_redis_stream", key, "redis", "timeout=1")
    async with platform(tmp_path, app, "redis"):
        await client.xadd(key, {"data": "fresh"})
        await wait_for(lambda: len(handled(tmp_path)) == 2)
    pending = await client.xpending(key, "shop.ingest")
    assert pending["pending"] == 0
    # The entry left pending is older: it comes first (in order per key), not after its idle time ran out.
    assert [row[1] for row in handled(tmp_path)] == ["left-behind", "fresh"]


async def test_a_redis_stream_partitioned_by_a_field_keeps_order_per_value(
    tmp_path: Path, redis_client: tuple[Any, list[str]]
) -> None:
    client, keys = redis_client
    key = f"tf-{uuid.uuid4().hex[:8]}"
    keys.append(key)
    for n in range(40):
        await client.xadd(key, {"device": f"d{n % 4}", "n": str(n)})
    options = 'partition_key="device", parallelization=2, batch_size=5'
    app = write_app(tmp_path, "on_redis_stream", key, "redis", options)
    async with platform(tmp_path, app, "redis"):
        await wait_for(lambda: len(handled(tmp_path)) >= 40)
    order: dict[str, list[int]] = {}
    for partition_key, text, _ in handled(tmp_path):
        entry = json.loads(text)
        assert entry["device"] == partition_key
        order.setdefault(partition_key, []).append(int(entry["n"]))
    assert order == {f"d{d}": list(range(d, 40, 4)) for d in range(4)}


async def test_a_dropped_redis_connection_is_made_again_and_nothing_is_lost(
    tmp_path: Path, redis_client: tuple[Any, list[str]]
) -> None:
    client, keys = redis_client
    key = f"tf-{uuid.uuid4().hex[:8]}"
    keys.append(key)
    app = write_app(tmp_path, "on_redis_stream", key, "redis")
    async with platform(tmp_path, app, "redis") as running:
        await client.xadd(key, {"data": "before"})
        await wait_for(lambda: len(handled(tmp_path)) == 1)
        sources: Any = running.sources.clients["redis"][0]
        name = f"triggerfish-{sources.consumer}-ingest"
        ours = [c for c in await client.client_list() if c["name"] == name]
        for connection in ours:
            await client.client_kill_filter(_id=connection["id"])
        for n in range(5):
            await client.xadd(key, {"data": f"after-{n}"})
        await wait_for(lambda: len(handled(tmp_path)) == 6)
        state = running.sources.status()["redis"]["clients"]["ingest"]
    assert ours, "the platform's connection is named triggerfish-<consumer>-<function>"
    assert [row[1] for row in handled(tmp_path)] == ["before", *(f"after-{n}" for n in range(5))]
    assert state["reconnects"] >= 1


BUS_APP = """
import json, triggerfish
app = triggerfish.App("shop")

@app.on_redis_stream({key!r}, to_bus=True)
def bridge(event, context):
    raise AssertionError("records sent to a bus do not invoke the function")

@app.on_event({{"type": ["redis.record"], "data": {{"device": [{{"anything-but": "d2"}}]}}}})
def hot(event, context):
    with open({out!r}, "a") as f:
        f.write(json.dumps([event["subject"], event["data"]["device"], event["source"]]) + "\\n")
"""


async def test_redis_entries_feed_the_bus_as_cloudevents_that_rules_route(
    tmp_path: Path, redis_client: tuple[Any, list[str]]
) -> None:
    client, keys = redis_client
    key = f"tf-{uuid.uuid4().hex[:8]}"
    keys.append(key)
    app = write_app(tmp_path, "on_redis_stream", key, "redis")  # the toml; the app is replaced below
    app.write_text(BUS_APP.format(key=key, out=str(tmp_path / "out.jsonl")))
    async with platform(tmp_path, app, "redis"):
        for device, t in (("d1", 31), ("d2", 20), ("d3", 35)):
            await client.xadd(key, {"device": device, "t": str(t)})
        await wait_for(lambda: len(handled(tmp_path)) == 2)
    assert sorted(row[1] for row in handled(tmp_path)) == ["d1", "d3"]
    assert {row[0] for row in handled(tmp_path)} == {key}, "the subject is the partition key"
    assert {row[2] for row in handled(tmp_path)} == {f"arn:aws:redis:local:000000000000:stream/{key}"}
