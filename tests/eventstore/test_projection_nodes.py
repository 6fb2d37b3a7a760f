"""Projections on two nodes sharing one store (real PostgreSQL, and SQLite): one node runs a projection at a time,
a node that stops is taken over once its lease lapses, and every event is applied exactly once whoever applied
it; a batch that a stale node commits after losing its lease is refused and applies nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.backends import OnPostgres, OnSqlite, OpensStore
from triggerfish import App
from triggerfish.eventstore.projections import LEASE, Projections
from triggerfish.eventstore.store import EventStore
from triggerfish.names import projection_namespace
from triggerfish.store import Store

NAMESPACE = projection_namespace("counts")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """Stands in for the platform's invoke: applies a batch as the projection's worker would (reads committed
    records, keeps its writes), and can be held half way to play a node that stalls."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        counts: dict[str, int] = {}
        for document in event["events"]:
            stream = document["stream"]
            if stream not in counts:
                record = await self.store.kv.get(NAMESPACE, stream)
                counts[stream] = 0 if record is None else orjson.loads(record.value)
            counts[stream] += 1
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        return {"writes": [{"kind": "kv", "op": "put", "key": k, "value": str(v)} for k, v in counts.items()]}


def specs() -> Any:
    app = App("bank")

    @app.projection("acct", batch_size=7)
    def counts(event: Any, view: Any) -> None: ...

    return app.functions


async def counted(store: Store) -> dict[str, int]:
    return {r.key: orjson.loads(r.value) for r in await store.kv.scan(NAMESPACE)}


class NodesContract(OpensStore):
    async def test_a_stalled_node_is_taken_over_and_its_late_commit_refused(self, store: Store) -> None:
        events = EventStore(store)
        for n in range(40):
            await events.append(f"acct-{n % 4}", [{"type": "Moved"}])
        clock = Clock()
        first_invoker, second_invoker = Counting(store), Counting(store)
        first = Projections(store, first_invoker, specs(), node="a", clock=clock)
        second = Projections(store, second_invoker, specs(), node="b", clock=clock)

        assert await first.step("counts") == 7
        assert await second.step("counts") == 0  # a holds the lease
        first_invoker.hold = asyncio.Event()
        stalled = asyncio.ensure_future(first.step("counts"))  # a reads 8-14 and stalls before its commit
        await first_invoker.holding.wait()

        clock.now += LEASE + 1  # a's lease lapses: b takes over
        while await second.step("counts"):
            pass
        first_invoker.hold.set()
        assert await stalled == 0  # a's late commit is refused: it applied nothing

        assert await counted(store) == {f"acct-{n}": 10 for n in range(4)}
        [status] = await second.status()
        assert (status["position"], status["node"]) == (40, "b")


class TestOnSqlite(OnSqlite, NodesContract):
    pass


class TestOnPostgres(OnPostgres, NodesContract):
    pass
