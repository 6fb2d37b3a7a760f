"""The PostgreSQL store against the whole contract, each test in a schema of its own, dropped after."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.services import POSTGRES_URL, drop_schema, require_postgres
from tests.store.contract import FullContract
from triggerfish.store import Store, open_store


class TestPostgresStore(FullContract):
    @pytest.fixture(autouse=True)
    async def _schema(self) -> AsyncIterator[None]:
        require_postgres()
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        yield
        await drop_schema(self.schema)

    async def open(self) -> Store:
        return await open_store(f"{POSTGRES_URL}?schema={self.schema}&pool_size=4")

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
