"""MQTT QoS 1 messages/s from Mosquitto to a handler, with durable ingest, beside a bare aiomqtt consumer.

Side by side, in turns, against the Mosquitto at 127.0.0.1:1883:

- **bare aiomqtt**: one client subscribed at QoS 1 that counts messages and does
  nothing durable (paho acknowledges each on arrival): the ceiling;
- **Triggerfish `@app.on_mqtt`**: the platform (SQLite store, a worker process
  per batch in flight) stores each message in its partition stream before its
  PUBACK, then runs a no-op function on batches of up to 100, two partitions;
  the rate counts a message when its batch's checkpoint is committed.

One publisher in a process of its own (`benchmarks/mqtt_publisher.py`) sends
`MESSAGES` messages at QoS 1 with up to `IN_FLIGHT` unacknowledged at once, never
more than `AHEAD` past what the consumer took (Mosquitto drops QoS 1 messages
queued past its `max_queued_messages`); the rate is messages over the time from
the first publish to the last message handled. Target (issue 15): Triggerfish at
least 50% of the bare consumer's rate.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from benchmarks.measure import interleave_async, loads, spread
from triggerfish.names import SOURCE_GROUP

HOST, PORT = "127.0.0.1", 1883
MESSAGES = int(os.environ.get("BENCH_MQTT_MESSAGES", "20000"))
IN_FLIGHT = 100
#: Messages the publisher may be ahead of the consumer.
AHEAD = 500
ROUNDS = 3
TARGET_RATIO = 0.5
APP = Path(__file__).parent / "apps" / "mqtt_app.py"
ROOT = Path(__file__).resolve().parents[1]


async def publish(base: str, consumed: Callable[[], int]) -> float:
    """Run the publisher process (benchmarks/mqtt_publisher.py), feeding it the consumer's count; its start time."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.mqtt_publisher", base, str(MESSAGES), str(IN_FLIGHT), str(AHEAD),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None
    started = float(await child.stdout.readline())

    async def feed() -> None:
        assert child.stdin is not None
        while True:
            child.stdin.write(f"{consumed()}\n".encode())
            await child.stdin.drain()
            await asyncio.sleep(0.005)

    feeder = asyncio.create_task(feed())
    try:
        await child.stdout.readline()  # "done": the broker has every message
        await child.wait()
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
    return started


async def bare() -> float:
    import aiomqtt

    base = f"bench-mqtt-{uuid.uuid4().hex[:8]}"
    received = 0
    done = asyncio.Event()
    async with aiomqtt.Client(HOST, PORT, max_queued_incoming_messages=0) as client:
        await client.subscribe(f"{base}/+/reading", qos=1)

        async def count() -> None:
            nonlocal received
            async for _ in client.messages:
                received += 1
                if received == MESSAGES:
                    done.set()
                    return

        counter = asyncio.create_task(count())
        started = await publish(base, lambda: received)
        await asyncio.wait_for(done.wait(), 120)
        ended = time.time()
        await counter
    return MESSAGES / (ended - started)


async def triggerfish() -> float:
    from triggerfish.server.platform import Platform

    os.environ["TRIGGERFISH_MQTT_URL"] = f"mqtt://{HOST}:{PORT}"
    # One session for every run: a new client id per run would leave a persistent session behind each time.
    os.environ["TRIGGERFISH_MQTT_CLIENT_ID"] = "triggerfish-bench"
    with tempfile.TemporaryDirectory() as data:
        platform = Platform(str(APP), data_dir=Path(data))
        await platform.start()
        try:
            sources = platform.sources
            assert sources.mqtt is not None
            await asyncio.wait_for(sources.mqtt.wait_subscribed(), 10)
            streams = [f"source.mqtt.readings.{n}" for n in range(2)]
            started = await publish("bench-mqtt", lambda: sources.mqtt.status()["readings"].received)  # type: ignore[union-attr]
            deadline = time.monotonic() + 120
            while sum([await platform.store.log.position(s, SOURCE_GROUP) for s in streams]) < MESSAGES:
                if time.monotonic() > deadline:
                    raise TimeoutError("the function did not get every message within 120 s")
                await asyncio.sleep(0.01)
            ended = time.time()
        finally:
            await platform.stop()
    return MESSAGES / (ended - started)


async def main() -> str:
    runs = await interleave_async({"bare": bare, "triggerfish": triggerfish}, ROUNDS)
    rows = []
    labels = {
        "bare": "bare aiomqtt consumer (nothing durable; the ceiling)",
        "triggerfish": "Triggerfish `@app.on_mqtt` (stored before PUBACK, no-op handler)",
    }
    for name, label in labels.items():
        series = runs[name]
        figure = spread(series.values(lambda rate: rate)) if series.error is None else f"failed: {series.error}"
        rows.append(f"| {label} | {figure} | {loads(series)} |")
    ratio = runs["triggerfish"].median(lambda r: r) / runs["bare"].median(lambda r: r)
    verdict = "met" if ratio >= TARGET_RATIO else "not met"
    return "\n".join(
        [
            "## MQTT: QoS 1 messages/s from Mosquitto to a handler",
            "",
            f"{MESSAGES:,} messages over 10 topics, published at QoS 1 by another process with up to {IN_FLIGHT} in"
            f" flight and at most {AHEAD} ahead of the consumer, {ROUNDS} rounds in turns; median (lowest to highest).",
            "",
            "| consumer | messages/s | load average per run |",
            "|---|---|---|",
            *rows,
            "",
            f"Triggerfish at **{ratio:.0%}** of the bare consumer; target ≥ {TARGET_RATIO:.0%}: **{verdict}**.",
        ]
    )


if __name__ == "__main__":
    print(asyncio.run(main()))
