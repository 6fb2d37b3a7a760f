"""Async invocation throughput: no-op tasks per second end to end, Triggerfish against Dramatiq and Celery.

Each system gets N no-op tasks and is timed from the first enqueue to the
last completion; the figure is the median of REPEATS runs.

- Triggerfish: `invoke_async` (a durable send to the SQLite store, on disk),
  the dispatcher leasing, running through the Runner, writing the
  invocation record and acknowledging. Measured with the real ProcessRunner
  (two worker processes: `concurrency=2`) and, for reference, the
  InProcessRunner (threads in this process). Enqueues are concurrent
  `invoke_async` calls, as a gateway makes them.
- Dramatiq and Celery on the local Redis, each with two worker processes
  (Dramatiq `--processes 2` with its default 8 threads each, Celery prefork
  `--concurrency 2`; Celery's thread pool with 8 threads was no faster here),
  enqueued from this process with their clients' `send`/`delay` loop. Their
  task does one Redis INCR so that the last completion can be seen (neither
  records anything else); Triggerfish's completion is seen from its queue.

Run: `.venv/bin/python -m benchmarks.run async` (needs `pip install 'dramatiq[redis]' 'celery[redis]' redis`
and a Redis on 127.0.0.1:6379; a peer that cannot run is reported as such).
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

N = int(os.environ.get("TRIGGERFISH_BENCH_ASYNC_N", "8000"))
REPEATS = 3
TARGET = 5000.0
REDIS_URL = "redis://127.0.0.1:6379/11"
COUNTER = "tfbench:done"
ROOT = Path(__file__).resolve().parent.parent

APP = """
from triggerfish.app import App

app = App("bench")


@app.function(concurrency=2)
def noop(event, context):
    return None
"""

DRAMATIQ_TASKS = f"""
import dramatiq, redis
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url={REDIS_URL!r}, namespace="tfbench-dramatiq")
dramatiq.set_broker(broker)
counter = redis.Redis.from_url({REDIS_URL!r})


@dramatiq.actor(max_retries=0, queue_name="tfbench")
def noop(n):
    counter.incr({COUNTER!r})
"""

CELERY_TASKS = f"""
import redis
from celery import Celery

app = Celery("tfbench_celery", broker={REDIS_URL!r})
app.conf.task_default_queue = "tfbench-celery"
app.conf.worker_hijack_root_logger = False
counter = redis.Redis.from_url({REDIS_URL!r})


@app.task(ignore_result=True)
def noop(n):
    counter.incr({COUNTER!r})
