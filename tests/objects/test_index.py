"""The object metadata contract on the memory, SQLite and PostgreSQL stores (and an app's scoped view)."""

from __future__ import annotations

from tests.backends import OnMemory, OnPostgres, OnSqlite
from tests.objects.contract import ObjectIndexContract
from triggerfish.store import Store
from triggerfish.store.scoped import ScopedStore


class TestMemory(OnMemory, ObjectIndexContract):
    pass


class TestSqlite(OnSqlite, ObjectIndexContract):
    pass


class TestScopedSqlite(TestSqlite):
    async def open(self) -> Store:
        return ScopedStore(await super().open(), "app.files")


class TestPostgres(OnPostgres, ObjectIndexContract):
    pool_size = 2
