"""The process runtime: cold start from a zygote vs a fresh interpreter, warm overhead, worker memory.

    .venv/bin/python -m benchmarks.run runtime

Cold start: the time from the parent's `runner.run(...)` call to the
handler's first line (the handler returns `time.time()` at entry), for a
function whose module imports a couple of dozen standard-library packages;
each run starts from zero idle workers, so every run forks a worker. The
peer is what a runtime without a fork server pays: a fresh `python` that
imports the same module and calls the handler, measured the same way.

Warm overhead: a no-op handler's full round trip through `ProcessRunner.run`
(pool, frame out, worker, frame back, outcome), and beside it the whole
documented sync path, `Invoker.invoke` on that ProcessRunner over a SQLite
store (`synchronous=FULL`): what the caller waits for (the runner's round
trip, the outcome checked, the invocation record handed to the background
writer), and the same call followed by waiting for its record's commit
(`records.settled()`), which is the record's whole cost.

Memory: USS (Private_Clean + Private_Dirty from /proc/PID/smaps_rollup) of
idle warm workers of that module: what each extra worker really costs. And
the USS of the zygote of a function that declares `env` (which imports the
app once more, with that `env`) beside the app's shared zygote's, both with
no workers left to share their pages: what a zygote per function costs.

Boxed: the same cold starts and warm calls with the app in a box
(triggerfish.isolation: bubblewrap, its own pid namespace, seccomp; as root,
a uid of its own). Both runners run side by side and take turns, cold start
by cold start and call by call, so that the ratio compares them in the same
moods of a noisy machine. Skipped when bubblewrap is missing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import load_average
from triggerfish.isolation.box import Box
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.types import InvokeRequest
from triggerfish.store import open_store

COLD_RUNS = 41
SPAWN_RUNS = 11
WARM_CALLS = 5000
WORKERS = 8

COLD_TARGET_MS = 5.0
COLD_RATIO_TARGET = 20.0
WARM_P50_TARGET_US = 200.0
WARM_P99_TARGET_US = 1000.0
USS_TARGET_MB = 15.0
#: A boxed warm round trip may take this much longer than an unboxed one (p50).
BOX_WARM_OVERHEAD = 0.10
BOX_UID = 1_900_099_900

HEAVY_APP = """
import time
import argparse, asyncio, csv, dataclasses, decimal, difflib, email.mime.multipart, email.mime.text
import fractions, http.client, json, logging.handlers, sqlite3, statistics, tarfile, unittest
import urllib.request, uuid, xml.etree.ElementTree, zipfile, concurrent.futures, pydoc, ssl

from triggerfish.app import App

app = App("heavy")


@app.function(concurrency=16)
def entry(event):
    return time.time()


@app.function()
def noop(event):
    return None


@app.function(concurrency=16)
def nap(event):
    time.sleep(event)


@app.function(env={"TABLE": "orders"})  # a zygote of its own: the import sees its env
def configured(event):
    return None