"""


# --- Triggerfish -----------------------------------------------------------------------------


async def _triggerfish_run(work: Path, runner_kind: str, n: int) -> float:
    from triggerfish.runtime.inprocess import InProcessRunner
    from triggerfish.runtime.invoke import Invoker
    from triggerfish.runtime.platform_calls import StorePlatform
    from triggerfish.runtime.process_runner import ProcessRunner
    from triggerfish.runtime.types import Runner
    from triggerfish.store import open_store

    store_dir = Path(tempfile.mkdtemp(dir=work))
    store = await open_store(f"sqlite:///{store_dir}/store.db")
    platform = StorePlatform(store)
    runner: Runner
    process_runner = None
    if runner_kind == "process":
        process_runner = await ProcessRunner.start(str(work / "app.py"), work_dir=store_dir / "rt", platform=platform)
        runner = process_runner
    else:
        sys.path.insert(0, str(work))
        import app as bench_app  # type: ignore[import-not-found]

        runner = InProcessRunner(bench_app.app.functions, platform=platform)
    invoker = Invoker(runner, store)
    try:
        await invoker.invoke("noop", {})  # warm a worker, as the peers' workers are warm
        await invoker.start()
        started = time.perf_counter()
        chunk = 256
        for first in range(0, n, chunk):
            await asyncio.gather(*(invoker.invoke_async("noop", {"n": i}) for i in range(first, min(n, first + chunk))))
        await invoker.drain()
        elapsed = time.perf_counter() - started
        done = len(await invoker.records.query(function="noop", status="succeeded", limit=n + 10))
        if done != n + 1:
            raise RuntimeError(f"expected {n + 1} succeeded records, found {done}")
        return elapsed
    finally:
        await invoker.stop()
        if process_runner is not None:
            await process_runner.close()
        await store.close()


# --- the peers -------------------------------------------------------------------------------


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL)


def _clear(client: Any) -> None:
    for pattern in ("tfbench*", "dramatiq:tfbench*", "tfbench-dramatiq*", "_kombu*tfbench*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.delete("tfbench-celery")


def _wait_for(client: Any, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while int(client.get(COUNTER) or 0) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {int(client.get(COUNTER) or 0)} of {count} tasks completed in {timeout:g} s")
        time.sleep(0.002)


def _peer_runs(work: Path, name: str, worker: list[str], send: Callable[[int], None], n: int) -> list[float]:
    client = _redis()
    _clear(client)
    env = {**os.environ, "PYTHONPATH": f"{work}{os.pathsep}{ROOT}"}
    process = subprocess.Popen(
        worker, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        client.set(COUNTER, 0)
        send(0)  # warm-up: the workers are up once this completes
        _wait_for(client, 1, 60)
        runs = []
        for _ in range(REPEATS):
            client.set(COUNTER, 0)
            started = time.perf_counter()
            for i in range(n):
                send(i)
            _wait_for(client, n, 300)
            runs.append(time.perf_counter() - started)
        return runs
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        _clear(client)


def _dramatiq(work: Path, n: int) -> list[float]:
    (work / "tfbench_dramatiq.py").write_text(textwrap.dedent(DRAMATIQ_TASKS))
    sys.path.insert(0, str(work))
    import tfbench_dramatiq  # type: ignore[import-not-found]

    # Dramatiq's own default of 8 threads per process: with 1 it was 3.5x slower here (latency-bound).
    worker = [sys.executable, "-m", "dramatiq", "tfbench_dramatiq", "--processes", "2", "--threads", "8"]
    return _peer_runs(work, "dramatiq", worker, lambda i: tfbench_dramatiq.noop.send(i), n)


def _celery(work: Path, n: int) -> list[float]:
    (work / "tfbench_celery.py").write_text(textwrap.dedent(CELERY_TASKS))
    sys.path.insert(0, str(work))
    import tfbench_celery  # type: ignore[import-not-found]

    worker = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "tfbench_celery",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]
    return _peer_runs(work, "celery", worker, lambda i: tfbench_celery.noop.delay(i), n)


# --- the report ------------------------------------------------------------------------------


def _median_rate(runs: list[float], n: int) -> float:
    return n / statistics.median(runs)


async def _measure(label: str, run: Callable[[], Awaitable[float]]) -> list[float]:
    return [await run() for _ in range(REPEATS)]


async def main() -> str:
    n = N
    rows: list[tuple[str, float | None, str]] = []
    with tempfile.TemporaryDirectory(prefix="tfbench-") as tmp:
        work = Path(tmp)
        (work / "app.py").write_text(textwrap.dedent(APP))
        results: dict[str, float | None] = {}
        notes: dict[str, str] = {}
        for label, kind in (("Triggerfish (ProcessRunner)", "process"), ("Triggerfish (InProcessRunner)", "inprocess")):
            try:
                runs = await _measure(label, lambda kind=kind: _triggerfish_run(work, kind, n))  # type: ignore[misc]
                results[label] = _median_rate(runs, n)
                notes[label] = ", ".join(f"{n / r:,.0f}" for r in runs)
            except Exception as exc:
                results[label], notes[label] = None, f"could not run: {exc}"
        for label, peer in (("Dramatiq 2.x (Redis)", _dramatiq), ("Celery 5.x (Redis)", _celery)):
            try:
                runs = await asyncio.to_thread(peer, work, n)
                results[label] = _median_rate(runs, n)
                notes[label] = ", ".join(f"{n / r:,.0f}" for r in runs)
            except Exception as exc:
                results[label], notes[label] = None, f"could not run: {exc}"
        rows = [(label, rate, notes[label]) for label, rate in results.items()]
    ours = results.get("Triggerfish (ProcessRunner)")
    peers = [rate for label, rate in results.items() if not label.startswith("Triggerfish") and rate]
    lines = [
        "## Async invocations: no-op throughput end to end",
        "",
        f"{n:,} no-op tasks per run, timed from the first enqueue to the last completion; median of {REPEATS} runs"
        " (each run's rate listed). Two worker processes for every system on this 2-core machine;"
        " Triggerfish on the SQLite store (durable enqueue, run, invocation record, acknowledgement),"
        " the peers on the local Redis.",
        "",
        "| System | Tasks/s (median) | Runs | vs target |",
        "|---|---:|---|---|",
    ]
    for label, rate, note in rows:
        shown = f"{rate:,.0f}" if rate else "-"
        versus = f"{rate / TARGET:.2f}x of {TARGET:,.0f}" if rate else ""
        lines.append(f"| {label} | {shown} | {note} | {versus} |")
    lines.append("")
    if ours:
        met = ours >= TARGET and all(ours > p for p in peers)
        ratios = ", ".join(
            f"{ours / rate:.2f}x {label.split()[0]}"
            for label, rate in results.items()
            if rate and not label.startswith("Triggerfish")
        )
        lines.append(
            f"Target: at least {TARGET:,.0f}/s with the ProcessRunner and ahead of both peers: "
            f"{'met' if met else 'not met'} ({ours:,.0f}/s; {ratios or 'no peer measured'})."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(asyncio.run(main()))
