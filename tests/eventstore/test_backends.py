"""The event store contract on every backend: memory, a real SQLite file, real PostgreSQL, and a scoped view."""

from __future__ import annotations

from tests.backends import OnMemory, OnPostgres, OnSqlite
from tests.eventstore.contract import EventStoreContract
from triggerfish.store import ScopedStore, Store


class TestMemory(OnMemory, EventStoreContract):
    pass


class TestSqlite(OnSqlite, EventStoreContract):
    pass


class TestPostgres(OnPostgres, EventStoreContract):
    pool_size = 8


class TestScopedSqlite(TestSqlite):
    async def open(self) -> Store:
        inner = await super().open()
        scoped = ScopedStore(inner, "app.bank")
        scoped._on_close = inner.close  # the view owns the inner store for this test
        return scoped
