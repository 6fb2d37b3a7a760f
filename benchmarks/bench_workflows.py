"""Durable workflows: workflows of three no-op steps started and completed per second, steps per second, and
what one step's checkpoint costs, on SQLite and on PostgreSQL, side by side with DBOS Transact on the same.

    .venv/bin/python -m benchmarks.run workflows
    .venv/bin/python -m benchmarks.bench_workflows --trees /tmp/base .   # Triggerfish's side only, tree by tree
    TRIGGERFISH_BENCH_WORKFLOWS_N=300 .venv/bin/python -m benchmarks.run workflows   # workflows a round (1,000)

The platform runs as `triggerfish dev` runs it (worker processes forked from the app's zygote, the store in this
process, its threads on one core and its heap settled once started: `pinned_as_served`, `as_served`). Each round
starts WORKFLOWS workflows at once over `Workflows.start_workflow` (the record and its first invocation in one write
each) and waits until every one has SUCCEEDED: workflows per second is WORKFLOWS over the time from the first start
to the last one's end (as its record says), steps per second three times that. Each step's success is a checkpoint
(a platform call from the worker, a compare-and-set of the workflow's record, an answer) written before the next
step runs; the last one goes with the outcome.

A step's checkpoint overhead comes from the histories themselves: a workflow of CHAIN no-op steps, run alone,
records when each step began and ended; the time from one step's end to the next one's start is the
checkpoint of the first (the platform call, the write and its commit, the answer) plus a few lines of
Python. DBOS Transact runs the same workflows (benchmarks/dbos_workflows.py, a process per round); the
systems take turns, round by round (the machine is shared and noisy), and the report gives Triggerfish's
rate over DBOS's for each round.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from benchmarks import postgres
from benchmarks.measure import Runs, interleave, load_average, loads, percentile, spread
from triggerfish.server import heap
from triggerfish.server.platform import Platform

#: Workflows a round starts at once (TRIGGERFISH_BENCH_WORKFLOWS_N). 1,000: a round of 300 lasts about 0.3 s on a quiet
#: machine, and its ramp-up and tail (the first batch, the pool's first requests, the last few resumptions) weigh
#: in it: quiet runs of 2026-12-07 13:36 UTC made 1,038 and 1,053/s at 300, 1,237/s at 1,000 and 1,234/s at 3,000
#: (a range of 1,225 to 1,251: the steady state), in turns (docs/benchmarks.md).
WORKFLOWS = int(os.environ.get("TRIGGERFISH_BENCH_WORKFLOWS_N", "1000"))
CHAIN = 200
ROUNDS = 3
#: The issue's target: three-step workflows completed per second on SQLite.
TARGET_PER_SECOND = 1000.0
#: And at least this many times DBOS Transact's on the same database.
TARGET_RATIO = 1.5

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
    """When the last of `ids` ended (the platform's clock), once all have SUCCEEDED. Each record is read until it
    is done, one at a time, and the poll sleeps while the one it reads still runs: a listing of every record
    each time (as this did first) took a fifth of the platform's process at 1,500 workflows, which is the very
    time it measures."""
    deadline = time.monotonic() + within
    remaining = list(ids)
    last = 0.0
    while remaining:
        record = await platform.workflows.describe(remaining[-1])
        if record["status"] == "SUCCEEDED":
            last = max(last, float(record["ended"]))
            remaining.pop()
            continue
        if record["status"] != "RUNNING":
            raise RuntimeError(f"workflow {record['id']} ended {record['status']}: {record.get('error')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(remaining)} workflows were not done in {within:g} s")
        await asyncio.sleep(0.1)
    return last


def as_served() -> None:
    """The heap as `triggerfish dev` keeps it once started (`triggerfish.server.heap`), whichever tree this runs: a
    tree from before `settle` only froze it. Undone by `heap.thaw()` once the platform stopped."""
    getattr(heap, "settle", heap.freeze)()


def pinned_as_served() -> Callable[[], None]:
    """The platform's threads on one core, as `triggerfish dev` keeps them (`triggerfish.cores`;
    `TRIGGERFISH_PLATFORM_CPU=off` lets them run anywhere), before any of them starts; a tree from before it runs
    them anywhere. Returns what puts this thread back where it was (the rounds of DBOS are processes it starts)."""
    before = os.sched_getaffinity(0)
    try:
        from triggerfish import cores
    except ImportError:
        return lambda: None
    cores.pin_platform()
    return lambda: os.sched_setaffinity(0, before)


async def _measure(store_url: str, directory: Path) -> dict[str, float]:
    app_file = directory / "app.py"
    app_file.write_text(APP)
    unpin = pinned_as_served()
    platform = Platform(str(app_file), data_dir=directory / "data", store_url=store_url)
    await platform.start()
    as_served()
    try:
        # Warm the pool first: a worker per slot, so the round measures workflows, not forks.
        warm = [await platform.workflows.start_workflow("three", None) for _ in range(16)]
        await _until_done(platform, warm, 120)
        began, cpu = time.time(), time.process_time()
        ids = list(await asyncio.gather(*(platform.workflows.start_workflow("three", n) for n in range(WORKFLOWS))))
        seconds = await _until_done(platform, ids, 600) - began
        # The platform's own CPU (every thread of this process: event loop, store threads) per workflow: far
        # steadier under other load than the rate (a little of it is the polling in _until_done).
        cpu_ms = (time.process_time() - cpu) * 1000 / WORKFLOWS
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
            "cpu_ms": cpu_ms,
        }
    finally:
        await platform.stop()
        heap.thaw()
        unpin()


def _system(url: Callable[[ExitStack], str]) -> Callable[[], dict[str, float]]:
    def run() -> dict[str, float]:
        with ExitStack() as stack, tempfile.TemporaryDirectory() as directory:
            return asyncio.run(_measure(url(stack), Path(directory)))

    return run


def _dbos_unavailable() -> str | None:
    if importlib.util.find_spec("dbos") is None:
        return "DBOS Transact is not installed (it is in the benchmark extra: scripts/install benchmark)"
    return None


def _dbos(url: Callable[[ExitStack, Path], str]) -> Callable[[], dict[str, float]]:
    """A DBOS round in a process of its own (benchmarks/dbos_workflows.py: DBOS is one per process)."""

    def run() -> dict[str, float]:
        with ExitStack() as stack, tempfile.TemporaryDirectory() as directory:
            command = [sys.executable, "-m", "benchmarks.dbos_workflows", url(stack, Path(directory))]
            done = subprocess.run(
                [*command, str(WORKFLOWS), str(CHAIN)], capture_output=True, text=True, timeout=900, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"DBOS's round failed: {done.stderr.strip().splitlines()[-1:]}")
            found = json.loads(done.stdout.strip().splitlines()[-1])
            gaps = found.pop("gaps")
            return {**found, "p50_ms": percentile(gaps, 0.5), "p99_ms": percentile(gaps, 0.99)}

    return run


def _row(name: str, runs: Runs[dict[str, float]]) -> str:
    if runs.error:
        return f"| {name} | could not run: {runs.error} | | | | | |"
    cpu = spread(runs.values(lambda r: r["cpu_ms"]), 2) if all("cpu_ms" in r.result for r in runs.runs) else "-"
    return (
        f"| {name} | {spread(runs.values(lambda r: r['per_second']))}"
        f" | {spread(runs.values(lambda r: r['steps_per_second']))}"
        f" | {spread(runs.values(lambda r: r['p50_ms']), 2)}"
        f" | {spread(runs.values(lambda r: r['p99_ms']), 2)} | {cpu} | {loads(runs)} |"
    )


def ratios(ours: Runs[dict[str, float]], theirs: Runs[dict[str, float]]) -> list[float]:
    """Triggerfish's workflows/s over DBOS's, round by round (the two ran one after the other)."""
    mine = {run.round: run.result["per_second"] for run in ours.runs}
    return [mine[run.round] / run.result["per_second"] for run in theirs.runs if run.round in mine]


def main() -> str:
    started = time.monotonic()
    systems: dict[str, Callable[[], dict[str, float]]] = {"Triggerfish, SQLite": _system(lambda stack: "")}
    dbos_reason = _dbos_unavailable()
    if dbos_reason is None:
        systems["DBOS, SQLite"] = _dbos(lambda stack, directory: f"sqlite:///{directory / 'dbos.sqlite'}")
    reason = postgres.unavailable()
    if reason is None:
        systems["Triggerfish, PostgreSQL"] = _system(lambda stack: stack.enter_context(postgres.fresh_schema()))
        if dbos_reason is None:
            systems["DBOS, PostgreSQL"] = _dbos(lambda stack, directory: stack.enter_context(postgres.fresh_database()))
    measured = interleave(systems, ROUNDS)
    lines = [
        "## Durable workflows",
        "",
        f"{WORKFLOWS} workflows of three no-op steps started at once and run to the end, {ROUNDS} rounds (median,"
        " lowest to highest), the systems in turns within each round; a step's checkpoint from a chain of"
        f" {CHAIN} steps run alone (from one step's end to the next one's start). Triggerfish: worker processes"
        " as under `triggerfish dev` (16 at once), the store in the platform's process. DBOS Transact: as its"
        " documentation sets it up (`DBOS(config={name, system_database_url})`, `DBOS.launch()`), workflows started"
        " with `DBOS.start_workflow`, in a process of its own per round.",
        "",
        "| system, store | workflows/s | steps/s | checkpoint p50 ms | checkpoint p99 ms | platform CPU ms per"
        " workflow | load averages |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_row(name, runs) for name, runs in measured.items()]
    if reason is not None:
        lines.append(f"| PostgreSQL | not run: {reason} | | | | | |")
    if dbos_reason is not None:
        lines.append(f"| DBOS | not run: {dbos_reason} | | | | | |")
    lines.append("")
    sqlite = measured["Triggerfish, SQLite"]
    for store in ("SQLite", "PostgreSQL"):
        ours, theirs = measured.get(f"Triggerfish, {store}"), measured.get(f"DBOS, {store}")
        if ours is None or theirs is None or ours.error or theirs.error:
            continue
        each = ratios(ours, theirs)
        per_round = ", ".join(f"{r:.2f}x" for r in each)
        verdict = "met" if each and statistics.median(each) >= TARGET_RATIO else "not met"
        lines.append(
            f"- {store}: Triggerfish / DBOS workflows/s, round by round: {per_round} (median"
            f" {statistics.median(each):.2f}x); target at least {TARGET_RATIO}x: {verdict}."
        )
    if not sqlite.error:
        best = sqlite.median(lambda r: r["per_second"])
        verdict = "met" if best >= TARGET_PER_SECOND else "not met"
        lines.append(f"- Target: at least {TARGET_PER_SECOND:,.0f} three-step workflows/s on SQLite: {verdict}.")
    lines += ["", f"_{time.monotonic() - started:.0f} s, load average {load_average():.1f} at the end._", ""]
    return "\n".join(lines)


def _tree(path: str, store: str) -> Callable[[], dict[str, float]]:
    """A round of the Triggerfish side with the code of another source tree, in a process of its own (this file
    measures it, whatever the tree's own benchmark is)."""
    code = (
        "import asyncio, importlib.util, json, sys, tempfile\n"
        "from pathlib import Path\n"
        "from benchmarks import postgres\n"
        "spec = importlib.util.spec_from_file_location('bench_here', sys.argv[2])\n"
        "here = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(here)\n"
        "WORKFLOWS, _measure = here.WORKFLOWS, here._measure\n"
        "import triggerfish\n"
        "assert triggerfish.__file__.startswith(sys.argv[3]), triggerfish.__file__\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    if sys.argv[1] == 'sqlite':\n"
        "        found = asyncio.run(_measure('', Path(d)))\n"
        "    else:\n"
        "        with postgres.fresh_schema() as url:\n"
        "            found = asyncio.run(_measure(url, Path(d)))\n"
        "print(json.dumps(found))\n"
    )

    def run() -> dict[str, float]:
        # In the tree (`python -c` puts the working directory first on sys.path) and on PYTHONPATH: the platform
        # hands its sys.path to the zygote, so the workers run the tree's code too.
        tree = str(Path(path).resolve())
        environment = {**os.environ, "PYTHONPATH": tree}
        done = subprocess.run(
            [sys.executable, "-c", code, store, str(Path(__file__).resolve()), tree],
            cwd=tree,
            capture_output=True,
            text=True,
            env=environment,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the round failed: {done.stderr.strip().splitlines()[-1:]}")
        found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return found

    return run


def compare_trees(trees: list[str], store: str, rounds: int) -> str:
    """The Triggerfish side only, from each source tree in turn (A B A B ...): a change against main's code."""
    systems = {tree: _tree(tree, store) for tree in trees}
    measured = interleave(systems, rounds)
    lines = [
        f"{WORKFLOWS} three-step workflows on {store}, {rounds} rounds, the trees in turns:",
        "",
        "| tree | workflows/s | steps/s | checkpoint p50 ms | checkpoint p99 ms | platform CPU ms per workflow"
        " | load averages |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_row(f"`{tree}`", runs) for tree, runs in measured.items()]
    first, *others = trees
    for other in others:
        base, ours = measured[first], measured[other]
        if base.error or ours.error:
            continue
        each = ratios(ours, base)
        lines.append(f"\n`{other}` / `{first}` workflows/s, round by round: {', '.join(f'{r:.2f}x' for r in each)}")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Compare source trees on the workflows benchmark (A B A B ...)")
    parser.add_argument("--trees", nargs="+", required=True, help="source trees, the first the base")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    options = parser.parse_args()
    print(compare_trees(options.trees, options.store, options.rounds))
