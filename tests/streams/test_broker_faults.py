"""Broker disconnects and restarts, through a TCP proxy in front of the shared broker (never restarted itself):
the source reconnects with backoff and resubscribes by itself, and every message the broker acknowledged to its
publisher reaches the function, in order per key (and, for JetStream and Redis Streams, once)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.streams.proxy import TcpProxy
from tests.streams.running import handled, wait_for
from tests.streams.running import subscribed_platform as platform
from tests.streams.test_nats_redis import jetstream, redis_client, write_app
from triggerfish.sources.redis_streams import RedisStreamSources, RedisStreamSubscription
from triggerfish.store import open_store
from triggerfish.streams.records import decode_record

__all__ = ["jetstream", "redis_client"]  # the fixtures, used by name


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Wait for a condition asked of a broker or a store."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def in_order_once(rows: list[list[Any]]) -> dict[str, list[int]]:
    """Each key's numbers in the order the function saw them, every one of them (redeliveries included)."""
    order: dict[str, list[int]] = {}
    for key, text, _ in rows:
        order.setdefault(key, []).append(int(text))
    return order


async def test_a_jetstream_source_survives_a_dropped_connection_and_a_server_restart(
    tmp_path: Path, jetstream: tuple[Any, list[str]]
) -> None:
    js, made = jetstream
    token = f"tf{uuid.uuid4().hex[:8]}"
    made.append(token)
    await js.add_stream(name=token, subjects=[f"{token}.>"])
    keys = [f"{token}.a", f"{token}.b"]
    published = 0

    async def publish(count: int) -> None:
        nonlocal published
        for _ in range(count):
            ack = await js.publish(keys[published % 2], str(published).encode())  # awaits JetStream's ack
            assert ack.seq
            published += 1

    def all_handled() -> bool:
        return {int(row[1]) for row in handled(tmp_path)} >= set(range(published))

    async with TcpProxy("127.0.0.1", 4222) as proxy:
        app = write_app(tmp_path, "on_nats", f"{token}.>", "nats", "batch_size=10, batch_window=0.1")
        toml = app.parent / "triggerfish.toml"
        toml.write_text(f'[nats]\nurl = "nats://127.0.0.1:{proxy.port}"\n')
        async with platform(tmp_path, app, "nats") as running:
            sources: Any = running.sources.clients["nats"][0]
            await publish(10)
            await wait_for(all_handled)

            await proxy.disconnect()  # a network blip
            await publish(10)
            await wait_for(all_handled, seconds=30)
            await wait_for(lambda: sources.status()["ingest"].reconnects >= 1)

            restart = asyncio.create_task(proxy.restart(2.0))  # the server goes away, then comes back
            await publish(10)  # while it is away
            await restart
            await publish(10)  # after
            await wait_for(all_handled, seconds=30)
            async with asyncio.timeout(10):
                await sources.wait_subscribed()
            state = sources.status()["ingest"]
    assert state.reconnects >= 2, "one reconnect for the blip, at least one for the restart"
    assert state.connected
    assert proxy.accepted >= 3, "the source connected again through the proxy each time"
    # Every acknowledged message arrived, once, in order per subject: what a fetch in flight left pending on the
    # server when the connection dropped is read from the stream before anything newer.
    assert in_order_once(handled(tmp_path)) == {keys[0]: list(range(0, 40, 2)), keys[1]: list(range(1, 40, 2))}


