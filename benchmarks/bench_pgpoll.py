"""PostgreSQL change capture: what polling an idle slot costs the server, per poll interval.

A capture peeks its slot with `pg_logical_slot_peek_changes`, which decodes the WAL from the slot's restart
point every time (PostgreSQL moves that point about every 15 s), so a shorter idle poll is paid in the
server's CPU. For each interval in `BENCH_PGPOLL_INTERVALS` (ms, default "20,5,2"), the platform's reader
(`SlotReader.step`: the peek, and the advance past other tables' transactions) reads a slot on a table
nobody writes for `SECONDS`; once with no other writes of this benchmark and once while another table
takes `OTHER_RATE` single-row commits a second (a busy database whose other tables the slot must decode and
drop). The server is shared: other sessions' WAL is decoded too. The figure is the CPU time of the reader's
server process (from /proc/<pid>/stat: the server must run on this machine) as a share of one core, and the
median step.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from benchmarks.measure import load_average, number, percentile
from benchmarks.postgres import SERVER

INTERVALS = [float(n) for n in os.environ.get("BENCH_PGPOLL_INTERVALS", "20,5,2").split(",")]
SECONDS = float(os.environ.get("BENCH_PGPOLL_SECONDS", "8"))
OTHER_RATE = int(os.environ.get("BENCH_PGPOLL_OTHER_RATE", "200"))


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU of process `pid` so far, or None where /proc does not show it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def poll(reader: Any, conn: Any, interval: float) -> tuple[float | None, list[float]]:
    """A reader's step every `interval` seconds for SECONDS: the server's CPU share and each step's duration."""
    pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
    before, began = cpu_seconds(pid), time.monotonic()
    took: list[float] = []
    while time.monotonic() - began < SECONDS:
        start = time.monotonic()
        assert await reader.step(conn) == 0, "nobody writes the captured table"
        took.append(time.monotonic() - start)
        await asyncio.sleep(interval)
    after, elapsed = cpu_seconds(pid), time.monotonic() - began
    share = None if before is None or after is None else (after - before) / elapsed
    return share, took


async def write_other(schema: str, stop: asyncio.Event) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(SERVER, autocommit=True) as conn:
        n, began = 0, time.monotonic()
        while not stop.is_set():
            n += 1
            await conn.execute(f"INSERT INTO {schema}.other DEFAULT VALUES")
            pause = began + n / OTHER_RATE - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
        return n


async def run() -> list[tuple[str, float, float | None, float]]:
    import psycopg

    from triggerfish.changes.pg_capture import Capture, SlotReader
    from triggerfish.changes.pg_setup import TableName
    from triggerfish.retry import RetryPolicy

    schema = f"bench_pgpoll_{uuid.uuid4().hex[:8]}"
    slot = f"tf_benchpgpoll_{uuid.uuid4().hex[:8]}"
    results: list[tuple[str, float, float | None, float]] = []
    async with await psycopg.AsyncConnection.connect(SERVER, autocommit=True) as setup:
        await setup.execute(f"CREATE SCHEMA {schema}")
        await setup.execute(f"CREATE TABLE {schema}.captured (id int PRIMARY KEY)")
        await setup.execute(f"CREATE TABLE {schema}.other (id bigserial PRIMARY KEY)")
        capture = Capture("bench", "env:BENCH", SERVER, TableName(schema, "captured"), slot)
        # Nothing is invoked (the captured table is never written): no invoker, store or publisher is needed.
        reader = SlotReader(capture, None, None, None, app="bench", retry_policy=RetryPolicy())  # type: ignore[arg-type]
        conn = await reader.connect()
        try:
            for busy in (False, True):
                for interval in INTERVALS:
                    stop = asyncio.Event()
                    writer = asyncio.create_task(write_other(schema, stop)) if busy else None
                    share, took = await poll(reader, conn, interval / 1000)
                    stop.set()
                    if writer is not None:
                        await writer
                    label = f"other tables at {OTHER_RATE}/s" if busy else "no other writes of its own"
                    results.append((label, interval, share, percentile(took, 0.5) * 1000))
        finally:
            await conn.close()
            await setup.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            await setup.execute(f"DROP SCHEMA {schema} CASCADE")
    return results


def main() -> str:
    load = load_average()
    results = asyncio.run(run())
    lines = [
        "## PostgreSQL change capture: the cost of polling an idle slot",
        "",
        f"The platform's reader steps a slot on an unwritten table every interval for {SECONDS:g} s; the CPU"
        " of its server process as a share of one core, and the median step. Load average"
        f" {load:.1f} at the start, {load_average():.1f} at the end.",
        "",
        "| database | poll interval | server CPU (share of a core) | step p50 |",
        "|---|---|---|---|",
    ]
    for label, interval, share, median in results:
        cpu = "-" if share is None else f"{share * 100:.1f} %"
        lines.append(f"| {label} | {interval:g} ms | {cpu} | {number(median, 2)} ms |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
