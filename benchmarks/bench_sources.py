"""NATS JetStream and Redis Streams: messages/s from a backlog on the server to a handler, beside bare consumers.

Side by side, in turns, against NATS (JetStream) at 127.0.0.1:4222 and Redis at 127.0.0.1:6379. Each run first
puts `MESSAGES` messages on the server (a JetStream stream of its own, a Redis stream of its own), then times
their consumption, from the consumer's start to the last one done:

- **bare nats-py** / **bare redis-py**: a durable pull consumer fetching 500 at a time and acknowledging them,
  or XREADGROUP of 500 at a time and XACK, doing nothing durable: the ceiling;
- **Triggerfish `@app.on_nats` / `@app.on_redis_stream`**: the platform (SQLite store, worker processes) stores
  each message in its partition stream before acknowledging it, then runs a no-op function on batches of up to
  100 over two partitions; a message counts when its batch's checkpoint is committed.

Target (the MQTT one of issue 15, applied here): Triggerfish at least 50% of the bare consumer's rate.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.measure import interleave_async, loads, spread
from triggerfish.names import SOURCE_GROUP, source_stream

MESSAGES = int(os.environ.get("BENCH_SOURCES_MESSAGES", "20000"))
ROUNDS = int(os.environ.get("BENCH_SOURCES_ROUNDS", "3"))
TARGET_RATIO = 0.5
NATS_URL, REDIS_URL = "nats://127.0.0.1:4222", "redis://127.0.0.1:6379/0"
APP = """
import triggerfish
app = triggerfish.App("bench")

@app.{decorator}({target!r}, batch_size=100, parallelization=2)
def readings(event, context):
    return None
"""


# --- NATS -------------------------------------------------------------------------------------


async def nats_backlog() -> tuple[str, Callable[[], Awaitable[None]]]:
    """A stream of its own holding MESSAGES messages over 10 subjects; its subject filter, and how to delete it."""
    import nats

    token = f"bench{uuid.uuid4().hex[:8]}"
    connection = await nats.connect(NATS_URL)
    js = connection.jetstream()
    await js.add_stream(name=token, subjects=[f"{token}.>"])
    sent = 0
    while sent < MESSAGES:
        chunk = min(1000, MESSAGES - sent)
        await asyncio.gather(*(js.publish(f"{token}.d{n % 10}", b'{"t": 21.5}') for n in range(sent, sent + chunk)))
        sent += chunk

    async def delete() -> None:
        await js.delete_stream(token)
        await connection.close()

    return token, delete


async def nats_bare() -> float:
    import nats
    import nats.errors

    token, delete = await nats_backlog()
    try:
        connection = await nats.connect(NATS_URL)
        started = time.time()
        pull = await connection.jetstream().pull_subscribe(f"{token}.>", durable="bare", stream=token)
        done = 0
        while done < MESSAGES:
            try:
                messages = await pull.fetch(500, timeout=1)
            except nats.errors.TimeoutError:
                continue
            await asyncio.gather(*(m.ack() for m in messages))
            done += len(messages)
        ended = time.time()
        await connection.close()
    finally:
        await delete()
    return MESSAGES / (ended - started)


async def nats_triggerfish() -> float:
    token, delete = await nats_backlog()
    try:
        return await through_platform("on_nats", f"{token}.>", "nats", NATS_URL)
    finally:
        await delete()


# --- Redis ------------------------------------------------------------------------------------


async def redis_backlog() -> tuple[str, Callable[[], Awaitable[None]]]:
    import redis.asyncio as aioredis

    key = f"bench-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(REDIS_URL)
    for first in range(0, MESSAGES, 1000):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(first, min(first + 1000, MESSAGES)):
                pipe.xadd(key, {"data": '{"t": 21.5}'})
            await pipe.execute()

    async def delete() -> None:
        await client.delete(key)
        await client.aclose()

    return key, delete


async def redis_bare() -> float:
    import redis.asyncio as aioredis

    key, delete = await redis_backlog()
    try:
        client = aioredis.from_url(REDIS_URL)
        started = time.time()
        await client.xgroup_create(key, "bare", id="0")
        done = 0
        while done < MESSAGES:
            answer: Any = await client.xreadgroup("bare", "c1", {key: ">"}, count=500, block=1000)
            if answer:
                ids = [entry_id for entry_id, _ in answer[0][1]]
                await client.xack(key, "bare", *ids)
                done += len(ids)
        ended = time.time()
        await client.aclose()
    finally:
        await delete()
    return MESSAGES / (ended - started)


async def redis_triggerfish() -> float:
    key, delete = await redis_backlog()
    try:
        return await through_platform("on_redis_stream", key, "redis", REDIS_URL)
    finally:
        await delete()


# --- the platform -----------------------------------------------------------------------------


async def through_platform(decorator: str, target: str, kind: str, url: str) -> float:
    from triggerfish.server.platform import Platform

    with tempfile.TemporaryDirectory() as data:
        app = Path(data) / "app.py"
        app.write_text(APP.format(decorator=decorator, target=target))
        (Path(data) / "triggerfish.toml").write_text(f'[{kind}]\nurl = "{url}"\n')
        platform = Platform(str(app), data_dir=Path(data) / "data")
        started = time.time()
        await platform.start()
        try:
            streams = [source_stream(kind, "readings", n) for n in range(2)]
            deadline = time.monotonic() + 300
            while sum([await platform.store.log.position(s, SOURCE_GROUP) for s in streams]) < MESSAGES:
                if time.monotonic() > deadline:
                    raise TimeoutError("the function did not get every message within 300 s")
                await asyncio.sleep(0.01)
            ended = time.time()
        finally:
            await platform.stop()
    return MESSAGES / (ended - started)


async def main() -> str:
    runs = await interleave_async(
        {
            "nats_bare": nats_bare,
            "nats_triggerfish": nats_triggerfish,
            "redis_bare": redis_bare,
            "redis_triggerfish": redis_triggerfish,
        },
        ROUNDS,
    )
    labels = {
        "nats_bare": "bare nats-py pull consumer (fetch 500, ack; the ceiling)",
        "nats_triggerfish": "Triggerfish `@app.on_nats` (stored before ack, no-op handler)",
        "redis_bare": "bare redis-py XREADGROUP 500 + XACK (the ceiling)",
        "redis_triggerfish": "Triggerfish `@app.on_redis_stream` (stored before XACK, no-op handler)",
    }
    rows = []
    for name, label in labels.items():
        series = runs[name]
        figure = spread(series.values(lambda rate: rate)) if series.error is None else f"failed: {series.error}"
        rows.append(f"| {label} | {figure} | {loads(series)} |")
    verdicts = []
    for kind in ("nats", "redis"):
        ratio = runs[f"{kind}_triggerfish"].median(lambda r: r) / runs[f"{kind}_bare"].median(lambda r: r)
        verdicts.append(f"{kind.upper()}: Triggerfish at **{ratio:.0%}** of the bare consumer")
    return "\n".join(
        [
            "## NATS JetStream and Redis Streams: messages/s from a backlog to a handler",
            "",
            f"{MESSAGES:,} messages waiting on the server, consumed from the consumer's start to the last one done;"
            f" {ROUNDS} rounds in turns; median (lowest to highest). The Triggerfish figure includes the platform's"
            " start (a fixed second or so).",
            "",
            "| consumer | messages/s | load average per run |",
            "|---|---|---|",
            *rows,
            "",
            "; ".join(verdicts) + f" (target ≥ {TARGET_RATIO:.0%}).",
        ]
    )


if __name__ == "__main__":
    print(asyncio.run(main()))
