"""`TestPlatform.mqtt_publish`: MQTT handlers tested without a broker, through the same stream consumer."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from triggerfish import App
from triggerfish.errors import InvalidInputError
from triggerfish.testing import SyncTestPlatform, TestPlatform

app = App("home")
seen: list[list[tuple[str, str]]] = []


@app.on_mqtt("home/+/temperature", batch_size=3, report_batch_item_failures=True, max_retries=1,
             on_failure="queue:unreadable")  # fmt: skip
def readings(event: dict[str, Any], context: object) -> dict[str, Any]:
    batch = [(r["mqtt"]["topic"], base64.b64decode(r["mqtt"]["data"]).decode()) for r in event["Records"]]
    seen.append(batch)
    failures = [
        {"itemIdentifier": r["mqtt"]["sequenceNumber"]}
        for r in event["Records"]
        if not base64.b64decode(r["mqtt"]["data"]).decode().replace(".", "").isdigit()
    ]
    return {"batchItemFailures": failures}


async def test_messages_published_in_a_test_arrive_in_batches_with_partial_failures_and_destinations() -> None:
    seen.clear()
    async with TestPlatform(app) as platform:
        assert await platform.mqtt_publish("home/kitchen/temperature", "21.5") == 1
        assert await platform.mqtt_publish("home/attic/humidity", "40") == 0
        for text in ("22.0", "oops", "23.5"):
            await platform.mqtt_publish("home/kitchen/temperature", text)
        await platform.drain()
        failed = await platform.queue_messages("unreadable")
    assert seen[0] == [("home/kitchen/temperature", t) for t in ("21.5", "22.0", "oops")]
    # The batch from the first failure on came again; then the next batch; the failure ran out of retries.
    assert [text for _, text in seen[1]] == ["oops"]
    assert [text for batch in seen[2:] for _, text in batch] == ["23.5"]
    record = failed[0]
    assert b'"condition":"RetryAttemptsExhausted"' in record.body
    assert b"MQTTBatchInfo" in record.body


def test_sync_test_platform_and_bad_topics() -> None:
    with SyncTestPlatform(app) as platform:
        with pytest.raises(InvalidInputError, match="is a filter; a message is published to a topic name"):
            platform.mqtt_publish("home/+/temperature", "1")
        with pytest.raises(InvalidInputError, match="'#' must be a whole level"):
            platform.mqtt_publish("home/#/x", "1")
        with pytest.raises(InvalidInputError, match="takes a str or bytes payload"):
            platform.mqtt_publish("home/a/temperature", 3)  # type: ignore[arg-type]


orders = App("shop")
taken: list[list[str]] = []


@orders.on_amqp("orders", batch_size=10)
def take(event: dict[str, Any], context: object) -> None:
    taken.append([base64.b64decode(r["amqp"]["data"]).decode() for r in event["Records"]])
    assert {r["amqp"]["routingKey"] for r in event["Records"]} == {"orders.eu"}


async def test_amqp_messages_published_in_a_test_arrive_in_batches() -> None:
    taken.clear()
    async with TestPlatform(orders) as platform:
        for n in range(3):
            assert await platform.amqp_publish("orders", f"order-{n}", routing_key="orders.eu") == 1
        assert await platform.amqp_publish("refunds", "r-1") == 0
        await platform.drain()
        with pytest.raises(InvalidInputError, match="takes a str or bytes body"):
            await platform.amqp_publish("orders", 5)  # type: ignore[arg-type]
    assert taken == [["order-0", "order-1", "order-2"]]


async def test_handled_records_are_trimmed_a_day_later_and_waiting_ones_never() -> None:
    seen.clear()
    async with TestPlatform(app) as platform:
        for n in range(3):
            await platform.mqtt_publish("home/kitchen/temperature", str(n))
        await platform.drain()
        await platform.advance(25 * 3600)
        await platform.mqtt_publish("home/kitchen/temperature", "waiting")
        await platform.advance(25 * 3600)  # moving the clock runs it too
        await platform.mqtt_publish("home/attic/temperature", "not yet handled")
        assert await platform.platform.maintain() == 4
        stream = "source.mqtt.readings.0"
        left = await platform.store.log.read(stream)
    assert [record.offset for record in left] == [5]


filtered = App("hot")
hot: list[dict[str, Any]] = []


@filtered.on_mqtt(
    "rooms/+/reading",
    filter=[{"data": {"celsius": [{"numeric": [">", 30]}]}}, {"topic": [{"suffix": "/sauna/reading"}]}],
)
def alarms(event: dict[str, Any], context: object) -> None:
    hot.extend(json.loads(base64.b64decode(r["mqtt"]["data"])) for r in event["Records"])


async def test_filter_patterns_let_through_only_matching_records_and_the_rest_are_skipped() -> None:
    hot.clear()
    async with TestPlatform(filtered) as platform:
        for room, celsius in (("kitchen", 21), ("attic", 35), ("sauna", 28), ("cellar", 12)):
            await platform.mqtt_publish(f"rooms/{room}/reading", json.dumps({"celsius": celsius}))
        await platform.mqtt_publish("rooms/garage/reading", "not json at all")
        await platform.drain()
        position = await platform.store.log.position("source.mqtt.alarms.0", "stream-consumer")
    assert hot == [{"celsius": 35}, {"celsius": 28}]
    assert position == 5, "filtered-out records still move the checkpoint"


dead_letters = App("shop")


@dead_letters.on_amqp("payments", bisect_on_error=True, max_retries=2, dead_letter_exchange="payments-dead")
def pay(event: dict[str, Any], context: object) -> None:
    if any(base64.b64decode(r["amqp"]["data"]) == b"poison" for r in event["Records"]):
        raise ValueError("a poison payment")


async def test_amqp_messages_given_up_on_are_dead_lettered_in_a_test() -> None:
    async with TestPlatform(dead_letters) as platform:
        for body in ("p-1", "poison", "p-3"):
            await platform.amqp_publish("payments", body, routing_key="payments.eu")
        await platform.drain()
        assert platform.amqp_dead_lettered("payments-dead") == [b"poison"]
