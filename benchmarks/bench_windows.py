"""The built-in stream: records/s through `@app.on_stream` at batch sizes 1, 100 and 1,000, and a tumbling
window's aggregation over 100,000 records, beside the same aggregation in a plain Python loop.

On the real platform (SQLite store, worker processes), records are put in chunks of 500 (what one
`context.streams.put_many` takes) into a stream of two partitions keyed by device (20 devices); the rate is
records over the time from the first put to the last record's checkpoint. The window run sums per device in
60-second windows with the state carried between batches (`window=60`, batches of 1,000); its peer is a dict
of sums filled in one loop over the same records in this process: the ceiling, with nothing stored and no
process crossed. Target (issue 15): ≥ 10,000 records/s with batches of 100 on SQLite.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import interleave_async, loads, spread
from triggerfish.names import partitioned_stream, partitioned_stream_group

RECORDS = int(os.environ.get("BENCH_WINDOWS_RECORDS", "20000"))
WINDOW_RECORDS = int(os.environ.get("BENCH_WINDOWS_WINDOW_RECORDS", "100000"))
ROUNDS = int(os.environ.get("BENCH_WINDOWS_ROUNDS", "3"))
TARGET = 10_000
APP = """
import base64, json, triggerfish
app = triggerfish.App("bench")

@app.on_stream("readings", partition_key="device", batch_size={batch}, parallelization=2{window})
def readings(event, context):
    if "state" not in event:
        return None
    state = dict(event["state"])
    for record in event["Records"]:
        reading = json.loads(base64.b64decode(record["kinesis"]["data"]))
        state[reading["device"]] = state.get(reading["device"], 0) + reading["t"]
    return {{"state": state}}
"""


async def through_stream(batch: int, count: int, window: bool = False) -> float:
    from triggerfish.server.platform import Platform

    with tempfile.TemporaryDirectory() as data:
        app = Path(data) / "app.py"
        app.write_text(APP.format(batch=batch, window=", window=60" if window else ""))
        platform = Platform(str(app), data_dir=Path(data) / "data")
        await platform.start()
        try:
            streams = platform.sources.partitioned
            started = time.time()
            for first in range(0, count, 500):
                records = [({"device": f"d{n % 20}", "t": 21.5}, None) for n in range(first, min(first + 500, count))]
                await streams.put("readings", records)
            log, group = platform.store.log, partitioned_stream_group("readings")
            deadline = time.monotonic() + 600
            while sum([await log.position(partitioned_stream("readings", n), group) for n in range(2)]) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError("the stream was not read within 600 s")
                await asyncio.sleep(0.01)
            ended = time.time()
        finally:
            await platform.stop()
    return count / (ended - started)


LATENCY_APP = """
import time, triggerfish
app = triggerfish.App("bench")

@app.on_stream("readings", partition_key="device", batch_size=100, parallelization=2)
def readings(event, context):
    now = time.time()
    with open({out!r}, "a") as f:
        f.writelines(f"{{now - r['kinesis']['approximateArrivalTimestamp']}}\\n" for r in event["Records"])
"""
LATENCY_RECORDS = 1000


async def put_to_handler() -> tuple[float, float]:
    """p50 and p99 in ms from a put (one record every 5 ms, 20 keys) to the handler's entry."""
    from triggerfish.server.platform import Platform

    with tempfile.TemporaryDirectory() as data:
        app, out = Path(data) / "app.py", Path(data) / "latency.txt"
        app.write_text(LATENCY_APP.format(out=str(out)))
        platform = Platform(str(app), data_dir=Path(data) / "data")
        await platform.start()
        try:
            for n in range(LATENCY_RECORDS):
                await platform.sources.partitioned.put("readings", [({"device": f"d{n % 20}"}, None)])
                await asyncio.sleep(0.005)
            deadline = time.monotonic() + 120
            while not out.exists() or len(out.read_text().splitlines()) < LATENCY_RECORDS:
                if time.monotonic() > deadline:
                    raise TimeoutError("not every record reached the handler within 120 s")
                await asyncio.sleep(0.05)
            waits = sorted(float(line) * 1000 for line in out.read_text().splitlines())
        finally:
            await platform.stop()
    return waits[len(waits) // 2], waits[int(len(waits) * 0.99)]


async def plain_loop() -> float:
    records: list[dict[str, Any]] = [{"device": f"d{n % 20}", "t": 21.5} for n in range(WINDOW_RECORDS)]
    started = time.perf_counter()
    sums: dict[str, float] = {}
    for reading in records:
        sums[reading["device"]] = sums.get(reading["device"], 0) + reading["t"]
    return WINDOW_RECORDS / (time.perf_counter() - started)


async def main() -> str:
    async def batch_1() -> float:
        return await through_stream(1, min(RECORDS, 2000))

    async def batch_100() -> float:
        return await through_stream(100, RECORDS)

    async def batch_1000() -> float:
        return await through_stream(1000, RECORDS)

    async def windowed() -> float:
        return await through_stream(1000, WINDOW_RECORDS, window=True)

    runs = await interleave_async(
        {"batch_1": batch_1, "batch_100": batch_100, "batch_1000": batch_1000, "windowed": windowed,
         "plain": plain_loop},
        ROUNDS,
    )  # fmt: skip
    labels = {
        "batch_1": f"`@app.on_stream`, batches of 1 ({min(RECORDS, 2000):,} records)",
        "batch_100": f"`@app.on_stream`, batches of 100 ({RECORDS:,} records)",
        "batch_1000": f"`@app.on_stream`, batches of 1,000 ({RECORDS:,} records)",
        "windowed": f"`window=60` sums per device, batches of 1,000 ({WINDOW_RECORDS:,} records)",
        "plain": f"the same sums in one plain Python loop ({WINDOW_RECORDS:,} records; the ceiling)",
    }
    rows = []
    for name, label in labels.items():
        series = runs[name]
        figure = spread(series.values(lambda rate: rate)) if series.error is None else f"failed: {series.error}"
        rows.append(f"| {label} | {figure} | {loads(series)} |")
    latency = await interleave_async({"latency": put_to_handler}, ROUNDS)
    waits = latency["latency"]
    if waits.error is None:
        p50, p99 = spread(waits.values(lambda r: r[0]), 1), spread(waits.values(lambda r: r[1]), 1)
        rows.append(f"| put → handler entry, one record every 5 ms over 20 keys: p50 / p99 ms | {p50} / {p99} |"
                    f" {loads(waits)} |")  # fmt: skip
    else:
        rows.append(f"| put → handler entry | failed: {waits.error} | - |")
    at_100 = runs["batch_100"].median(lambda r: r)
    ratio = runs["windowed"].median(lambda r: r) / runs["plain"].median(lambda r: r)
    return "\n".join(
        [
            "## The built-in stream and tumbling windows: records/s",
            "",
            f"Records put in chunks of 500 over 20 devices, two partitions, SQLite; {ROUNDS} rounds in turns;"
            " median (lowest to highest).",
            "",
            "| run | records/s | load average per run |",
            "|---|---|---|",
            *rows,
            "",
            f"Batches of 100: **{at_100:,.0f}** records/s; target ≥ {TARGET:,}: **"
            f"{'met' if at_100 >= TARGET else 'not met'}**. The window run is at {ratio:.1%} of the plain loop.",
        ]
    )


if __name__ == "__main__":
    print(asyncio.run(main()))
