"""An AMQP source through a TCP proxy in front of the shared RabbitMQ (never restarted itself): after a dropped
connection and a broker outage it reconnects and consumes again by itself, and every message the broker confirmed
to its publisher reaches the function (at least once, in order per routing key)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.streams.fault_scenarios import FaultedSource, blip_and_outage, delivered_into_a_dead_connection, in_order
from tests.streams.test_amqp import HOST, PORT, URL, platform, publish, rabbit, write_app

__all__ = ["rabbit"]  # the fixture, used by name


def amqp_source(tmp_path: Path, rabbit: Any) -> FaultedSource:
    connection, names = rabbit
    queue = f"tf-{uuid.uuid4().hex[:8]}"
    names.append(queue)

    def written(proxy_port: int) -> Path:
        options = f'exchange="{queue}-x", routing_key="orders.#", batch_size=10, batch_window=0.1'
        app = write_app(tmp_path, queue, options)
        toml = app.parent / "triggerfish.toml"
        toml.write_text(f'[amqp]\nurl = "{URL.replace(f":{PORT}/", f":{proxy_port}/")}"\n')
        return app

    async def send(batch: list[tuple[str, str]]) -> None:
        await publish(connection, f"{queue}-x", batch)  # straight to the broker, each awaiting its confirm

    return FaultedSource(
        "amqp", HOST, PORT, ("orders.a", "orders.b"), written, lambda app: platform(tmp_path, app), send
    )


async def test_an_amqp_source_survives_a_dropped_connection_and_a_broker_outage(tmp_path: Path, rabbit: Any) -> None:
    source = amqp_source(tmp_path, rabbit)
    assert (await blip_and_outage(source, tmp_path)).first == in_order(source, 40)


async def test_deliveries_sent_into_a_dropped_connection_come_again_first_in_order(tmp_path: Path, rabbit: Any) -> None:
    """Unacknowledged deliveries go back to their place in the queue when the connection drops: first, in order."""
    source = amqp_source(tmp_path, rabbit)
    seen = await delivered_into_a_dead_connection(source, tmp_path)
    assert seen.first == in_order(source, 30), "in order"
    assert seen.repeated == [], "each once"
