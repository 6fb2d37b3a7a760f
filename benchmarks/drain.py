"""The async drain alone, in the platform's own process: how fast a queue of no-op invocations empties, and the
CPU the platform's process spends per invocation.

    python -m benchmarks.drain [--invocations 3000] [--rounds 3] [--tree DIR ...] [--profile FILE] [--postgres]
    python -m benchmarks.drain --instructions [--invocations 1000] [--rounds 2] [--tree DIR ...]

No HTTP and no producers: each run starts a `Platform` on a fresh SQLite store (as `triggerfish dev`
makes it: inputs kept, metrics listening; `--postgres`: on a fresh schema of the benchmarks' PostgreSQL,
`benchmarks/postgres.py`) with the no-op of `benchmarks/apps/async_app.py`, stops its
dispatcher, queues INVOCATIONS invocations (`invoke_async_many`, 500 per write), then starts the dispatcher
and times until every invocation ran, was recorded and acknowledged. The process's user and system CPU over
the drain (every thread of it: the event loop and the store's threads; the workers are other processes),
divided by the invocations, is close to independent of the machine's load; the rate is not (on PostgreSQL, the
CPU of the store's backends too, read from /proc: the server must run on this machine). The platform runs as
`triggerfish dev` runs it: the interpreter's switch interval set as the served platform sets it
(`triggerfish.cli.serving.SWITCH_INTERVAL`: how long the event loop may wait for the GIL held by the store's
threads), its threads kept on one core as the served platform keeps them (`triggerfish.cores`;
`TRIGGERFISH_PLATFORM_CPU=off` lets them run anywhere) and the heap settled once started
(`triggerfish.server.heap`). `--tree` runs each round in a child process with another source tree first on
PYTHONPATH, the trees taking turns, for a before/after in one run (each tree runs its own copy of this module:
give the trees the same one).
`--profile FILE` writes a cProfile of one drain (the event loop's thread only, from the dispatcher's start to the
queue's end).

`--instructions` runs each round's platform under callgrind (`--separate-threads=yes`, collection switched on
for the drain only) and prints the instructions per invocation by thread: the event loop's, and the platform's
other threads (the store's writer above all); `--keep DIR` keeps the files for `callgrind_annotate`. The workers
are not counted (a worker waiting in `poll` cannot be told to start counting without ptrace): their CPU from /proc
stands beside. Counts, not times: repeatable within a few percent on a loaded machine, and
what a change to the drain's Python shows first. Under callgrind the platform runs some fifty times slower, so
a round drains fewer invocations (1,000 is about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.processes import run_in_tree

if TYPE_CHECKING:
    import cProfile

ROOT = Path(__file__).resolve().parent.parent
BATCH = 500


async def drain_once(
    invocations: int,
    work: Path,
    store_url: str | None = None,
    *,
    count_instructions: bool = False,
    profiler: cProfile.Profile | None = None,
) -> dict[str, float]:
    """One drain of `invocations` queued no-ops on a fresh platform in `work` (on the store at `store_url`, else
    SQLite in `work`): seconds, and CPU seconds. With `count_instructions` (under callgrind), callgrind's
    collection is on for the drain only; `profiler` (cProfile) runs for the drain only."""
    from benchmarks.apps.async_app import DONE_FILE
    from triggerfish.observe.metrics import Metrics
    from triggerfish.server import heap
    from triggerfish.server.platform import Platform

    app_dir = work / "app"
    app_dir.mkdir()
    shutil.copy(ROOT / "benchmarks" / "apps" / "async_app.py", app_dir / "app.py")
    marker = work / "done"
    (app_dir / "triggerfish.toml").write_text(f'[functions."*"]\nenv = {{ {DONE_FILE} = "{marker}" }}\n')
    platform = Platform(str(app_dir / "app.py"), data_dir=work / "data", store_url=store_url)
    platform.keep_inputs = True
    Metrics().watch(platform)
    await platform.start()
    # As `triggerfish dev` runs it: the heap settled once started (a raised young GC threshold), and the switch
    # interval the served platform sets (`_child`), so the drain's GIL hand-offs are the served platform's.
    heap.settle()
    # As served: the workers kept off the platform's core while it is busy (trees before it have no such task).
    placing = None
    with contextlib.suppress(ImportError):
        from triggerfish import cores

        if hasattr(cores, "keep_workers_placed"):
            placing = asyncio.create_task(cores.keep_workers_placed())
    try:
        dispatcher = platform.current.invoker.dispatcher
        await dispatcher.stop()
        # Warm the two workers so the drain does not time their cold starts.
        await dispatcher.start()
        await platform.invoke_async_many("noop", [{"n": -i} for i in range(20)])
        await dispatcher.drain()
        await dispatcher.stop()
        for first in range(0, invocations, BATCH):
            await platform.invoke_async_many("noop", [{"n": n} for n in range(first, min(invocations, first + BATCH))])
        workers = platform.current.runner.stats("noop")["pids"]
        database = _backends(store_url) if store_url else []
        before, workers_before, started = os.times(), _cpu(workers), time.perf_counter()
        database_before = _cpu(database)
        sleeps_before, worker_sleeps_before = _sleeps(_threads()), _sleeps(_statuses(workers))
        preempted_before = _sleeps(["/proc/self/status"], "nonvoluntary_ctxt_switches:")
        if count_instructions:
            # Not `dispatcher.drain()`: it looks every 5 ms, and under callgrind a drain lasts a minute or more, so its
            # wake-ups (and its reads of the queue's depth) would be counted as the drain's. The last record stored
            # ends the wait instead (its acknowledgement shares its write).
            finished = asyncio.get_running_loop().create_future()
            stored = [0]

            def count(record: object) -> None:
                stored[0] += 1
                if stored[0] == invocations and not finished.done():
                    finished.set_result(None)

            platform.record_listeners.append(count)
            _collect("on")
            await dispatcher.start()
            await finished
            _collect("off")
            await dispatcher.drain()
        else:
            if profiler is not None:
                profiler.enable()
            await dispatcher.start()
            await dispatcher.drain()
            if profiler is not None:
                profiler.disable()
        seconds, after, workers_after = time.perf_counter() - started, os.times(), _cpu(workers)
        database_after = _cpu(database)
        sleeps, worker_sleeps = _sleeps(_threads()) - sleeps_before, _sleeps(_statuses(workers)) - worker_sleeps_before
        preempted = _sleeps(["/proc/self/status"], "nonvoluntary_ctxt_switches:") - preempted_before
    finally:
        if placing is not None:
            placing.cancel()
        await platform.stop(drain=False)
        heap.thaw()
    if _size(marker) != 20 + invocations:
        raise RuntimeError(f"{_size(marker) - 20} of {invocations} invocations ran")
    return {
        "seconds": seconds,
        "user": after.user - before.user,
        "system": after.system - before.system,
        "workers": workers_after - workers_before,
        "database": database_after - database_before,
        "sleeps": sleeps,
        "worker_sleeps": worker_sleeps,
        "preempted": preempted,
    }


def _collect(state: str) -> None:
    """Switch callgrind's collection in this process on or off (it runs under callgrind)."""
    control = shutil.which("callgrind_control") or "callgrind_control"
    subprocess.run([control, "-i", state, str(os.getpid())], check=True, capture_output=True, timeout=120)


