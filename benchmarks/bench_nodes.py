"""Many machines: durable async invocations/s with one and two worker nodes on PostgreSQL, against the peers.

    scripts/bench nodes

Triggerfish: a gateway node (`triggerfish serve --role gateway`) and one or
two worker nodes (`triggerfish serve --role worker`), all on one fresh
PostgreSQL schema; `benchmarks/apps/async_app.py` deployed with
`triggerfish deploy`; the producers (as in `bench_async.py`) call the
gateway's Invoke API with an admin key. A run ends when the gateway sees the
function's queue empty (every invocation run, recorded and acknowledged).
The peers on a durable Redis (`appendonly yes`, `appendfsync always`) with
one and two worker processes: Dramatiq (`--processes N`, 8 threads each),
Celery (prefork, `--concurrency N`). Everything shares this machine's two
cores with the producers and the database. Systems take turns, ROUNDS rounds.

Needs postgresql:// store URLs (triggerfish[postgres]) and the server at
TRIGGERFISH_BENCH_POSTGRES; otherwise the report says why it did not run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import async_systems, postgres
from benchmarks.async_systems import Target
from benchmarks.bench_async import PRODUCERS, WARMUP, AsyncRun, SystemStart, run_once
from benchmarks.measure import Runs, interleave, loads, spread

N = int(os.environ.get("TRIGGERFISH_BENCH_NODES_N", "4000"))
ROUNDS = int(os.environ.get("TRIGGERFISH_BENCH_NODES_ROUNDS", "3"))
#: Tasks per producer call, one table per value: 1 (one call per task), and each system's batched send.
BATCHES = [int(b) for b in os.environ.get("TRIGGERFISH_BENCH_NODES_BATCH", "1,50").split(",") if b]


@contextmanager
def _cluster(work: Path, workers: int) -> Iterator[Target]:
    with postgres.fresh_schema() as store, async_systems.triggerfish_cluster(work, store=store, workers=workers) as t:
        yield t


SYSTEMS: dict[str, tuple[str, str, int, SystemStart]] = {
    "triggerfish-1": ("Triggerfish", "worker node", 1, lambda w: _cluster(w, 1)),
    "triggerfish-2": ("Triggerfish", "worker nodes", 2, lambda w: _cluster(w, 2)),
    "dramatiq-1": ("Dramatiq", "process", 1, lambda w: async_systems.dramatiq(w, durable=True, processes=1)),
    "dramatiq-2": ("Dramatiq", "processes", 2, lambda w: async_systems.dramatiq(w, durable=True, processes=2)),
    "celery-1": ("Celery", "process", 1, lambda w: async_systems.celery(w, durable=True, processes=1)),
    "celery-2": ("Celery", "processes", 2, lambda w: async_systems.celery(w, durable=True, processes=2)),
}


def report(runs: dict[str, Runs[AsyncRun]], batch: int = 1) -> str:
    rows = [
        "| system | workers | tasks/s end to end | enqueue phase tasks/s | load avg at each run |",
        "|---|---|---:|---:|---|",
    ]
    notes = {run.result.note for series in runs.values() for run in series.runs if run.result.note}
    for name, series in runs.items():
        system, unit, count, _ = SYSTEMS[name]
        if series.error is not None or not series.runs:
            rows.append(f"| {system} | {count} {unit} | could not run: {series.error} | | |")
            continue
        rows.append(
            f"| {system} | {count} {unit} | {spread(series.values(lambda r: r.rate))}"
            f" | {spread(series.values(lambda r: r.enqueue_rate))} | {loads(series)} |"
        )
    growth = []
    for system in ("triggerfish", "dramatiq", "celery"):
        one, two = runs.get(f"{system}-1"), runs.get(f"{system}-2")
        if one and two and one.runs and two.runs and one.error is None and two.error is None:
            ratios = [b.result.rate / a.result.rate for a, b in zip(one.runs, two.runs, strict=False)]
            added = statistics.median(two.values(lambda r: r.rate)) - statistics.median(one.values(lambda r: r.rate))
            growth.append(f"{SYSTEMS[system + '-1'][0]} {spread(ratios, 2)}x ({added:+,.0f}/s)")
    return "\n".join(
        [
            "## Many machines: async invocations with one and two worker nodes"
            + (f", batches of {batch}" if batch > 1 else ""),
            "",
            f"{N:,} no-op tasks per run from {PRODUCERS} producer processes, one call at a time each"
            + (
                f" ({batch} tasks per call: Triggerfish's `invoke-batch`, Dramatiq's `group(...).run()`, Celery's"
                " `group(...).apply_async()`)"
                if batch > 1
                else ""
            )
            + f", after"
            f" {WARMUP} warm-up tasks. Triggerfish: `triggerfish serve --role gateway` plus one or two"
            " `serve --role worker` nodes on one fresh PostgreSQL schema per run, the app deployed with"
            " `triggerfish deploy`, the producers calling the gateway's Invoke API (`Event`); done when the"
            " gateway sees the function's queue empty (run, recorded, acknowledged). Dramatiq and Celery on a"
            " durable Redis (`appendonly yes`, `appendfsync always`) with one and two worker processes; done when"
            f" the last task has run. {ROUNDS} rounds, the systems taking turns; medians with the range."
            + (f" Triggerfish's nodes ran {'; '.join(sorted(notes))}." if notes else ""),
            "",
            *rows,
            "",
            "- From one worker to two, per round: " + ("; ".join(growth) or "not measured") + ".",
        ]
    )


def main() -> str:
    reason = postgres.unavailable()
    if reason is not None:
        return "\n".join(
            [
                "## Many machines: async invocations with one and two worker nodes",
                "",
                f"Not measured: {reason}. The benchmark runs `triggerfish serve --role gateway|worker --store"
                " postgresql://...` nodes against Dramatiq and Celery on a durable Redis (benchmarks/bench_nodes.py).",
            ]
        )
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as tmp:
        root = Path(tmp)

        sections = []
        for batch in BATCHES:

            def measured(start: SystemStart, b: int = batch) -> Callable[[], AsyncRun]:
                return lambda: run_once(start, root, count=N, batch=b)

            runs = interleave({name: measured(start) for name, (_, _, _, start) in SYSTEMS.items()}, ROUNDS)
            sections.append(report(runs, batch))
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(main())
