"""The PostgreSQL store: appends and queue flow with concurrency, NOTIFY's cost, and a long queue run's bloat.

Runs against the PostgreSQL in TRIGGERFISH_TEST_POSTGRES (default
postgresql://postgres@127.0.0.1:5432/postgres), each workload in a fresh
schema dropped after; skipped when it is not reachable. The long run sends
200,000 messages through one queue (sent in batches, received in batches,
acknowledged in batches) and reports, per slice, the throughput and the
messages table's dead tuples and size, which is how the table settings
(fillfactor, autovacuum after a fixed number of dead rows) are judged.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from benchmarks.bench_store import Run, appends, appends_64, queue_flow
from triggerfish.store import OutgoingMessage, Store, open_store

POSTGRES = os.environ.get("TRIGGERFISH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
LONG_RUN = 200_000
SLICE = 20_000
BATCH = 100


async def in_schema(workload: Callable[[Store], Awaitable[Run]], **options: str) -> Run:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    extra = "".join(f"&{k}={v}" for k, v in options.items())
    store = await open_store(f"{POSTGRES}?schema={schema}&pool_size=10{extra}")
    try:
        return await workload(store)
    finally:
        await store.close()
        async with await psycopg.AsyncConnection.connect(POSTGRES, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")


async def table_state(store: Store) -> tuple[int, int]:
    """(dead tuples, total bytes) of the messages table, as the statistics collector sees them."""
    from triggerfish.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    async with store.engine.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT n_dead_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables"
            " WHERE relname = 'messages' AND schemaname = %s",
            (store.engine.schema,),
        )
        row = await cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def long_run(store: Store, slices: list[tuple[float, int, int]]) -> Run:
    """200k messages through one queue: 4 senders (batches of 100), 4 receivers, slice by slice."""
    began = time.perf_counter()
    for _ in range(LONG_RUN // SLICE):
        started = time.perf_counter()
        batches = [BATCH] * (SLICE // BATCH)
        acked = 0

        async def sender(batches: list[int] = batches) -> None:
            while batches:
                await store.queues.send_many("long", [OutgoingMessage(b"x" * 256)] * batches.pop())

        async def receiver() -> None:
            nonlocal acked
            while acked < SLICE:
                batch = await store.queues.receive("long", max_messages=BATCH, visibility_timeout=60, wait=0.2)
                if batch:
                    # Awaited first: `acked += sum(await ...)` would read `acked` before the await and lose counts.
                    done = await store.queues.ack_many("long", [m.receipt for m in batch])
                    acked += sum(done)

        await asyncio.gather(*(sender() for _ in range(4)), *(receiver() for _ in range(4)))
        elapsed = time.perf_counter() - started
        dead, size = await table_state(store)
        slices.append((SLICE / elapsed, dead, size))
        print(f"slice {len(slices)}: {SLICE / elapsed:,.0f}/s, {dead:,} dead, {size:,} bytes", file=sys.stderr)
    return Run(rate=LONG_RUN / (time.perf_counter() - began))


async def main() -> str:
    from tests.services import POSTGRES_URL  # noqa: F401  # the same default the tests use

    try:
        import psycopg

        async with await psycopg.AsyncConnection.connect(POSTGRES, connect_timeout=2):
            pass
    except Exception as exc:
        return f"## Store on PostgreSQL\n\nSkipped: PostgreSQL not reachable at {POSTGRES} ({exc}).\n"
    a16 = await in_schema(appends)
    a64 = await in_schema(appends_64)
    flow = await in_schema(queue_flow)
    flow_quiet = await in_schema(queue_flow, notify="off")
    slices: list[tuple[float, int, int]] = []
    whole = await in_schema(lambda s: long_run(s, slices))
    lines = [
        "## Store on PostgreSQL",
        "",
        "PostgreSQL 15 on the same machine (default settings, `synchronous_commit=on`), a pool of 10 connections."
        " Workloads as in the SQLite section: one record or message per call from concurrent producers;"
        " concurrent calls merge into transactions (up to a third of the pool at once).",
        "",
        "| workload | rate (per s) | p50 latency | p99 latency |",
        "|---|---:|---:|---:|",
        f"| append, 16 producers | {a16.rate:,.0f} | {a16.p50_ms:.2f} ms | {a16.p99_ms:.2f} ms |",
        f"| append, 64 producers | {a64.rate:,.0f} | {a64.p50_ms:.2f} ms | {a64.p99_ms:.2f} ms |",
        f"| send -> receive -> ack (NOTIFY on) | {flow.rate:,.0f} | | |",
        f"| send -> receive -> ack (notify=off) | {flow_quiet.rate:,.0f} | | |",
        "",
        f"Long run: {LONG_RUN:,} messages through one queue (4 senders of batches of {BATCH}, 4 receivers"
        f" acknowledging batches), {whole.rate:,.0f} messages/s overall.",
        "",
        "| slice | messages/s | dead tuples after | table + indexes |",
        "|---:|---:|---:|---:|",
    ]
    for i, (rate, dead, size) in enumerate(slices, 1):
        lines.append(f"| {i * SLICE:,} | {rate:,.0f} | {dead:,} | {size / 1024 / 1024:.1f} MiB |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(asyncio.run(main()))
