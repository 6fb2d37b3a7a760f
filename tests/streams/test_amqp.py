"""`@app.on_amqp`: settings checked at declaration, and the real platform against the RabbitMQ at 127.0.0.1:5672."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.services import require_service
from tests.streams.running import handled, subscribed_platform, wait_for
from triggerfish.app import App
from triggerfish.config import load_config
from triggerfish.errors import DeclarationError
from triggerfish.loader import describe_trigger, spec_from_dict, spec_to_dict
from triggerfish.model import AmqpTrigger, StreamSettings
from triggerfish.server.platform import Platform
from triggerfish.sources.amqp_config import AmqpURL, check_routing_key, parse_amqp_url

HOST, PORT = "127.0.0.1", 5672
URL = f"amqp://guest:guest@{HOST}:{PORT}/"


def handler(event: object, context: object) -> None:
    return None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://127.0.0.1", AmqpURL("127.0.0.1")),
        ("amqps://app:p%40ss@rabbit:5673/orders", AmqpURL("rabbit", 5673, True, "app", "p@ss", "orders")),
        ("amqp://rabbit/%2Fprod", AmqpURL("rabbit", vhost="/prod")),
        ("amqps://rabbit/", AmqpURL("rabbit", 5671, True)),
    ],
)
def test_amqp_urls(url: str, expected: AmqpURL) -> None:
    assert parse_amqp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "must be a URL"),
        ("mqtt://rabbit", "has scheme 'mqtt'; use amqp:// (TCP) or amqps:// (TLS)"),
        ("amqp://", "names no host"),
        ("amqp://rabbit/a/b", "the virtual host is one path segment"),
        ("amqp://rabbit/?heartbeat=5", "has a query or fragment"),
        ("amqp://u:secret@rabbit:99999", "cannot be read"),
    ],
)
def test_a_bad_amqp_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="the AMQP broker URL") as caught:
        parse_amqp_url(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_routing_keys() -> None:
    assert check_routing_key("readings.*.temperature") == "readings.*.temperature"
    assert check_routing_key("#") == "#"
    with pytest.raises(ValueError, match=r"'\*' and '#' must be whole words \(word 2 is 'te\*'\)"):
        check_routing_key("readings.te*")


def test_on_amqp_declares_a_trigger() -> None:
    app = App("home")
    app.on_amqp("readings", exchange="sensors", routing_key="home.#", batch_size=10)(handler)
    trigger = app.functions["handler"].triggers[0]
    assert trigger == AmqpTrigger(
        "readings", "sensors", "home.#", "topic", 500, stream_settings=StreamSettings(batch_size=10)
    )
    assert describe_trigger(trigger) == "amqp readings bound to sensors by home.# (batch 10)"
    spec = app.functions["handler"]
    assert spec_from_dict(spec_to_dict(spec)).triggers == spec.triggers


@pytest.mark.parametrize(
    ("queue", "options", "message"),
    [
        ("", {}, "the queue must be a non-empty name"),
        ("amq.mine", {}, "starts with 'amq.', which the broker keeps for its own"),
        ("q", {"exchange": "amq.topic"}, "the exchange name 'amq.topic' starts with 'amq.'"),
        ("q", {"routing_key": "a.b*"}, "must be whole words"),
        ("q", {"exchange_type": "fan"}, "exchange_type must be one of direct, fanout, topic, headers"),
        ("q", {"prefetch": 0}, "prefetch must be a whole number from 1 to 65,535"),
        ("q", {"batch_size": 0}, "batch_size must be a whole number from 1 to 10,000"),
        ("q", {"max_record_age": 10}, "max_record_age must be -1 (no limit) or from 60"),
    ],
)
def test_on_amqp_refuses_bad_arguments(queue: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        App("home").on_amqp(queue, **options)(handler)
    assert "function 'handler'" in str(caught.value)
    assert message in str(caught.value)


def test_the_amqp_table_of_triggerfish_toml(tmp_path: Path) -> None:
    (tmp_path / "triggerfish.toml").write_text(f'[amqp]\nurl = "{URL}"\n')
    assert load_config(tmp_path).amqp == {"url": URL}
    (tmp_path / "triggerfish.toml").write_text('[amqp]\nurl = "http://rabbit"\n')
    with pytest.raises(DeclarationError, match=r"\[amqp\]: url 'http://rabbit' has scheme 'http'"):
        load_config(tmp_path)
    (tmp_path / "triggerfish.toml").write_text('[amqp]\nhost = "rabbit"\n')
    with pytest.raises(DeclarationError, match=r"\[amqp\]: unknown key 'host'"):
        load_config(tmp_path)


# --- against RabbitMQ -------------------------------------------------------------------------

APP = """
import base64, json, triggerfish
app = triggerfish.App("shop")

@app.on_amqp({queue!r}, {options})
def ingest(event, context):
    rows = []
    for record in event["Records"]:
        body = record["amqp"]
        text = base64.b64decode(body["data"]).decode()
        if text == "poison":
            raise ValueError("a poison order")
        rows.append([body["routingKey"], text, body["basicProperties"].get("contentType"), len(event["Records"])])
    with open({out!r}, "a") as f:
        f.writelines(json.dumps(row) + "\\n" for row in rows)
