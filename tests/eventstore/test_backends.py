"""The event store contract on every backend: memory, a real SQLite file, real PostgreSQL, and a scoped view."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.eventstore.contract import EventStoreContract
from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.store import ScopedStore, Store, open_store


class TestMemory(EventStoreContract):
    async def open(self) -> Store:
        return await open_store("memory://")


class TestSqlite(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    async def open(self) -> Store:
        return await open_store(f"sqlite:///{self.directory / 'store.db'}")


class TestPostgres(EventStoreContract):
    @pytest.fixture(autouse=True)
    async def _schema(self) -> AsyncIterator[None]:
        require_postgres()
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        yield
        await drop_schema(self.schema)

    async def open(self) -> Store:
        return await open_store(f"{POSTGRES_URL}?schema={self.schema}&pool_size=8")


class TestScopedSqlite(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    async def open(self) -> Store:
        inner = await open_store(f"sqlite:///{self.directory / 'store.db'}")
        scoped = ScopedStore(inner, "app.bank")
        scoped._on_close = inner.close  # the view owns the inner store for this test
        return scoped
