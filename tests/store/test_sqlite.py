"""The SQLite store against the contract, on a real file in a temp directory and real time."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import orjson
import pytest

from tests.patience import until
from tests.store.contract import FullContract
from triggerfish.errors import AtomicConflictError
from triggerfish.store import ABSENT, Store, open_store
from triggerfish.store.atomic import Put
from triggerfish.store.sqlite import SqliteEventLog, SqliteStore


class TestSqliteStore(FullContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    async def open(self) -> Store:
        return await open_store(f"sqlite:///{self.directory / 'store.db'}")

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_writes_made_in_one_turn_of_the_event_loop_share_one_commit(tmp_path: Path) -> None:
    """A request writes its record to the log and the key-value part, and its trace entry, from tasks started
    together: the writer wakes once for all of them (one transaction, one fsync), not once for the first and again
    for the rest."""
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert isinstance(store, SqliteStore)
        await store.kv.put("warm", "up", b"1")  # the tables exist; the writer is idle again
        before = store.write_stats.batches
        await asyncio.gather(
            store.log.append_many("invocations.f", [b'{"n": 1}']),
            store.kv.put_many("invocations", [("r/1/00001", b'{"n": 1}')]),
            store.kv.put_many("traces", [("t/1/1", b"{}")]),
            store.queues.send("fn.f", b'{"n": 1}'),
        )
        assert store.write_stats.batches == before + 1
        assert [r.data for r in await store.log.read("invocations.f")] == [b'{"n": 1}']
        assert (await store.kv.get("traces", "t/1/1")) is not None
    finally:
        await store.close()


async def test_a_claim_or_receive_after_this_process_wrote_goes_straight_to_the_writer(tmp_path: Path) -> None:
    """An idle consumer asks the reader before taking the writer, except right after this process appended or
    sent: then there is something to take, and asking first would add a thread round trip to an event's way."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await open_store(url)
    other = await open_store(url)  # another process writing the same file
    try:
        assert isinstance(store, SqliteStore)
        reader = store._engine.reader.stats
        assert await store.log.claim("bus.b", "g") is None  # the first look takes the writer
        assert await store.queues.receive("q") == []
        asked = reader.operations
        assert await store.log.claim("bus.b", "g") is None  # idle: the reader says nothing is there
        assert await store.queues.receive("q") == []
        assert reader.operations == asked + 2
        await store.log.append("bus.b", b"1")
        await store.queues.send("q", b"1")
        asked = reader.operations
        claim = await store.log.claim("bus.b", "g")
        assert claim is not None
        assert [r.data for r in claim.records] == [b"1"]
        assert [m.body for m in await store.queues.receive("q")] == [b"1"]
        assert reader.operations == asked  # straight to the writer
        await store.log.commit(claim)
        # Empty again; what another process writes is still found, through the reader.
        assert await store.log.claim("bus.b", "g") is None
        assert await store.queues.receive("q") == []
        await other.log.append("bus.b", b"2")
        await other.queues.send("q", b"2")
        asked = reader.operations
        claim = await store.log.claim("bus.b", "g")
        assert claim is not None
        assert [r.data for r in claim.records] == [b"2"]
        assert [m.body for m in await store.queues.receive("q")] == [b"2"]
        assert reader.operations == asked + 2
    finally:
        await other.close()
        await store.close()


def _streams_waited_for(store: SqliteStore) -> set[str]:
    """The streams a claim of this store waits for now."""
    log = store.log
    assert isinstance(log, SqliteEventLog)
    return set(log._claimers)


async def _until_waiting(store: SqliteStore, stream: str) -> None:
    await until(lambda: stream in _streams_waited_for(store), 5, f"a claim waiting for {stream}", interval=0.005)


