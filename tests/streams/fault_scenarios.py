"""The network faults an MQTT and an AMQP source go through in the same way, through a TCP proxy in front of the
shared broker (never restarted itself): the scenarios, and what they saw, for each broker's test to judge."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.streams.proxy import TcpProxy
from tests.streams.running import handled, wait_for
from triggerfish.server.platform import Platform


@dataclass
class FaultedSource:
    """One broker's side of the scenarios."""

    #: The platform's attribute for the source ("mqtt" or "amqp"); its status names the function `ingest`.
    kind: str
    #: The broker's address, which the proxy forwards to.
    host: str
    port: int
    #: The two keys (topics, routing keys) messages are sent on, alternately.
    keys: tuple[str, str]
    #: Writes the app under `tmp_path/app` with its broker URL on the given proxy port; its path.
    write_app: Callable[[int], Path]
    #: The platform on the app, once its source subscribed.
    platform: Callable[[Path], AbstractAsyncContextManager[Platform]]
    #: Sends (key, text) pairs straight to the broker, each confirmed by it.
    publish: Callable[[list[tuple[str, str]]], Awaitable[None]]


@dataclass
class Seen:
    """What the function handled, per key: the numbers in the order they first came, and the ones that came again."""

    first: dict[str, list[int]]
    repeated: list[int]


def seen(tmp_path: Path) -> Seen:
    first: dict[str, list[int]] = {}
    repeated: list[int] = []
    for key, text, *_ in handled(tmp_path):
        numbers = first.setdefault(key, [])
        if int(text) in numbers:
            repeated.append(int(text))
        else:
            numbers.append(int(text))
    return Seen(first, repeated)


def in_order(source: FaultedSource, count: int) -> dict[str, list[int]]:
    """Numbers 0 to `count` - 1 sent alternately on the two keys, per key."""
    return {source.keys[0]: list(range(0, count, 2)), source.keys[1]: list(range(1, count, 2))}


async def blip_and_outage(source: FaultedSource, tmp_path: Path) -> Seen:
    """Ten messages; a dropped connection and ten more; a 2 s broker outage with ten sent during it and ten after.
    Asserts the source reconnected by itself each time and every message reached the function."""
    sent: list[tuple[str, str]] = []

    async def send(count: int) -> None:
        batch = [(source.keys[n % 2], str(n)) for n in range(len(sent), len(sent) + count)]
        await source.publish(batch)
        sent.extend(batch)

    def all_handled() -> bool:
        return {row[1] for row in handled(tmp_path)} >= {text for _, text in sent}

    async with TcpProxy(source.host, source.port) as proxy, source.platform(source.write_app(proxy.port)) as running:
        client: Any = getattr(running.sources, source.kind)
        await send(10)
        await wait_for(all_handled)

        await proxy.disconnect()  # a network blip
        await send(10)
        await wait_for(all_handled, seconds=30)
        await wait_for(lambda: client.status()["ingest"].reconnects >= 1)

        outage = asyncio.create_task(proxy.restart(2.0))  # the broker goes away, then comes back
        await send(10)  # while it is away: kept by the broker (a persistent session, a durable queue)
        await outage
        await send(10)  # after
        await wait_for(all_handled, seconds=40)
        await wait_for(lambda: client.status()["ingest"].connected)
        state = client.status()["ingest"]
    assert state.reconnects >= 2, "one reconnect for the blip, at least one for the outage"
    assert proxy.accepted >= 3, "the source connected again through the proxy each time"
    return seen(tmp_path)


async def delivered_into_a_dead_connection(source: FaultedSource, tmp_path: Path) -> Seen:
    """0-9 handled; the broker sends 10-19 into a connection that no longer answers; the connection dropped;
    20-29 sent. Waits until all 30 were handled."""

    async def send(numbers: range) -> None:
        await source.publish([(source.keys[n % 2], str(n)) for n in numbers])

    async with TcpProxy(source.host, source.port) as proxy, source.platform(source.write_app(proxy.port)):
        await send(range(10))
        await wait_for(lambda: len(handled(tmp_path)) == 10)
        proxy.blackhole()
        await send(range(10, 20))
        await proxy.disconnect()
        await send(range(20, 30))
        await wait_for(lambda: len({row[1] for row in handled(tmp_path)}) == 30, seconds=40)
    return seen(tmp_path)
