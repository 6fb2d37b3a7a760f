"""The object metadata contract on the memory, SQLite and PostgreSQL stores (and an app's scoped view)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.objects.contract import ObjectIndexContract
from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.store import Store, open_store
from triggerfish.store.scoped import ScopedStore


class TestMemory(ObjectIndexContract):
    async def open(self) -> Store:
        return await open_store("memory://")


class TestSqlite(ObjectIndexContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    async def open(self) -> Store:
        return await open_store(f"sqlite:///{self.directory / 'store.db'}")


class TestScopedSqlite(TestSqlite):
    async def open(self) -> Store:
        return ScopedStore(await super().open(), "app.files")


class TestPostgres(ObjectIndexContract):
    @pytest.fixture(autouse=True)
    async def _schema(self) -> AsyncIterator[None]:
        require_postgres()
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        yield
        await drop_schema(self.schema)

    async def open(self) -> Store:
        return await open_store(f"{POSTGRES_URL}?schema={self.schema}&pool_size=2")
