"""`@app.on_change` and `context.table` through `triggerfish.testing`: the stream semantics a handler relies on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from triggerfish import App
from triggerfish.errors import DeclarationError
from triggerfish.tables.errors import ConditionFailedError
from triggerfish.testing import TestPlatform

app = App("shop")
seen: list[list[tuple[str, str, str | None]]] = []


def _status(image: dict[str, Any] | None) -> str | None:
    return None if image is None else image.get("status", {}).get("S")


@app.function
def place(event: dict[str, Any], context: Any) -> dict[str, Any]:
    orders = context.table("orders")
    try:
        orders.put(
            {"id": event["id"], "status": "NEW", "total": event.get("total", 1)},
            condition="attribute_not_exists(id)",
            publish=[context.event("order.placed", {"id": event["id"]})],
        )
    except ConditionFailedError:
        return {"placed": False}
    return {"placed": True}


@app.function
def pay(event: dict[str, Any], context: Any) -> dict[str, Any]:
    paid: dict[str, Any] = context.table("orders").update(
        {"id": event["id"]}, set={"status": "PAID"}, add={"payments": 1}
    )
    return paid


@app.function
def listing(event: dict[str, Any], context: Any) -> list[Any]:
    orders = context.table("orders")
    page = orders.scan(filter="#s = :s", names={"#s": "status"}, values={":s": event["status"]})
    return sorted(item["id"] for item in page.items)


@app.on_change("orders", batch_size=10, starting_position="TRIM_HORIZON", report_batch_item_failures=True,
               max_retries=1, on_failure="queue:unshipped")  # fmt: skip
def ship(event: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = [
        (r["eventName"], r["dynamodb"]["Keys"]["id"]["S"], _status(r["dynamodb"].get("NewImage")))
        for r in event["Records"]
    ]
    seen.append(batch)
    failures = [
        {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
        for r in event["Records"]
        if r["dynamodb"]["Keys"]["id"]["S"].startswith("poison")
    ]
    return {"batchItemFailures": failures}


async def test_handlers_write_tables_and_the_change_function_sees_each_change_in_order() -> None:
    seen.clear()
    async with TestPlatform(app) as platform:
        await platform.create_table("orders", "id")
        assert await platform.invoke("place", {"id": "o-1", "total": 42}) == {"placed": True}
        assert await platform.invoke("place", {"id": "o-1"}) == {"placed": False}
        paid = await platform.invoke("pay", {"id": "o-1"})
        assert paid == {"id": "o-1", "status": "PAID", "total": 42, "payments": 1}
        assert await platform.invoke("listing", {"status": "PAID"}) == ["o-1"]
        await platform.drain()
        published = await platform.published()
    assert [change for batch in seen for change in batch] == [("INSERT", "o-1", "NEW"), ("MODIFY", "o-1", "PAID")]
    # The outbox: the event of the write that happened, not of the one its condition refused.
    assert [event.type for event in published] == ["order.placed"]


async def test_partial_failures_retry_from_the_first_failed_record_then_go_to_the_destination() -> None:
    seen.clear()
    async with TestPlatform(app) as platform:
        await platform.create_table("orders", "id")
        for name in ("a", "poison-1", "b"):
            await platform.invoke("place", {"id": name})
        await platform.drain()
        failed = await platform.queue_messages("unshipped")
    assert [key for _, key, _ in seen[0]] == ["a", "poison-1", "b"]
    assert [key for _, key, _ in seen[1]] == ["poison-1", "b"]  # retried from the first failure on
    assert len(failed) == 1
    assert b"RetryAttemptsExhausted" in failed[0].body
    assert b'"DDBStreamBatchInfo"' in failed[0].body


filtered = App("filtered")
paid_only: list[str] = []


@filtered.function
def write(event: dict[str, Any], context: Any) -> None:
    orders = context.table("orders")
    orders.put({"id": event["id"], "status": event["status"]})


@filtered.on_change("orders", filter={"dynamodb": {"NewImage": {"status": {"S": ["PAID"]}}}})
def on_paid(event: dict[str, Any], context: Any) -> None:
    paid_only.extend(r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"])


@filtered.on_change("orders", ops=["remove"], name="on_removed")
def on_removed(event: dict[str, Any], context: Any) -> None:
    paid_only.extend("removed:" + r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"])


async def test_filters_ops_and_latest_starting_position() -> None:
    paid_only.clear()
    async with TestPlatform(filtered) as platform:
        await platform.create_table("orders", "id")
        await platform.invoke("write", {"id": "x", "status": "NEW"})
        await platform.invoke("write", {"id": "x", "status": "PAID"})
        await platform.invoke("write", {"id": "y", "status": "NEW"})
        await platform.drain()
    assert paid_only == ["x"]


def test_on_change_declarations_are_checked() -> None:
    bad = App("bad")
    with pytest.raises(DeclarationError, match="starting_position must be 'LATEST' or 'TRIM_HORIZON'"):

        @bad.on_change("orders", starting_position="EARLIEST")
        def one(event: Any, context: Any) -> None: ...

    with pytest.raises(DeclarationError, match=r'table="public\.orders"'):

        @bad.on_change("postgresql://db/shop")
        def two(event: Any, context: Any) -> None: ...

    with pytest.raises(DeclarationError, match="batch_size must be a whole number from 1 to 10,000"):

        @bad.on_change("orders", batch_size=0)
        def three(event: Any, context: Any) -> None: ...


bisecting = App("bisecting")
bisected: list[list[str]] = []


@bisecting.function
def add(event: dict[str, Any], context: Any) -> None:
    context.table("orders").batch_write(put=[{"id": key} for key in event["ids"]])


@bisecting.on_change("orders", batch_size=8, bisect_on_error=True, max_retries=3, on_failure="queue:poisoned")
def strict(event: dict[str, Any], context: Any) -> None:
    keys = [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]]
    bisected.append(keys)
    if "poison" in keys:
        raise ValueError("a poison order")


async def test_bisect_on_error_isolates_the_poison_record() -> None:
    bisected.clear()
    async with TestPlatform(bisecting) as platform:
        await platform.create_table("orders", "id")
        await platform.invoke("add", {"ids": ["a", "b", "c", "poison", "d", "e"]})
        await platform.drain()
        failed = await platform.queue_messages("poisoned")
    # Halves are tried alone until the poison record is alone; every other record is handled.
    handled = {key for batch in bisected if "poison" not in batch for key in batch}
    assert handled == {"a", "b", "c", "d", "e"}
    assert ["poison"] in bisected
    assert len(failed) == 1
    record = json.loads(failed[0].body)
    assert record["DDBStreamBatchInfo"]["batchSize"] == 1


kept = App("kept")


@kept.function
def put(event: dict[str, Any], context: Any) -> None:
    context.table(event["table"]).put({"id": event["id"]})


@kept.on_change("orders")
def consume(event: dict[str, Any], context: Any) -> None:
    pass


async def test_handled_changes_are_trimmed_after_a_day_and_unhandled_ones_kept() -> None:
    from triggerfish.names import table_stream

    async with TestPlatform(kept) as platform:
        await platform.create_table("orders", "id")
        await platform.create_table("audit", "id")  # no consumer: kept a day, as DynamoDB keeps a stream
        await platform.invoke("put", {"table": "orders", "id": "a"})
        await platform.invoke("put", {"table": "audit", "id": "a"})
        await platform.drain()
        await platform.advance(25 * 3600)
        await platform.invoke("put", {"table": "orders", "id": "b"})  # new, not yet handled
        removed = await platform.platform.changes.trim()
        log = platform.store.log
        assert removed >= 3  # orders' change, its copy in the function's partition, audit's change
        assert [r.offset for r in await log.read(table_stream("orders"))] == [2]
        assert await log.read(table_stream("audit")) == []


traced = App("traced")
records_seen: list[dict[str, Any]] = []


@traced.function
def record_order(event: dict[str, Any], context: Any) -> str:
    context.table("orders").put({"id": event["id"]})
    return str(context.traceparent)


@traced.function
def announce(event: dict[str, Any], context: Any) -> str:
    placed = context.event("order.placed", {"id": event["id"]})
    context.table("orders").put({"id": event["id"]}, publish=[placed])
    return str(context.traceparent)


@traced.on_change("orders", batch_size=10, starting_position="TRIM_HORIZON")
def react(event: dict[str, Any], context: Any) -> None:
    records_seen.extend(event["Records"])


async def test_the_change_function_continues_the_first_writers_trace_and_links_the_others() -> None:
    from triggerfish.changes.records import decode_change
    from triggerfish.names import table_stream

    records_seen.clear()
    async with TestPlatform(traced) as platform:
        await platform.create_table("orders", "id")
        writers = [await platform.invoke("record_order", {"id": name}) for name in ("a", "b", "c")]
        await platform.drain()
        [reaction] = await platform.invocations("react")
        stored = [decode_change(r.data) for r in await platform.store.log.read(table_stream("orders"))]
    assert len({writer.split("-")[1] for writer in writers}) == 3  # three invocations, three traces
    # The stored change records keep the writer's traceparent ...
    assert [change.traceparent for change in stored] == writers
    # ... and the one batch of three continues the first write's trace, a child of the writer's span, linking the
    # others (as a queue batch's invocation does).
    assert reaction.trace_id == writers[0].split("-")[1]
    assert reaction.parent_span_id == writers[0].split("-")[2]
    assert list(reaction.links) == writers[1:]
    # The record the handler is given stays DynamoDB Streams' own: no trace in it.
    assert len(records_seen) == 3
    keys = {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb", "eventSourceARN"}
    assert all(set(record) == keys for record in records_seen)
    assert "traceparent" not in json.dumps(records_seen)


async def test_the_events_a_write_publishes_are_producer_spans_of_the_writer() -> None:
    from triggerfish.observe.traces import trace_spans

    async with TestPlatform(traced) as platform:
        await platform.create_table("orders", "id")
        writer = await platform.invoke("announce", {"id": "a"})
        [published] = await platform.published()
        spans = await trace_spans(platform.store, writer.split("-")[1])
    [producer] = [span for span in spans if span.kind == "producer"]
    assert producer.name == "publish default"
    assert producer.function == "announce"
    assert producer.parent_span_id == writer.split("-")[2]
    assert published.traceparent is not None
    assert producer.span_id == published.traceparent.split("-")[2]
