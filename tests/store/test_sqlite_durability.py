"""The SQLite store keeps what it acknowledged: across reopening, beside failing operations, with other processes."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from triggerfish.errors import StoreClosedError, StoreError
from triggerfish.store import ABSENT, QueueConfig, open_store
from triggerfish.store._sqlite_checkpoint import Checkpointer
from triggerfish.store._sqlite_schema import SCHEMA_VERSION
from triggerfish.store.sqlite import SWEEP_INTERVAL, SqliteStore, open_sqlite_store

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not true within {within} s"
        time.sleep(0.01)


def checkpointed_since(checkpointer: Checkpointer, count: int) -> bool:
    return checkpointer.checkpoints >= count


async def open_file(path: Path) -> SqliteStore:
    store = await open_store(f"sqlite:///{path}")
    assert isinstance(store, SqliteStore)
    return store


async def test_everything_is_there_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await open_file(path)
    await store.log.append_many("orders", [b"one", b"\x00two"])
    await store.queues.configure("jobs", QueueConfig(visibility_timeout=60, fifo=True))
    await store.queues.send("jobs", b"leased")
    await store.queues.send("jobs", b"waiting", group="g", attributes={"a": "b"})
    [leased] = await store.queues.receive("jobs", max_messages=1, visibility_timeout=60)
    assert leased.body == b"leased"
    record = await store.kv.put("ns", "k", b"value")
    assert record is not None
    await store.close()

    store = await open_file(path)
    assert [r.data for r in await store.log.read("orders")] == [b"one", b"\x00two"]
    assert (await store.log.append("orders", b"three")).offset == 3
    assert await store.queues.config("jobs") == QueueConfig(visibility_timeout=60, fifo=True)
    stats = await store.queues.stats("jobs")
    assert (stats.visible, stats.in_flight) == (1, 1)
    assert await store.queues.ack("jobs", leased.receipt) is True  # a lease survives the restart
    [waiting] = await store.queues.receive("jobs")
    assert (waiting.body, dict(waiting.attributes), waiting.group) == (b"waiting", {"a": "b"}, "g")
    assert await store.kv.get("ns", "k") == record
    newer = await store.kv.put("ns", "other", b"x")
    assert newer is not None
    assert newer.version > record.version  # the version counter is durable too: no reuse after a restart
    await store.close()


async def test_the_file_is_wal_with_synchronous_full(tmp_path: Path) -> None:
    store = await open_file(tmp_path / "store.db")
    journal = await store._engine.writer.submit(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
    synchronous = await store._engine.writer.submit(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    busy = await store._engine.reader.submit(lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0])
    assert (journal, synchronous) == ("wal", 2)
    assert busy > 0
    await store.close()
    with closing(sqlite3.connect(tmp_path / "store.db")) as plain, plain:
        assert plain.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_failing_operation_fails_alone_inside_a_group_commit(tmp_path: Path) -> None:
    store = await open_file(tmp_path / "store.db")
    gate = threading.Event()
    # Hold the writer so that everything below lands in one batch.
    held = store._engine.writer.submit(lambda c: gate.wait(5))
    await asyncio.sleep(0.05)

    def half_done_then_broken(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO kv VALUES ('ns', 'ghost', x'00', 999, NULL)")
        raise RuntimeError("broken on purpose")

    def bad_sql(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO no_such_table VALUES (1)")

    # Good operations first, so they have run (and must be rolled back and run again) when the bad ones fail.
    appends = [asyncio.ensure_future(store.log.append("s", b"%d" % i)) for i in range(5)]
    put = asyncio.ensure_future(store.kv.put("ns", "real", b"kept"))
    sent = asyncio.ensure_future(store.queues.send("q", b"kept"))
    await asyncio.sleep(0.05)
    broken = asyncio.ensure_future(store._engine.writer.submit(half_done_then_broken))
    sql_error = asyncio.ensure_future(store._engine.writer.submit(bad_sql))
    gate.set()
    assert await held
    with pytest.raises(RuntimeError, match="on purpose"):
        await broken
    with pytest.raises(StoreError, match="no_such_table"):
        await sql_error
    assert sorted([(await a).offset for a in appends]) == [1, 2, 3, 4, 5]
    assert sorted(r.data for r in await store.log.read("s")) == [b"%d" % i for i in range(5)]
    assert await put is not None
    assert not (await sent).duplicate
    # the held batch, then ONE for the rest: five operations (the appends merge into one) in one transaction
    assert (store.write_stats.batches, store.write_stats.largest) == (2, 5)
    assert await store.kv.get("ns", "ghost") is None
    assert [r.key for r in await store.kv.scan("ns")] == ["real"]
    assert (await store.queues.stats("q")).visible == 1
    await store.close()


async def test_close_finishes_pending_writes_then_refuses(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await open_file(path)
    pending = [asyncio.ensure_future(store.log.append("s", b"%d" % i)) for i in range(100)]
    await asyncio.sleep(0)  # let them reach the writer's queue
    await store.close()
    assert [(await p).offset for p in pending] == list(range(1, 101))
    with pytest.raises(StoreClosedError, match="closed"):
        await store.log.append("s", b"late")
    with pytest.raises(StoreClosedError):
        await store.kv.get("ns", "k")
    reopened = await open_file(path)
    assert await reopened.log.last_offset("s") == 100
    await reopened.close()


async def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError, match=r"notes\.txt is not a Triggerfish store"):
        await open_store(f"sqlite:///{path}")
    assert path.read_bytes().startswith(b"these are my notes")  # and it was left alone


async def test_a_file_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    await (await open_file(path)).close()
    with closing(sqlite3.connect(path)) as plain, plain:
        plain.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer Triggerfish"):
        await open_store(f"sqlite:///{path}")


async def test_missing_directories_are_created_and_relative_urls_use_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///.triggerfish/deep/store.db")
    await store.log.append("s", b"x")
    await store.close()
    assert (tmp_path / ".triggerfish" / "deep" / "store.db").is_file()


async def test_a_directory_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(StoreError, match="cannot create the directory"):
        await open_store(f"sqlite:///{tmp_path / 'file' / 'store.db'}")


async def test_another_process_sees_and_adds_to_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await open_file(path)
    await store.log.append_many("s", [b"a", b"b"])
    other = textwrap.dedent(
        f"""
        import asyncio
        from triggerfish.store import open_store

        async def main():
            store = await open_store("sqlite:///{path}")
            print(await store.log.last_offset("s"))
            for _ in range(50):
                await store.log.append("s", b"from the other process")
            record = await store.kv.put("ns", "lock", b"other", if_version=0)
            print(record is not None)
            await store.close()

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", other, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    # Both write at once: the busy timeout and BEGIN IMMEDIATE make them take turns.
    mine = [await store.log.append("s", b"from this process") for _ in range(50)]
    out, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 0, err.decode()
    assert out.decode().split()[1] == "True"
    assert len({r.offset for r in mine}) == 50
    records = await store.log.read("s", limit=1000)
    assert [r.offset for r in records] == list(range(1, 103))
    assert sum(r.data == b"from the other process" for r in records) == 50
    assert await store.kv.put("ns", "lock", b"mine", if_version=ABSENT) is None  # the other process holds it
    await store.close()


