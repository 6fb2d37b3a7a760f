"""Where a table change's milliseconds go on its way to an `@app.on_change` handler, stage by stage (SQLite).

    python -m benchmarks.profile_changes [--seconds 6] [--rate 500]

Runs the tables benchmark's latency scenario (the real platform, a worker process, writes at
RATE per second from the platform's process) with timing wrapped around the store's calls in
this process only: the write's transaction, any later transaction that appends the change to a
partition stream (none when the write hands the change over itself: `changes.routes`), and the
claim or read that hands it to the partition reader. The handler notes when it saw each record. Prints,
per stage, the p50 and p99 of the milliseconds it added. Not part of
`scripts/bench`: a diagnostic for the write → handler target (docs/benchmarks.md, "Tables").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from benchmarks.bench_tables import handled_lines, orders_platform, write_paced
from benchmarks.measure import load_average, percentile
from triggerfish.store.atomic import Append, Forward

APP = """
import json, time, triggerfish
app = triggerfish.App("bench")

@app.on_change("orders", batch_size=100)
def record(event, context):
    now = time.time()
    with open({out!r}, "a") as f:
        f.writelines(json.dumps([r["dynamodb"]["SequenceNumber"], now]) + "\\n" for r in event["Records"])
"""


def instrument(store: Any, marks: dict[int, dict[str, float]]) -> None:
    """Note, per change (its table stream offset), when each stage of this process began and ended."""
    atomic, claim, read = store.atomic, store.log.claim, store.log.read

    async def timed_atomic(ops: Any) -> Any:
        began = time.time()
        results = await atomic(ops)
        done = time.time()
        forwarded = any(isinstance(op, Forward) and result for op, result in zip(ops, results, strict=True))
        for op, result in zip(ops, results, strict=True):
            if not isinstance(op, Append):
                continue
            if op.stream.startswith("table.") and forwarded:  # handed over in the write's own transaction
                for record in result:
                    marks[record.offset].update(write_began=began, written=done, move_began=done, moved=done)
            elif op.stream.startswith("table."):
                for record in result:
                    marks[record.offset].update(write_began=began, written=done)
            elif op.stream.startswith("source."):
                for record in result:
                    offset = _offset(record.data)
                    marks[offset].update(move_began=began, moved=done)
        return results

    async def timed_claim(stream: str, group: str, **options: Any) -> Any:
        began = time.time()
        got = await claim(stream, group, **options)
        if got is not None and stream.startswith("source."):
            for record in got.records:
                marks[_offset(record.data)].update(claim_began=began, claimed=time.time())
        return got

    async def timed_read(stream: str, **options: Any) -> Any:
        began = time.time()
        got = await read(stream, **options)
        if stream.startswith("source."):  # the partition reader's read (it claims nothing: it owns the partition)
            for record in got:
                marks[_offset(record.data)].update(claim_began=began, claimed=time.time())
        return got

    store.atomic, store.log.claim, store.log.read = timed_atomic, timed_claim, timed_read


def _offset(data: bytes) -> int:
    from triggerfish.streams.records import decode_record

    record = orjson.loads(decode_record(data).payload)
    direct = record.get("dynamodb", {}).get("SequenceNumber")
    return int(direct)


async def run(seconds: float, rate: float) -> dict[int, dict[str, float]]:
    marks: dict[int, dict[str, float]] = defaultdict(dict)
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "seen.jsonl"
        async with orders_platform(APP, out, lambda store: instrument(store, marks)) as tables:
            total = await write_paced(tables, rate, seconds)
            for line in await handled_lines(out, total):
                sequence, seen = json.loads(line)
                marks[int(sequence)]["handled"] = seen
    return marks


STAGES = [
    ("write: commit (fsync)", "write_began", "written"),
    ("written → move begins", "written", "move_began"),
    ("move: commit", "move_began", "moved"),
    ("moved → partition reader has it", "moved", "claimed"),
    ("its claim or read itself", "claim_began", "claimed"),
    ("read → handler sees it", "claimed", "handled"),
    ("total: write begins → handler", "write_began", "handled"),
]


def report(marks: dict[int, dict[str, float]]) -> str:
    complete = [m for m in marks.values() if all(k in m for _, a, b in STAGES for k in (a, b))]
    rows = []
    for name, start, end in STAGES:
        values = [(m[end] - m[start]) * 1000 for m in complete]
        rows.append(f"| {name} | {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} |")
    return "\n".join(
        [
            f"{len(complete):,} changes traced; load average {load_average():.2f}",
            "",
            "| stage | p50 ms | p99 ms |",
            "|---|---|---|",
            *rows,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args()
    print(report(asyncio.run(run(args.seconds, args.rate))))


if __name__ == "__main__":
    main()