"""

SPAWN_SCRIPT = "import time; t = time.time(); import heavyapp; heavyapp.entry(None); print(heavyapp.entry(None))"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _cold_start(runner: ProcessRunner, i: int) -> float:
    runner.stop_idle("entry")
    await asyncio.sleep(0.05)  # arrivals 50 ms apart: the zygote has reaped and prepared the next cgroup
    began = time.time()
    outcome = await runner.run(InvokeRequest(request_id=f"cold-{i}", function="entry", event=None))
    assert outcome.ok, outcome
    assert outcome.cold_start, outcome
    return (float(outcome.result) - began) * 1000.0


async def _cold(runners: list[ProcessRunner]) -> list[list[float]]:
    """Cold starts of each runner, taking turns, so that each sees the machine in the same moods."""
    times: list[list[float]] = [[] for _ in runners]
    for i in range(COLD_RUNS):
        for runner, found in zip(runners, times, strict=True):
            found.append(await _cold_start(runner, i))
    return times


def _fresh_spawn(app_dir: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(app_dir), *sys.path])}
    times = []
    for _ in range(SPAWN_RUNS):
        began = time.time()
        done = subprocess.run([sys.executable, "-c", SPAWN_SCRIPT], env=env, capture_output=True, text=True, check=True)
        times.append((float(done.stdout.strip()) - began) * 1000.0)
    return times


async def _warm(runners: list[ProcessRunner]) -> list[list[float]]:
    """Warm round trips of each runner, call by call in turn (who goes first alternating), WARM_CALLS each:
    on a shared machine whatever slows one down then slows the other down too."""
    request = InvokeRequest(request_id="warm", function="noop", event=None)
    for runner in runners:
        for _ in range(200):
            await runner.run(request)
    times: list[list[float]] = [[] for _ in runners]
    clock = time.perf_counter
    pairs = list(zip(runners, times, strict=True))
    for i in range(WARM_CALLS):
        for runner, found in pairs[::-1] if i % 2 else pairs:
            began = clock()
            await runner.run(request)
            found.append((clock() - began) * 1e6)
    return times


async def _whole_path(app_dir: Path) -> tuple[list[float], list[float]]:
    """`Invoker.invoke` of the no-op: as its caller sees it, and with the record's commit awaited (µs each)."""
    store = await open_store(f"sqlite:///{app_dir / 'store.db'}")
    runner = await ProcessRunner.start(
        str(app_dir / "heavyapp.py"), work_dir=app_dir / "invoker", platform=StorePlatform(store)
    )
    invoker = Invoker(runner, store)
    clock = time.perf_counter
    try:
        for _ in range(200):
            await invoker.invoke("noop")
        await invoker.records.settled()
        answered, recorded = [], []
        for _ in range(WARM_CALLS):
            began = clock()
            await invoker.invoke("noop")
            answered.append((clock() - began) * 1e6)
            await invoker.records.settled()
        for _ in range(WARM_CALLS):
            began = clock()
            await invoker.invoke("noop")
            await invoker.records.settled()
            recorded.append((clock() - began) * 1e6)
        return answered, recorded
    finally:
        await invoker.stop()
        await runner.close()
        await store.close()


def _uss_mb(pid: int) -> float:
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total / 1024


async def _memory(runner: ProcessRunner) -> list[float]:
    runner.stop_idle()
    await asyncio.gather(
        *(runner.run(InvokeRequest(request_id=f"m{i}", function="nap", event=0.2), wait=5.0) for i in range(WORKERS))
    )
    await asyncio.sleep(0.3)
    return [_uss_mb(pid) for pid in runner.stats("nap")["pids"]]


def _zygote_memory(runner: ProcessRunner) -> tuple[float, float]:
    """USS of the app's shared zygote and of the zygote of the function that declares `env`."""
    shared, own = runner._app, runner._function_links["configured"]
    assert shared is not None
    assert shared.pid is not None
    assert own.pid is not None
    return _uss_mb(shared.pid), _uss_mb(own.pid)


def _path_rows(what: str, times: list[float]) -> list[str]:
    """Rows for the whole sync path against the warm round trip's targets."""
    p50, p99 = statistics.median(times), _pct(times, 0.99)
    return [
        f"| {what}, p50 | {p50:.0f} µs | ≤ {WARM_P50_TARGET_US:g} µs | {_verdict(p50 <= WARM_P50_TARGET_US)} |",
        f"| {what}, p99 | {p99:.0f} µs | ≤ {WARM_P99_TARGET_US:g} µs | {_verdict(p99 <= WARM_P99_TARGET_US)} |",
    ]


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


async def _boxed(app_dir: Path) -> ProcessRunner | None:
    if shutil.which("bwrap") is None:
        return None
    uid = BOX_UID if os.geteuid() == 0 else None
    box = Box(uid=uid, gid=uid)
    return await ProcessRunner.start(str(app_dir / "heavyapp.py"), work_dir=app_dir / "work", box=box)


def _box_rows(cold_p50: float, warm_p50: float, boxed: tuple[list[float], list[float]] | None) -> list[str]:
    if boxed is None:
        return ["| boxed (bubblewrap) | not measured: bwrap is not installed | | |"]
    box_cold, box_warm = boxed
    box_cold_p50, box_warm_p50 = statistics.median(box_cold), statistics.median(box_warm)
    overhead = box_warm_p50 / warm_p50 - 1.0
    return [
        f"| cold start p50, boxed | {box_cold_p50:.2f} ms (p90 {_pct(box_cold, 0.9):.2f} ms; unboxed "
        f"{cold_p50:.2f} ms) | ≤ {COLD_TARGET_MS:g} ms | {_verdict(box_cold_p50 <= COLD_TARGET_MS)} |",
        f"| warm round trip p50, boxed | {box_warm_p50:.0f} µs ({overhead:+.0%} vs unboxed; p99 "
        f"{_pct(box_warm, 0.99):.0f} µs) | within {BOX_WARM_OVERHEAD:.0%} of unboxed "
        f"| {_verdict(overhead <= BOX_WARM_OVERHEAD)} |",
    ]