"""


@pytest.fixture
async def rabbit() -> AsyncIterator[Any]:
    require_service("RabbitMQ", HOST, PORT)
    aio_pika = pytest.importorskip("aio_pika", reason="AMQP tests need the amqp extra: pip install 'triggerfish[amqp]'")
    connection = await aio_pika.connect(URL)
    names: list[str] = []
    try:
        yield connection, names
    finally:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
            await channel.exchange_delete(f"{name}-x")
        await connection.close()


def write_app(tmp_path: Path, queue: str, options: str = "") -> Path:
    (tmp_path / "app").mkdir(exist_ok=True)
    app = tmp_path / "app" / "app.py"
    app.write_text(APP.format(queue=queue, options=options, out=str(tmp_path / "out.jsonl")))
    (tmp_path / "app" / "triggerfish.toml").write_text(f'[amqp]\nurl = "{URL}"\n')
    return app


def platform(tmp_path: Path, app: Path) -> AbstractAsyncContextManager[Platform]:
    return subscribed_platform(tmp_path, app, "amqp")


async def publish(connection: Any, exchange: str, messages: list[tuple[str, str]]) -> None:
    import aio_pika

    channel = await connection.channel(publisher_confirms=True)
    target = await channel.get_exchange(exchange)
    for key, text in messages:
        await target.publish(aio_pika.Message(text.encode(), content_type="text/plain"), routing_key=key)


async def test_an_exchanges_messages_reach_the_function_in_batches_in_order_per_routing_key(
    tmp_path: Path, rabbit: Any
) -> None:
    connection, names = rabbit
    queue = f"tf-{uuid.uuid4().hex[:8]}"
    names.append(queue)
    options = f'exchange="{queue}-x", routing_key="orders.#", batch_size=50, batch_window=0.2, parallelization=2'
    sent = [(f"orders.store{n % 4}", str(n)) for n in range(200)]
    async with platform(tmp_path, write_app(tmp_path, queue, options)) as running:
        await publish(connection, f"{queue}-x", [*sent, ("other.thing", "not bound")])
        await wait_for(lambda: len(handled(tmp_path)) >= 200)
        status = running.sources.status()
    rows = handled(tmp_path)
    order: dict[str, list[str]] = {}
    for key, text, content_type, _ in rows:
        order.setdefault(key, []).append(text)
        assert content_type == "text/plain"
    assert order == {f"orders.store{s}": [str(n) for n in range(s, 200, 4)] for s in range(4)}
    assert max(row[3] for row in rows) > 1, "messages came one per invocation, not in batches"
    assert status["amqp"]["clients"]["ingest"]["received"] == 200


async def test_a_poison_message_goes_to_the_failure_queue_and_unacknowledged_messages_wait_in_the_queue(
    tmp_path: Path, rabbit: Any
) -> None:
    connection, names = rabbit
    queue = f"tf-{uuid.uuid4().hex[:8]}"
    names.append(queue)
    options = f'exchange="{queue}-x", bisect_on_error=True, max_retries=2, on_failure="queue:bad-orders"'
    app = write_app(tmp_path, queue, options)
    async with platform(tmp_path, app) as running:
        await publish(connection, f"{queue}-x", [("o", "1"), ("o", "poison"), ("o", "3")])
        await wait_for(lambda: [row[1] for row in handled(tmp_path)] == ["1", "3"], seconds=30)
        failed = await running.store.queues.receive("bad-orders", wait=10)
    record = json.loads(failed[0].body)
    assert record["AMQPBatchInfo"]["batchSize"] == 1
    assert record["records"][0]["eventSourceARN"] == f"arn:aws:mq:local:000000000000:queue/{queue}"
    # The queue is durable: what is published while no platform consumes waits there.
    await publish(connection, f"{queue}-x", [("o", "while-down")])
    async with platform(tmp_path, app):
        await wait_for(lambda: "while-down" in [row[1] for row in handled(tmp_path)])


async def test_messages_given_up_on_are_dead_lettered_to_an_exchange_as_rabbitmq_does(
    tmp_path: Path, rabbit: Any
) -> None:
    import aio_pika

    connection, names = rabbit
    queue = f"tf-{uuid.uuid4().hex[:8]}"
    names.extend([queue, f"{queue}-dead"])
    channel = await connection.channel()
    # What an operator sets up to read dead letters: a queue bound to the dead-letter exchange.
    dead_exchange = await channel.declare_exchange(f"{queue}-dead-x", aio_pika.ExchangeType.FANOUT, durable=True)
    dead_queue = await channel.declare_queue(f"{queue}-dead", durable=True)
    await dead_queue.bind(dead_exchange)
    options = f'exchange="{queue}-x", bisect_on_error=True, max_retries=1, dead_letter_exchange="{queue}-dead-x"'
    app = write_app(tmp_path, queue, options)
    async with platform(tmp_path, app):
        await publish(connection, f"{queue}-x", [("o.1", "1"), ("o.1", "poison"), ("o.1", "3")])
        await wait_for(lambda: [row[1] for row in handled(tmp_path)] == ["1", "3"], seconds=30)
        deadline = time.monotonic() + 20
        while (dead := await dead_queue.get(fail=False)) is None:
            assert time.monotonic() < deadline, "nothing was dead-lettered"
            await asyncio.sleep(0.05)
    await dead.ack()
    assert dead.body == b"poison"
    assert dead.routing_key == "o.1", "dead-lettered with the routing key it came with"
    assert dead.content_type == "text/plain"
    headers = dict(dead.headers)
    assert headers["x-first-death-reason"] == "rejected"
    assert headers["x-first-death-queue"] == queue
    assert headers["x-first-death-exchange"] == f"{queue}-x"
    assert "RetryAttemptsExhausted" in str(headers["x-triggerfish-reason"])
    assert "a poison order" in str(headers["x-triggerfish-reason"])
    await channel.exchange_delete(f"{queue}-dead-x")
