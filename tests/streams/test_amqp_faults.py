"""An AMQP source through a TCP proxy in front of the shared RabbitMQ (never restarted itself): after a dropped
connection and a broker outage it reconnects and consumes again by itself, and every message the broker confirmed
to its publisher reaches the function (at least once, in order per routing key)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from tests.streams.proxy import TcpProxy
from tests.streams.test_amqp import HOST, PORT, URL, handled, platform, publish, rabbit, wait_for, write_app

__all__ = ["rabbit"]  # the fixture, used by name


async def test_an_amqp_source_survives_a_dropped_connection_and_a_broker_outage(tmp_path: Path, rabbit: Any) -> None:
    connection, names = rabbit
    queue = f"tf-{uuid.uuid4().hex[:8]}"
    names.append(queue)
    keys = ["orders.a", "orders.b"]
    sent: list[tuple[str, str]] = []

    async def send(count: int) -> None:
        batch = [(keys[n % 2], str(n)) for n in range(len(sent), len(sent) + count)]
        await publish(connection, f"{queue}-x", batch)  # straight to the broker, each awaiting its confirm
        sent.extend(batch)

    def all_handled() -> bool:
        return {row[1] for row in handled(tmp_path)} >= {text for _, text in sent}

    async with TcpProxy(HOST, PORT) as proxy:
        options = f'exchange="{queue}-x", routing_key="orders.#", batch_size=10, batch_window=0.1'
        app = write_app(tmp_path, queue, options)
        toml = app.parent / "triggerfish.toml"
        toml.write_text(f'[amqp]\nurl = "{URL.replace(f":{PORT}/", f":{proxy.port}/")}"\n')
        async with platform(tmp_path, app) as running:
            amqp: Any = running.sources.amqp
            await send(10)
            await wait_for(all_handled)

            await proxy.disconnect()  # a network blip
            await send(10)
            await wait_for(all_handled, seconds=30)
            await wait_for(lambda: amqp.status()["ingest"].reconnects >= 1)

            outage = asyncio.create_task(proxy.restart(2.0))  # the broker goes away, then comes back
            await send(10)  # while it is away: kept in the durable queue
            await outage
            await send(10)  # after
            await wait_for(all_handled, seconds=40)
            await wait_for(lambda: amqp.status()["ingest"].connected)
            state = amqp.status()["ingest"]
    assert state.reconnects >= 2, "one reconnect for the blip, at least one for the outage"
    assert proxy.accepted >= 3, "the source connected again through the proxy each time"
    first_seen: dict[str, list[int]] = {}
    for key, text, *_ in handled(tmp_path):
        seen = first_seen.setdefault(key, [])
        if int(text) not in seen:
            seen.append(int(text))
    assert first_seen == {keys[0]: list(range(0, 40, 2)), keys[1]: list(range(1, 40, 2))}


async def test_deliveries_sent_into_a_dropped_connection_come_again_first_in_order(tmp_path: Path, rabbit: Any) -> None:
    """Unacknowledged deliveries go back to their place in the queue when the connection drops: first, in order."""
    connection, names = rabbit
    queue = f"tf-{uuid.uuid4().hex[:8]}"
    names.append(queue)
    keys = ["orders.a", "orders.b"]

    async def send(numbers: range) -> None:
        await publish(connection, f"{queue}-x", [(keys[n % 2], str(n)) for n in numbers])

    async with TcpProxy(HOST, PORT) as proxy:
        options = f'exchange="{queue}-x", routing_key="orders.#", batch_size=10, batch_window=0.1'
        app = write_app(tmp_path, queue, options)
        toml = app.parent / "triggerfish.toml"
        toml.write_text(f'[amqp]\nurl = "{URL.replace(f":{PORT}/", f":{proxy.port}/")}"\n')
        async with platform(tmp_path, app):
            await send(range(10))
            await wait_for(lambda: len(handled(tmp_path)) == 10)
            proxy.blackhole()  # the broker delivers 10..19 into a connection that no longer answers
            await send(range(10, 20))
            await proxy.disconnect()
            await send(range(20, 30))
            await wait_for(lambda: len({row[1] for row in handled(tmp_path)}) == 30, seconds=40)
    seen: dict[str, list[int]] = {}
    for key, text, *_ in handled(tmp_path):
        seen.setdefault(key, []).append(int(text))
    assert seen == {keys[0]: list(range(0, 30, 2)), keys[1]: list(range(1, 30, 2))}, "in order, each once"
