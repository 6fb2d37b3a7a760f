"""The blob backend contract on the local directory and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.backends import OnPostgres
from tests.objects.blob_contract import BlobBackendContract
from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.objects.blob_backend import BlobBackend, blob_backend
from triggerfish.objects.blobs import Blobs
from triggerfish.store import open_store
from triggerfish.store.scoped import ScopedStore


class TestDirectory(BlobBackendContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.root = tmp_path / "objects"

    async def backend(self) -> AsyncIterator[BlobBackend]:
        yield Blobs(self.root)


class TestPostgres(OnPostgres, BlobBackendContract):
    pool_size = 2

    async def backend(self) -> AsyncIterator[BlobBackend]:
        store = await self.open()
        try:
            yield blob_backend(ScopedStore(store, "app.files"), Path("/nonexistent"))
        finally:
            await store.close()


async def test_a_store_on_sqlite_keeps_blobs_in_the_directory(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert isinstance(blob_backend(ScopedStore(store, "app.files"), tmp_path / "objects"), Blobs)
    finally:
        await store.close()


async def test_a_store_on_postgresql_keeps_blobs_in_the_database(tmp_path: Path) -> None:
    require_postgres()
    from triggerfish.objects.pg_blobs import PostgresBlobs

    schema = f"t_blobs11_{uuid.uuid4().hex[:12]}"
    store = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=2")
    try:
        assert isinstance(blob_backend(ScopedStore(store, "app.files"), tmp_path / "objects"), PostgresBlobs)
        assert not (tmp_path / "objects").exists()  # no directory made on a node that needs none
    finally:
        await store.close()
        await drop_schema(schema)
