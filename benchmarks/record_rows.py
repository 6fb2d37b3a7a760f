"""What storing invocation records costs a store, counted: WAL frames, pages and rows per record (rec14).

    PYTHONPATH=TREE python benchmarks/record_rows.py sqlite --count 2000 --at-once 32 [--input-bytes 600]
    PYTHONPATH=TREE python benchmarks/record_rows.py postgresql --count 4000 --at-once 32

Run by path with another tree on PYTHONPATH (`bench_rec14` does, for a tree and its baseline): it imports only
what every version has (`InvocationRecords.add_soon`, `open_store`), so it counts any tree's records the same way.
It stores COUNT records of an HTTP invocation (the HTTP benchmark's fields, a trace, a uuid7 request id), AT_ONCE at
a time through `add_soon` (then `settled`: one write each), after 200 that warm the file, and prints one line of
JSON:

- `sqlite`: a fresh file with the checkpointer's thread switched off (the writer's own checkpoints are off
  already), so each page a commit writes stays in the WAL as one frame: `frames` per record, then the file's
  pages per table and index after a checkpoint (`dbstat`), and the rows of the key-value and log tables;
- `postgresql` (the local server, trust auth): a fresh schema, dropped after; the bytes its tables and indexes
  hold per record after a VACUUM, by relation.

With `--input-bytes B` each record's invocation keeps an input of about B bytes (`triggerfish dev` keeps every
input).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import secrets
import sqlite3
import tempfile
import time
import uuid
from contextlib import closing
from typing import Any

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
WARM = 200


def request_id() -> str:
    """A version 7 UUID, as the platform draws request ids (they start with the time)."""
    raw = bytearray(int(time.time() * 1000).to_bytes(6, "big") + secrets.token_bytes(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


async def write(records: Any, count: int, at_once: int, input_bytes: int) -> None:
    from triggerfish.runtime.inputs import keep_input
    from triggerfish.runtime.records import InvocationRecord
    from triggerfish.runtime.types import InvokeRequest

    done = 0
    while done < count:
        for _ in range(min(at_once, count - done)):
            now = time.time()
            rid = request_id()
            record = InvocationRecord(
                request_id=rid,
                function="hello",
                version="1",
                trigger="http",
                attempt=1,
                status="succeeded",
                started_at=now,
                ended_at=now + 0.001,
                duration_ms=1.234,
                billed_duration_ms=2,
                memory_mb=128,
                gb_seconds=0.000244140625,
                worker_pid=4242,
                trace_id=f"{int(now * 1000):012x}" + secrets.token_hex(10),
                span_id=secrets.token_hex(8),
                max_memory_used_mb=40,
                input_bytes=640,
                output_bytes=52,
                http_route="GET /hello",
                http_status=200,
            )
            kept = keep_input(InvokeRequest(rid, "hello", {"x": "y" * input_bytes})) if input_bytes else None
            records.add_soon(record, kept)
            done += 1
        await records.settled()


async def count_sqlite(count: int, at_once: int, input_bytes: int) -> dict[str, Any]:
    import triggerfish.store.sqlite as sqlite_store
    from triggerfish.runtime.records import InvocationRecords
    from triggerfish.store import open_store

    class NoCheckpoints:
        def __init__(self, path: str, **options: object) -> None:
            pass

        def stop(self) -> None:
            pass

    setattr(sqlite_store, "Checkpointer", NoCheckpoints)  # noqa: B010 (the store's own name for it, replaced)
    path = os.path.join(tempfile.mkdtemp(prefix="record-rows-"), "store.db")
    wal = path + "-wal"

    def frames() -> int:
        return 0 if not os.path.exists(wal) else (os.path.getsize(wal) - 32) // (4096 + 24)

    store = await open_store(f"sqlite:///{path}")
    records = InvocationRecords(store, clock=time.time)
    await write(records, WARM, at_once, input_bytes)
    before = frames()
    await write(records, count, at_once, input_bytes)
    written = frames() - before
    await store.close()
    with closing(sqlite3.connect(path)) as c, c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = collections.Counter(name for (name,) in c.execute("SELECT name FROM dbstat"))
        kv_rows = c.execute("SELECT count(*) FROM kv").fetchone()[0]
        log_rows = c.execute("SELECT count(*) FROM log_records").fetchone()[0]
    stored = count + WARM
    return {
        "frames_per_record": written / count,
        "pages_per_record": sum(pages.values()) / stored,
        "pages": {name: n for name, n in pages.most_common() if n > 1},
        "rows_per_record": (kv_rows + log_rows) / stored,
    }


async def count_postgresql(count: int, at_once: int, input_bytes: int) -> dict[str, Any]:
    import psycopg

    from triggerfish.runtime.records import InvocationRecords
    from triggerfish.store import open_store

    schema = "record_rows_" + secrets.token_hex(4)
    store = await open_store(f"{POSTGRES_URL}?schema={schema}")
    try:
        await write(InvocationRecords(store, clock=time.time), count, at_once, input_bytes)
    finally:
        await store.close()
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL, autocommit=True) as c:
        try:
            for table in ("log_records", "kv"):
                await c.execute(f"VACUUM {schema}.{table}")
            cursor = await c.execute(
                "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid ="
                " c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'i') AND pg_relation_size(c.oid) > 8192"
                " ORDER BY 2 DESC",
                (schema,),
            )
            sizes = {name: int(size) for name, size in await cursor.fetchall()}
        finally:
            await c.execute(f"DROP SCHEMA {schema} CASCADE")
    return {"bytes_per_record": sum(sizes.values()) / count, "pages": {n: s // 8192 for n, s in sizes.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", choices=["sqlite", "postgresql"])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--at-once", type=int, default=32)
    parser.add_argument("--input-bytes", type=int, default=0)
    args = parser.parse_args()
    counter = count_sqlite if args.store == "sqlite" else count_postgresql
    print(json.dumps(asyncio.run(counter(args.count, args.at_once, args.input_bytes))))


if __name__ == "__main__":
    main()
