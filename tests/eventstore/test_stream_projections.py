"""Projections in per-stream order on real stores (memory, a SQLite file, PostgreSQL): each stream's events in its
order with a checkpoint of its own, streams applied at once, a failing event holding up its own stream only, a
record two streams change losing neither change, a stale node's late commit refused, and a rebuild.

The projection's code runs as a worker runs it (`projection_handler` in a thread, reading the view through a
`kv_get` platform call answered by the store), so what is checked is what the platform commits.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.backends import OnMemory, OnPostgres, OnSqlite, OpensStore
from triggerfish import App
from triggerfish.errors import HandlerError
from triggerfish.eventstore.projection_handler import projection_handler
from triggerfish.eventstore.projections import Projections
from triggerfish.eventstore.store import EventStore
from triggerfish.names import projection_namespace
from triggerfish.store import Store
from triggerfish.tables.schema import KeyAttribute, TableSchema
from triggerfish.tables.table import Tables
from triggerfish.tables.values import item_to_python

NAMESPACE = projection_namespace("totals")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Worker:
    """Stands in for the platform's invoke: runs the projection's handler in a thread, as a worker process would,
    its `kv_get` calls answered by the store; a raise becomes the HandlerError an invocation gives."""

    def __init__(self, store: Store, fn: Callable[[Any, Any], None]) -> None:
        self.store = store
        self.handler = projection_handler(fn)
        self.invocations: list[tuple[str, list[int]]] = []
        self.stall: asyncio.Event | None = None
        self.invoked = asyncio.Event()

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        self.invocations.append((event["stream"], [e["version"] for e in event["events"]]))
        self.invoked.set()
        loop = asyncio.get_running_loop()
        store = self.store

        class Context:
            @staticmethod
            def call_platform(op: str, args: dict[str, Any]) -> Any:
                if op == "table":  # the GetItem a projection's table reads with
                    params = args["params"]
                    read = Tables(store).get(params["TableName"], params["Key"])
                    item = asyncio.run_coroutine_threadsafe(read, loop).result()
                    return {"result": {} if item is None else {"Item": item}}
                assert op == "kv_get"
                record = asyncio.run_coroutine_threadsafe(store.kv.get(args["namespace"], args["key"]), loop).result()
                return None if record is None else {"value": record.value.decode(), "version": record.version}

        try:
            result = await asyncio.to_thread(self.handler, event, Context())
        except Exception as exc:
            raise HandlerError(
                {"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": traceback.format_exc()}
            ) from None
        if self.stall is not None:
            await self.stall.wait()
        return result


def app_with(fn: Callable[[Any, Any], None], **options: Any) -> Any:
    app = App("bank")
    app.projection("acct", order="stream", name="totals", **options)(fn)
    return app.functions


def totals(event: Any, view: Any) -> None:
    row = view.get(event.stream, {"sum": 0, "versions": []})
    view.put(event.stream, {"sum": row["sum"] + event.data["amount"], "versions": [*row["versions"], event.version]})


async def records(store: Store) -> dict[str, Any]:
    return {r.key: orjson.loads(r.value) for r in await store.kv.scan(NAMESPACE)}


async def run_all(projections: Projections) -> None:
    while await projections.step("totals"):
        pass


class StreamProjectionContract(OpensStore):
    async def test_each_stream_gets_its_events_in_order_once_with_its_own_checkpoint(self, store: Store) -> None:
        events = EventStore(store)
        for n in range(30):
            await events.append(f"acct-{n % 3}", [{"type": "Deposited", "data": {"amount": n}}])
        await events.append("loan-1", [{"type": "Granted", "data": {"amount": 5}}])  # another category
        worker = Worker(store, totals)
        projections = Projections(store, worker, app_with(totals, batch_size=8), node="a", clock=Clock())
        await run_all(projections)

        found = await records(store)
        assert sorted(found) == ["acct-0", "acct-1", "acct-2"]
        for s in range(3):
            assert found[f"acct-{s}"] == {"sum": sum(range(s, 30, 3)), "versions": list(range(1, 11))}
        # One invocation per stream per batch, never two streams in one (so one cannot fail the other).
        assert {stream for stream, _ in worker.invocations} == {"acct-0", "acct-1", "acct-2"}
        [status] = await projections.status()
        assert (status["order"], status["position"], status["lag"], status["streams_behind"]) == ("stream", 31, 0, 0)

        # Applied again from the same place (a crash before the cursor moved): nothing is applied twice.
        await store.kv.delete("triggerfish.eventstore", "projection/totals")
        await run_all(projections)
        assert await records(store) == found

    async def test_a_failing_event_holds_up_its_own_stream_only(self, store: Store) -> None:
        events = EventStore(store)
        broken = {"acct-b": 3}

        def picky(event: Any, view: Any) -> None:
            if broken.get(event.stream) == event.version:
                raise ValueError(f"cannot apply {event.stream} version {event.version}")
            totals(event, view)

        for n in range(1, 7):
            for stream in ("acct-a", "acct-b", "acct-c"):
                await events.append(stream, [{"type": "Deposited", "data": {"amount": n}}])
        clock = Clock()
        projections = Projections(store, Worker(store, picky), app_with(picky, batch_size=5), node="a", clock=clock)
        await run_all(projections)

        found = await records(store)
        assert found["acct-a"]["versions"] == found["acct-c"]["versions"] == [1, 2, 3, 4, 5, 6]
        assert "acct-b" not in found  # held before its batch (versions 1-5) that the failing event is in
        [status] = await projections.status()
        assert (status["position"], status["lag"], status["streams_behind"]) == (18, 0, 1)
        assert status["behind"] == {"acct-b": {"version": 0, "failed": 1, "error": "cannot apply acct-b version 3"}}
        assert status["error"] == "cannot apply acct-b version 3"

        # New events keep flowing for the others, and wait for acct-b behind its failure.
        await events.append("acct-a", [{"type": "Deposited", "data": {"amount": 100}}])
        await events.append("acct-b", [{"type": "Deposited", "data": {"amount": 100}}])
        await run_all(projections)
        found = await records(store)
        assert found["acct-a"]["versions"][-1] == 7
        assert "acct-b" not in found

        del broken["acct-b"]  # the code is fixed
        await run_all(projections)
        assert "acct-b" not in await records(store)  # not tried again before its pause
        clock.now += projections.error_pause
        await run_all(projections)
        found = await records(store)
        assert found["acct-b"] == {"sum": 21 + 100, "versions": [1, 2, 3, 4, 5, 6, 7]}
        [status] = await projections.status()
        assert (status["lag"], status["streams_behind"], status["behind"], status["error"]) == (0, 0, {}, None)

    async def test_streams_are_applied_at_once_and_a_shared_record_loses_no_update(self, store: Store) -> None:
        events = EventStore(store)
        together = threading.Barrier(3, timeout=20)
        met: list[str] = []

        def counting(event: Any, view: Any) -> None:
            everything = view.get("all", 0)  # one record every stream changes
            if event.version == 1 and event.stream not in met:
                # Three streams' first batches are in flight at the same time (or this times out), and each has
                # read "all" before any of them can commit: two of them lose the race, however the threads are
                # scheduled (on a loaded machine the first could otherwise commit before the next one read).
                together.wait()
                met.append(event.stream)
            view.put("all", everything + event.data["amount"])
            totals(event, view)

        for n in range(1, 25):
            await events.append(f"acct-{n % 3}", [{"type": "Deposited", "data": {"amount": n}}])
        worker = Worker(store, counting)
        specs = app_with(counting, batch_size=100, max_concurrency=3)
        projections = Projections(store, worker, specs, node="a", clock=Clock())
        await run_all(projections)

        assert sorted(met) == ["acct-0", "acct-1", "acct-2"]
        found = await records(store)
        assert found["all"] == sum(range(1, 25))  # read-modify-write by three streams at once, none lost
        assert [found[f"acct-{s}"]["versions"] for s in range(3)] == [list(range(1, 9))] * 3
        # The losers of the race for "all" were applied again: more invocations than streams.
        assert len(worker.invocations) > 3

    async def test_a_stale_nodes_late_commit_of_a_stream_is_refused(self, store: Store) -> None:
        events = EventStore(store)
        for n in range(1, 5):
            await events.append("acct-x", [{"type": "Deposited", "data": {"amount": n}}])
        clock = Clock()
        slow_worker = Worker(store, totals)
        slow_worker.stall = asyncio.Event()
        slow = Projections(store, slow_worker, app_with(totals), node="a", clock=clock)
        fast = Projections(store, Worker(store, totals), app_with(totals), node="b", clock=clock)

        stalled = asyncio.ensure_future(slow.step("totals"))
        await slow_worker.invoked.wait()
        await run_all(fast)  # no lease is held yet: b applies the stream first
        slow_worker.stall.set()
        assert await stalled == 0  # a's commit of the same events is refused
        assert (await records(store))["acct-x"] == {"sum": 10, "versions": [1, 2, 3, 4]}

    async def test_a_rebuild_applies_every_stream_again_from_the_start(self, store: Store) -> None:
        events = EventStore(store)
        for n in range(1, 10):
            await events.append(f"acct-{n % 2}", [{"type": "Deposited", "data": {"amount": n}}])
        worker = Worker(store, totals)
        projections = Projections(store, worker, app_with(totals, batch_size=4), node="a", clock=Clock())
        await run_all(projections)
        before = await records(store)
        await store.kv.put(NAMESPACE, "stray", b"1")  # a record the rebuild must clear

        await projections.rebuild("totals")
        [status] = await projections.status()
        assert status["rebuilding"] is True
        applied = len(worker.invocations)
        await run_all(projections)
        assert await records(store) == before
        assert len(worker.invocations) > applied
        [status] = await projections.status()
        assert (status["position"], status["rebuilding"]) == (9, False)

    async def test_table_writes_commit_with_each_stream_and_parallel_streams_lose_no_update(self, store: Store) -> None:
        tables = Tables(store)
        await tables.create(TableSchema("balances", KeyAttribute("account")))
        events = EventStore(store)

        def balances(event: Any, view: Any) -> None:
            table = view.table("balances")
            for account in (event.stream, "all"):  # every stream changes the row "all" too
                row = table.get({"account": account}) or {"account": account, "balance": 0, "events": 0}
                table.put({**row, "balance": row["balance"] + event.data["amount"], "events": row["events"] + 1})

        for n in range(1, 31):
            await events.append(f"acct-{n % 3}", [{"type": "Deposited", "data": {"amount": n}}])
        worker = Worker(store, balances)
        specs = app_with(balances, batch_size=10, max_concurrency=3, tables=["balances"])
        projections = Projections(store, worker, specs, node="a", clock=Clock())
        await run_all(projections)

        rows = {row["account"]: row for row in [item_to_python(i) for i in (await tables.scan("balances")).items]}
        assert rows["all"] == {"account": "all", "balance": sum(range(1, 31)), "events": 30}
        for s in range(3):
            assert rows[f"acct-{s}"]["balance"] == sum(n for n in range(1, 31) if n % 3 == s)
        # Each commit appended its rows' changes to the table's stream (on_change functions see them), one per row.
        changes = [orjson.loads(r.data) for r in await store.log.read("table.balances", after=0, limit=1000)]
        newest_all = [c["n"] for c in changes if c["k"] == {"account": {"S": "all"}}][-1]
        assert newest_all["balance"] == {"N": str(sum(range(1, 31)))}

        await projections.rebuild("totals")
        await projections.step("totals")  # the rebuild's clearing: the table is emptied with the records
        assert (await tables.scan("balances")).items == []
        await run_all(projections)
        again = {row["account"]: row for row in [item_to_python(i) for i in (await tables.scan("balances")).items]}
        assert again == rows

    async def test_a_write_to_a_table_the_projection_does_not_declare_holds_up_its_stream(self, store: Store) -> None:
        await Tables(store).create(TableSchema("elsewhere", KeyAttribute("id")))
        events = EventStore(store)
        await events.append("acct-1", [{"type": "Deposited", "data": {"amount": 1}}])

        def stray(event: Any, view: Any) -> None:
            view.table("elsewhere").put({"id": event.stream})

        projections = Projections(store, Worker(store, stray), app_with(stray), node="a", clock=Clock())
        await run_all(projections)
        [status] = await projections.status()
        assert "writes table 'elsewhere', which it does not declare" in status["behind"]["acct-1"]["error"]
        assert (await Tables(store).scan("elsewhere")).items == []


class TestMemory(OnMemory, StreamProjectionContract):
    pass


class TestSqlite(OnSqlite, StreamProjectionContract):
    pass


class TestPostgres(OnPostgres, StreamProjectionContract):
    pool_size = 8


def test_declaring_per_stream_order() -> None:
    app = App("bank")

    @app.projection("acct", order="stream", max_concurrency=8, batch_size=10, tables=["balances"])
    def per_stream(event: Any, view: Any) -> None: ...

    from triggerfish.errors import DeclarationError
    from triggerfish.loader import spec_from_dict, spec_to_dict
    from triggerfish.model import ProjectionTrigger

    spec = app.functions["per_stream"]
    assert spec.triggers == (ProjectionTrigger("acct", 10, "stream", 8, ("balances",)),)
    assert spec_from_dict(spec_to_dict(spec)).triggers == spec.triggers
    refused: list[tuple[dict[str, Any], str]] = [
        ({"order": "random"}, "order must be 'global' or 'stream'"),
        ({"max_concurrency": 2}, "max_concurrency is for order='stream'"),
        ({"order": "stream", "max_concurrency": 0}, "max_concurrency must be from 1 to 64"),
        ({"tables": "balances"}, "tables is a list of table names"),
    ]
    for options, message in refused:
        with pytest.raises(DeclarationError, match=message):
            App("bank").projection("acct", name="p", **options)(lambda event, view: None)
