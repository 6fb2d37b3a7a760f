"""The SQLite store's schema: a version-1 file opens and keeps its data; migrate=False and newer files are refused."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from triggerfish.errors import SchemaVersionError, StoreFullError
from triggerfish.store import open_store
from triggerfish.store._sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from triggerfish.store.sqlite import SqliteStore


def version_one_file(path: Path) -> None:
    """A store file as Triggerfish with schema 1 left it, with a record in each part."""
    with closing(sqlite3.connect(path)) as c, c:
        c.executescript(MIGRATIONS[1])
        c.execute("INSERT INTO streams VALUES ('bus', 3, 100.0, 2)")
        c.executemany(
            'INSERT INTO log_records (stream, "offset", time, size, data) VALUES (?, ?, ?, ?, ?)',
            [("bus", 1, 100.0, 1, b"a"), ("bus", 2, 100.0, 1, b"b")],
        )
        c.execute("UPDATE meta SET value = 7 WHERE name = 'kv_version'")
        c.execute("INSERT INTO kv VALUES ('ns', 'k', x'76', 7, NULL)")
        c.execute("INSERT INTO queues (name) VALUES ('jobs')")
        c.execute(
            "INSERT INTO messages (queue, id, body, sent_at, visible_at, ready)"
            " VALUES ('jobs', 'm1', x'6a', 1e12, 0, 1)"
        )
        c.execute("PRAGMA user_version = 1")


async def test_a_version_three_file_keeps_its_log_and_new_records_are_found_by_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "three.db"
    with closing(sqlite3.connect(path)) as c, c:
        c.executescript("".join(MIGRATIONS[v] for v in range(1, 4)))
        c.execute("INSERT INTO streams VALUES ('s', 3, 100.0, 2)")
        c.executemany(
            'INSERT INTO log_records (stream, "offset", time, size, data) VALUES (?, ?, ?, ?, ?)',
            [("s", 1, 100.0, 1, b"a"), ("s", 2, 100.0, 1, b"b")],
        )
        c.execute("PRAGMA user_version = 3")
    store = await open_store(f"sqlite:///{path}")
    try:
        assert [r.data for r in await store.log.read("s")] == [b"a", b"b"]
        assert await store.log.find("r/") == []
        (record,) = await store.log.append_many("s", [b"c"], keys=[("r/c/1", "t/x/c")])
        assert record.offset == 3
        assert [(key, r.data) for key, r in await store.log.find("r/c/")] == [("r/c/1", b"c")]
    finally:
        await store.close()
    with closing(sqlite3.connect(path)) as c, c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4


async def test_a_version_one_file_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_one_file(path)
    with pytest.raises(SchemaVersionError, match="triggerfish store migrate"):
        await open_store(f"sqlite:///{path}", migrate=False)
    store = await open_store(f"sqlite:///{path}")
    assert isinstance(store, SqliteStore)
    assert [r.data for r in await store.log.read("bus")] == [b"a", b"b"]
    assert (await store.log.append("bus", b"c")).offset == 3
    record = await store.kv.get("ns", "k")
    assert record is not None
    assert (record.value, record.version) == (b"v", 7)
    [message] = await store.queues.receive("jobs")
    assert message.body == b"j"
    claim = await store.log.claim("bus", "g")
    assert claim is not None
    assert [r.data for r in claim.records] == [b"a", b"b", b"c"]
    assert await store.log.commit(claim)
    await store.close()
    with closing(sqlite3.connect(path)) as c, c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again = await open_store(f"sqlite:///{path}", migrate=False)
    assert await again.log.position("bus", "g") == 3
    await again.close()


async def test_a_newer_file_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with closing(sqlite3.connect(path)) as c, c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError) as caught:
        await open_store(f"sqlite:///{path}")
    assert f"store schema {SCHEMA_VERSION + 1}" in str(caught.value)
    assert f"knows up to {SCHEMA_VERSION}" in str(caught.value)


async def test_a_full_disk_is_store_full_and_nothing_is_acknowledged(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'small.db'}")
    assert isinstance(store, SqliteStore)
    await store.log.append("bus", b"kept")
    # A page limit is how SQLite lets a test reach SQLITE_FULL without filling a disk.
    await store._engine.writer.submit(lambda c: c.execute("PRAGMA max_page_count = 40"))

    async def fill() -> None:
        for _ in range(200):
            await store.log.append("bus", b"x" * 4000)

    with pytest.raises(StoreFullError, match="full"):
        await fill()
    records = await store.log.read("bus", limit=1000)
    assert records[0].data == b"kept"
    assert await store.log.last_offset("bus") == len(records)  # nothing acknowledged went missing
    await store.close()
