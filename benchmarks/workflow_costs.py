"""What one three-step workflow costs the platform, counted rather than timed: writes, transactions, statements.

    python -m benchmarks.workflow_costs [--workflows 300] [--profile 25] [--statements]

Runs `benchmarks/bench_workflows.py`'s app on SQLite as its rounds do (the pool warmed first), starts WORKFLOWS
workflows at once and waits for them, and divides by WORKFLOWS what the platform did meanwhile:

- `Store.atomic` calls and the operations they held, by kind (a Put to the records, to the trace index, ...);
- the SQLite writer's transactions (commits: a batch of operations each) and the statements it ran;
- the garbage collector's passes on the event loop, by generation, and their CPU;
- the process's CPU (every thread), which under load moves with the machine; the counts do not.

`--profile N` runs the round under cProfile and prints its N costliest functions by their own time.
Not counted here: instructions. Under callgrind the round runs fifty times longer, and the platform's timed
background work (polls, lease renewals, the benchmark's own wait for the records) grows with the wall time, so
the counts per workflow moved by 2x between runs of one tree; count a piece of the path alone instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import re
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.bench_workflows import APP, _until_done, as_served
from benchmarks.measure import profile_text
from triggerfish.runtime.channel import WorkerConnection
from triggerfish.server import heap
from triggerfish.server.platform import Platform
from triggerfish.store.atomic import Put


def _thread_cpu() -> dict[str, float]:
    """Seconds of CPU each of this process's Python threads has used (Linux: /proc), by thread name; the event
    loop's also split into user and system time (the worker sockets' system calls are the kernel's)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = int(fields[11]) / tick, int(fields[12]) / tick
        name = "event loop" if thread is threading.main_thread() else thread.name.split(":")[0]
        found[name] = found.get(name, 0.0) + user + system
        if thread is threading.main_thread():
            found["event loop, user"], found["event loop, system"] = user, system
    return found


def _descendants_cpu() -> float:
    """Seconds of CPU this process's descendants (the app's zygote and its worker processes) have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    mine = {os.getpid()}
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in mine} - mine
        grew = bool(found)
        mine |= found
    return sum(used[pid] for pid in mine if pid != os.getpid())


def _shape(statement: str) -> str:
    """A statement as it was written: the trace callback's text has its values bound in; they become `?`."""
    return _NUMBER.sub("?", _TEXT.sub("?", " ".join(statement.split())))[:110]


#: A bound value in a traced statement: a string or blob literal, or a number not part of a name.
_TEXT = re.compile(r"[xX]?'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")


def _kind(op: Any) -> str:
    if isinstance(op, Put):
        return f"Put {op.namespace}"
    return type(op).__name__


