"""PostgreSQL change capture: write → handler latency at a steady 500 writes/s, and changes/s through a handler.

Against the local PostgreSQL (TRIGGERFISH_BENCH_POSTGRES, wal_level = logical), in a
schema of its own with the platform's replication slot dropped after:

- **latency**: `WRITERS` connections commit one INSERT at a time each, paced to
  `RATE` per second together for `SECONDS`, each row carrying the writer's clock just before its commit; the
  handler (a worker process, batches of up to 500) subtracts it from its own clock
  on arrival. Latency is commit → handler start: the slot poll (every 20 ms when
  idle), decoding, the batch and the worker's start of the invocation.
- **throughput**: `BULK` rows inserted in transactions of 1,000 as fast as the server
  takes them, timed from the first insert to the last change handled.

The platform runs on SQLite in a temporary directory. Target (issue 11, for the
platform's own tables): write → handler p99 ≤ 20 ms; quoted here for comparison.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.measure import load_average, number, percentile
from benchmarks.postgres import SERVER

RATE = int(os.environ.get("BENCH_PGCAPTURE_RATE", "500"))
SECONDS = float(os.environ.get("BENCH_PGCAPTURE_SECONDS", "10"))
BULK = int(os.environ.get("BENCH_PGCAPTURE_BULK", "20000"))
#: Connections writing at once: one commit waits for its WAL flush, so one connection alone falls short of RATE.
WRITERS = 4
#: The app, written beside its data for each run (workers see their app's files, not the benchmark's environment):
#: the handler subtracts the time the writer put in each row from its own clock on arrival.
APP = """
import time, triggerfish
app = triggerfish.App("benchpgc")

@app.on_change("env:BENCH_PGCAPTURE_DB", table={table!r}, batch_size=500)
def changed(event, context):
    now = time.time()
    with open({out!r}, "a") as f:
        for record in event["Records"]:
            f.write(f"{{now - float(record['dynamodb']['NewImage']['written']['N']):.6f}}\\n")
"""


async def run() -> tuple[list[float], float, float]:
    import psycopg

    from triggerfish.server.platform import Platform

    schema = f"bench_pgc_{uuid.uuid4().hex[:8]}"
    db = await psycopg.AsyncConnection.connect(SERVER, autocommit=True)
    await db.execute(f"CREATE SCHEMA {schema}")
    await db.execute(f"CREATE TABLE {schema}.readings (id bigint PRIMARY KEY, written double precision NOT NULL)")
    with tempfile.TemporaryDirectory() as data:
        out, app = Path(data) / "latencies.txt", Path(data) / "app.py"
        app.write_text(APP.format(table=f"{schema}.readings", out=str(out)))
        os.environ["BENCH_PGCAPTURE_DB"] = SERVER
        platform = Platform(str(app), data_dir=Path(data) / "store")
        await platform.start()
        try:

            def handled() -> int:
                return int(platform.pg_changes.status()["changed"]["records"])

            async def until(count: int) -> float:
                deadline = time.monotonic() + 120
                while handled() < count:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{handled()} of {count} changes handled in 120 s")
                    await asyncio.sleep(0.005)
                return time.time()

            # Warm up: the first invocation starts a worker.
            await db.execute(f"INSERT INTO {schema}.readings VALUES (0, %s)", (time.time(),))
            await until(1)
            out.write_text("")
            writes = int(RATE * SECONDS)
            writers = [await psycopg.AsyncConnection.connect(SERVER, autocommit=True) for _ in range(WRITERS)]
            started = time.monotonic()

            async def write(index: int) -> None:
                # Writer `index` commits rows index+1, index+1+WRITERS, ...: together RATE a second, evenly spaced.
                for n in range(index + 1, writes + 1, WRITERS):
                    pause = started + n / RATE - time.monotonic()
                    if pause > 0:
                        await asyncio.sleep(pause)
                    await writers[index].execute(f"INSERT INTO {schema}.readings VALUES (%s, %s)", (n, time.time()))

            try:
                await asyncio.gather(*(write(index) for index in range(WRITERS)))
            finally:
                for writer in writers:
                    await writer.close()
            await until(writes + 1)
            achieved = writes / (time.monotonic() - started)
            latencies = [float(line) for line in out.read_text().split()]
            # Throughput: a bulk load, in transactions of 1,000 rows.
            first = writes + 1
            begun = time.time()
            for low in range(first, first + BULK, 1000):
                await db.execute(
                    f"INSERT INTO {schema}.readings SELECT n, extract(epoch FROM clock_timestamp())"
                    f" FROM generate_series(%s::bigint, %s::bigint) AS n",
                    (low, min(low + 999, first + BULK - 1)),
                )
            ended = await until(writes + 1 + BULK)
            throughput = BULK / (ended - begun)
        finally:
            await platform.stop()
            await db.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name LIKE 'tf_benchpgc_%'"
            )
            await db.execute(f"DROP SCHEMA {schema} CASCADE")
            await db.close()
    return latencies, achieved, throughput


def main() -> str:
    load = load_average()
    latencies, achieved, throughput = asyncio.run(run())
    ms = [value * 1000 for value in latencies]
    return "\n".join(
        [
            "## PostgreSQL change capture: write → handler",
            "",
            f"{WRITERS} writers committing single-row INSERTs at {RATE}/s for {SECONDS:g} s"
            f" (achieved {achieved:,.0f}/s), a handler in a worker process measuring commit → handler start;"
            f" then a bulk load of {BULK:,} rows in transactions of 1,000. Load average {load:.1f} at the start.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| latency p50 | {number(percentile(ms, 0.5), 1)} ms |",
            f"| latency p99 | {number(percentile(ms, 0.99), 1)} ms |",
            f"| latency max | {number(max(ms), 1)} ms |",
            f"| changes handled in the latency run | {len(ms):,} |",
            f"| throughput (bulk load to last change handled) | {throughput:,.0f} changes/s |",
        ]
    )


if __name__ == "__main__":
    print(main())
