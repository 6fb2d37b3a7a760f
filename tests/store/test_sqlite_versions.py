"""Record versions on SQLite stay unique and rising while the counter is read and written once per transaction:
many writes in one group commit, a write refused inside one, two processes on one file, and a kill -9."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.crash_child import lines_until_killed
from triggerfish.errors import AtomicConflictError
from triggerfish.store import ABSENT, open_store
from triggerfish.store.atomic import Put
from triggerfish.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
#: Writes each of two processes makes to one file, one transaction each.
WRITES = 300


async def open_file(path: Path) -> SqliteStore:
    store = await open_store(f"sqlite:///{path}")
    assert isinstance(store, SqliteStore)
    return store


def stored_versions(path: Path) -> tuple[int, list[int]]:
    """The counter as the file holds it, and every record's version."""
    with closing(sqlite3.connect(path)) as c, c:
        (counter,) = c.execute("SELECT value FROM meta WHERE name = 'kv_version'").fetchone()
        versions = [version for (version,) in c.execute("SELECT version FROM kv")]
    return counter, versions


async def held_writer(store: SqliteStore) -> tuple[threading.Event, asyncio.Future[Any]]:
    """Hold the writer thread, so that everything submitted until the gate opens lands in one transaction."""
    gate = threading.Event()
    held = store._engine.writer.submit(lambda c: gate.wait(5))
    await asyncio.sleep(0.05)
    return gate, held


async def test_a_transaction_reads_and_writes_the_counter_once_however_many_writes_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await open_file(path)
    try:
        records = [await store.kv.put("workflows", f"w{n}", b"0", if_version=ABSENT) for n in range(4)]
        statements: list[str] = []
        await store._engine.writer.submit(lambda c: c.set_trace_callback(statements.append))
        gate, held = await held_writer(store)
        batches = store.write_stats.batches
        checkpoints = [
            asyncio.ensure_future(
                store.atomic([Put("workflows", f"w{n}", b"1", if_version=record.version), Put("traces", f"t{n}", b"")])
            )
            for n, record in enumerate(records)
            if record is not None
        ]
        invocation = asyncio.ensure_future(store.kv.put("invocations", "i", b""))
        inputs = asyncio.ensure_future(store.kv.put_many("inputs", [("a", b""), ("b", b"")]))
        refused = asyncio.ensure_future(store.kv.put("workflows", "w0", b"late", if_version=ABSENT))  # it exists
        await asyncio.sleep(0.05)
        gate.set()
        await held
        await asyncio.gather(*checkpoints, invocation, inputs, refused)
        assert store.write_stats.batches == batches + 2  # the held one, then one for every write above
        await store._engine.writer.submit(lambda c: c.set_trace_callback(None))
        assert refused.result() is None
        counted = [statement for statement in statements if "meta" in statement]
        assert [statement.split(None, 1)[0] for statement in counted] == ["SELECT", "UPDATE"]
        # In the order they were submitted, each version above the last; the counter at the last one taken (the
        # refused put's, never stored).
        versions = [record.version for checkpoint in checkpoints for record in checkpoint.result()]
        invoked = invocation.result()
        assert invoked is not None
        versions += [invoked.version, *(record.version for record in inputs.result())]
        assert versions == sorted(set(versions))
        assert min(versions) > max(record.version for record in records if record is not None)
        counter, everything = stored_versions(path)
        assert max(everything) == versions[-1]
        assert counter == versions[-1] + 1
    finally:
        await store.close()


async def test_a_write_refused_inside_a_group_commit_leaves_the_versions_unique_and_rising(tmp_path: Path) -> None:
    """The refused write's savepoint is rolled back (the writer reruns the batch with one per write); the versions
    it took are skipped, and no later write gets a version any stored record has."""
    path = tmp_path / "store.db"
    store = await open_file(path)
    try:
        first = await store.kv.put("workflows", "w", b"0", if_version=ABSENT)
        assert first is not None
        gate, held = await held_writer(store)
        before = asyncio.ensure_future(store.kv.put_many("inputs", [("a", b""), ("b", b"")]))
        refused = asyncio.ensure_future(
            store.atomic([Put("traces", "t", b""), Put("workflows", "w", b"1", if_version=first.version + 99)])
        )
        after = asyncio.ensure_future(store.atomic([Put("workflows", "w", b"1", if_version=first.version)]))
        await asyncio.sleep(0.05)
        gate.set()
        await held
        with pytest.raises(AtomicConflictError):
            await refused
        written = [*(record.version for record in await before), (await after)[0].version]
        assert written == sorted(set(written))
        assert written[0] > first.version
        assert await store.kv.get("traces", "t") is None  # the refused write left nothing
        counter, everything = stored_versions(path)
        assert len(everything) == len(set(everything))
        assert counter >= max(everything)
        later = await store.kv.put("workflows", "w", b"2", if_version=written[-1])
        assert later is not None
        assert later.version > counter
    finally:
        await store.close()