async def test_expired_records_and_dedup_ids_are_swept_from_the_file(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = await open_sqlite_store("sqlite:///swept.db", str(tmp_path / "swept.db"), clock=lambda: now[0])
    await store.kv.put("ns", "short", b"x", ttl=1)
    await store.kv.put("ns", "forever", b"x")
    await store.queues.send("q", b"x", dedup_id="once")

    def count(c: sqlite3.Connection) -> tuple[int, int]:
        row: tuple[int, int] = c.execute("SELECT (SELECT COUNT(*) FROM kv), (SELECT COUNT(*) FROM dedup)").fetchone()
        return row

    assert await store._engine.reader.submit(count) == (2, 1)
    now[0] += SWEEP_INTERVAL + 400  # past the ttl, the dedup window and the next sweep
    await store.kv.put("ns", "trigger", b"x")  # any write lets the sweep ride along
    assert await store._engine.reader.submit(count) == (2, 0)  # "short" gone, "forever" and "trigger" kept
    assert [r.key for r in await store.kv.scan("ns")] == ["forever", "trigger"]
    await store.close()


async def test_leases_commit_without_an_fsync_and_everything_else_with_one(tmp_path: Path) -> None:
    # A lease lost in a crash only makes its message (or log range) visible again: nothing acknowledged is lost.
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    assert isinstance(store, SqliteStore)
    try:
        await store.queues.send("jobs", b"work")
        await store.log.append("events", b"e")
        before = store.write_stats.unsynced
        [message] = await store.queues.receive("jobs", visibility_timeout=30)
        assert await store.log.claim("events", "g", lease=30) is not None
        assert store.write_stats.unsynced == before + 2
        assert await store.queues.ack("jobs", message.receipt)  # an acknowledgement is durable
        assert store.write_stats.unsynced == before + 2
    finally:
        await store.close()
    # What was acknowledged stays acknowledged when the file is opened again.
    again = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert (await again.queues.stats("jobs")).depth == 0
    finally:
        await again.close()


async def test_the_log_is_checkpointed_beside_the_writer_and_stays_bounded(tmp_path: Path) -> None:
    # The writer never checkpoints inside a commit (that stalls every caller behind it);
    # the checkpointer thread does, so the WAL file is reused instead of growing with every write.
    path = tmp_path / "store.db"
    store = await open_file(path)
    autocheckpoint = await store._engine.writer.submit(lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    assert autocheckpoint == 0
    checkpointer = store._engine.checkpointer
    checkpointer.interval = 0.05  # the thread reads it on every wait: faster rounds for the test
    chunk = b"x" * 4096
    written = 0
    for _ in range(10):  # 10 rounds of ~4 MB: 40 MB through the log
        await store.log.append_many("bulk", [chunk] * 1000)
        written += 1000 * len(chunk)
        seen = checkpointer.checkpoints
        # two checkpoints later, one started after this round's writes and copied all of them
        await asyncio.to_thread(wait_for, functools.partial(checkpointed_since, checkpointer, seen + 2), within=10)
    wal = (await asyncio.to_thread(Path(f"{path}-wal").stat)).st_size
    assert wal < written / 4, f"the WAL grew to {wal} bytes for {written} bytes written"
    assert len(await store.log.read("bulk", limit=10_000)) == 10_000
    await store.close()

    store = await open_file(path)  # everything is in the file after the checkpoints and a reopen
    assert len(await store.log.read("bulk", limit=10_000)) == 10_000
    await store.close()
