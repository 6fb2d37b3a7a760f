"""CPU and context switches per HTTP request, by part of the platform: its event loop, its other threads, its workers.

    python -m benchmarks.thread_costs --tree /path/to/main --tree . [--rounds 3] [--seconds 5] [--loop uvloop]

Starts `triggerfish dev` serving `benchmarks/apps/http_app.py` from each
tree (as PYTHONPATH), loads each in turn with wrk (32 connections, the
trees' order alternating per round) and reads `/proc` of the platform's
process and of every process descended from it (its zygotes and workers)
before and after: user and system CPU, voluntary switches (a sleep: a wait
in a system call, or for the GIL) and involuntary ones (preempted by
another task) of each thread, per request answered. Prints Markdown, a
row per tree and round.

Why: `side_by_side_http` gives the whole tree's CPU per request, which the
machine's load moves by a quarter; split by part, the figures say where a
change acted (the loop's Python, the store's threads, the workers' wake-ups),
and the switches per request are counts that hardly move with the load
(a worker sleeping once per invocation, the loop preempted so often).
Linux only. Python threads have no names in `/proc`: the platform's other
threads (the store's writer, reader and checkpointer, the loop's helpers)
are summed, and the busiest of them is shown on its own.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_http import CONNECTIONS, PATH
from benchmarks.measure import load_average
from benchmarks.processes import Child, serve_on_free_port
from benchmarks.side_by_side_http import dev_command
from benchmarks.wrk import run_wrk

HERE = Path(__file__).resolve().parents[1]
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Task:
    """One thread's counters: CPU seconds in user and system mode, voluntary and involuntary switches."""

    user: float
    system: float
    voluntary: int
    involuntary: int

    def minus(self, before: Task) -> Task:
        return Task(
            self.user - before.user,
            self.system - before.system,
            self.voluntary - before.voluntary,
            self.involuntary - before.involuntary,
        )


def read_task(stat: str, status: str) -> Task:
    """A thread's counters from its `/proc/.../stat` and `/proc/.../status` texts."""
    fields = stat.rsplit(")", 1)[1].split()
    switches = {
        name: int(value)
        for name, _, value in (line.partition(":") for line in status.splitlines())
        if name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
    }
    return Task(
        int(fields[11]) / _TICK,
        int(fields[12]) / _TICK,
        switches.get("voluntary_ctxt_switches", 0),
        switches.get("nonvoluntary_ctxt_switches", 0),
    )


def snapshot(root: int) -> dict[tuple[int, int], Task]:
    """Every thread of `root` and of the processes descended from it, by (process, thread)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    family = {root}
    grown = True
    while grown:
        grown = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grown = True
    tasks: dict[tuple[int, int], Task] = {}
    for pid in family:
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in threads:
            base = f"/proc/{pid}/task/{tid}"
            try:
                tasks[(pid, int(tid))] = read_task(Path(f"{base}/stat").read_text(), Path(f"{base}/status").read_text())
            except (OSError, IndexError, ValueError):
                continue
    return tasks


def parts(root: int, used: dict[tuple[int, int], Task]) -> dict[str, Task]:
    """`used` summed into the event loop (the platform's main thread), its other threads, the busiest of those, and
    the processes below it (zygotes and workers)."""
    loop = [task for (pid, tid), task in used.items() if pid == root and tid == root]
    threads = [task for (pid, tid), task in used.items() if pid == root and tid != root]
    children = [task for (pid, _), task in used.items() if pid != root]
    busiest = max(threads, key=lambda task: task.user + task.system, default=None)
    return {
        "event loop": _sum(loop),
        "other threads": _sum(threads),
        "busiest other thread": _sum([busiest] if busiest is not None else []),
        "workers": _sum(children),
    }


def _sum(tasks: Iterable[Task]) -> Task:
    total = Task(0.0, 0.0, 0, 0)
    for task in tasks:
        total = Task(
            total.user + task.user,
            total.system + task.system,
            total.voluntary + task.voluntary,
            total.involuntary + task.involuntary,
        )
    return total


def describe(task: Task, requests: int) -> str:
    """µs of user + system CPU and switches (voluntary / involuntary), per request."""
    per = max(requests, 1)
    return (
        f"{task.user / per * 1e6:.0f} + {task.system / per * 1e6:.0f} µs,"
        f" {task.voluntary / per:.2f} / {task.involuntary / per:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to run the platform from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.tree] if args.tree else [HERE]
    children: list[Child] = []
    urls: list[str] = []
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="thread-costs-") as tmp:
        work = Path(tmp)
        try:
            for number, tree in enumerate(trees):
                child, port = serve_on_free_port(
                    lambda port, tree=tree: dev_command(tree, args.loop, port, work),  # type: ignore[misc]
                    lambda port: f"http://127.0.0.1:{port}{PATH}",
                    log=work / f"{number}.log",
                    cwd=tree,
                    env={**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{HERE}"},
                )
                children.append(child)
                urls.append(f"http://127.0.0.1:{port}{PATH}")
            for url in urls:
                run_wrk(url, connections=CONNECTIONS, seconds=2)  # forks the workers, fills the caches
            for round_number in range(args.rounds):
                order = list(range(len(trees)))
                for number in order if round_number % 2 == 0 else order[::-1]:
                    root = children[number].pid
                    load = load_average()
                    before = snapshot(root)
                    result = run_wrk(urls[number], connections=CONNECTIONS, seconds=args.seconds)
                    after = snapshot(root)
                    used = {key: task.minus(before[key]) for key, task in after.items() if key in before}
                    cells = [describe(task, result.requests) for task in parts(root, used).values()]
                    rows.append(f"| `{trees[number]}` | {round_number + 1} | {result.rps:,.0f} | {load:.1f} | ")
                    rows[-1] += " | ".join(cells) + " |"
        finally:
            for child in children:
                child.stop()
    print(f"wrk {CONNECTIONS} connections, {args.seconds:g} s per run, {args.loop}; per request: user + system CPU,")
    print("then voluntary / involuntary switches.\n")
    print("| tree | round | req/s | load | event loop | other threads | busiest other thread | workers |")
    print("|---|---:|---:|---:|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
