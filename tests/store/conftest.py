"""Fixtures the store's tests share."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.services import drop_schema, require_postgres
from triggerfish.store import Store, open_store
from triggerfish.store.sqlite import SqliteStore


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    """A fresh schema name on the local PostgreSQL (skipped when it is unreachable, outside CI), dropped after."""
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    await drop_schema(name)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, Store]]:
    """This process's store, and another node's on the same file."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await open_store(url)
    other = await open_store(url)
    try:
        assert isinstance(store, SqliteStore)
        yield store, other
    finally:
        await other.close()
        await store.close()
