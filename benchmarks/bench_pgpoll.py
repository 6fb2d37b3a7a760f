"""PostgreSQL change capture: what polling an idle slot costs the server, per poll interval.

A capture peeks its slot with `pg_logical_slot_peek_changes`, which decodes the WAL from the slot's restart
point every time (PostgreSQL moves that point about every 15 s), so a shorter idle poll is paid in the
server's CPU. For each interval in `BENCH_PGPOLL_INTERVALS` (ms, default "20,5,2"), one connection peeks a
slot on a table nobody writes, with the reader's own query, for `SECONDS`; once with the database idle and
once while another table takes `OTHER_RATE` single-row commits a second (a busy database whose other tables
the slot must decode and drop). The figure is the CPU time of the peeking server process (from
/proc/<pid>/stat: the server must run on this machine) as a share of one core, and the median peek.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

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


async def poll(conn: object, slot: str, prefix: str, interval: float) -> tuple[float | None, list[float]]:
    """Peek every `interval` seconds for SECONDS: the server's CPU share and each peek's duration."""
    from triggerfish.changes.pg_capture import _PEEK, PEEK_ROWS

    pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]  # type: ignore[attr-defined]
    before, began = cpu_seconds(pid), time.monotonic()
    took: list[float] = []
    while time.monotonic() - began < SECONDS:
        start = time.monotonic()
        await (await conn.execute(_PEEK, (slot, PEEK_ROWS, prefix))).fetchall()  # type: ignore[attr-defined]
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
            await conn.execute(f"INSERT INTO {schema}.other VALUES (%s)", (n,))
            pause = began + n / OTHER_RATE - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
        return n


async def run() -> list[tuple[str, float, float | None, float]]:
    import psycopg

    schema = f"bench_pgpoll_{uuid.uuid4().hex[:8]}"
    slot = f"tf_benchpgpoll_{uuid.uuid4().hex[:8]}"
    results: list[tuple[str, float, float | None, float]] = []
    async with await psycopg.AsyncConnection.connect(SERVER, autocommit=True) as conn:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"CREATE TABLE {schema}.captured (id int PRIMARY KEY)")
        await conn.execute(f"CREATE TABLE {schema}.other (id int PRIMARY KEY)")
        await conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,))
        prefix = f"table {schema}.captured:"
        try:
            for busy in (False, True):
                for interval in INTERVALS:
                    stop = asyncio.Event()
                    writer = asyncio.create_task(write_other(schema, stop)) if busy else None
                    share, took = await poll(conn, slot, prefix, interval / 1000)
                    stop.set()
                    if writer is not None:
                        await writer
                    label = f"other tables at {OTHER_RATE}/s" if busy else "idle database"
                    results.append((label, interval, share, percentile(took, 0.5) * 1000))
        finally:
            await conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return results


def main() -> str:
    load = load_average()
    results = asyncio.run(run())
    lines = [
        "## PostgreSQL change capture: the cost of polling an idle slot",
        "",
        f"One connection peeks a slot on an unwritten table every interval for {SECONDS:g} s; the server"
        " process's CPU as a share of one core, and the median peek. Load average"
        f" {load:.1f} at the start, {load_average():.1f} at the end.",
        "",
        "| database | poll interval | server CPU (share of a core) | peek p50 |",
        "|---|---|---|---|",
    ]
    for label, interval, share, median in results:
        cpu = "-" if share is None else f"{share * 100:.1f} %"
        lines.append(f"| {label} | {interval:g} ms | {cpu} | {number(median, 2)} ms |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