async def main() -> str:
    load = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = Path(tmp)
        os.chmod(app_dir, 0o755)  # a box's uid reads the app as a deployed bundle's files are read: as anyone
        (app_dir / "heavyapp.py").write_text(HEAVY_APP)
        runner = await ProcessRunner.start(str(app_dir / "heavyapp.py"), work_dir=app_dir / "work")
        boxed_runner = await _boxed(app_dir)
        runners = [runner] if boxed_runner is None else [runner, boxed_runner]
        try:
            cold, *box_cold = await _cold(runners)
            warm, *box_warm = await _warm(runners)
            uss = await _memory(runner)
            runner.stop_idle()  # no workers sharing their pages: each zygote's USS is then its own memory
            await asyncio.sleep(0.5)
            shared_zygote, own_zygote = _zygote_memory(runner)
        finally:
            for each in runners:
                await each.close()
        boxed = (box_cold[0], box_warm[0]) if boxed_runner is not None else None
        answered, recorded = await _whole_path(app_dir)
        spawn = _fresh_spawn(app_dir)
    cold_p50, spawn_p50 = statistics.median(cold), statistics.median(spawn)
    ratio = spawn_p50 / cold_p50
    warm_p50, warm_p99 = statistics.median(warm), _pct(warm, 0.99)
    uss_median = statistics.median(uss)
    return "\n".join(
        [
            "## Process runtime (zygotes and worker pools)",
            "",
            "Cold start: parent's `run()` call to handler entry, for a module importing ~25 standard-library",
            f"packages; every run forks a new worker from the app zygote ({COLD_RUNS} runs), against a fresh",
            f"`python` importing the module and calling the handler ({SPAWN_RUNS} runs). Warm: a no-op sync",
            f"invocation through `ProcessRunner.run`, {WARM_CALLS:,} calls one after the other; then the whole",
            "documented sync path, `Invoker.invoke` on a ProcessRunner over a SQLite store (`synchronous=FULL`):",
            "as the caller waits (the record is written just after the answer), and with the record's commit",
            f"awaited after each call, {WARM_CALLS:,} calls each. Memory: USS of {WORKERS} idle warm workers of",
            f"that module (Private_Clean + Private_Dirty). One run each (load average at the start: {load:.2f}).",
            "Boxed: the same cold starts and warm calls with the app in a box (bubblewrap, pid namespace,",
            "seccomp, a uid of its own as root), the boxed and unboxed runners taking turns.",
            "",
            "| measure | result | target | |",
            "|---|---|---|---|",
            f"| cold start p50, forked from zygote | {cold_p50:.2f} ms (p90 {_pct(cold, 0.9):.2f} ms) "
            f"| ≤ {COLD_TARGET_MS:g} ms | {_verdict(cold_p50 <= COLD_TARGET_MS)} |",
            f"| cold start p50, fresh interpreter | {spawn_p50:.1f} ms | (peer) | |",
            f"| ratio fresh / zygote | {ratio:.1f}x | ≥ {COLD_RATIO_TARGET:g}x "
            f"| {_verdict(ratio >= COLD_RATIO_TARGET)} |",
            f"| warm round trip p50, `ProcessRunner.run` alone | {warm_p50:.0f} µs | ≤ {WARM_P50_TARGET_US:g} µs "
            f"| {_verdict(warm_p50 <= WARM_P50_TARGET_US)} |",
            f"| warm round trip p99, `ProcessRunner.run` alone | {warm_p99:.0f} µs | ≤ {WARM_P99_TARGET_US:g} µs "
            f"| {_verdict(warm_p99 <= WARM_P99_TARGET_US)} |",
            *_path_rows("`Invoker.invoke`, as the caller waits", answered),
            *_path_rows("`Invoker.invoke` with its record committed", recorded),
            f"| USS per idle warm worker, median | {uss_median:.1f} MB (max {max(uss):.1f} MB) "
            f"| ≤ {USS_TARGET_MB:g} MB | {_verdict(uss_median <= USS_TARGET_MB)} |",
            f"| USS of a function's own zygote (it declares `env`) | {own_zygote:.1f} MB (the app's shared "
            f"zygote: {shared_zygote:.1f} MB) | (cost of a zygote per function) | |",
            *_box_rows(cold_p50, warm_p50, boxed),
        ]
    )


if __name__ == "__main__":
    print(asyncio.run(main()))
