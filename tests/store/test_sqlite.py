"""The SQLite store against the contract, on a real file in a temp directory and real time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.store.contract import FullContract
from triggerfish.store import Store, open_store
from triggerfish.store.sqlite import SqliteStore


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