async def test_two_processes_writing_one_file_never_hand_out_one_version_twice(tmp_path: Path) -> None:
    """Each process keeps the counter for one transaction only: the other's commits in between are read afresh."""
    path = tmp_path / "store.db"
    store = await open_file(path)
    other = textwrap.dedent(
        f"""
        import asyncio
        import sys
        from triggerfish.store import open_store
        from triggerfish.store.atomic import Put

        async def main():
            store = await open_store("sqlite:///{path}")
            for n in range({WRITES}):
                if n == {WRITES} // 2:  # half done: the test writes now, then both at once
                    print("half", flush=True)
                    await asyncio.to_thread(sys.stdin.readline)
                await store.atomic([Put("other", f"k{{n}}", b""), Put("other", f"s{{n}}", b"")])
            await store.close()

        asyncio.run(main())
        """
    )
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", other, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert child.stdin is not None
        assert child.stdout is not None
        # The other process writes half its records, this one half of its own, then both write at once, a
        # transaction per write (the busy timeout and BEGIN IMMEDIATE make them take turns): their versions
        # interleave whatever the scheduler does, and in the second halves the two race.
        assert await asyncio.wait_for(child.stdout.readline(), 60) == b"half\n"
        mine = [(await store.kv.put_many("mine", [(f"k{n}", b"")]))[0] for n in range(WRITES // 2)]
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        mine += [(await store.kv.put_many("mine", [(f"k{n}", b"")]))[0] for n in range(WRITES // 2, WRITES)]
        assert await asyncio.wait_for(child.wait(), 60) == 0
        counter, everything = stored_versions(path)
        assert len(everything) == 3 * WRITES
        assert len(set(everything)) == 3 * WRITES, "two records were given one version"
        assert counter == max(everything)
        theirs = sorted(set(everything) - {record.version for record in mine})
        assert mine[0].version < max(theirs), "the two processes' writes did not overlap"
        assert min(theirs) < mine[-1].version, "the two processes' writes did not overlap"
    finally:
        await store.close()


CHILD = """
import asyncio, sys
from triggerfish.store import ABSENT, open_store
from triggerfish.store.atomic import Put

async def main(path):
    store = await open_store("sqlite:///" + path)
    print("ready", flush=True)

    async def writer(n):
        record = await store.kv.get("workflows", f"w{n}")
        version = ABSENT if record is None else record.version
        for step in range(10**9):
            [record, _] = await store.atomic(
                [Put("workflows", f"w{n}", b"%d" % step, if_version=version), Put("traces", f"t{n}-{step}", b"")]
            )
            version = record.version
            print("W", n, version, flush=True)

    await asyncio.gather(*(writer(n) for n in range(16)))

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.slow
def test_a_kill_9_mid_burst_leaves_the_counter_above_every_stored_version(tmp_path: Path) -> None:
    """The counter is written back in the transaction that stores the records, so a crash keeps both or neither:
    after a kill -9 the file's counter is at or above every stored version, and the writes that follow it (another
    run of the same writers, compare-and-set on what they find) never reuse one. Three kills on one file."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / "store.db"
    acknowledged: dict[str, int] = {}
    for _ in range(3):
        lines = lines_until_killed([sys.executable, str(script), str(path)], started_within=20)
        written = [line.split() for line in lines if line.startswith("W ")]
        assert len(written) > 50, "too little happened before the kill to prove anything"
        for _, n, seen in written:
            acknowledged[n] = max(acknowledged.get(n, 0), int(seen))
        counter, everything = stored_versions(path)
        assert len(everything) == len(set(everything)), "two records were given one version"
        assert counter >= max(everything)
        with closing(sqlite3.connect(path)) as c, c:
            records = dict(c.execute("SELECT key, version FROM kv WHERE namespace = 'workflows'").fetchall())
        for n, version in acknowledged.items():
            assert records[f"w{n}"] >= version, f"record w{n}'s acknowledged write (version {version}) is lost"