async def test_a_waiting_claim_is_made_in_the_write_of_the_append_that_wakes_it(tmp_path: Path) -> None:
    """The consumer waiting for a stream gets its claim from the append's own transaction: no second writer
    round trip between an event's publish and its routing."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await open_store(url)
    other = await open_store(url)  # another node
    try:
        assert isinstance(store, SqliteStore)
        waiting = asyncio.create_task(store.log.claim("bus.b", "g", limit=10, lease=30, wait=10))
        await _until_waiting(store, "bus.b")
        before = store.write_stats.batches
        await store.log.append_many("bus.b", [b"1", b"2"])
        claim = await asyncio.wait_for(waiting, 5)
        assert claim is not None
        assert [r.data for r in claim.records] == [b"1", b"2"]
        assert store.write_stats.batches == before + 1  # the append and the claim: one transaction
        assert await other.log.claim("bus.b", "g") is None  # it is this consumer's
        assert await store.log.commit(claim)
        assert await store.log.position("bus.b", "g") == 2
        # A claim that stopped waiting is not made ahead: another node takes the next append.
        assert await store.log.claim("bus.b", "g", wait=0.05) is None
        assert not _streams_waited_for(store)
        await store.log.append("bus.b", b"3")
        taken = await other.log.claim("bus.b", "g")
        assert taken is not None
        assert [r.data for r in taken.records] == [b"3"]
    finally:
        await other.close()
        await store.close()


async def test_a_claim_made_ahead_for_a_consumer_that_stopped_lapses_to_another(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await open_store(url)
    other = await open_store(url)
    try:
        assert isinstance(store, SqliteStore)
        waiting = asyncio.create_task(store.log.claim("bus.b", "g", lease=0.2, wait=10))
        await _until_waiting(store, "bus.b")
        # The append and the claim made ahead commit; the consumer is gone before it takes the claim.
        appending = asyncio.ensure_future(store.log.append("bus.b", b"1"))
        waiting.cancel()
        await appending
        taken = await until(lambda: other.log.claim("bus.b", "g"), 5, "the range lapsed to the other node")
        assert [r.data for r in taken.records] == [b"1"]  # delivered all the same (at least once)
        assert await other.log.commit(taken)
    finally:
        await other.close()
        await store.close()


async def test_a_compare_and_set_with_its_spans_is_a_statement_per_row_and_the_counter_read_and_written(
    tmp_path: Path,
) -> None:
    """A workflow's checkpoint (its record written with compare-and-set, and the spans of the steps it ends) is
    the writer's hottest write: the condition is the update's own WHERE, not a read first, and the puts take their
    versions from one read of the counter, written back once before the commit (once per transaction, however many
    writes it holds: test_sqlite_versions.py). The versions stay unique and rising all the same."""
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert isinstance(store, SqliteStore)
        first = await store.kv.put("workflows", "w", b"1", if_version=ABSENT)
        assert first is not None
        statements: list[str] = []
        await store._engine.writer.submit(lambda c: c.set_trace_callback(statements.append))
        results = await store.atomic(
            [
                Put("workflows", "w", b"2", if_version=first.version),
                Put("traces", "t/1/a", b"{}"),
                Put("traces", "t/1/b", b"{}"),
            ]
        )
        await store._engine.writer.submit(lambda c: c.set_trace_callback(None))
        verbs = [statement.split(None, 1)[0].upper() for statement in statements]
        written = [verb for verb in verbs if verb in ("SELECT", "INSERT", "UPDATE", "DELETE")]
        # The counter read, the record's conditional update, the spans' inserts (executemany: one each), and the
        # counter written back.
        assert written == ["SELECT", "UPDATE", "INSERT", "INSERT", "UPDATE"]
        versions = [first.version, *(record.version for record in results)]
        assert versions == sorted(set(versions))
        with pytest.raises(AtomicConflictError):
            await store.atomic([Put("workflows", "w", b"3", if_version=first.version), Put("traces", "t/1/c", b"{}")])
        assert await store.kv.get("traces", "t/1/c") is None
        later = await store.kv.put("workflows", "w", b"4", if_version=results[0].version)
        assert later is not None
        assert later.version > versions[-1]
    finally:
        await store.close()


async def test_message_attributes_written_by_either_json_encoder_read_back_the_same(tmp_path: Path) -> None:
    """Attributes are written with orjson (compact, UTF-8 as it is); rows an earlier version wrote with the standard
    library's encoder (spaces, `\\u` escapes) read back as they were sent."""
    path = tmp_path / "store.db"
    attributes = {"triggerfish.invocation": '{"id": "é\\"x"}', "kind": "naïve ✓"}
    async with await open_store(f"sqlite:///{path}") as store:
        await store.queues.send("jobs", b"new", attributes=attributes)
        await store.queues.send("jobs", b"old", attributes={"placeholder": "-"})
    with closing(sqlite3.connect(path)) as connection, connection:
        stored = connection.execute("SELECT body, attributes FROM messages ORDER BY seq").fetchall()
        assert stored[0][1] == orjson.dumps(attributes).decode()
        connection.execute("UPDATE messages SET attributes = ? WHERE body = ?", (json.dumps(attributes), b"old"))
    async with await open_store(f"sqlite:///{path}") as store:
        received = await store.queues.receive("jobs", max_messages=2)
        assert [(m.body, dict(m.attributes)) for m in received] == [(b"new", attributes), (b"old", attributes)]
        assert await store.queues.ack_many("jobs", [m.receipt for m in received]) == [True, True]
