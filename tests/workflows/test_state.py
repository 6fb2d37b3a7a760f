"""The workflow state contract on every backend: memory, SQLite (a real file), PostgreSQL (a schema of its own)."""

from __future__ import annotations

from tests.backends import OnMemory, OnPostgres, OnSqlite
from tests.workflows.contract import WorkflowStateContract


class TestMemory(OnMemory, WorkflowStateContract):
    pass


class TestSQLite(OnSqlite, WorkflowStateContract):
    pass


class TestPostgres(OnPostgres, WorkflowStateContract):
    pass