def _backends(store_url: str) -> list[int]:
    """The process ids of the PostgreSQL backends serving the store at `store_url` (its application name, which
    `_child` makes unique): the database server's share of the CPU, when it runs on this machine."""
    import psycopg

    from benchmarks.postgres import SERVER

    name = store_url.rpartition("application_name=")[2]
    with psycopg.connect(SERVER, autocommit=True) as connection:
        rows = connection.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchall()
    return [int(pid) for (pid,) in rows]


def _cpu(pids: list[int]) -> float:
    """User and system CPU seconds the processes `pids` used so far (those still alive)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _threads() -> list[str]:
    """The `/proc` status files of this process's threads (the event loop and the store's threads)."""
    return [f"/proc/self/task/{task}/status" for task in os.listdir("/proc/self/task")]


def _statuses(pids: list[int]) -> list[str]:
    return [f"/proc/{pid}/status" for pid in pids]


def _sleeps(statuses: list[str], field: str = "voluntary_ctxt_switches:") -> int:
    """The voluntary context switches the tasks of `statuses` made so far: each is a sleep (on a socket, a pipe, a
    lock or the disk) and the wake-up that ends it. With `field` `nonvoluntary_ctxt_switches:`, the times they were
    preempted (`/proc/self/status`: the event loop's thread, which waits for a core each time)."""
    total = 0
    for status in statuses:
        try:
            text = Path(status).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith(field):
                total += int(line.split()[1])
    return total


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _child(invocations: int, profile: str | None, on_postgres: bool, count_instructions: bool = False) -> None:
    from benchmarks import postgres
    from triggerfish.cli.serving import SWITCH_INTERVAL

    sys.setswitchinterval(SWITCH_INTERVAL)
    try:  # the platform's threads on one core, as served (`TRIGGERFISH_PLATFORM_CPU=off`: anywhere); trees before it
        from triggerfish import cores
    except ImportError:
        pass
    else:
        cores.pin_platform()

    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-drain-"))
        store_url = stack.enter_context(postgres.fresh_schema()) if on_postgres else None
        if store_url is not None:
            store_url += f"&application_name=bench-drain-{os.getpid()}"
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            result = asyncio.run(drain_once(invocations, Path(tmp), store_url, profiler=profiler))
            profiler.dump_stats(profile)
        else:
            result = asyncio.run(drain_once(invocations, Path(tmp), store_url, count_instructions=count_instructions))
    import triggerfish

    print(json.dumps({**result, "pid": os.getpid(), "tree": str(Path(triggerfish.__file__).parent.parent)}))


def _run_tree(tree: Path, invocations: int, profile: str | None, on_postgres: bool) -> dict[str, float]:
    command = [sys.executable, "-m", "benchmarks.drain", "--child", "--invocations", str(invocations)]
    if profile:
        command += ["--profile", profile]
    if on_postgres:
        command.append("--postgres")
    return run_in_tree(command, tree, "the drain")


def _instructions(tree: Path, invocations: int, keep: Path | None = None) -> dict[str, float]:
    """One round from `tree` under callgrind: instructions per invocation on the event loop's thread and on the
    platform's other threads (the callgrind files copied to `keep`, for callgrind_annotate)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    # This file by its path (`-P`: its directory not on sys.path), so a tree from before `--instructions` runs it too.
    command = [sys.executable, "-P", str(Path(__file__).resolve()), "--child", "--instructions"]
    command += ["--invocations", str(invocations)]
    with tempfile.TemporaryDirectory(prefix="bench-drain-cg-") as tmp:
        prefix = [valgrind, "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes"]
        out = Path(tmp) / "callgrind.out"
        result = run_in_tree([*prefix, f"--callgrind-out-file={out}", *command], tree, "the drain")
        # One file per thread (`callgrind.out-01`, ...); thread 01 is the main thread, the platform's event loop.
        parts = {"loop": 0.0, "threads": 0.0}
        for path in Path(tmp).glob("callgrind.out-*"):
            parts["loop" if path.name.endswith("-01") else "threads"] += _total(path)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for path in Path(tmp).glob("callgrind.out-*"):
                shutil.copy(path, keep / f"{tree.name}-{path.name}")
    # The workers are not under callgrind (a worker blocked in `poll` cannot be told to count without ptrace):
    # their CPU, from /proc, stands beside the counts.
    return {
        **{part: count / invocations for part, count in parts.items()},
        "workers_us": result["workers"] / invocations * 1e6,
    }


def _total(path: Path) -> int:
    """The instructions a callgrind output file counted."""
    totals = [line for line in path.read_text().splitlines() if line.startswith(("totals:", "summary:"))]
    return int(totals[-1].split()[1]) if totals else 0


def _print_instructions(rows: dict[Path, list[dict[str, float]]], invocations: int) -> None:
    print(f"Instructions per invocation, {invocations} queued no-ops per drain on SQLite, under callgrind.\n")
    print(
        "| tree | event loop, by round | median | other threads, by round | median | platform (median) |"
        " workers' CPU µs / invocation (not counted: /proc) |"
    )
    print("|---|---|---:|---|---:|---:|---:|")
    for tree, runs in rows.items():
        cells = []
        medians = {}
        for part in ("loop", "threads"):
            medians[part] = statistics.median(r[part] for r in runs)
            cells += [" / ".join(f"{r[part]:,.0f}" for r in runs), f"{medians[part]:,.0f}"]
        totals = statistics.median(r["loop"] + r["threads"] for r in runs)
        workers = statistics.median(r["workers_us"] for r in runs)
        print(f"| `{tree}` | {' | '.join(cells)} | {totals:,.0f} | {workers:.0f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.drain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to run the platform from")
    parser.add_argument("--profile", help="write a cProfile of one drain here")
    parser.add_argument("--postgres", action="store_true", help="on a fresh PostgreSQL schema, not SQLite")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    parser.add_argument("--keep", type=Path, help="with --instructions: copy the callgrind files here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.invocations, args.profile, args.postgres, args.instructions)
        return
    trees = [tree.resolve() for tree in args.tree] if args.tree else [ROOT]
    rows: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    loads = [os.getloadavg()[0]]
    for round_number in range(args.rounds):
        order = trees if round_number % 2 == 0 else list(reversed(trees))
        for tree in order:
            if args.instructions:
                rows[tree].append(_instructions(tree, args.invocations, args.keep))
            else:
                rows[tree].append(_run_tree(tree, args.invocations, args.profile, args.postgres))
            loads.append(os.getloadavg()[0])
    n = args.invocations
    if args.instructions:
        _print_instructions(rows, n)
        print(f"\nLoad average {min(loads):.1f} to {max(loads):.1f}.")
        return
    print(
        f"{n} queued no-ops per drain on {'PostgreSQL' if args.postgres else 'SQLite'}, {args.rounds} rounds,"
        f" the trees taking turns; load average {min(loads):.1f} to {max(loads):.1f}.\n"
    )
    print(
        "| tree | invocations/s | by round | user µs / invocation | system µs / invocation | CPU µs / invocation"
        " | workers' CPU µs / invocation | database's CPU µs / invocation | platform's sleeps / invocation"
        " | workers' sleeps / invocation | event loop preempted / invocation |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tree, runs in rows.items():
        rate = statistics.median(n / r["seconds"] for r in runs)
        by_round = " / ".join(f"{n / r['seconds']:,.0f}" for r in runs)
        user = statistics.median(r["user"] / n * 1e6 for r in runs)
        system = statistics.median(r["system"] / n * 1e6 for r in runs)
        cpu = statistics.median((r["user"] + r["system"]) / n * 1e6 for r in runs)
        workers = statistics.median(r["workers"] / n * 1e6 for r in runs)
        database = statistics.median(r.get("database", 0.0) / n * 1e6 for r in runs)
        sleeps = statistics.median(r.get("sleeps", 0.0) / n for r in runs)
        worker_sleeps = statistics.median(r.get("worker_sleeps", 0.0) / n for r in runs)
        preempted = statistics.median(r.get("preempted", 0.0) / n for r in runs)
        print(
            f"| `{tree}` | {rate:,.0f} | {by_round} | {user:.0f} | {system:.0f} | {cpu:.0f} | {workers:.0f}"
            f" | {database:.0f} | {sleeps:.2f} | {worker_sleeps:.2f} | {preempted:.2f} |"
        )


if __name__ == "__main__":
    main()
