"""Broker disconnects and restarts, through a TCP proxy in front of the shared broker (never restarted itself):
the source reconnects with backoff and resubscribes by itself, and every message the broker acknowledged to its
publisher reaches the function (at least once, in order per key)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from tests.streams.proxy import TcpProxy
from tests.streams.test_nats_redis import handled, jetstream, platform, wait_for, write_app

__all__ = ["jetstream"]  # the fixture, used by name


def first_seen_per_key(rows: list[list[Any]]) -> dict[str, list[int]]:
    """Each key's numbers in the order the function first saw them (redeliveries are allowed, at least once)."""
    order: dict[str, list[int]] = {}
    for key, text, _ in rows:
        seen = order.setdefault(key, [])
        if int(text) not in seen:
            seen.append(int(text))
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
    # Every acknowledged message arrived (at least once). Order per subject is NOT asserted: a fetch in flight when
    # the connection drops leaves its messages pending on the server until AckWait, and they are redelivered after
    # later ones (seen here: 20 handled after 22..38), so JetStream's order per key is not kept across a disconnect.
    seen = first_seen_per_key(handled(tmp_path))
    assert {key: sorted(numbers) for key, numbers in seen.items()} == {
        keys[0]: list(range(0, 40, 2)),
        keys[1]: list(range(1, 40, 2)),
    }
