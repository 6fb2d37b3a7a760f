"""The bus consumer's CPU per event, matching and queueing a range: two checkouts in turns, in one run.

    python -m benchmarks.side_by_side_consume --baseline /tmp/main-checkout [--rounds 3]

What `EventBus.consume` costs the platform's event loop for each event of a
claimed range, with `benchmarks/apps/events_latency_app.py`'s 100 rules: a
range of 256 `OrderPlaced` events (the load generator's) is decoded, matched
and turned into invocation messages 150 times, and the CPU time of the
process (`time.process_time`, so other processes' load counts little) is
divided by the events. No store write: `consume` builds the writes the
consumer then stores. Each round runs each checkout once, in a fresh
interpreter with that checkout first on the path; prints Markdown with the
medians and their ratio. With `--instructions`, each checkout instead runs
under valgrind's callgrind twice, consuming the range 2 and 12 times: the
difference in instructions over 10 x 256 events is what an event costs,
the same under any load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import load_average

RANGE = 256
REPEATS = 15
PER_REPEAT = 10
CALLGRIND = ("valgrind", "--tool=callgrind")


async def measure(directory: Path, calls: int | None = None) -> float:
    """Median CPU microseconds per event of `consume` over REPEATS samples (this interpreter's code); with
    `calls`, consume the range that many times after the warm-up, untimed (for counting instructions)."""
    from benchmarks.apps.events_latency_app import app
    from benchmarks.loadgen_events import order_event
    from triggerfish.bus.bus import EventBus
    from triggerfish.bus.rules import Rules
    from triggerfish.events.cloudevent import Event
    from triggerfish.runtime.inprocess import InProcessRunner
    from triggerfish.runtime.invoke import Invoker
    from triggerfish.store import open_store

    async with await open_store(f"sqlite:///{directory / 'store.db'}") as store:
        invoker = Invoker(InProcessRunner(app.functions), store)
        bus = EventBus(store, Rules(store, app.functions), invoker=invoker)
        await bus.rules.load()
        await bus.publish("default", [Event.from_dict(order_event(f"e-{n}", n)) for n in range(RANGE)])
        records = await store.log.read("bus.default", limit=RANGE)
        for _ in range(5):  # warm: caches, the pattern engine's memo
            await bus.consume("default", records)
        if calls is not None:
            for _ in range(calls):
                await bus.consume("default", records)
            return 0.0
        samples = []
        for _ in range(REPEATS):
            began = time.process_time()
            for _ in range(PER_REPEAT):
                await bus.consume("default", records)
            samples.append((time.process_time() - began) / PER_REPEAT / len(records) * 1e6)
    return statistics.median(samples)


def run_once(tree: Path) -> float:
    # This file run as a script, `tree` alone on the path: the checkout's `triggerfish` and app are measured.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, __file__, "--measure"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def instructions_per_event(tree: Path) -> float:
    """Instructions one event costs `consume` on `tree`'s code: two runs under callgrind, differenced."""
    totals = []
    with tempfile.TemporaryDirectory(prefix="bench-consume-cg-") as tmp:
        for calls in (2, 12):
            out = Path(tmp) / f"callgrind-{calls}.out"
            subprocess.run(
                [
                    *CALLGRIND,
                    f"--callgrind-out-file={out}",
                    sys.executable,
                    __file__,
                    "--measure",
                    "--calls",
                    str(calls),
                ],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree)},
                capture_output=True,
                timeout=1800,
                check=True,
            )
            totals.append(
                next(
                    int(line.split()[1])
                    for line in out.read_text().splitlines()
                    if line.startswith(("totals:", "summary:"))
                )
            )
    return (totals[1] - totals[0]) / (10 * RANGE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="the checkout to compare with (e.g. main's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    parser.add_argument("--measure", action="store_true", help="(internal) measure this interpreter's code once")
    parser.add_argument("--calls", type=int, help="(internal) with --measure: consume this many times, untimed")
    args = parser.parse_args()
    if args.measure:
        with tempfile.TemporaryDirectory(prefix="bench-consume-") as tmp:
            print(f"{asyncio.run(measure(Path(tmp), args.calls)):.2f}")
        return
    if args.baseline is None:
        parser.error("--baseline is required")
    trees = {"before": args.baseline.resolve(), "after": Path(__file__).resolve().parents[1]}
    if args.instructions:
        counted = {name: instructions_per_event(tree) for name, tree in trees.items()}
        print("| code | instructions per event (callgrind) |")
        print("|---|---:|")
        for name, tree in trees.items():
            print(f"| {name} (`{tree}`) | {counted[name]:,.0f} |")
        print(f"\nafter / before: {counted['after'] / counted['before']:.2f}x")
        return
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            load = load_average()
            runs[name].append((run_once(tree), load))
    print("| code | CPU µs per event, each round (load average) | median |")
    print("|---|---|---:|")
    medians = {}
    for name, tree in trees.items():
        medians[name] = statistics.median(value for value, _ in runs[name])
        cells = ", ".join(f"{value:.1f} ({load:.1f})" for value, load in runs[name])
        print(f"| {name} (`{tree}`) | {cells} | {medians[name]:.1f} |")
    print(f"\nafter / before: {medians['after'] / medians['before']:.2f}x")


if __name__ == "__main__":
    main()
