"""`parallelization` > 1 for PostgreSQL capture: rows spread over partitions by primary key, a stalled row holds up
only its own partition (never the slot), and each change reaches the partitions once across a crash."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.changes.conftest import PgPlace
from triggerfish.changes.pg_capture import Capture
from triggerfish.changes.pg_partitions import SlotMover, partition_key
from triggerfish.changes.pg_records import parse_lsn
from triggerfish.changes.pg_setup import TableName
from triggerfish.names import pg_change_slot
from triggerfish.retry import RetryPolicy
from triggerfish.server.platform import Platform
from triggerfish.streams.records import decode_record, partition_of

APP = """
import json, os, time, triggerfish
app = triggerfish.App({app!r})

@app.on_change("env:PGC_PART_DB", table={table!r}, parallelization=4, timeout=60)
def ship(event, context):
    for r in event["Records"]:
        key = int(r["dynamodb"]["Keys"]["id"]["N"])
        if key == 1:  # row 1 stalls until the test releases it
            deadline = time.time() + 50
            while not os.path.exists({release!r}) and time.time() < deadline:
                time.sleep(0.05)
        with open({out!r}, "a") as f:
            f.write(json.dumps([r["eventName"], key, r["dynamodb"]["SequenceNumber"]]) + "\\n")
"""


def partition(row: int, partitions: int = 4) -> int:
    return partition_of(partition_key({"dynamodb": {"Keys": {"id": {"N": str(row)}}}}), partitions)


async def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_stalled_row_holds_up_only_its_partition_and_never_the_slot(
    tmp_path: Path, pg: PgPlace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from triggerfish.changes import pg_capture
    from triggerfish.observe.metrics import Metrics

    monkeypatch.setattr(pg_capture, "LAG_PERIOD", 0.05)
    out, release = tmp_path / "out.jsonl", tmp_path / "release"
    monkeypatch.setenv("PGC_PART_DB", pg.url)
    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int PRIMARY KEY, status text)")
    (tmp_path / "app").mkdir()
    app = tmp_path / "app" / "app.py"
    app.write_text(APP.format(app=pg.name, table=f"{pg.name}.orders", out=str(out), release=str(release)))

    def handled() -> list[list[Any]]:
        return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []

    rows = range(1, 41)
    others = {row for row in rows if partition(row) != partition(1)}
    assert len({partition(row) for row in others}) == 3, "the rows should fill every other partition"
    running = Platform(str(app), data_dir=tmp_path / "data")
    await running.start()
    try:
        assert running.pg_changes.status()["ship"]["partitions"] == 4
        for row in rows:  # row 1 first: everything after it is committed later, and still runs first
            await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (%s, 'NEW')", (row,))
        await pg.sql(f"UPDATE {pg.name}.orders SET status = 'PAID'")
        wanted = {(name, row) for row in others for name in ("INSERT", "MODIFY")}
        await wait_for(
            lambda: {(name, row) for name, row, _ in handled()} >= wanted,
            "the other partitions' rows while row 1 stalls",
        )
        assert 1 not in {row for _, row, _ in handled()}, "row 1 ran: it should still be stalled"
        # The slot moved past every change, row 1's too: a stalled row keeps no WAL on the user's server.
        last_commit = max(int(sequence[:20]) for _, _, sequence in handled())
        slot = pg_change_slot(pg.name, "ship")

        async def confirmed() -> int:
            return parse_lsn((await pg.slots())[slot])

        deadline = time.monotonic() + 30
        while await confirmed() < last_commit:
            assert time.monotonic() < deadline, "the slot did not move past the changes moved to the partitions"
            await asyncio.sleep(0.05)
        # What waits in row 1's partition shows in status and the metrics (the slot's lag no longer does).
        await wait_for(lambda: (running.pg_changes.status()["ship"]["backlog"] or 0) >= 2, "the backlog measured")
        metrics = (await Metrics().render([running])).decode()
        assert f'triggerfish_pg_capture_backlog_records{{app="{pg.name}",function="ship"}}' in metrics
        release.touch()
        await wait_for(lambda: len(handled()) == 2 * len(rows), "every change once row 1 is released")
    finally:
        await running.stop()
    per_row: dict[int, list[str]] = {}
    for name, row, _ in handled():
        per_row.setdefault(row, []).append(name)
    assert per_row == {row: ["INSERT", "MODIFY"] for row in rows}, "each row's changes once, in commit order"


FAST = RetryPolicy(base=0.01, multiplier=1.0, ceiling=0.01)


class Unused:
    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        raise AssertionError("moving records invokes nothing")

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
        raise AssertionError("moving records invokes nothing")


async def test_records_moved_before_a_crash_are_not_moved_again_though_the_slot_did_not_advance(
    pg: PgPlace,
) -> None:
    from triggerfish.bus.publisher import Publisher
    from triggerfish.store import open_store

    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int PRIMARY KEY, status text)")
    store = await open_store("memory://")
    capture = Capture("ship", "env:ORDERS_DB", pg.url, TableName(pg.name, "orders"), f"tf_{pg.name}_ship", partitions=3)

    def mover() -> SlotMover:
        return SlotMover(capture, Unused(), store, Publisher(store), app="shop", node="n1", retry_policy=FAST)

    first = mover()
    conn = await first.connect()
    try:
        for row in range(10):
            await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (%s, 'NEW')", (row,))
        # The store's transaction commits, then the process dies before the slot's advance.
        pending, _ = await first._peek(conn)
        keyed = [(partition_key(p.record), p.created, p.record) for p in pending if p.record is not None]
        assert await first._move(keyed, pending[-1].position)
    finally:
        await conn.close()
    second = mover()
    conn = await second.connect()
    try:
        await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (10, 'NEW')")
        # The slot still holds the 10 moved (peeked again): the checkpoint skips them, only row 10 is new.
        assert await second.step(conn) == 1
        assert await second.step(conn) == 0  # and the slot moved past all of them
    finally:
        await conn.close()
    moved: dict[int, list[int]] = {}
    for number, stream in enumerate(second.streams()):
        for stored in await store.log.read(stream, after=0, limit=100):
            record = orjson.loads(decode_record(stored.data).payload)
            moved.setdefault(number, []).append(int(record["dynamodb"]["Keys"]["id"]["N"]))
    await store.close()
    assert sorted(row for rows in moved.values() for row in rows) == list(range(11)), "each change moved once"
    for number, rows in moved.items():
        assert rows == sorted(rows), f"partition {number} out of commit order"
        assert all(partition(row, 3) == number for row in rows), f"partition {number} holds another's rows"


async def test_testing_drain_runs_a_parallel_capture(pg: PgPlace, monkeypatch: pytest.MonkeyPatch) -> None:
    import triggerfish
    from triggerfish.testing import TestPlatform

    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int PRIMARY KEY, status text)")
    monkeypatch.setenv("PGC_PART_DB", pg.url)
    app = triggerfish.App(pg.name)
    seen: list[tuple[str, str]] = []

    @app.on_change("env:PGC_PART_DB", table=f"{pg.name}.orders", parallelization=3)
    def ship(event: Any, context: Any) -> None:
        seen.extend((r["eventName"], r["dynamodb"]["Keys"]["id"]["N"]) for r in event["Records"])

    async with TestPlatform(app) as platform:
        for row in range(6):
            await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (%s, 'NEW')", (row,))
        await pg.sql(f"UPDATE {pg.name}.orders SET status = 'PAID'")
        await platform.drain()
    assert sorted(seen) == sorted((name, str(row)) for row in range(6) for name in ("INSERT", "MODIFY"))
    for row in range(6):
        assert [name for name, key in seen if key == str(row)] == ["INSERT", "MODIFY"]


async def test_a_failing_row_is_retried_in_its_partition_while_the_others_go_on(pg: PgPlace) -> None:
    from triggerfish.bus.publisher import Publisher
    from triggerfish.errors import InvocationError
    from triggerfish.store import open_store

    await pg.sql(f"CREATE TABLE {pg.name}.orders (id int PRIMARY KEY, status text)")

    class FailsForRowOne:
        def __init__(self) -> None:
            self.released = False
            self.failures = 0
            self.handled: list[tuple[str, int]] = []

        async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
            rows = [(r["eventName"], int(r["dynamodb"]["Keys"]["id"]["N"])) for r in event["Records"]]
            if not self.released and any(row == 1 for _, row in rows):
                self.failures += 1
                raise InvocationError("the handler raised RuntimeError: row 1 cannot be shipped yet")
            self.handled.extend(rows)

        async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
            return "unused"

    store = await open_store("memory://")
    invoker = FailsForRowOne()
    capture = Capture("ship", "env:ORDERS_DB", pg.url, TableName(pg.name, "orders"), f"tf_{pg.name}_ship", partitions=4)
    mover = SlotMover(capture, invoker, store, Publisher(store), app="shop", node="n1", retry_policy=FAST)
    await (await mover.connect()).close()  # makes the slot before the writes; then it reads in the background
    mover.start()
    rows = range(1, 21)
    others = {(name, row) for row in rows if partition(row) != partition(1) for name in ("INSERT", "MODIFY")}
    try:
        for row in rows:
            await pg.sql(f"INSERT INTO {pg.name}.orders VALUES (%s, 'NEW')", (row,))
        await pg.sql(f"UPDATE {pg.name}.orders SET status = 'PAID'")
        await wait_for(lambda: set(invoker.handled) >= others and invoker.failures >= 3, "the others, row 1 failing")
        assert 1 not in {row for _, row in invoker.handled}
        invoker.released = True
        await wait_for(lambda: len(invoker.handled) == 2 * len(rows), "every change once row 1 succeeds")
    finally:
        await mover.stop()
        await store.close()
    for row in rows:
        assert [name for name, key in invoker.handled if key == row] == ["INSERT", "MODIFY"], row
