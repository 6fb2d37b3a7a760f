"""`@app.on_stream`: the built-in partitioned stream, with windows, IoT rules, to_bus and starting positions,
through `triggerfish.testing` (the same consumer the platform runs)."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest

from triggerfish import App
from triggerfish.errors import DeclarationError, InvalidInputError
from triggerfish.testing import TestPlatform

app = App("home")
seen: list[tuple[str, int]] = []
windows: list[dict[str, Any]] = []


def _data(record: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(record["kinesis"]["data"]))


@app.on_stream("readings", partition_key="device", batch_size=10, parallelization=3)
def ingest(event: dict[str, Any], context: Any) -> None:
    for record in event["Records"]:
        seen.append((record["kinesis"]["partitionKey"], _data(record)["n"]))


@app.on_stream("readings", partition_key="device", parallelization=3, window=60)
def averages(event: dict[str, Any], context: Any) -> dict[str, Any]:
    state = dict(event["state"])
    for record in event["Records"]:
        reading = _data(record)
        state["sum"] = state.get("sum", 0) + reading["t"]
        state["count"] = state.get("count", 0) + 1
    if event["isFinalInvokeForWindow"]:
        windows.append({"window": event["window"], "state": state, "shard": event["shardId"]})
    return {"state": state}


@app.function()
def produce(event: dict[str, Any], context: Any) -> Any:
    return context.streams.put("readings", event)


async def test_records_put_in_a_test_or_by_a_function_reach_every_reader_in_order_per_key() -> None:
    seen.clear()
    async with TestPlatform(app) as platform:
        for n in range(30):
            await platform.stream_put("readings", {"device": f"d{n % 4}", "n": n, "t": 20})
        placed = await platform.invoke("produce", {"device": "d1", "n": 30, "t": 20})
        await platform.drain()
    assert placed["sequenceNumber"]
    assert placed["partition"].startswith("partition-")
    by_key: dict[str, list[int]] = {}
    for key, number in seen:
        by_key.setdefault(key, []).append(number)
    expected = {f"d{d}": [n for n in range(30) if n % 4 == d] for d in range(4)}
    expected["d1"].append(30)
    assert by_key == expected


async def test_a_tumbling_window_carries_its_state_and_is_told_when_it_closes() -> None:
    windows.clear()
    async with TestPlatform(app) as platform:
        for t in (10, 20, 30):
            await platform.stream_put("readings", {"device": "d1", "n": 0, "t": t})
        await platform.drain()
        assert windows == [], "the window is still open"
        await platform.advance(61)
        await platform.drain()
        await platform.stream_put("readings", {"device": "d1", "n": 0, "t": 99})
        await platform.drain()
    assert len(windows) == 1
    closed = windows[0]
    assert closed["state"] == {"sum": 60, "count": 3}
    start, end = closed["window"]["start"], closed["window"]["end"]
    assert start.endswith(":00Z")
    assert end.endswith(":00Z")
    assert start < end


rules = App("rules")
hot: list[Any] = []


@rules.on_mqtt("home/+/temperature", rule="SELECT temperature, topic(2) AS room FROM 'home/+/temperature' "
               "WHERE temperature > 30")  # fmt: skip
def alerts(event: dict[str, Any], context: Any) -> None:
    hot.extend(json.loads(base64.b64decode(r["mqtt"]["data"])) for r in event["Records"])


@rules.on_mqtt("devices/#", to_bus=True)
def bridge(event: dict[str, Any], context: Any) -> None:
    raise AssertionError("records sent to a bus do not invoke the function")


routed: list[Any] = []


@rules.on_event({"type": ["mqtt.record"], "data": {"on": [True]}})
def lamp_on(event: dict[str, Any], context: Any) -> None:
    routed.append((event["subject"], event["data"]))


async def test_an_iot_rule_filters_and_reshapes_records_and_to_bus_publishes_cloudevents() -> None:
    hot.clear()
    routed.clear()
    async with TestPlatform(rules) as platform:
        await platform.mqtt_publish("home/kitchen/temperature", json.dumps({"temperature": 31, "humidity": 40}))
        await platform.mqtt_publish("home/attic/temperature", json.dumps({"temperature": 20}))
        await platform.mqtt_publish("home/hall/temperature", b"not json")
        await platform.mqtt_publish("devices/lamp/state", json.dumps({"on": True}))
        await platform.drain()
        events = await platform.published("default")
    assert hot == [{"temperature": 31, "room": "kitchen"}]
    [event] = events
    assert (event.type, event.subject, event.data) == ("mqtt.record", "devices/lamp/state", {"on": True})
    assert event.source == "arn:aws:iot:local:000000000000:topicfilter/devices/#"
    assert routed == [("devices/lamp/state", {"on": True})], "a bus rule routes the broker's record"


def test_bad_stream_declarations() -> None:
    def handler(event: Any, context: Any) -> None:
        return None

    with pytest.raises(DeclarationError, match="partition_key must name a field"):
        App("a").on_stream("readings", partition_key="a-b")(handler)
    with pytest.raises(DeclarationError, match=r"unknown function 'avg' at 7; supported: abs"):
        App("a").on_mqtt("x/#", rule="SELECT avg(t) AS a FROM 'x/#'")(handler)
    with pytest.raises(DeclarationError, match="to_bus and window do not go together"):
        App("a").on_stream("r", partition_key="k", to_bus=True, window=60)(handler)


async def test_puts_that_cannot_be_placed_say_why() -> None:
    async with TestPlatform(app) as platform:
        with pytest.raises(InvalidInputError, match=r"no function reads stream 'other'.*streams read now: readings"):
            await platform.stream_put("other", {"device": "d1"})
        with pytest.raises(InvalidInputError, match="record 0: no partition key: it has no string or number field"):
            await platform.stream_put("readings", {"n": 1})
        placed = await platform.stream_put("readings", {"n": 1}, key="d9")
    assert placed["partition"].startswith("partition-")


brokers = App("brokers")
from_brokers: list[tuple[str, str]] = []


@brokers.on_nats("orders.>", batch_size=5)
def orders(event: dict[str, Any], context: Any) -> None:
    from_brokers.extend(("nats", base64.b64decode(r["nats"]["data"]).decode()) for r in event["Records"])


@brokers.on_redis_stream("readings")
def readings(event: dict[str, Any], context: Any) -> None:
    from_brokers.extend(("redis", base64.b64decode(r["redis"]["data"]).decode()) for r in event["Records"])


async def test_nats_and_redis_functions_are_tested_without_a_server() -> None:
    from_brokers.clear()
    async with TestPlatform(brokers) as platform:
        assert await platform.nats_publish("orders.eu.created", '{"id": 1}') == 1
        assert await platform.nats_publish("invoices.eu", "x") == 0
        assert await platform.redis_xadd("readings", {"device": "d1", "t": "21.5"}) == 1
        assert await platform.redis_xadd("readings", {"data": "raw"}) == 1
        with pytest.raises(InvalidInputError, match="is a filter; a message is published to a subject"):
            await platform.nats_publish("orders.*", "x")
        await platform.drain()
    assert sorted(from_brokers) == [
        ("nats", '{"id": 1}'),
        ("redis", "raw"),
        ("redis", '{"device":"d1","t":"21.5"}'),
    ]


positions = App("positions")
from_positions: list[int] = []
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


@positions.on_stream(
    "ticks", partition_key="k", starting_position="AT_TIMESTAMP", starting_position_timestamp=START.timestamp() + 50
)
def after_fifty(event: dict[str, Any], context: Any) -> None:
    from_positions.extend(_data(r)["n"] for r in event["Records"])


async def test_at_timestamp_starts_at_the_first_record_stored_at_or_after_it() -> None:
    from_positions.clear()
    async with TestPlatform(positions, start=START) as platform:
        await platform.stream_put("ticks", {"k": "a", "n": 1})
        await platform.advance(60)
        await platform.stream_put("ticks", {"k": "a", "n": 2})
        await platform.stream_put("ticks", {"k": "a", "n": 3})
        await platform.drain()
    assert from_positions == [2, 3]


def test_where_nats_and_redis_consumers_start() -> None:
    from triggerfish.sources.nats import NatsSubscription, consumer_config
    from triggerfish.sources.redis_streams import RedisStreamSubscription, group_start

    def nats(position: str, stamp: float | None = None) -> Any:
        return consumer_config(NatsSubscription("f", "o.>", "d", starting_position=position, starting_timestamp=stamp))

    assert nats("TRIM_HORIZON").deliver_policy.value == "all"
    assert nats("LATEST").deliver_policy.value == "new"
    at = nats("AT_TIMESTAMP", 1767225600.0)
    assert (at.deliver_policy.value, at.opt_start_time) == (
        "by_start_time",
        datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    )
    assert nats("TRIM_HORIZON").ack_wait == 30.0

    def redis(position: str, stamp: float | None = None) -> str:
        return group_start(RedisStreamSubscription("f", "s", "g", starting_position=position, starting_timestamp=stamp))

    assert (redis("TRIM_HORIZON"), redis("LATEST")) == ("0", "$")
    assert redis("AT_TIMESTAMP", 1767225600.0) == "1767225599999-18446744073709551615"


traced = App("traced")
read_records: list[dict[str, Any]] = []


@traced.function()
def put_reading(event: dict[str, Any], context: Any) -> str:
    context.streams.put("readings", event)
    return str(context.traceparent)


@traced.on_stream("readings", partition_key="device", batch_size=10)
def read_readings(event: dict[str, Any], context: Any) -> None:
    read_records.extend(event["Records"])


async def test_a_batch_continues_the_first_putters_trace_and_links_the_others() -> None:
    read_records.clear()
    async with TestPlatform(traced) as platform:
        putters = [await platform.invoke("put_reading", {"device": "d1", "n": n}) for n in range(3)]
        await platform.drain()
        [reading] = await platform.invocations("read_readings")
    assert reading.trace_id == putters[0].split("-")[1]
    assert reading.parent_span_id == putters[0].split("-")[2]
    assert list(reading.links) == putters[1:]
    # The Kinesis-shaped records the reader is given show no trace.
    assert len(read_records) == 3
    assert all(set(record["kinesis"]) == {"partitionKey", "sequenceNumber", "data", "approximateArrivalTimestamp"}
               for record in read_records)  # fmt: skip
