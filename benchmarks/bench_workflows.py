"""Durable workflows: workflows of three no-op steps started and completed per second, steps per second, and
what one step's checkpoint costs, on SQLite and on PostgreSQL.

    .venv/bin/python -m benchmarks.run workflows

The platform runs as `triggerfish dev` runs it (worker processes forked from the app's zygote, the store in
this process). Each round starts WORKFLOWS workflows at once over `Workflows.start_workflow` (the record and
its first invocation in one write each) and waits until every one has SUCCEEDED: workflows per second is
WORKFLOWS over the time from the first start to the
last one's end (as its record says), steps per second three times that. Every step is a checkpoint: a platform call from
the worker, a compare-and-set of the workflow's record, an answer.

A step's checkpoint overhead comes from the histories themselves: a workflow of CHAIN no-op steps, run alone,
records when each step began and ended; the time from one step's end to the next one's start is the
checkpoint of the first (the platform call, the write and its commit, the answer) plus a few lines of
Python. The backends take turns, round by round (the machine is shared and noisy).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from benchmarks import postgres
from benchmarks.measure import interleave, load_average, loads, percentile, spread
from triggerfish.server.platform import Platform

WORKFLOWS = 300
CHAIN = 200
ROUNDS = 3
#: The issue's target: three-step workflows completed per second on SQLite.
TARGET_PER_SECOND = 1000.0

APP = """
import triggerfish

app = triggerfish.App("bench")


def noop(value):
    return value


@app.workflow(concurrency=16)
def three(ctx, input):
    ctx.step(noop, 1)
    ctx.step(noop, 2)
    return ctx.step(noop, 3)


@app.workflow(timeout=120)
def chain(ctx, count):
    for index in range(count):
        ctx.step(noop, index)
    return count
"""


async def _until_done(platform: Platform, ids: list[str], within: float) -> float:
    """When the last of `ids` ended (the platform's clock), once all have SUCCEEDED. Polled slowly: a listing
    reads every record on the platform's own event loop, so polling often would slow what it measures."""
    deadline = time.monotonic() + within
    wanted = set(ids)
    while True:
        done = {r["id"]: r["ended"] for r in await platform.workflows.records(function="three", status="SUCCEEDED")}
        if wanted <= done.keys():
            return float(max(done[i] for i in wanted))
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(wanted - done.keys())} workflows were not done in {within:g} s")
        await asyncio.sleep(0.5)


async def _measure(store_url: str, directory: Path) -> dict[str, float]:
    app_file = directory / "app.py"
    app_file.write_text(APP)
    platform = Platform(str(app_file), data_dir=directory / "data", store_url=store_url)
    await platform.start()
    try:
        # Warm the pool first: a worker per slot, so the round measures workflows, not forks.
        warm = [await platform.workflows.start_workflow("three", None) for _ in range(16)]
        await _until_done(platform, warm, 120)
        began = time.time()
        ids = list(await asyncio.gather(*(platform.workflows.start_workflow("three", n) for n in range(WORKFLOWS))))
        seconds = await _until_done(platform, ids, 600) - began
        chained = await platform.workflows.start_workflow("chain", CHAIN)
        deadline = time.monotonic() + 300
        while True:
            record = await platform.workflows.describe(chained)
            if record["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the chain of {CHAIN} steps was not done in 300 s")
            await asyncio.sleep(0.05)
        ops = record["ops"]
        gaps = [(ops[i + 1]["started"] - ops[i]["ended"]) * 1000 for i in range(len(ops) - 1)]
        return {
            "per_second": WORKFLOWS / seconds,
            "steps_per_second": 3 * WORKFLOWS / seconds,
            "p50_ms": percentile(gaps, 0.5),
            "p99_ms": percentile(gaps, 0.99),
        }
    finally:
        await platform.stop()


def _system(url: Callable[[ExitStack], str]) -> Callable[[], dict[str, float]]:
    def run() -> dict[str, float]:
        with ExitStack() as stack, tempfile.TemporaryDirectory() as directory:
            return asyncio.run(_measure(url(stack), Path(directory)))

    return run


def main() -> str:
    started = time.monotonic()
    systems: dict[str, Callable[[], dict[str, float]]] = {
        "SQLite": _system(lambda stack: ""),
    }
    reason = postgres.unavailable()
    if reason is None:
        systems["PostgreSQL"] = _system(lambda stack: stack.enter_context(postgres.fresh_schema()))
    measured = interleave(systems, ROUNDS)
    lines = [
        "## Durable workflows",
        "",
        f"{WORKFLOWS} workflows of three no-op steps started at once and run to the end, {ROUNDS} rounds (median,"
        " lowest to highest); a step's checkpoint from a chain of"
        f" {CHAIN} steps run alone (from one step's end to the next one's start). Worker processes as under"
        " `triggerfish dev`, the store in the platform's process.",
        "",
        "| store | workflows/s | steps/s | checkpoint p50 ms | checkpoint p99 ms | load averages |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in measured.items():
        if runs.error:
            lines.append(f"| {name} | could not run: {runs.error} | | | | |")
            continue
        lines.append(
            f"| {name} | {spread(runs.values(lambda r: r['per_second']))}"
            f" | {spread(runs.values(lambda r: r['steps_per_second']))}"
            f" | {spread(runs.values(lambda r: r['p50_ms']), 2)}"
            f" | {spread(runs.values(lambda r: r['p99_ms']), 2)} | {loads(runs)} |"
        )
    if reason is not None:
        lines.append(f"| PostgreSQL | not run: {reason} | | | | |")
    sqlite = measured["SQLite"]
    if not sqlite.error:
        best = sqlite.median(lambda r: r["per_second"])
        verdict = "met" if best >= TARGET_PER_SECOND else "not met"
        lines += ["", f"Target: at least {TARGET_PER_SECOND:,.0f} three-step workflows/s on SQLite: {verdict}."]
    lines += ["", f"_{time.monotonic() - started:.0f} s, load average {load_average():.1f} at the end._", ""]
    return "\n".join(lines)
