"""Write → `@app.on_change` handler latency of two checkouts, in turns in one run: before and after a change.

    python -m benchmarks.side_by_side_tables --baseline /work/main [--rounds 3]

Runs the tables benchmark's latency scenario (`benchmarks.bench_tables.latency`: writes at
500/s for 6 s from the platform's process, a worker process handles them) once per round on
each checkout's code, alternating, each in a fresh interpreter of that checkout's venv (its
`.venv`, else this interpreter). Prints Markdown: p50 and p99 of every run with the load
average beside it, and the medians of the runs. The machine is shared: the turns see the same
load, so the ratio means more than either figure alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_tables import TARGET_P99_MS
from benchmarks.measure import load_average, percentile

RUN = "import asyncio, json; from benchmarks.bench_tables import latency; print(json.dumps(asyncio.run(latency())))"


def run_once(tree: Path) -> tuple[float, float, float]:
    """(p50, p99, load average) of one latency run on `tree`'s code."""
    python = tree / ".venv" / "bin" / "python"
    load = load_average()
    done = subprocess.run(
        [str(python) if python.exists() else sys.executable, "-c", RUN],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    samples = json.loads(done.stdout.strip().splitlines()[-1])
    return percentile(samples, 0.5), percentile(samples, 0.99), (load + load_average()) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the checkout to compare with (e.g. main)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": args.baseline.resolve(), "after": Path(__file__).resolve().parents[1]}
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            runs[name].append(run_once(tree))
    rows = []
    for name, tree in trees.items():
        cells = ", ".join(f"{p50:.1f} / {p99:.1f} (load {load:.1f})" for p50, p99, load in runs[name])
        p50 = statistics.median(run[0] for run in runs[name])
        p99 = statistics.median(run[1] for run in runs[name])
        verdict = "met" if p99 <= TARGET_P99_MS else "NOT met"
        rows.append(f"| {name} (`{tree}`) | {p50:.1f} | {p99:.1f} | {verdict} | {cells} |")
    print(
        "\n".join(
            [
                f"Write → handler at 500 writes/s on SQLite, {args.rounds} rounds in turns; medians of the runs.",
                "",
                f"| code | p50 ms | p99 ms | p99 ≤ {TARGET_P99_MS:.0f} ms | each run: p50 / p99 ms (load average) |",
                "|---|---|---|---|---|",
                *rows,
            ]
        )
    )


if __name__ == "__main__":
    main()
