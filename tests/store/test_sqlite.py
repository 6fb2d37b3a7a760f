"""The SQLite store against the contract, on a real file in a temp directory and real time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.store.contract import FullContract
from triggerfish.store import Store, open_store


class TestSqliteStore(FullContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    async def open(self) -> Store:
        return await open_store(f"sqlite:///{self.directory / 'store.db'}")

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
