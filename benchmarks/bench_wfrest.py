"""Issue 12's rest: checkpoint answers of a long AWS durable execution (this tree beside another checkout, main by
default), and projections in per-stream order beside global order.

    .venv/bin/python -m benchmarks.run wfrest
    WFREST_BASE=/tmp/wfrest-base .venv/bin/python -m benchmarks.run wfrest   # the checkout to compare with

1. **Checkpoints of a long execution.** A durable execution's record gets 1,000 steps, one
   CheckpointDurableExecution each (`DurableExecutions.checkpoint`, the call the `/-/aws` route makes, its
   answer encoded as the route encodes it), on SQLite, each checkpoint with the token the last answer gave.
   Reported: the median time of a checkpoint and its answer's size, for the steps 1-100, 401-500 and 901-1,000.
   Each tree runs in a process of its own (the other checkout through PYTHONPATH), in turns A B A B.
2. **Projections.** 2,000 events over 16 streams, all there before the projection starts; the time until the
   projection has applied them all (worker processes as `triggerfish dev` runs them), in global order and in
   per-stream order (8 streams at once), with a handler that does nothing and one that waits 2 ms per event (a
   call to another service), in turns.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import load_average

ROOT = Path(__file__).resolve().parents[1]
STEPS = 1000
WINDOWS = ((1, 100), (401, 500), (901, 1000))
ROUNDS = 2

CHECKPOINTS = r"""
import asyncio, json, sys, tempfile, time
from pathlib import Path

import orjson

from triggerfish.identity import durable_execution_arn
from triggerfish.server.platform import Platform
from triggerfish.workflows import aws_ops
from triggerfish.workflows.engine import new_record

APP = '''
import triggerfish
app = triggerfish.App("bench")

@app.function(durable=True)
def long(event, context):
    return None
'''


async def main(steps):
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        platform = Platform(str(Path(directory) / "app.py"), data_dir=Path(directory) / "data")
        await platform.start()
        try:
            workflows = platform.workflows
            record = new_record("exec-1", "long", {}, time.time())
            record.update(api=aws_ops.API, run=1, lambda_name="bench-long")
            await workflows.state.atomic([workflows.state.put(record, 0)])
            arn = durable_execution_arn("bench-long", "exec-1")
            token = aws_ops.checkpoint_token("exec-1", 1, 0)
            rows = []
            for n in range(steps):
                update = {"Id": f"s{n}", "Type": "STEP", "Action": "SUCCEED", "Name": f"s{n}", "Payload": str(n)}
                began = time.perf_counter()
                answer = await workflows.durable.checkpoint(arn, token, [update])
                body = orjson.dumps(answer)
                rows.append((time.perf_counter() - began, len(body)))
                token = answer["CheckpointToken"]
            print(json.dumps(rows))
        finally:
            await platform.stop()


asyncio.run(main(int(sys.argv[1])))
"""


def _checkpoints(tree: Path) -> list[tuple[float, int]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CHECKPOINTS, str(STEPS)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return [(float(t), int(b)) for t, b in json.loads(done.stdout.strip().splitlines()[-1])]


def checkpoints_section() -> str:
    base = Path(os.environ.get("WFREST_BASE", "/tmp/wfrest-base"))
    if not (base / "triggerfish").is_dir():
        return f"(no checkout to compare with at {base}: `git worktree add {base} main`)"
    trees = {"this branch": ROOT, f"main ({base})": base}
    runs: dict[str, list[list[tuple[float, int]]]] = {name: [] for name in trees}
    loads = []
    for _ in range(ROUNDS):
        for name, tree in trees.items():  # A B A B
            loads.append(load_average())
            runs[name].append(_checkpoints(tree))
    lines = [
        "| tree | steps | checkpoint p50 (ms) | answer (bytes, median) |",
        "|---|---|---|---|",
    ]
    medians: dict[tuple[str, int], float] = {}
    for name in trees:
        for low, high in WINDOWS:
            times = [rows[i - 1][0] for rows in runs[name] for i in range(low, high + 1)]
            sizes = [rows[i - 1][1] for rows in runs[name] for i in range(low, high + 1)]
            medians[(name, high)] = statistics.median(times)
            lines.append(
                f"| {name} | {low}-{high} | {statistics.median(times) * 1000:.2f} | {statistics.median(sizes):,.0f} |"
            )
    ratios = ", ".join(
        f"{high} ops: main / branch {medians[(list(trees)[1], high)] / medians[('this branch', high)]:.2f}x"
        for _, high in WINDOWS
    )
    lines.append("")
    lines.append(
        f"Time per checkpoint, {ratios}. Load average (1 min) per run: {', '.join(f'{x:.1f}' for x in loads)}."
    )
    return "\n".join(lines)


PROJECTION_APP = """
import time
import triggerfish