async def test_jetstream_messages_delivered_into_a_dropped_connection_come_before_newer_ones_and_once(
    tmp_path: Path, jetstream: tuple[Any, list[str]]
) -> None:
    js, made = jetstream
    token = f"tf{uuid.uuid4().hex[:8]}"
    made.append(token)
    await js.add_stream(name=token, subjects=[f"{token}.>"])
    keys = [f"{token}.a", f"{token}.b"]

    async def publish(numbers: range) -> None:
        for n in numbers:
            assert (await js.publish(keys[n % 2], str(n).encode())).seq

    async def consumer_shows(condition: Callable[[Any], bool]) -> None:
        async def check() -> bool:
            return condition(await js.consumer_info(token, "shop-ingest"))

        await until(check)

    async with TcpProxy("127.0.0.1", 4222) as proxy:
        # AckWait is the function's timeout: 5 s, so JetStream redelivers what it delivered into the dead
        # connection 5 s later, long after the newer messages published once it reconnected.
        app = write_app(tmp_path, "on_nats", f"{token}.>", "nats", "batch_size=10, batch_window=0.1, timeout=5")
        (app.parent / "triggerfish.toml").write_text(f'[nats]\nurl = "nats://127.0.0.1:{proxy.port}"\n')
        async with platform(tmp_path, app, "nats") as running:
            await publish(range(10))
            await wait_for(lambda: len(handled(tmp_path)) == 10)

            proxy.blackhole()  # the connection goes silent: the server delivers 10..19 into it
            await publish(range(10, 20))
            await consumer_shows(lambda info: info.num_ack_pending == 10)
            await proxy.disconnect()
            await publish(range(20, 30))  # newer messages of the same subjects, fetched after the reconnect

            await wait_for(lambda: len(handled(tmp_path)) >= 30, seconds=20)
            # The redeliveries of 10..19 (after AckWait) are acknowledged without being stored a second time.
            await consumer_shows(lambda info: info.num_redelivered == 0 and info.num_ack_pending == 0)
            state = running.sources.status()["nats"]["clients"]["ingest"]
    assert state["reconnects"] >= 1
    assert in_order_once(handled(tmp_path)) == {keys[0]: list(range(0, 30, 2)), keys[1]: list(range(1, 30, 2))}


async def test_redis_entries_delivered_into_a_dropped_connection_come_before_newer_ones_and_once(
    tmp_path: Path, redis_client: tuple[Any, list[str]]
) -> None:
    client, made = redis_client
    key = f"tf-{uuid.uuid4().hex[:8]}"
    made.append(key)

    async def add(numbers: range) -> None:
        for n in numbers:
            await client.xadd(key, {"device": f"d{n % 2}", "data": str(n)})

    def numbers_seen() -> dict[str, list[int]]:
        order: dict[str, list[int]] = {}
        for device, text, _ in handled(tmp_path):
            order.setdefault(device, []).append(int(json.loads(text)["data"]))
        return order

    async def pending(condition: Callable[[int], bool]) -> None:
        async def check() -> bool:
            return condition((await client.xpending(key, "shop.ingest"))["pending"])

        await until(check)

    async with TcpProxy("127.0.0.1", 6379) as proxy:
        app = write_app(tmp_path, "on_redis_stream", key, "redis", 'partition_key="device", batch_window=0.1')
        (app.parent / "triggerfish.toml").write_text(f'[redis]\nurl = "redis://127.0.0.1:{proxy.port}/0"\n')
        async with platform(tmp_path, app, "redis"):
            await add(range(10))
            await wait_for(lambda: len(handled(tmp_path)) == 10)
            proxy.blackhole()  # XREADGROUP's answers with 10.. are lost: they are pending with this node
            await add(range(10, 20))
            await pending(lambda count: count > 0)
            await proxy.disconnect()
            await add(range(20, 30))
            await wait_for(lambda: len(handled(tmp_path)) >= 30)
            await pending(lambda count: count == 0)
    assert numbers_seen() == {"d0": list(range(0, 30, 2)), "d1": list(range(1, 30, 2))}


async def test_two_nodes_on_one_redis_group_store_its_entries_once_in_order(
    tmp_path: Path, redis_client: tuple[Any, list[str]]
) -> None:
    """One node at a time reads a group: the other waits, and takes over where the first stopped."""
    client, made = redis_client
    key = f"tf-{uuid.uuid4().hex[:8]}"
    made.append(key)
    store = await open_store(f"sqlite:///{tmp_path}/shared.db")  # the store both nodes share
    sub = RedisStreamSubscription("ingest", key, "shop.ingest", streams=("source.redis.ingest.0",))
    nodes = [RedisStreamSources(store, "redis://127.0.0.1:6379/0", consumer=f"node-{n}") for n in (1, 2)]

    async def stored() -> list[int]:
        records = await store.log.read("source.redis.ingest.0", limit=1000)
        return [int(decode_record(r.data).payload) for r in records]

    async def until_stored(count: int) -> None:
        async def check() -> bool:
            return len(await stored()) >= count

        await until(check)

    try:
        for node in nodes:
            await node.update([sub])
        for n in range(100):
            await client.xadd(key, {"data": str(n)})
        await until_stored(100)
        reading = [node for node in nodes if node.status()["ingest"].connected]
        assert len(reading) == 1, "one node reads the group; the other waits for it"
        await reading[0].stop()  # it stops (its hold ends); the other takes over
        for n in range(100, 150):
            await client.xadd(key, {"data": str(n)})
        await until_stored(150)
        assert await stored() == list(range(150))
    finally:
        for node in nodes:
            await node.stop()
        await store.close()
