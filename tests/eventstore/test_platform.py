"""The event store through the platform (triggerfish.testing): handlers append and read through `context.events`,
every event reaches the bus for rules, projections apply each event once with their checkpoint, upcasters and
snapshots as handlers see them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from triggerfish import App
from triggerfish.eventstore import upcasting
from triggerfish.eventstore.records import WrongExpectedVersionError
from triggerfish.names import projection_namespace
from triggerfish.testing import TestPlatform


@pytest.fixture(autouse=True)
def _no_upcasters() -> Iterator[None]:
    upcasting.clear()
    yield
    upcasting.clear()


def make_app() -> App:
    app = App("ledger")
    seen: list[Any] = []

    @app.function
    def append(event: dict[str, Any], context: Any) -> Any:
        try:
            return context.events.append(event["stream"], event["events"], expected_version=event.get("expected"))
        except WrongExpectedVersionError as exc:
            return {"conflict": exc.current}

    @app.function
    def read(event: dict[str, Any], context: Any) -> Any:
        found = context.events.read(event["stream"], backwards=event.get("backwards", False))
        return [[e.version, e.type, e.data, e.schema] for e in found]

    @app.function
    def snapshot(event: dict[str, Any], context: Any) -> Any:
        context.events.save_snapshot("acct-1", version=2, state={"balance": 7}, schema="v2")
        mine = context.events.load_snapshot("acct-1", schema="v2")
        other = context.events.load_snapshot("acct-1", schema="v1")
        return {"mine": None if mine is None else mine.state, "other": other}

    @app.on_event({"type": ["Withdrawn"], "data": {"amount": [{"numeric": [">=", 1000]}]}})
    def large(event: dict[str, Any], context: Any) -> None:
        seen.append(event)
        context.logger.info("large withdrawal %s", event["subject"])

    @app.projection("acct", batch_size=2)
    def balances(event: Any, view: Any) -> None:
        row = view.get(event.stream, {"balance": 0, "events": 0})
        sign = 1 if event.type == "Deposited" else -1
        view.put(event.stream, {"balance": row["balance"] + sign * event.data["amount"], "events": row["events"] + 1})

    app.seen = seen  # type: ignore[attr-defined]
    return app


def event(kind: str, amount: int) -> dict[str, Any]:
    return {"type": kind, "data": {"amount": amount}}


async def balance(tp: TestPlatform, stream: str) -> Any:
    record = await tp.store.kv.get(projection_namespace("balances"), stream)
    return None if record is None else orjson.loads(record.value)


async def test_handlers_append_and_read_with_expected_versions() -> None:
    async with TestPlatform(make_app()) as tp:
        first = await tp.invoke(
            "append", {"stream": "acct-1", "events": [{"type": "Deposited", "data": {"amount": 5}}], "expected": 0}
        )
        assert first["version"] == 1
        assert first["position"] == 1
        assert await tp.invoke(
            "append", {"stream": "acct-1", "events": [{"type": "Deposited", "data": {"amount": 1}}], "expected": 0}
        ) == {"conflict": 1}
        await tp.invoke("append", {"stream": "acct-1", "events": [{"type": "Withdrawn", "data": {"amount": 2}}]})
        assert await tp.invoke("read", {"stream": "acct-1", "backwards": True}) == [
            [2, "Withdrawn", {"amount": 2}, 1],
            [1, "Deposited", {"amount": 5}, 1],
        ]


async def test_every_event_is_published_and_rules_react() -> None:
    app = make_app()
    async with TestPlatform(app) as tp:
        await tp.invoke(
            "append",
            {
                "stream": "acct-9",
                "events": [
                    {"type": "Withdrawn", "data": {"amount": 5}},
                    {"type": "Withdrawn", "data": {"amount": 1500}},
                ],
            },
        )
        await tp.drain()
        published = await tp.published()
        assert [(e.type, e.subject, e.extensions.get("streamversion")) for e in published] == [
            ("Withdrawn", "acct-9", 1),
            ("Withdrawn", "acct-9", 2),
        ]
        assert published[0].source == "/ledger/eventstore/acct"
        assert [e["data"]["amount"] for e in app.seen] == [1500]  # type: ignore[attr-defined]


async def test_a_projection_applies_each_event_once_in_order_and_rebuilds() -> None:
    async with TestPlatform(make_app()) as tp:
        for amount in (10, 20, 30):
            await tp.invoke(
                "append", {"stream": "acct-1", "events": [{"type": "Deposited", "data": {"amount": amount}}]}
            )
        await tp.invoke("append", {"stream": "other-1", "events": [{"type": "Deposited", "data": {"amount": 99}}]})
        await tp.invoke("append", {"stream": "acct-2", "events": [{"type": "Withdrawn", "data": {"amount": 4}}]})
        await tp.drain()
        assert await balance(tp, "acct-1") == {"balance": 60, "events": 3}
        assert await balance(tp, "acct-2") == {"balance": -4, "events": 1}
        assert await balance(tp, "other-1") is None
        [status] = await tp.platform.projections.status()
        assert (status["position"], status["lag"], status["error"]) == (5, 0, None)
        await tp.drain()  # nothing new: nothing applied twice
        assert await balance(tp, "acct-1") == {"balance": 60, "events": 3}

        await tp.store.kv.put(projection_namespace("balances"), "stale", b"{}")
        await tp.platform.projections.rebuild("balances")
        await tp.drain()
        assert await balance(tp, "stale") is None
        assert await balance(tp, "acct-1") == {"balance": 60, "events": 3}


async def test_old_events_are_upcast_when_read() -> None:
    app = make_app()

    @app.upcaster("Deposited", 1)
    def cents(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "amount": data["amount"] * 100}

    async with TestPlatform(app) as tp:
        await tp.invoke("append", {"stream": "acct-1", "events": [{"type": "Deposited", "data": {"amount": 2}}]})
        await tp.invoke(
            "append", {"stream": "acct-1", "events": [{"type": "Deposited", "data": {"amount": 50}, "schema": 2}]}
        )
        assert await tp.invoke("read", {"stream": "acct-1"}) == [
            [1, "Deposited", {"amount": 200}, 2],
            [2, "Deposited", {"amount": 50}, 2],
        ]
        await tp.drain()
        assert await balance(tp, "acct-1") == {"balance": 250, "events": 2}


async def test_a_snapshot_under_another_schema_is_not_read() -> None:
    async with TestPlatform(make_app()) as tp:
        assert await tp.invoke("snapshot") == {"mine": {"balance": 7}, "other": None}


async def test_a_long_stream_is_read_whole_in_pages() -> None:
    app = App("pages")

    @app.function
    def count(event: Any, context: Any) -> Any:
        forwards = context.events.read("acct-1")
        backwards = context.events.read("acct-1", backwards=True)
        some = context.events.read("acct-1", start=1000, limit=3)
        return [len(forwards), forwards[-1].version, backwards[0].version, backwards[-1].version, len(backwards)] + [
            e.version for e in some
        ]

    async with TestPlatform(app) as tp:
        for first in range(0, 2500, 500):
            await tp.platform.eventstore.append("acct-1", [{"type": "Moved"}] * 500, expected_version=first)
        assert await tp.invoke("count") == [2500, 2500, 2500, 1, 2500, 1000, 1001, 1002]


async def test_a_failing_projection_stops_at_its_batch_and_says_why() -> None:
    app = App("strict")

    @app.projection("acct", batch_size=1)
    def strict(event: Any, view: Any) -> None:
        if event.data["amount"] < 0:
            raise ValueError(f"negative amount in {event.stream} version {event.version}")
        view.put(event.stream, event.data["amount"])

    async with TestPlatform(app) as tp:
        for amount in (5, -1, 7):
            await tp.platform.eventstore.append("acct-1", [event("Deposited", amount)])
        await tp.drain()
        [status] = await tp.platform.projections.status()
        assert (status["position"], status["lag"]) == (1, 2)
        assert "negative amount in acct-1 version 2" in status["error"]
        record = await tp.store.kv.get(projection_namespace("strict"), "acct-1")
        assert record is not None
        assert record.value == b"5"  # nothing after the failing event was applied


async def test_a_rule_that_appends_what_triggers_it_is_stopped_by_the_loop_guard() -> None:
    app = App("loop")

    @app.on_event({"type": ["Echoed"]})
    def echo(event: dict[str, Any], context: Any) -> None:
        context.events.append("echo-1", [{"type": "Echoed"}])

    async with TestPlatform(app) as tp:
        await tp.platform.eventstore.append("echo-1", [{"type": "Echoed"}])
        await tp.drain()
        stored = await tp.platform.eventstore.events.read_stream("echo-1", limit=1000)
        published = [e for e in await tp.published() if e.type == "Echoed"]
        # Every append is kept (they happened); the one past the hop limit is not published, so the chain ends.
        assert len(stored) == len(published) + 1
        assert 10 < len(stored) < 30
        assert await tp.store.log.read("platform.loop-stopped") != []