app = triggerfish.App("bench")
WAIT = {wait}


@app.projection("acct", batch_size=100, concurrency=8, {order})
def counts(event, view):
    if WAIT:
        time.sleep(WAIT)
    view.put(event.stream, view.get(event.stream, 0) + 1)
"""

EVENTS = 2000
STREAMS = 16


async def _projection_round(order: str, wait: float) -> float:
    from triggerfish.server.platform import Platform

    declared = 'order="stream", max_concurrency=8' if order == "stream" else 'order="global"'
    with tempfile.TemporaryDirectory() as directory:
        app = Path(directory) / "app.py"
        app.write_text(PROJECTION_APP.format(wait=wait, order=declared))
        platform = Platform(str(app), data_dir=Path(directory) / "data")
        await platform.start()
        try:
            await platform.projections.stop()
            per = EVENTS // STREAMS // 10
            for _ in range(per):
                await asyncio.gather(
                    *(
                        platform.eventstore.append(f"acct-{s}", [{"type": "Counted"} for _ in range(10)])
                        for s in range(STREAMS)
                    )
                )
            began = time.monotonic()
            await platform.projections.start()
            while True:
                [status] = await platform.projections.status()
                if status["lag"] == 0 and not status.get("streams_behind"):
                    break
                await asyncio.sleep(0.01)
            elapsed = time.monotonic() - began
            applied = {r.key for r in await platform.store.kv.scan("projection.counts")}
            assert len(applied) == STREAMS, applied
            return EVENTS / elapsed
        finally:
            await platform.stop()


async def projections_section() -> str:
    cases = [(wait, order) for wait in (0.0, 0.002) for order in ("global", "stream")]
    rates: dict[tuple[float, str], list[float]] = {case: [] for case in cases}
    loads = []
    for _ in range(ROUNDS + 1):
        for wait, order in cases:
            loads.append(load_average())
            rates[(wait, order)].append(await _projection_round(order, wait))
    lines = ["| handler | global order (events/s) | per stream, 8 at once (events/s) | ratio |", "|---|---|---|---|"]
    for wait in (0.0, 0.002):
        one, many = statistics.median(rates[(wait, "global")]), statistics.median(rates[(wait, "stream")])
        what = "does nothing" if not wait else f"waits {wait * 1000:g} ms per event"
        lines.append(f"| {what} | {one:,.0f} | {many:,.0f} | {many / one:.2f}x |")
    lines.append("")
    lines.append(
        f"{EVENTS:,} events over {STREAMS} streams, medians of {ROUNDS + 1} rounds. Load average (1 min) per run: "
        + ", ".join(f"{x:.1f}" for x in loads)
        + "."
    )
    return "\n".join(lines)


async def main() -> str:
    """Both parts, or the one `WFREST_PARTS` names (`checkpoints`, `projections`)."""
    wanted = os.environ.get("WFREST_PARTS", "checkpoints,projections").split(",")
    parts: list[str] = []
    if "checkpoints" in wanted:
        parts += ["### Checkpoints of a long AWS durable execution", "", checkpoints_section(), ""]
    if "projections" in wanted:
        parts += ["### Projections: per stream beside global order", "", await projections_section()]
    return "\n".join(parts)
