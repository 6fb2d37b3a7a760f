"""The one publisher: validation on write, the loop guard, and topic messages, on a real SQLite store."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from triggerfish.bus.publisher import MAX_PUBLISH_BATCH, Publisher
from triggerfish.errors import EventTooLargeError, InvalidEventError, InvalidInputError, InvalidNameError
from triggerfish.events.cloudevent import Event
from triggerfish.loop_guard import MAX_HOPS, Origin
from triggerfish.names import LOOP_STOPPED_STREAM, bus_stream, topic_stream
from triggerfish.store import Store, open_store
from triggerfish.triggers.sns import TopicMessage, new_message


def order(**extensions: Any) -> Event:
    return Event.create("OrderPlaced", "/shop", {"id": 1}, **extensions)


async def test_publish_appends_in_order_and_reports_offsets(store: Store) -> None:
    publisher = Publisher(store)
    first, second = order(), order()
    published = await publisher.publish("orders", [first, second])
    assert [(p.id, p.offset, p.stopped) for p in published] == [(first.id, 1, False), (second.id, 2, False)]
    assert [Event.from_json(r.data) for r in await store.log.read(bus_stream("orders"))] == [first, second]


@pytest.mark.parametrize(
    ("bus", "events", "error", "message"),
    [
        ("orders", [{"id": "1"}], InvalidEventError, "events\\[0\\]"),
        ("orders", order(), InvalidInputError, "a list of events"),
        ("orders", [order()] * (MAX_PUBLISH_BATCH + 1), InvalidInputError, "at most 1000"),
        ("bad bus!", [order()], InvalidNameError, "invalid bus name"),
    ],
)
async def test_bad_publishes_store_nothing(store: Store, bus: str, events: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        await Publisher(store).publish(bus, events)
    assert await store.log.streams() == []


async def test_an_event_over_the_stores_record_limit_is_refused_before_anything_is_stored(tmp_path: Any) -> None:
    small = await open_store(f"sqlite:///{tmp_path}/small.db?max_record_bytes=600")
    try:
        fits, too_big = order(), Event.create("OrderPlaced", "/shop", {"blob": "x" * 1000})
        with pytest.raises(EventTooLargeError):
            await Publisher(small).publish("orders", [fits, too_big])
        assert await small.log.read(bus_stream("orders")) == []  # all or none
    finally:
        await small.close()


async def test_the_loop_guard_keeps_what_went_round_too_often(store: Store) -> None:
    publisher = Publisher(store)
    fine, looping = order(hopcount=MAX_HOPS), order(hopcount=MAX_HOPS + 1)
    published = await publisher.publish("orders", [fine, looping], origin=Origin("ship", "req-9"))
    assert [(p.id, p.stopped) for p in published] == [(fine.id, False), (looping.id, True)]
    assert [Event.from_json(r.data).id for r in await store.log.read(bus_stream("orders"))] == [fine.id]
    [stopped] = await store.log.read(LOOP_STOPPED_STREAM)
    kept = orjson.loads(stopped.data)
    assert (kept["op"], kept["target"], kept["function"], kept["request_id"]) == ("publish", "orders", "ship", "req-9")
    assert kept["payload"]["id"] == looping.id


async def test_topic_messages_go_through_the_same_guard(store: Store) -> None:
    publisher = Publisher(store)
    message = new_message("hello", subject="greeting")
    published = await publisher.publish_message("news", message)
    [record] = await store.log.read(topic_stream("news"))
    assert (published.offset, TopicMessage.from_json(record.data)) == (1, message)
    stopped = await publisher.publish_message("news", new_message("again", hop_count=MAX_HOPS + 1))
    assert stopped.stopped
    assert len(await store.log.read(topic_stream("news"))) == 1
    with pytest.raises(InvalidInputError, match="TopicMessage"):
        await publisher.publish_message("news", "plain text")  # type: ignore[arg-type]
