"""The settle alone, counted: what writing a batch of async outcomes (records, spans, kept inputs) with the
acknowledgement of their messages costs the store, per invocation.

    python -m benchmarks.settle [--invocations 3000] [--batch 16] [--kept 0] [--rounds 2] [--tree DIR ...]
                                [--postgres]

Each run opens a fresh SQLite store (`synchronous=FULL`), first writes `--kept` records as earlier invocations
would have left them (a store that keeps a retention's worth of records is large), queues and leases
INVOCATIONS messages, then settles them `--batch` at a time as the dispatcher does: each outcome's record
(`record_from_outcome`), its kept input, one `Store.atomic` of `InvocationRecords.writes` and the `Ack`. Ids
come from the tree under test (`new_request_id`, `tracecontext.span_of`, the queue's message ids). Counted
over the settles only, from `/proc/self/io` and `os.times`: bytes written (the write-ahead log's pages), write
and read system calls (pages written and pages read that were not in SQLite's cache), and CPU (noisy on a
loaded machine; the others are not). `--tree` runs each round in a child with another source tree first on
PYTHONPATH, the trees taking turns. `--postgres` settles on a fresh schema of the benchmarks' PostgreSQL
(`benchmarks/postgres.py`) instead: the file counters then say little (the database's process does the
writing), the milliseconds per settle say what a round trip costs (count those with `strace -f -e recvfrom`), and the
database's CPU per invocation is its backends' (read from /proc: the server must run on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "fn.noop"


def _io() -> dict[str, int]:
    with open("/proc/self/io") as counters:
        return {name: int(value) for name, value in (line.split(": ") for line in counters.read().splitlines())}


def _outcomes(count: int, bodies: list[bytes]) -> list[Any]:
    """The record and kept input of `count` no-op attempts, as the dispatcher makes them."""
    import orjson

    from triggerfish.events import tracecontext
    from triggerfish.runtime.inputs import keep_input
    from triggerfish.runtime.invoke import new_request_id
    from triggerfish.runtime.records import record_from_outcome
    from triggerfish.runtime.types import InvokeOutcome, InvokeRequest

    made = []
    for index in range(count):
        span, parent = tracecontext.span_of(None)
        body = bodies[index] if index < len(bodies) else b'{"n": %d}' % index
        request = InvokeRequest(
            request_id=new_request_id(),
            function="noop",
            event=orjson.Fragment(body),
            attempt=1,
            trigger="async",
            traceparent=span,
            parent_span_id=parent,
        )
        now = time.time()
        outcome = InvokeOutcome(
            request.request_id, ok=True, duration_ms=0.5, started_at=now, ended_at=now + 0.0005, worker_pid=1
        )
        made.append((record_from_outcome(request, outcome, memory_mb=128, event=body), keep_input(request)))
    return made


def _backends(url: str) -> list[int]:
    from benchmarks.drain import _backends as backends

    return backends(url)


def _cpu(pids: list[int]) -> float:
    from benchmarks.drain import _cpu as cpu

    return cpu(pids)


async def settle_once(invocations: int, batch: int, kept: int, work: Path, url: str | None = None) -> dict[str, float]:
    from triggerfish.runtime.records import InvocationRecords
    from triggerfish.store import Message, OutgoingMessage, open_store
    from triggerfish.store.atomic import Ack

    store = await open_store(url or f"sqlite:///{work}/store.db")
    try:
        records = InvocationRecords(store, clock=time.time)
        for first in range(0, kept, 500):
            earlier = _outcomes(min(500, kept - first), [])
            await store.atomic(records.writes([r for r, _ in earlier], [k for _, k in earlier if k is not None]))
        await store.queues.send_many(QUEUE, [OutgoingMessage(b'{"n": %d}' % n) for n in range(invocations)])
        leased: list[Message] = []
        while len(leased) < invocations:
            leased += await store.queues.receive(QUEUE, max_messages=500, visibility_timeout=600, wait=0)
        database = _backends(url) if url else []
        before, cpu_before, started = _io(), os.times(), time.perf_counter()
        database_before = _cpu(database)
        for first in range(0, invocations, batch):
            messages = leased[first : first + batch]
            outcomes = _outcomes(len(messages), [message.body for message in messages])
            writes = records.writes([r for r, _ in outcomes], [k for _, k in outcomes if k is not None])
            await store.atomic([*writes, Ack(QUEUE, [message.receipt for message in messages])])
        seconds, after, cpu_after = time.perf_counter() - started, _io(), os.times()
        database_after = _cpu(database)
    finally:
        await store.close()
    return {
        "bytes": (after["wchar"] - before["wchar"]) / invocations,
        "writes": (after["syscw"] - before["syscw"]) / invocations,
        "reads": (after["syscr"] - before["syscr"]) / invocations,
        "cpu": (cpu_after.user - cpu_before.user + cpu_after.system - cpu_before.system) / invocations * 1e6,
        "ms": seconds / -(-invocations // batch) * 1e3,
        "database": (database_after - database_before) / invocations * 1e6,
    }


def _run_tree(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    # Imported here, not at the top: the child runs this file with the tree's `benchmarks` first on its path.
    from benchmarks.processes import run_in_tree

    # This file run as a script (a tree from before it existed has no benchmarks/settle.py), from the tree.
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--invocations", str(args.invocations)]
    command += ["--batch", str(args.batch), "--kept", str(args.kept)] + (["--postgres"] if args.postgres else [])
    return run_in_tree(command, tree, "the settle")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.settle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16, help="outcomes settled per write")
    parser.add_argument("--kept", type=int, default=0, help="records already in the store")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to settle with")
    parser.add_argument("--postgres", action="store_true", help="on a fresh PostgreSQL schema, not SQLite")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import triggerfish
        from benchmarks import postgres

        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-settle-"))
            url = stack.enter_context(postgres.fresh_schema()) if args.postgres else None
            if url is not None:
                url += f"&application_name=bench-settle-{os.getpid()}"
            result = asyncio.run(settle_once(args.invocations, args.batch, args.kept, Path(tmp), url))
        print(json.dumps({**result, "tree": str(Path(triggerfish.__file__).parent.parent)}))
        return
    trees = [tree.resolve() for tree in args.tree] if args.tree else [ROOT]
    rows: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
    loads = [os.getloadavg()[0]]
    for round_number in range(args.rounds):
        for tree in trees if round_number % 2 == 0 else list(reversed(trees)):
            rows[tree].append(_run_tree(tree, args))
            loads.append(os.getloadavg()[0])
    print(
        f"{args.invocations} outcomes settled {args.batch} per write on {'PostgreSQL' if args.postgres else 'SQLite'},"
        f" {args.kept:,} records kept before,"
        f" {args.rounds} rounds, the trees taking turns; load average {min(loads):.1f} to {max(loads):.1f}.\n"
    )
    print(
        "| tree | bytes written / invocation | write calls | read calls | CPU µs | database's CPU µs | ms per settle |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tree, runs in rows.items():
        names = ("bytes", "writes", "reads", "cpu", "database", "ms")
        cells = [statistics.median(run.get(name, 0.0) for run in runs) for name in names]
        print(
            f"| `{tree}` | {cells[0]:,.0f} | {cells[1]:.2f} | {cells[2]:.2f} | {cells[3]:.0f} | {cells[4]:.0f}"
            f" | {cells[5]:.2f} |"
        )


if __name__ == "__main__":
    main()
