"""Per-target delivery: retries with backoff, the age limit, dead letters, and deliveries whose worker died."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest

from triggerfish.bus.bus import EventBus
from triggerfish.bus.delivery import dead_letter
from triggerfish.bus.rules import DeliveryRetry, Rules
from triggerfish.events.cloudevent import Event
from triggerfish.names import bus_delivery_queue
from triggerfish.store import Store


def down_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_the_defaults_are_eventbridges() -> None:
    retry = DeliveryRetry()
    assert (retry.max_event_age, retry.max_attempts) == (24 * 3600, 185)
    waits = [retry.backoff.backoff(n, rand=lambda: 0.0) for n in (1, 2, 3, 20)]
    assert waits == [1.0, 2.0, 4.0, 900.0]
    assert retry.backoff.backoff(3, rand=lambda: 1.0) == 2.0  # jitter takes up to half off


async def test_a_failed_delivery_comes_back_after_a_backoff(store: Store) -> None:
    rules = Rules(store)
    await rules.put(
        {"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"id": "w", "kind": "webhook", "name": down_url()}]}
    )
    bus = EventBus(store, rules)
    await bus.publish("default", [Event.create("t", "shop")])
    await bus.pump("default")
    assert await bus.deliverer.run_once("default") == 1
    stats = await store.queues.stats(bus_delivery_queue("default"))
    assert (stats.delayed, stats.visible) == (1, 0)  # waiting out 0.5 to 1 s
    assert await bus.deliverer.run_once("default") == 0
    await asyncio.sleep(1.1)
    [message] = await store.queues.receive(bus_delivery_queue("default"))
    assert message.receive_count == 2
    await bus.stop()


async def test_an_event_too_old_to_retry_is_dead_lettered(store: Store) -> None:
    offset = 0.0
    rules = Rules(store)
    target = {"id": "w", "kind": "webhook", "name": down_url(), "retry": {"max_event_age": 60}, "dead_letter": "dlq"}
    await rules.put({"id": "r", "pattern": {"source": ["shop"]}, "targets": [target]})
    bus = EventBus(store, rules, clock=lambda: time.time() + offset)
    [event_id] = await bus.publish("default", [Event.create("t", "shop")])
    await bus.pump("default")
    offset = 59.5  # the next wait (0.5 s or more) would take it past 60 s
    await bus.deliverer.run_once("default")
    [message] = await store.queues.receive("dlq")
    record = dead_letter(message)
    assert (record["event"]["id"], record["condition"], record["attempts"]) == (event_id, "EventAgeExceeded", 1)
    assert record["rule"] == "r"
    assert record["target"] == {"id": "w", "kind": "webhook", "name": target["name"]}
    assert message.attributes["ERROR_CODE"] == "EventAgeExceeded"
    assert message.attributes["RULE_ARN"].endswith(":rule/r")
    await bus.stop()


async def test_a_delivery_whose_worker_died_is_delivered_after_its_lease(store: Store) -> None:
    rules = Rules(store)
    await rules.put(
        {"id": "r", "pattern": {"source": ["shop"]}, "targets": [{"id": "q", "kind": "queue", "name": "out"}]}
    )
    bus = EventBus(store, rules, lease=0.3)
    [event_id] = await bus.publish("default", [Event.create("t", "shop")])
    await bus.pump("default")
    # A worker leases the delivery and dies before handing it over.
    [leased] = await store.queues.receive(bus_delivery_queue("default"), visibility_timeout=0.3)
    assert await bus.deliverer.run_once("default") == 0
    await asyncio.sleep(0.4)
    await bus.drain()
    await bus.stop()
    [message] = await store.queues.receive("out")
    assert orjson.loads(message.body)["id"] == event_id
    assert not await store.queues.ack(bus_delivery_queue("default"), leased.receipt)  # the dead worker's lease is void


async def test_one_failing_target_does_not_hold_back_the_others(store: Store) -> None:
    rules = Rules(store)
    targets = [
        {
            "id": "w",
            "kind": "webhook",
            "name": down_url(),
            "retry": {"max_attempts": 2, "backoff": {"base": 0.0, "ceiling": 0.0}},
        },
        {"id": "q", "kind": "queue", "name": "out"},
    ]
    await rules.put({"id": "r", "pattern": {"source": ["shop"]}, "targets": targets})
    bus = EventBus(store, rules)
    await bus.publish("default", [Event.create("t", "shop") for _ in range(3)])
    await bus.drain()
    await bus.stop()
    assert (await store.queues.stats("out")).visible == 3
    assert (await store.queues.stats("deliver.default.dead-letter")).visible == 3


@pytest.mark.parametrize("replayed", [False, True])
async def test_dead_letters_keep_the_event_whole(store: Store, replayed: bool) -> None:
    rules = Rules(store)
    target = {"id": "w", "kind": "webhook", "name": down_url(), "retry": {"max_attempts": 1}}
    await rules.put({"id": "r", "pattern": {"source": ["shop"]}, "targets": [target]})
    bus = EventBus(store, rules)
    event = Event.create("t", "shop", {"deep": {"list": [1, 2]}}, subject="s1")
    if replayed:
        event = event.with_extensions(replayname="again")
    await bus.publish("default", [event])
    await bus.drain()
    await bus.stop()
    [message] = await store.queues.receive("deliver.default.dead-letter")
    assert Event.from_dict(dead_letter(message)["event"]) == event
