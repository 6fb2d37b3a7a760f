"""The table contract on every store backend: memory, a SQLite file, PostgreSQL (a schema of its own)."""

from __future__ import annotations

from tests.backends import OnMemory, OnPostgres, OnSqlite
from tests.tables.contract import TableContract


class TestMemoryTables(OnMemory, TableContract):
    pass


class TestSqliteTables(OnSqlite, TableContract):
    pass


class TestPostgresTables(OnPostgres, TableContract):
    pass
