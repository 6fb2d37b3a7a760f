"""The stores a contract suite runs on, as mixins: `class TestSqlite(OnSqlite, TableContract)` gives the
contract's `open()` a fresh store of that backend for each test (the mixin first, so its `open` is the one).
A contract that takes its store as a fixture derives from `OpensStore`."""

from __future__ import annotations

import abc
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.store import Store, open_store


class OpensStore(abc.ABC):
    """A contract suite's `store` fixture: what its backend's `open()` gives, closed after the test."""

    @abc.abstractmethod
    async def open(self) -> Store: ...

    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        store = await self.open()
        try:
            yield store
        finally:
            await store.close()


class OnMemory:
    async def open(self) -> Store:
        return await open_store("memory://")


class OnSqlite:
    """A real SQLite file in the test's own directory (`self.path`), the same file each time a test opens it."""

    @pytest.fixture(autouse=True)
    def _sqlite_file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"

    async def open(self) -> Store:
        return await open_store(f"sqlite:///{self.path}")


class OnPostgres:
    """Real PostgreSQL, in a schema of the test's own (dropped after), through a pool of `pool_size`."""

    pool_size = 4

    @pytest.fixture(autouse=True)
    async def _postgres_schema(self) -> AsyncIterator[None]:
        require_postgres()
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        yield
        await drop_schema(self.schema)

    async def open(self) -> Store:
        return await open_store(f"{POSTGRES_URL}?schema={self.schema}&pool_size={self.pool_size}")


@contextlib.asynccontextmanager
async def opened_store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A store of `backend` ("sqlite": a file under `tmp_path`; "postgresql": a schema of its own, dropped after),
    opened, and closed after."""
    async with platform_store(backend) as url:
        store = await open_store(url or f"sqlite:///{tmp_path / 'store.db'}")
        try:
            yield store
        finally:
            await store.close()


@contextlib.asynccontextmanager
async def platform_store(backend: str, pool_size: int = 4) -> AsyncIterator[str | None]:
    """The `store_url` a platform test runs on for `backend`: None (the platform's own SQLite file) for
    "sqlite"; for "postgres" (or "postgresql"), a schema of the test's own on the test PostgreSQL, dropped after."""
    if backend == "sqlite":
        yield None
        return
    assert backend in ("postgres", "postgresql"), backend
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES_URL}?schema={schema}&pool_size={pool_size}"
    finally:
        await drop_schema(schema)
