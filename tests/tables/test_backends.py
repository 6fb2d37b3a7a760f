"""The table contract on every store backend: memory, a SQLite file, PostgreSQL (a schema of its own)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.services import POSTGRES_URL, drop_schema, require_postgres
from tests.tables.contract import TableContract
from triggerfish.store import Store, open_store


class TestMemoryTables(TableContract):
    async def open(self) -> Store:
        return await open_store("memory://")


class TestSqliteTables(TableContract):
    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"

    async def open(self) -> Store:
        return await open_store(f"sqlite:///{self.path}")


class TestPostgresTables(TableContract):
    @pytest.fixture(autouse=True)
    async def _schema(self) -> AsyncIterator[None]:
        require_postgres()
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        yield
        await drop_schema(self.schema)

    async def open(self) -> Store:
        return await open_store(f"{POSTGRES_URL}?schema={self.schema}&pool_size=4")
