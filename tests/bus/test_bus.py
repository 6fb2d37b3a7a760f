"""The event bus: durable publish, routing to every kind of target, one consumer per bus, and SIGKILL safety."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from triggerfish.app import App
from triggerfish.bus.bus import EventBus
from triggerfish.bus.parking import parked
from triggerfish.bus.rules import Rules
from triggerfish.errors import InvalidEventError, InvalidInputError
from triggerfish.events.cloudevent import Event
from triggerfish.loop_guard import MAX_HOPS
from triggerfish.names import BUS_NAMESPACE, LOOP_STOPPED_STREAM, bus_stream, topic_stream
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.store import Store, open_store
from triggerfish.store.atomic import Commit
from triggerfish.store.sqlite import SqliteStore
from triggerfish.triggers.sns import TopicMessage

ROOT = Path(__file__).resolve().parents[2]

app = App("bus-tests")
seen: list[tuple[str, Any]] = []
seen_lock = threading.Lock()


@app.on_event({"type": ["order.placed"]})
def ship(event: dict[str, Any]) -> None:
    with seen_lock:
        seen.append(("ship", event))


@app.on_event({"detail-type": ["order.placed"]}, shape="eventbridge")
def bill(event: dict[str, Any]) -> None:
    with seen_lock:
        seen.append(("bill", event))


def order(kind: str = "order.placed", **data: Any) -> Event:
    return Event.create(kind, "shop", {"total": 120, **data})


async def bodies(store: Store, queue: str) -> list[Any]:
    messages = await store.queues.receive(queue, max_messages=10_000, visibility_timeout=600)
    return [orjson.loads(m.body) for m in messages]


async def queued(store: Store, queue: str, count: int) -> None:
    """Wait until `queue` holds `count` messages (20 s at most)."""
    async with asyncio.timeout(20):
        while (await store.queues.stats(queue)).depth < count:  # noqa: ASYNC110  # the store has no depth event
            await asyncio.sleep(0.01)


async def test_publish_is_durable_before_it_returns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as store:
        ids = await EventBus(store, Rules(store)).publish("default", [order(), order()])
    async with await open_store(url) as store:
        records = await store.log.read(bus_stream("default"))
    assert [orjson.loads(r.data)["id"] for r in records] == ids


@pytest.mark.parametrize(
    ("bus", "events", "error", "message"),
    [
        ("no spaces", [], Exception, "invalid bus name"),
        ("default", "order", InvalidInputError, "a list of events"),
        ("default", [{"id": "1"}], InvalidEventError, r"events\[0\]"),
        ("default", [order()] * 1001, InvalidInputError, "at most 1000"),
    ],
)
async def test_bad_publishes_store_nothing(store: Store, bus: str, events: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        await EventBus(store, Rules(store)).publish(bus, events)
    assert await store.log.streams() == []


async def test_each_kind_of_target_gets_the_event(store: Store) -> None:
    rules = Rules(store)
    await rules.put(
        {
            "id": "fan-out",
            "pattern": {"source": ["shop"]},
            "targets": [
                {"id": "q", "kind": "queue", "name": "orders"},
                {"id": "t", "kind": "topic", "name": "orders"},
                {"id": "b", "kind": "bus", "name": "audit"},
                {
                    "id": "x",
                    "kind": "queue",
                    "name": "totals",
                    "shape": "eventbridge",
                    "transformer": {
                        "input_template": '{"total": <t>, "rule": <aws.events.rule-name>}',
                        "input_paths": {"t": "$.detail.total"},
                    },
                },
            ],
        }
    )
    await rules.put(
        {
            "id": "audit",
            "bus": "audit",
            "pattern": {"source": ["shop"]},
            "targets": [{"id": "q", "kind": "queue", "name": "audit"}],
        }
    )
    bus = EventBus(store, rules)
    [event_id] = await bus.publish("default", [order()])
    await bus.drain()
    await bus.stop()
    assert [b["id"] for b in await bodies(store, "orders")] == [event_id]
    [topic] = await store.log.read(topic_stream("orders"))
    assert orjson.loads(TopicMessage.from_json(topic.data).message)["id"] == event_id  # the event's JSON, as text
    [audited] = await bodies(store, "audit")
    assert (audited["id"], audited["hopcount"]) == (event_id, 1)
    assert await bodies(store, "totals") == [{"total": 120, "rule": "fan-out"}]
    assert await bus.checkpoint("default") == 1


async def test_function_targets_get_their_shape(store: Store) -> None:
    seen.clear()
    invoker = Invoker(InProcessRunner(app.functions), store)
    await invoker.start()
    bus = EventBus(store, Rules(store, app.functions), invoker=invoker)
    try:
        [event_id] = await bus.publish("default", [order()])
        await bus.publish("default", [order("order.cancelled")])
        await bus.drain()
        async with asyncio.timeout(10):
            await invoker.drain()
    finally:
        await bus.stop()
        await invoker.stop(drain=False)
    got = dict(seen)
    assert set(got) == {"ship", "bill"}
    assert got["ship"]["id"] == event_id
    assert got["ship"]["type"] == "order.placed"
    assert got["bill"]["detail-type"] == "order.placed"
    assert got["bill"]["detail"] == {"total": 120}


async def test_an_event_invocations_record_names_the_event_it_consumed_in_every_shape(store: Store) -> None:
    # The bus puts the event's id, source and type in each invocation's envelope as it queues it: the record
    # (and its trace span) says what was consumed, also when the function got an envelope or a rendering.
    rules = Rules(store, app.functions)
    await rules.put(
        {
            "id": "summary",
            "pattern": {"type": ["order.placed"]},
            "targets": [
                {
                    "id": "s",
                    "kind": "function",
                    "name": "ship",
                    "transformer": {"input_template": '{"t": <t>}', "input_paths": {"t": "$.data.total"}},
                }
            ],
        }
    )
    invoker = Invoker(InProcessRunner(app.functions), store)
    await invoker.start()
    bus = EventBus(store, rules, invoker=invoker)
    try:
        [event_id] = await bus.publish("default", [order()])
        await bus.drain()
        async with asyncio.timeout(10):
            await invoker.drain()
        await invoker.records.settled()
    finally:
        await bus.stop()
        await invoker.stop(drain=False)
    records = [*await invoker.records.query("ship"), *await invoker.records.query("bill")]
    assert len(records) == 3  # ship's own rule, bill's (EventBridge's shape), the rendered summary to ship
    for record in records:
        assert record.trigger == "event"
        assert record.consumed == {
            "messaging.system": "triggerfish",
            "messaging.operation.type": "process",
            "cloudevents.event_id": event_id,
            "cloudevents.event_source": "shop",
            "cloudevents.event_type": "order.placed",
        }


async def test_an_unknown_function_is_dead_lettered_at_once(store: Store) -> None:
    invoker = Invoker(InProcessRunner(app.functions), store)
    rules = Rules(store)
    await rules.put(
        {"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"id": "f", "kind": "function", "name": "nope"}]}
    )
    bus = EventBus(store, rules, invoker=invoker)
    await bus.publish("default", [order()])
    await bus.drain()
    await bus.stop()
    [letter] = await bodies(store, "deliver.default.dead-letter")
    assert (letter["condition"], letter["attempts"]) == ("NonRetryable", 1)


async def test_one_event_to_several_functions_some_unknown_each_gets_its_own_fate(store: Store) -> None:
    # The functions an event reaches as it was stored are built together (Invoker.messages): one that does not
    # exist still goes to the dead letters alone, the others are queued, each with the event's stored bytes.
    seen.clear()
    invoker = Invoker(InProcessRunner(app.functions), store)
    rules = Rules(store, app.functions)
    targets = [{"id": "a", "kind": "function", "name": "ship"}, {"id": "b", "kind": "function", "name": "nope"}]
    await rules.put({"id": "r", "pattern": {"source": ["shop"], "type": ["order.placed"]}, "targets": targets})
    await invoker.start()
    bus = EventBus(store, rules, invoker=invoker)
    try:
        first, second = await bus.publish("default", [order(), order(n=2)])
        await bus.drain()
        async with asyncio.timeout(10):
            await invoker.drain()
    finally:
        await bus.stop()
        await invoker.stop(drain=False)
    # ship twice per event: its own rule, and rule r.
    assert sorted(event["id"] for name, event in seen if name == "ship") == sorted([first, first, second, second])
    letters = await bodies(store, "deliver.default.dead-letter")
    assert sorted(letter["event"]["id"] for letter in letters) == sorted([first, second])


async def test_a_bus_loop_stops_at_the_hop_limit(store: Store) -> None:
    rules = Rules(store)
    await rules.put(
        {"id": "loop", "pattern": {"source": ["shop"]}, "targets": [{"id": "self", "kind": "bus", "name": "default"}]}
    )
    bus = EventBus(store, rules)
    await bus.publish("default", [order()])
    await bus.drain()
    await bus.stop()
    assert await store.log.last_offset(bus_stream("default")) == MAX_HOPS + 1
    [stopped] = await store.log.read(LOOP_STOPPED_STREAM)
    assert orjson.loads(stopped.data)["hop_count"] == MAX_HOPS + 1


async def test_two_consumers_share_a_bus_and_a_lapsed_claim_is_taken_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as first_store, await open_store(url) as second_store:
        rules = Rules(first_store)
        await rules.put(
            {"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"id": "q", "kind": "queue", "name": "out"}]}
        )
        first = EventBus(first_store, Rules(first_store), batch_size=1, claim_lease=0.3)
        second = EventBus(second_store, Rules(second_store), batch_size=1, claim_lease=0.3)
        for bus in (first, second):
            await bus.reload()
        ids = await first.publish("default", [order(n=n) for n in range(3)])
        # Each node claims its own range: the bus's events are shared out, none twice.
        assert await first.pump("default") == 1
        assert await second.pump("default") == 1
        # A third consumer claims the last event and dies before committing it...
        dead = await first_store.log.claim(bus_stream("default"), "router", limit=1, lease=0.3)
        assert dead is not None
        assert await second.pump("default") == 0  # ...so it is nobody else's yet
        await asyncio.sleep(0.4)
        assert await second.pump("default") == 1  # its lease lapsed: taken over
        await first.drain()
        await second.drain()
        assert sorted(body["id"] for body in await bodies(first_store, "out")) == sorted(ids)
        assert await first.checkpoint("default") == 3
        await first.stop()
        await second.stop()


async def test_a_bus_consumed_before_consumer_groups_starts_where_it_was(store: Store) -> None:
    rules = Rules(store)
    await rules.put(
        {"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"id": "q", "kind": "queue", "name": "out"}]}
    )
    bus = EventBus(store, rules)
    old = await bus.publish("default", [order(n=1), order(n=2)])
    # What an older server left: its checkpoint past both events, in the bus's key-value records.
    await store.kv.put(BUS_NAMESPACE, "checkpoint/default", b"2")
    new = await bus.publish("default", [order(n=3)])
    await bus.drain()
    await bus.stop()
    assert [body["id"] for body in await bodies(store, "out")] == new
    assert old  # delivered by the older server, not again


async def test_the_background_bus_delivers_live(store: Store) -> None:
    rules = Rules(store)
    await rules.put(
        {"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"id": "q", "kind": "queue", "name": "out"}]}
    )
    bus = EventBus(store, rules)
    await bus.start()
    try:
        [event_id] = await bus.publish("default", [order()])
        messages = await store.queues.receive("out", wait=5.0)
    finally:
        await bus.stop()
    assert [orjson.loads(m.body)["id"] for m in messages] == [event_id]


async def test_the_background_bus_queues_invocations_in_log_order_range_after_range(store: Store) -> None:
    # The consumer claims and matches the next range while the last one's write commits; the writes are still
    # stored one after another, so a function's queue holds its invocations in the order of the log.
    invoker = Invoker(InProcessRunner(app.functions), store)  # not started: the invocations stay queued
    bus = EventBus(store, Rules(store, app.functions), invoker=invoker, batch_size=3)
    await bus.start()
    ids: list[str] = []
    try:
        for n in range(10):
            ids += await bus.publish("default", [order(n=3 * n + k) for k in range(3)][: 1 + n % 3])
        await queued(store, "fn.ship", len(ids))
    finally:
        await bus.stop()
    messages = await store.queues.receive("fn.ship", max_messages=100)
    assert [orjson.loads(m.body)["id"] for m in messages] == ids
    assert await bus.checkpoint("default") == len(ids)


async def test_a_range_whose_write_failed_is_consumed_again_when_its_claim_ends(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoker = Invoker(InProcessRunner(app.functions), store)
    bus = EventBus(store, Rules(store, app.functions), invoker=invoker, claim_lease=0.5)
    atomic, failures = store.atomic, [RuntimeError("the disk is full")]

    async def failing_once(writes: Any) -> Any:
        if failures and any(isinstance(write, Commit) for write in writes):  # the consumer's write, not a publish's
            raise failures.pop()
        return await atomic(writes)

    monkeypatch.setattr(store, "atomic", failing_once)
    [first] = await bus.publish("default", [order(n=1)])  # not started yet: appended, for the consumer to route
    await bus.start()
    try:
        await queued(store, "fn.ship", 1)
        [second] = await bus.publish("default", [order(n=2)])
        await queued(store, "fn.ship", 2)
    finally:
        await bus.stop()
    assert not failures
    messages = await store.queues.receive("fn.ship", max_messages=10)
    assert sorted(orjson.loads(m.body)["id"] for m in messages) == sorted([first, second])  # each once
    assert await bus.checkpoint("default") == 2


async def test_events_from_context_publish_are_routed_too(store: Store) -> None:
    rules = Rules(store)
    await rules.put(
        {"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"id": "q", "kind": "queue", "name": "out"}]}
    )
    # What StorePlatform appends for context.publish: the CloudEvent JSON with its hop count.
    await store.log.append(bus_stream("default"), orjson.dumps({**order().to_dict(), "hopcount": 3}))
    await store.log.append(bus_stream("default"), b"not an event")
    bus = EventBus(store, rules)
    await bus.drain()
    await bus.stop()
    [message] = await store.queues.receive("out")
    assert message.attributes["triggerfish.hopcount"] == "3"
    assert await bus.checkpoint("default") == 2  # the unreadable record is not retried forever...
    [kept] = await parked(store.log)  # ...nor dropped: it is parked, with where it was and why
    assert (kept.stream, kept.offset, kept.data) == (bus_stream("default"), 2, b"not an event")
    assert "bus 'default': not a readable CloudEvent" in kept.reason
    assert kept.to_dict()["data"] == "not an event"


@pytest.mark.slow
async def test_sigkill_during_a_publish_burst_loses_no_acknowledged_event(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bus.crash_publisher",
        str(path),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    try:
        while len(acknowledged) < 400:
            line = await child.stdout.readline()
            assert line, "the publisher exited before the burst"
            acknowledged.append(line.decode().strip())
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    async with await open_store(f"sqlite:///{path}") as store:
        rules = Rules(store)
        await rules.load()  # the rule the child added, from the store
        bus = EventBus(store, rules, lease=1.0)
        async with asyncio.timeout(60):
            # Polling: the state is a dead process's claims and leases, which nothing here can signal: they lapse.
            while True:
                await bus.drain()
                position = await bus.checkpoint("default")
                depth = (await store.queues.stats("deliver.default")).depth
                if position == await store.log.last_offset(bus_stream("default")) and not depth:
                    break
                await asyncio.sleep(0.2)
        await bus.stop()
        for queue in ("out-a", "out-b"):
            delivered = {body["id"] for body in await bodies(store, queue)}
            missing = set(acknowledged) - delivered
            assert not missing, f"{len(missing)} acknowledged events never reached {queue}"


async def test_two_servers_on_one_store_deliver_every_event(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with await open_store(url) as first_store, await open_store(url) as second_store:
        await Rules(first_store).put(
            {"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"id": "q", "kind": "queue", "name": "out"}]}
        )
        servers = []
        for store in (first_store, second_store):
            rules = Rules(store)
            servers.append(EventBus(store, rules))
            await servers[-1].start()
        try:
            ids = []
            for index in range(20):
                ids += await servers[index % 2].publish("default", [order(n=index)])
            got: set[str] = set()
            async with asyncio.timeout(10):
                while got != set(ids):
                    got |= {
                        orjson.loads(m.body)["id"]
                        for m in await first_store.queues.receive("out", max_messages=100, wait=1.0)
                    }
        finally:
            for server in servers:
                await server.stop()


async def test_a_rule_added_by_another_server_takes_effect(store: Store) -> None:
    bus = EventBus(store, Rules(store), rules_refresh=0.1)
    await bus.start()
    try:
        # Another server's control API adds the rule, through its own Rules on the same store.
        await Rules(store).put(
            {"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"id": "q", "kind": "queue", "name": "out"}]}
        )
        await asyncio.sleep(0.3)
        [event_id] = await bus.publish("default", [order()])
        messages = await store.queues.receive("out", wait=5.0)
    finally:
        await bus.stop()
    assert [orjson.loads(m.body)["id"] for m in messages] == [event_id]


async def test_a_running_bus_routes_what_this_process_publishes_in_the_publish_write(store: Store) -> None:
    """On SQLite the events, their invocations and the router group's move past them are one transaction: once
    the publish returns, the invocation is queued and the consumer has nothing left to claim or to write."""
    assert isinstance(store, SqliteStore)
    invoker = Invoker(InProcessRunner(app.functions), store)
    bus = EventBus(store, Rules(store, app.functions), invoker=invoker)
    await bus.start()
    try:
        await bus.publish("default", [order(n=0)])  # a new bus: its group has no place yet, and routes from offset 1
        assert (await store.queues.stats("fn.ship")).depth == 1  # queued by the publish's own write
        assert await bus.checkpoint("default") == 1
        await until_checkpoint(bus, 1)
        writes = store.write_stats.operations
        [routed] = await bus.publish("default", [order(n=1)])
        # Already queued, and the group past it, with no consumer write in between.
        assert (await store.queues.stats("fn.ship")).depth == 2
        assert (await store.queues.stats("fn.bill")).depth == 2
        assert await bus.checkpoint("default") == 2
        assert store.write_stats.operations == writes + 1  # the publish's one write (no lease ahead: no dispatcher)
        assert bus.matches["default", "ship"] == 2
    finally:
        await bus.stop()
    messages = await store.queues.receive("fn.ship", max_messages=10)
    assert routed in {orjson.loads(m.body)["id"] for m in messages}


async def test_a_routed_publish_queues_what_the_consumer_would_for_an_event_built_in_code(tmp_path: Path) -> None:
    """The publisher's route uses the events it has rather than building them again from their records: what it
    queues is what the consumer queues for the same event, also for data holding a tuple (a list in its JSON),
    rendered by a transformer whose path steps into it, and for a target that is not a function."""
    event = Event.create("order.placed", "shop", {"items": ("fish-food", "net"), "total": 12})
    rule = {
        "id": "first-item",
        "pattern": {"source": ["shop"], "data": {"items": ["net"]}},
        "targets": [
            {
                "id": "f",
                "kind": "function",
                "name": "ship",
                "transformer": {"input_template": '{"first": <first>}', "input_paths": {"first": "$.data.items[0]"}},
            },
            {"id": "q", "kind": "queue", "name": "orders"},
        ],
    }
    queued_by: dict[str, tuple[list[Any], list[Any]]] = {}
    for way in ("routed", "consumed"):
        opened = await open_store(f"sqlite:///{tmp_path / way}.db")
        try:
            rules = Rules(opened, app.functions)
            await rules.put(rule)
            bus = EventBus(opened, rules, invoker=Invoker(InProcessRunner(app.functions), opened))
            if way == "routed":
                await bus.start()
            try:
                await bus.publish("default", [event])
                if way == "consumed":
                    await bus.drain()  # the consumer claims and delivers what was appended
                assert bus.matches["default", "first-item"] == 1
                assert await bus.checkpoint("default") == 1
                await bus.deliverer.run_once("default")  # the queue target's delivery, from `deliver.default`
            finally:
                await bus.stop()
            invocations = await opened.queues.receive("fn.ship", max_messages=10, visibility_timeout=600)
            queued_by[way] = ([orjson.loads(m.body) for m in invocations], await bodies(opened, "orders"))
        finally:
            await opened.close()
    assert queued_by["routed"] == queued_by["consumed"]
    assert {"first": "fish-food"} in queued_by["routed"][0]  # (and the event itself, to ship's own rule)
    assert [body["data"]["items"] for body in queued_by["routed"][1]] == [["fish-food", "net"]]


async def test_a_publish_behind_the_consumer_is_left_to_it_in_order(store: Store) -> None:
    """While the router group holds a range it has not committed, a publish routes nothing: the consumer delivers
    the events once each, after the range before them."""
    invoker = Invoker(InProcessRunner(app.functions), store)
    rules = Rules(store, app.functions)
    bus = EventBus(store, rules, invoker=invoker)
    await bus.publish("default", [order(n=0)])  # not started: appended, not routed
    held = await store.log.claim(bus_stream("default"), "router", lease=30)  # another node's consumer holds it
    assert held is not None
    await bus.start()
    try:
        await bus.publish("default", [order(n=1)])
        assert (await store.queues.stats("fn.ship")).depth == 0  # not routed: offset 1 is not committed
        assert await store.log.commit(held) is True  # that node routed offset 1 (nothing, here) and committed
        await queued(store, "fn.ship", 1)
    finally:
        await bus.stop()
    [message] = await store.queues.receive("fn.ship", max_messages=10)
    assert orjson.loads(message.body)["data"]["n"] == 1
    assert await bus.checkpoint("default") == 2


async def until_checkpoint(bus: EventBus, offset: int) -> None:
    async with asyncio.timeout(20):
        while await bus.checkpoint("default") < offset:  # noqa: ASYNC110  # no event for the group's position
            await asyncio.sleep(0.01)
