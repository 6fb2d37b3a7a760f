"""Tables: put, get and query per second on SQLite; write -> `@app.on_change` handler latency at 500 writes/s.

Target (from the issue): write -> handler p99 at most 20 ms on SQLite. The operations
run in-process on the table engine (`triggerfish.tables.table.Tables` over a SQLite
store, 16 concurrent callers), the layer both `context.table` and the DynamoDB endpoint
call. The latency runs the real platform (worker processes) and writes from its process
at a steady 500 per second; the handler measures each record's age from its
`ApproximateCreationDateTime` (the write's commit time on the same clock).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from benchmarks.measure import interleave_async, loads, percentile, spread
from triggerfish.store import Store, open_store
from triggerfish.tables.expressions import Inputs, parse_key_condition
from triggerfish.tables.schema import KeyAttribute, TableSchema
from triggerfish.tables.table import Tables

CALLERS = 16
ITEMS = 4000
PARTITIONS = 400  # 10 items each: a query reads one partition
ROUNDS = 3
RATE = 500.0
SECONDS = 6.0
TARGET_P99_MS = 20.0

APP = """
import json, time, triggerfish
app = triggerfish.App("bench")

@app.on_change("orders", batch_size=100)
def record(event, context):
    now = time.time()
    with open({out!r}, "a") as f:
        f.writelines(json.dumps((now - r["dynamodb"]["ApproximateCreationDateTime"]) * 1000) + "\\n"
                     for r in event["Records"])
"""


def item(n: int) -> dict[str, dict[str, str]]:
    return {
        "customer": {"S": f"c-{n % PARTITIONS}"},
        "n": {"N": str(n)},
        "total": {"N": "42.5"},
        "note": {"S": "x" * 100},
    }


async def operations() -> dict[str, float]:
    """Rates of put, get and query with CALLERS concurrent callers, on a fresh SQLite store."""
    with tempfile.TemporaryDirectory() as directory:
        store = await open_store(f"sqlite:///{Path(directory) / 'store.db'}")
        try:
            tables = Tables(store)
            await tables.create(TableSchema("orders", KeyAttribute("customer"), KeyAttribute("n", "N")))

            async def timed(work: object) -> float:
                began = time.perf_counter()
                await asyncio.gather(*work)  # type: ignore[misc]
                return time.perf_counter() - began

            async def puts(caller: int) -> None:
                for n in range(caller, ITEMS, CALLERS):
                    await tables.put("orders", item(n))

            async def gets(caller: int) -> None:
                for n in range(caller, ITEMS, CALLERS):
                    key = {"customer": {"S": f"c-{n % PARTITIONS}"}, "n": {"N": str(n)}}
                    assert await tables.get("orders", key) is not None

            async def queries(caller: int) -> None:
                for p in range(caller, PARTITIONS, CALLERS):
                    condition = parse_key_condition(
                        "customer = :c", Inputs(values={":c": {"S": f"c-{p}"}}), "customer", "n"
                    )
                    page = await tables.query("orders", condition)
                    assert len(page.items) == ITEMS // PARTITIONS

            put_s = await timed(puts(c) for c in range(CALLERS))
            get_s = await timed(gets(c) for c in range(CALLERS))
            query_s = await timed(queries(c) for c in range(CALLERS))
        finally:
            await store.close()
    return {"put": ITEMS / put_s, "get": ITEMS / get_s, "query": PARTITIONS / query_s}


@asynccontextmanager
async def orders_platform(app: str, out: Path, started: Callable[[Store], None] | None = None) -> AsyncIterator[Tables]:
    """The real platform on `app` (an `@app.on_change("orders")` handler appending a line per record to `out`)
    with the `orders` table, its handler's worker warmed by one write (its line removed); the table engine.
    `started` is given the platform's store as soon as it started (before the warm-up write)."""
    from triggerfish.server.platform import Platform

    root = out.parent
    (root / "app.py").write_text(app.format(out=str(out)))
    (root / "triggerfish.toml").write_text('[tables.orders]\npartition_key = "customer"\nsort_key = "n:N"\n')
    platform = Platform(str(root / "app.py"), data_dir=root / "data")
    await platform.start()
    try:
        if started is not None:
            started(platform.store)
        tables = Tables(platform.store)
        await tables.put("orders", item(-1))  # warm the function's worker before measuring
        await handled_lines(out, 1)
        _written(out, remove=True)
        yield tables
    finally:
        await platform.stop()


async def write_paced(tables: Tables, rate: float, seconds: float) -> int:
    """Write `rate` items per second for `seconds`; how many were written."""
    total = int(rate * seconds)
    began = time.monotonic()
    for n in range(total):
        # Paced on the schedule, not on the previous write: a slow write does not lower the rate.
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await tables.put("orders", item(n))
    return total


async def handled_lines(out: Path, count: int, within: float = 60.0) -> list[str]:
    """The handler's lines once there are `count` of them; TimeoutError after `within` s."""
    deadline = time.monotonic() + within
    # The handler runs in another process: its file is the signal (read with plain calls: they take microseconds).
    while len(lines := _written(out)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the handler did not see every write within {within:.0f} s")
        await asyncio.sleep(0.01)
    return lines


def _written(out: Path, *, remove: bool = False) -> list[str]:
    lines = out.read_text().splitlines() if out.exists() else []
    if remove:
        out.unlink()
    return lines


async def latency() -> list[float]:
    """Milliseconds from each write's commit to its record in the handler, writing RATE per second."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "latency.jsonl"
        async with orders_platform(APP, out) as tables:
            total = await write_paced(tables, RATE, SECONDS)
            return [float(json.loads(line)) for line in await handled_lines(out, total)]


async def main() -> str:
    ops = await interleave_async({"operations": operations}, ROUNDS)
    lat = await interleave_async({"latency": latency}, 1)
    series = ops["operations"]
    rows = [
        f"| {name} | {spread([run.result[name] for run in series.runs])} | {loads(series)} |"
        for name in ("put", "get", "query")
    ]
    runs = lat["latency"]
    if runs.error is not None:
        latency_rows = [f"| write → handler | failed: {runs.error} | | |"]
        verdict = "not measured"
    else:
        samples = [value for run in runs.runs for value in run.result]
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        latency_rows = [f"| write → handler ({len(samples):,} writes) | {p50:.1f} | {p99:.1f} | {loads(runs)} |"]
        verdict = "met" if p99 <= TARGET_P99_MS else "not met"
    return "\n".join(
        [
            "## Tables: operations per second and write → on_change latency (SQLite)",
            "",
            f"{ITEMS:,} items of ~150 bytes in {PARTITIONS} partitions, {CALLERS} concurrent callers on the table"
            f" engine; {ROUNDS} rounds, median (lowest to highest). A query reads one partition (10 items).",
            "",
            "| operation | per second | load average per run |",
            "|---|---|---|",
            *rows,
            "",
            f"Writes at {RATE:.0f}/s for {SECONDS:.0f} s to a table an `@app.on_change` function (worker process)"
            " consumes; each record's age in the handler, from its commit time.",
            "",
            "| path | p50 ms | p99 ms | load average |",
            "|---|---|---|---|",
            *latency_rows,
            "",
            f"Target p99 ≤ {TARGET_P99_MS:.0f} ms: **{verdict}**.",
        ]
    )


if __name__ == "__main__":
    print(asyncio.run(main()))
