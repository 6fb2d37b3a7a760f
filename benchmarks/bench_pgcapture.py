"""PostgreSQL change capture: write → handler latency at a steady 500 writes/s, and changes/s through a handler,
with `parallelization` 1 (the slot read directly) and 4 (records moved into partitions), run in turns.

Against the local PostgreSQL (TRIGGERFISH_BENCH_POSTGRES, wal_level = logical), in a
schema of its own with the platform's replication slot dropped after:

- **latency**: `WRITERS` connections commit one INSERT at a time each, paced to
  `RATE` per second together for `SECONDS`, each row carrying the writer's clock just before its commit; the
  handler (a worker process, batches of up to 500) subtracts it from its own clock
  on arrival. Latency is commit → handler start: the slot poll (every 20 ms when
  idle), decoding, the batch and the worker's start of the invocation.
- **throughput**: `BULK` rows inserted in transactions of 1,000 as fast as the server
  takes them, timed from the first insert to the last change handled (the handler's clock).

Each setting in `BENCH_PGCAPTURE_PARALLEL` (default "1-fixed,1,4") runs once, in that order, in the same
process and minutes, so their figures are comparable on a shared machine: a number is the
`parallelization`; "-fixed" polls every 20 ms after an empty peek, as before the adaptive poll
(`pg_capture.BUSY_POLL_INTERVAL` set to `POLL_INTERVAL`).

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
SETTINGS = os.environ.get("BENCH_PGCAPTURE_PARALLEL", "1-fixed,1,4").split(",")
#: Connections writing at once: one commit waits for its WAL flush, so one connection alone falls short of RATE.
WRITERS = 4
#: The app, written beside its data for each run (workers see their app's files, not the benchmark's environment):
#: the handler writes the time the writer put in each row and its own clock on arrival.
APP = """
import time, triggerfish
app = triggerfish.App("benchpgc")

@app.on_change("env:BENCH_PGCAPTURE_DB", table={table!r}, batch_size=500, parallelization={parallelization})
def changed(event, context):
    now = time.time()
    with open({out!r}, "a") as f:
        f.writelines(f"{{r['dynamodb']['NewImage']['written']['N']}} {{now:.6f}}\\n" for r in event["Records"])
"""


async def run(parallelization: int) -> tuple[list[float], float, float]:
    import psycopg

    from triggerfish.server.platform import Platform

    schema = f"bench_pgc_{uuid.uuid4().hex[:8]}"
    db = await psycopg.AsyncConnection.connect(SERVER, autocommit=True)
    await db.execute(f"CREATE SCHEMA {schema}")
    await db.execute(f"CREATE TABLE {schema}.readings (id bigint PRIMARY KEY, written double precision NOT NULL)")
    with tempfile.TemporaryDirectory() as data:
        out, app = Path(data) / "latencies.txt", Path(data) / "app.py"
        app.write_text(APP.format(table=f"{schema}.readings", out=str(out), parallelization=parallelization))
        os.environ["BENCH_PGCAPTURE_DB"] = SERVER
        platform = Platform(str(app), data_dir=Path(data) / "store")
        await platform.start()
        try:

            def handled() -> list[tuple[float, float]]:
                """(written, handled) per change, as the handler wrote them (what it wrote in one go)."""
                lines = out.read_text().split("\n")[:-1] if out.exists() else []
                return [(float(written), float(now)) for written, now in (line.split() for line in lines)]

            async def until(count: int) -> list[tuple[float, float]]:
                deadline = time.monotonic() + 120
                while len(done := handled()) < count:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{len(done)} of {count} changes handled in 120 s")
                    await asyncio.sleep(0.02)  # the handler's clock is measured, not this loop's
                return done

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
            achieved = writes / (time.monotonic() - started)
            latencies = [now - written for written, now in await until(writes)]
            out.write_text("")
            # Throughput: a bulk load, in transactions of 1,000 rows.
            first = writes + 1
            begun = time.time()
            for low in range(first, first + BULK, 1000):
                await db.execute(
                    f"INSERT INTO {schema}.readings SELECT n, extract(epoch FROM clock_timestamp())"
                    f" FROM generate_series(%s::bigint, %s::bigint) AS n",
                    (low, min(low + 999, first + BULK - 1)),
                )
            ended = max(now for _, now in await until(BULK))
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
    rows: dict[str, list[str]] = {
        "load average at its start": [],
        "writes/s achieved": [],
        "latency p50": [],
        "latency p99": [],
        "latency max": [],
        "changes handled in the latency run": [],
        "throughput (bulk load to last change handled)": [],
    }
    from triggerfish.changes import pg_capture

    adaptive = pg_capture.BUSY_POLL_INTERVAL
    for setting in SETTINGS:
        load = load_average()
        fixed = setting.endswith("-fixed")
        pg_capture.BUSY_POLL_INTERVAL = pg_capture.POLL_INTERVAL if fixed else adaptive
        try:
            latencies, achieved, throughput = asyncio.run(run(int(setting.removesuffix("-fixed"))))
        finally:
            pg_capture.BUSY_POLL_INTERVAL = adaptive
        ms = [value * 1000 for value in latencies]
        rows["load average at its start"].append(f"{load:.1f}")
        rows["writes/s achieved"].append(f"{achieved:,.0f}")
        rows["latency p50"].append(f"{number(percentile(ms, 0.5), 1)} ms")
        rows["latency p99"].append(f"{number(percentile(ms, 0.99), 1)} ms")
        rows["latency max"].append(f"{number(max(ms), 1)} ms")
        rows["changes handled in the latency run"].append(f"{len(ms):,}")
        rows["throughput (bulk load to last change handled)"].append(f"{throughput:,.0f} changes/s")
    header = " | ".join(
        f"parallelization {s.removesuffix('-fixed')}{', fixed 20 ms poll' if s.endswith('-fixed') else ''}"
        for s in SETTINGS
    )
    return "\n".join(
        [
            "## PostgreSQL change capture: write → handler",
            "",
            f"{WRITERS} writers committing single-row INSERTs at {RATE}/s for {SECONDS:g} s, a handler in a worker"
            f" process measuring commit → handler start; then a bulk load of {BULK:,} rows in transactions of"
            " 1,000. One run per parallelization, in turns.",
            "",
            f"| measure | {header} |",
            "|---" * (len(SETTINGS) + 1) + "|",
            *(f"| {name} | {' | '.join(values)} |" for name, values in rows.items()),
        ]
    )


if __name__ == "__main__":
    print(main())