async def _count(
    workflows: int, directory: Path, profile: cProfile.Profile | None, texts: Counter[str] | None = None
) -> dict[str, float]:
    app_file = directory / "app.py"
    app_file.write_text(APP)
    platform = Platform(str(app_file), data_dir=directory / "data", store_url="")
    await platform.start()
    as_served()
    try:
        warm = [await platform.workflows.start_workflow("three", None) for _ in range(16)]
        await _until_done(platform, warm, 120)
        store: Any = platform._store
        ops: Counter[str] = Counter()
        calls = 0
        atomic = type(store).atomic

        async def counting(self: Any, batch: Any) -> Any:
            nonlocal calls
            calls += 1
            ops.update(_kind(op) for op in batch)
            return await atomic(self, batch)

        statements: Counter[str] = Counter()

        def traced(statement: str) -> None:
            statements[statement.split(None, 1)[0].upper()] += 1
            if texts is not None:
                texts[_shape(statement)] += 1

        read: Counter[str] = Counter()

        def traced_read(statement: str) -> None:
            read[_shape(statement)] += 1

        await store._engine.writer.submit(lambda c: c.set_trace_callback(traced))
        await store._engine.reader.submit(lambda c: c.set_trace_callback(traced_read))
        type(store).atomic = counting
        # Frames to the workers: each invocation's request and each platform call's answer.
        frames = 0
        send = WorkerConnection.send

        def counted_send(self: WorkerConnection, data: bytes) -> None:
            nonlocal frames
            frames += 1
            send(self, data)

        WorkerConnection.send = counted_send  # type: ignore[method-assign]
        collections = _Collections()
        gc.callbacks.append(collections)
        batches, began_ops = store.write_stats.batches, store.write_stats.operations
        statements.clear()
        read.clear()
        if texts is not None:
            texts.clear()
        cpu, threads, workers = time.process_time(), _thread_cpu(), _descendants_cpu()
        if profile is not None:
            profile.enable()
        try:
            ids = list(await asyncio.gather(*(platform.workflows.start_workflow("three", n) for n in range(workflows))))
            await _until_done(platform, ids, 600)
        finally:
            if profile is not None:
                profile.disable()
            type(store).atomic = atomic
            WorkerConnection.send = send  # type: ignore[method-assign]
            gc.callbacks.remove(collections)
        cpu_ms = (time.process_time() - cpu) * 1000 / workflows
        workers_ms = (_descendants_cpu() - workers) * 1000 / workflows
        per_thread = {
            name: (seconds - threads.get(name, 0.0)) * 1000 / workflows for name, seconds in _thread_cpu().items()
        }
        await store._engine.writer.submit(lambda c: c.set_trace_callback(None))
        await store._engine.reader.submit(lambda c: c.set_trace_callback(None))
        if texts is not None:
            texts.update({f"(reader) {text}": count for text, count in read.items()})
        found: dict[str, float] = {
            "CPU ms": cpu_ms,
            "CPU ms of the workers (every worker process)": workers_ms,
            "frames to the workers (requests, platform calls' answers)": frames / workflows,
            "Store.atomic calls": calls / workflows,
            "writer transactions": (store.write_stats.batches - batches) / workflows,
            "writer operations": (store.write_stats.operations - began_ops) / workflows,
            "writer statements": sum(statements.values()) / workflows,
            "reader statements": sum(read.values()) / workflows,
        }
        found["garbage collector's passes on the event loop, per 1,000 workflows"] = (
            sum(collections.passes) * 1000 / workflows
        )
        found.update({f"  of generation {g}": n * 1000 / workflows for g, n in enumerate(collections.passes)})
        found["  their CPU us (per workflow)"] = collections.seconds * 1e6 / workflows
        found.update({f"  CPU ms, {name}": ms for name, ms in sorted(per_thread.items()) if ms})
        found.update({f"  op {name}": count / workflows for name, count in sorted(ops.items())})
        found.update({f"  statement {name}": count / workflows for name, count in sorted(statements.items())})
        return found
    finally:
        await platform.stop()
        heap.thaw()


class _Collections:
    """The garbage collector's passes on the event loop's thread (a `gc.callbacks` entry), by generation, and their
    CPU: each pass holds the loop, and how often one runs follows the containers allocated (`heap.settle`)."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = 0.0
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if phase == "start":
            self._began = time.thread_time()
        else:
            self.passes[info["generation"]] += 1
            self.seconds += time.thread_time() - self._began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions (cProfile)")
    parser.add_argument("--statements", action="store_true", help="print each statement the writer ran, counted")
    options = parser.parse_args()
    # Thread CPU time: the event loop's own work, not the time it waited for a core on a busy machine.
    profile = cProfile.Profile(time.thread_time) if options.profile else None
    with tempfile.TemporaryDirectory() as directory:
        texts: Counter[str] | None = Counter() if options.statements else None
        found = asyncio.run(_count(options.workflows, Path(directory), profile, texts))
    print(f"Per three-step workflow, {options.workflows} at once on SQLite:\n")
    print("| count | per workflow |\n|---|---:|")
    for name, value in found.items():
        print(f"| {name} | {value:.2f} |")
    if texts is not None:
        print("\n| statement (its first 110 characters) | per workflow |\n|---|---:|")
        for text, count in texts.most_common():
            print(f"| `{text}` | {count / options.workflows:.2f} |")
    if profile is not None:
        print(profile_text(profile, options.profile))


if __name__ == "__main__":
    main()
