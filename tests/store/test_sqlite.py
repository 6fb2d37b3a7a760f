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
