"""`triggerfish store migrate`: migrates a store's schema, checks it, and reports its version."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner

from tests.services import POSTGRES_URL, drop_schema, require_postgres
from tests.store.test_sqlite_schema import version_one_file
from triggerfish.cli.main import cli
from triggerfish.store._sqlite_schema import SCHEMA_VERSION


def test_migrate_brings_an_old_sqlite_file_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_one_file(path)
    url = f"sqlite:///{path}"
    checked = CliRunner().invoke(cli, ["store", "migrate", "--store", url, "--check"])
    assert checked.exit_code == 1
    assert "schema 1" in checked.output
    assert "triggerfish store migrate" in checked.output
    migrated = CliRunner().invoke(cli, ["store", "migrate", "--store", url])
    assert migrated.exit_code == 0, migrated.output
    assert f"schema version {SCHEMA_VERSION}, up to date" in migrated.output
    with closing(sqlite3.connect(path)) as c, c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again = CliRunner().invoke(cli, ["store", "migrate", "--check", "--json"], env={"TRIGGERFISH_STORE": url})
    assert again.exit_code == 0
    assert json.loads(again.output) == {"store": url, "schema_version": SCHEMA_VERSION, "up_to_date": True}


def test_a_bad_url_is_an_input_error() -> None:
    result = CliRunner().invoke(cli, ["store", "migrate", "--store", "nosuch://x"])
    assert result.exit_code == 2
    assert "schemes known" in result.output


def test_migrate_a_postgres_schema_hides_the_password() -> None:
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = POSTGRES_URL.replace("postgres@", "postgres:secret@") + f"?schema={schema}"
    try:
        runner = CliRunner()
        assert runner.invoke(cli, ["store", "migrate", "--store", url, "--check"]).exit_code == 1
        result = runner.invoke(cli, ["store", "migrate", "--store", url])
        assert result.exit_code == 0, result.output
        assert "secret" not in result.output
        assert "up to date" in result.output
    finally:
        asyncio.run(drop_schema(schema))
