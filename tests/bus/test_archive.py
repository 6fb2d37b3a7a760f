"""Archive and replay: a time range re-delivered to one rule or all, marked, without moving the live checkpoint."""

from __future__ import annotations

import asyncio
import datetime
import time

import orjson
import pytest

from triggerfish.bus.archive import TRIM_MARGIN, Archive
from triggerfish.bus.bus import EventBus
from triggerfish.bus.rules import Rules
from triggerfish.errors import InvalidInputError
from triggerfish.events.cloudevent import Event
from triggerfish.names import bus_stream
from triggerfish.store import Store


async def setup(store: Store) -> tuple[EventBus, list[list[str]], list[float]]:
    """Three batches of events published at distinct times; each batch's start time is returned."""
    rules = Rules(store)
    for name in ("a", "b"):
        queue = {"id": "q", "kind": "queue", "name": f"out-{name}"}
        await rules.put({"id": name, "pattern": {"source": ["shop"]}, "targets": [queue]})
    bus = EventBus(store, rules)
    batches, starts = [], []
    for index in range(3):
        starts.append(time.time())
        batches.append(await bus.publish("default", [Event.create("t", "shop", {"batch": index}) for _ in range(2)]))
        await asyncio.sleep(0.05)
    await bus.drain()
    return bus, batches, starts


async def received(store: Store, queue: str) -> list[dict[str, object]]:
    messages = await store.queues.receive(queue, max_messages=100, visibility_timeout=600)
    for message in messages:
        await store.queues.ack(queue, message.receipt)
    return [orjson.loads(m.body) for m in messages]


async def test_replay_redelivers_a_time_range_marked_as_replayed(store: Store) -> None:
    bus, batches, starts = await setup(store)
    for queue in ("out-a", "out-b"):
        assert len(await received(store, queue)) == 6  # live delivery
    checkpoint = await bus.checkpoint("default")
    queued = await Archive(bus).replay("default", starts[1], starts[2], name="fix-1")
    await bus.drain()
    assert queued == 4
    for queue in ("out-a", "out-b"):
        got = await received(store, queue)
        assert [e["id"] for e in got] == batches[1]
        assert {e["replayname"] for e in got} == {"fix-1"}
    assert await bus.checkpoint("default") == checkpoint
    await bus.stop()


async def test_replay_to_one_rule_and_with_datetimes(store: Store) -> None:
    bus, batches, starts = await setup(store)
    await received(store, "out-a")
    await received(store, "out-b")
    start = datetime.datetime.fromtimestamp(starts[0], datetime.UTC)
    end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    assert await Archive(bus).replay("default", start, end, rule="b") == 6
    await bus.drain()
    await bus.stop()
    assert await received(store, "out-a") == []
    assert [e["id"] for e in await received(store, "out-b")] == [i for batch in batches for i in batch]


async def test_retention_trims_the_archive(store: Store) -> None:
    bus, _, _ = await setup(store)
    archive = Archive(bus)
    assert await archive.trim("default", max_age=3600) == 0
    await asyncio.sleep(0.05)
    assert await archive.trim("default", max_age=0.01) == 6
    assert await store.log.read(bus_stream("default")) == []
    await bus.stop()


@pytest.mark.parametrize(
    ("start", "end", "options", "message"),
    [
        (10.0, 10.0, {}, "must come after start"),
        (10.0, 5.0, {}, "must come after start"),
        ("yesterday", 5.0, {}, "start must be a datetime"),
        (datetime.datetime(2026, 1, 1), 5.0, {}, "timezone-aware"),
        (0.0, 5.0, {"rule": "nope"}, "no rule 'nope'"),
        (0.0, 5.0, {"name": "Has Spaces"}, "replay name"),
    ],
)
async def test_bad_replays_are_refused(
    store: Store, start: object, end: object, options: dict[str, str], message: str
) -> None:
    bus = EventBus(store, Rules(store))
    with pytest.raises(InvalidInputError, match=message):
        await Archive(bus).replay("default", start, end, **options)  # type: ignore[arg-type]


async def test_trimming_by_age_keeps_events_not_routed_yet(store: Store) -> None:
    bus, _, _ = await setup(store)
    await asyncio.sleep(TRIM_MARGIN + 0.1)
    [waiting] = await bus.publish("default", [Event.create("t", "shop")])  # published, not yet routed
    await asyncio.sleep(0.05)
    assert await Archive(bus).trim("default", max_age=0.01) == 6
    await bus.drain()
    await bus.stop()
    assert [e["id"] for e in await received(store, "out-a") if "data" not in e] == [waiting]
