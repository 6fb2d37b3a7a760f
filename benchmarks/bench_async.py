"""Async invocations: no-op tasks per second end to end, Triggerfish against Dramatiq and Celery, same producers.

    scripts/bench async

Every system gets the same producers: PRODUCERS processes
(`benchmarks/producers.py`), each enqueuing its share of N tasks one call at
a time with the payload `{"n": N}`, and two worker processes:
- Triggerfish in its own process as `triggerfish dev` runs it (SQLite,
  `synchronous=FULL`; asyncio's loop and uvloop), and on PostgreSQL (a fresh
  schema), each with its threads on one core (as it ships) and, with uvloop, on
  any core (`TRIGGERFISH_PLATFORM_CPU=off`), `benchmarks/apps/async_app.py` with `concurrency=2`; producers
  call its HTTP API (Invoke, `X-Amz-Invocation-Type: Event`: 202 once queued
  durably), and each invocation is run by a worker process forked from the
  app's zygote, recorded and acknowledged;
- Dramatiq (`--processes 2`, its default 8 threads each) and Celery (prefork,
  `--concurrency 2`), each on a Redis the benchmark starts: with no
  persistence, and durable (`appendonly yes`, `appendfsync always`).

A run starts the system fresh, warms it with WARMUP tasks, then starts the
producers, which connect and wait; the clock starts when they are told to
go and stops when the last task has finished (each appends a byte to a
file). Systems take turns, ROUNDS rounds; medians with the range.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks import async_systems, postgres
from benchmarks.async_systems import Target
from benchmarks.measure import Runs, interleave, loads, spread
from benchmarks.processes import wait_until
from benchmarks.redis_server import redis_settings

N = int(os.environ.get("TRIGGERFISH_BENCH_ASYNC_N", "5000"))
PRODUCERS = int(os.environ.get("TRIGGERFISH_BENCH_ASYNC_PRODUCERS", "4"))
ROUNDS = int(os.environ.get("TRIGGERFISH_BENCH_ASYNC_ROUNDS", "3"))
#: Calls each producer keeps in flight, one table per value: one at a time, and as a busy web application sends.
IN_FLIGHT = [int(k) for k in os.environ.get("TRIGGERFISH_BENCH_ASYNC_IN_FLIGHT", "1,16").split(",") if k]
#: Tasks per call with each system's batched send, one table per value (one call at a time per producer).
BATCHES = [int(b) for b in os.environ.get("TRIGGERFISH_BENCH_ASYNC_BATCH", "50").split(",") if b]
WARMUP = 40
TARGET = 5000.0
#: The label of the rows whose platform runs its threads on any core, beside those on one (the default).
ANY_CORE = "threads on any core (`TRIGGERFISH_PLATFORM_CPU=off`)"
SETTLE_TIMEOUT = 600.0

SystemStart = Callable[[Path], AbstractContextManager[Target]]


@dataclass(frozen=True, slots=True)
class AsyncRun:
    tasks: int
    seconds: float
    enqueue_seconds: float
    failed: int
    note: str = ""

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def enqueue_rate(self) -> float:
        return self.tasks / self.enqueue_seconds


def produce(
    target: Target,
    count: int,
    producers: int,
    *,
    first: int,
    already: int,
    log: Path,
    in_flight: int = 1,
    batch: int = 1,
) -> AsyncRun:
    """`count` tasks from `producers` processes, timed from "go" until `already + count` tasks finished."""
    shares = [count // producers + (1 if i < count % producers else 0) for i in range(producers)]
    kind, where, *options = target.producer
    children = []
    with log.open("ab") as errors:
        start = first
        for share in shares:
            command = [sys.executable, "-m", "benchmarks.producers", kind, where]
            command += ["--count", str(share), "--first", str(start), "--in-flight", str(in_flight)]
            command += [*(["--batch", str(batch)] if batch > 1 else []), *options]
            children.append(
                subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, env=target.env, text=True
                )
            )
            start += share
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a producer did not start; see {log}")
        began = time.time()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            if not line:
                raise RuntimeError(f"a producer failed; see {log}")
            reports.append(json.loads(line))
        wait_until(lambda: target.settled(already + count), "the last task", SETTLE_TIMEOUT)
        ended = time.time()
    finally:
        for child in children:
            child.kill()
            child.wait()
    failed = sum(int(r["failed"]) for r in reports)
    if failed:
        raise RuntimeError(f"{failed} of {count} enqueues failed; see {log}")
    return AsyncRun(count, ended - began, max(float(r["ended"]) for r in reports) - began, failed, target.note)


def run_once(
    start: SystemStart,
    root: Path,
    count: int = N,
    producers: int = PRODUCERS,
    in_flight: int = 1,
    batch: int = 1,
) -> AsyncRun:
    """Start a system fresh, warm it, measure `count` tasks sent `in_flight` calls at a time per producer, `batch`
    tasks per call, stop it."""
    work = Path(tempfile.mkdtemp(dir=root))
    with start(work) as target:
        produce(target, WARMUP, 1, first=0, already=0, log=work / "producers.log")
        return produce(
            target,
            count,
            producers,
            first=WARMUP,
            already=WARMUP,
            log=work / "producers.log",
            in_flight=in_flight,
            batch=batch,
        )


@contextmanager
def _on_postgres(work: Path, loop: str, any_core: bool = False) -> Iterator[Target]:
    with (
        postgres.fresh_schema() as store,
        async_systems.triggerfish(work, loop=loop, store=store, any_core=any_core) as target,
    ):
        yield target


def systems(with_postgres: bool) -> dict[str, tuple[str, SystemStart]]:
    chosen: dict[str, tuple[str, SystemStart]] = {
        "triggerfish": ("Triggerfish, SQLite, asyncio", lambda w: async_systems.triggerfish(w, loop="asyncio")),
        "triggerfish-uvloop": ("Triggerfish, SQLite, uvloop", lambda w: async_systems.triggerfish(w, loop="uvloop")),
        # The same platform with its threads free to run on any core (`triggerfish.cores`), side by side.
        "triggerfish-uvloop-any-core": (
            f"Triggerfish, SQLite, uvloop, {ANY_CORE}",
            lambda w: async_systems.triggerfish(w, loop="uvloop", any_core=True),
        ),
    }
    if with_postgres:
        chosen["triggerfish-pg"] = ("Triggerfish, PostgreSQL, asyncio", lambda w: _on_postgres(w, "asyncio"))
        chosen["triggerfish-pg-uvloop"] = ("Triggerfish, PostgreSQL, uvloop", lambda w: _on_postgres(w, "uvloop"))
        chosen["triggerfish-pg-uvloop-any-core"] = (
            f"Triggerfish, PostgreSQL, uvloop, {ANY_CORE}",
            lambda w: _on_postgres(w, "uvloop", any_core=True),
        )
    for durable in (False, True):
        suffix = "-durable" if durable else ""
        redis = "durable Redis" if durable else "Redis, no persistence"
        chosen[f"dramatiq{suffix}"] = (
            f"Dramatiq ({redis})",
            lambda w, d=durable: async_systems.dramatiq(w, durable=d, processes=2),  # type: ignore[misc]
        )
        chosen[f"celery{suffix}"] = (
            f"Celery ({redis})",
            lambda w, d=durable: async_systems.celery(w, durable=d, processes=2),  # type: ignore[misc]
        )
    return chosen


def ratio_line(runs: dict[str, Runs[AsyncRun]], ours: str, labels: dict[str, str]) -> str:
    """Ours against each peer, per round (they ran back to back), as medians with the range."""
    parts = []
    for name, series in runs.items():
        if name.startswith("triggerfish") or series.error is not None or runs[ours].error is not None:
            continue
        ratios = [a.result.rate / b.result.rate for a, b in zip(runs[ours].runs, series.runs, strict=False)]
        parts.append(f"{spread(ratios, 2)}x {labels[name]}")
    return "; ".join(parts)


def report(
    runs: dict[str, Runs[AsyncRun]], labels: dict[str, str], skipped: str | None, in_flight: int = 1, batch: int = 1
) -> str:
    rows = [
        "| system | tasks/s end to end | enqueue phase tasks/s | vs target | load avg at each run |",
        "|---|---:|---:|---:|---|",
    ]
    for name, series in runs.items():
        if series.error is not None or not series.runs:
            rows.append(f"| {labels[name]} | could not run: {series.error} | | | |")
            continue
        rate = series.median(lambda r: r.rate)
        rows.append(
            f"| {labels[name]} | {spread(series.values(lambda r: r.rate))}"
            f" | {spread(series.values(lambda r: r.enqueue_rate))} | {rate / TARGET:.2f}x | {loads(series)} |"
        )
    if batch > 1:
        sending = (
            f"one call at a time, {batch} tasks per call with each system's batched send (Triggerfish's"
            " `POST .../invoke-batch`, one request and one durable commit; Dramatiq's `group(...).run()`; Celery's"
            " `group(...).apply_async()`)"
        )
        title = f"batches of {batch}"
    elif in_flight == 1:
        sending, title = "one call at a time (no batching)", "one call at a time"
    else:
        sending = f"{in_flight} calls at a time (threads, each with its own client, one call at a time; no batching)"
        title = f"{in_flight} calls in flight per producer"
    lines = [
        f"## Async invocations: no-op tasks end to end, the same producers, {title}",
        "",
        f"{N:,} no-op tasks per run from {PRODUCERS} producer processes (`benchmarks/producers.py`), each sending"
        f' its share {sending} with the payload `{{"n": N}}`, timed from "go" until the last'
        " task finished; two worker processes for every system. Triggerfish: `triggerfish dev` in its own process"
        " (the launcher picks the event loop), invoked over its HTTP API (Invoke with `X-Amz-Invocation-Type:"
        " Event`, 202 once durably queued), each invocation run in a worker process, recorded and acknowledged;"
        " on SQLite with `synchronous=FULL`, and on PostgreSQL (a fresh schema). Dramatiq (`--processes 2`, 8"
        " threads each) and Celery (prefork, `--concurrency 2`; it acknowledges on receipt by default) on a Redis"
        f" the benchmark starts per run: {redis_settings(False)}, or durable: {redis_settings(True)}."
        f" {ROUNDS} rounds, the systems taking turns, each started fresh and warmed with {WARMUP} tasks;"
        " medians with the range. Enqueue phase: until the last producer's last call returned.",
        "",
        *rows,
        "",
    ]
    if skipped:
        lines.append(f"- Triggerfish on PostgreSQL: not measured: {skipped}.")
    for ours in ("triggerfish", "triggerfish-uvloop", "triggerfish-pg"):
        if ours in runs and runs[ours].error is None and runs[ours].runs:
            rate = runs[ours].median(lambda r: r.rate)
            versus = ratio_line(runs, ours, labels)
            lines.append(
                f"- {labels[ours]}: {rate:,.0f}/s, {rate / TARGET:.2f}x the target of {TARGET:,.0f}/s"
                f" ({'met' if rate >= TARGET else '**NOT met**'}); against the peers, per round: {versus}."
            )
    return "\n".join(lines)


def main() -> str:
    skipped = postgres.unavailable()
    chosen = systems(skipped is None)
    labels = {name: label for name, (label, _) in chosen.items()}
    sections = []
    with tempfile.TemporaryDirectory(prefix="bench-async-") as tmp:
        root = Path(tmp)
        for in_flight, batch in [(k, 1) for k in IN_FLIGHT] + [(1, b) for b in BATCHES]:

            def measured(start: SystemStart, k: int = in_flight, b: int = batch) -> Callable[[], AsyncRun]:
                return lambda: run_once(start, root, in_flight=k, batch=b)

            runs = interleave({name: measured(start) for name, (_, start) in chosen.items()}, ROUNDS)
            sections.append(report(runs, labels, skipped, in_flight, batch))
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(main())
