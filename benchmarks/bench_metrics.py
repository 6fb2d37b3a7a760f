"""Metrics on the hot path: the same platform with its invocations counted for GET /-/metrics, and without.

    scripts/bench metrics

Both sides are the launcher's `platform` (what `triggerfish dev --no-reload`
composes, on SQLite), asyncio's loop; "off" is `--no-metrics`, which leaves
the invocation records uncounted. They run as separate processes taking
turns, ROUNDS rounds:
- HTTP: `benchmarks/apps/http_app.py` under wrk (1 thread) for DURATION s
  over CONNECTIONS keep-alive connections;
- async: `benchmarks/apps/async_app.py`, N no-op invocations queued through
  the HTTP API by PRODUCERS producer processes (`benchmarks/producers.py`,
  as `scripts/bench async`), timed until the last one ran.
Two figures per path, each the per-round comparison on / off (they ran back
to back), its median with the range: throughput, and the CPU the platform's
own process (not its workers) used per invocation, which is where counting
happens and which a loaded shared machine disturbs far less than
throughput. The target is a cost under 3%. The report also gives what
counting costs alone, measured in this process: CPU per record through
`Metrics.count` (what the platform does per stored invocation record).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks import async_systems
from benchmarks.async_systems import Target
from benchmarks.bench_async import WARMUP, AsyncRun, produce
from benchmarks.measure import Runs, interleave, loads, spread
from benchmarks.processes import launcher, python_env, serve_on_free_port
from benchmarks.wrk import WrkMissing, WrkResult, run_wrk, wrk_path
from triggerfish.observe.metrics import Metrics
from triggerfish.runtime.records import InvocationRecord

ROUNDS = int(os.environ.get("TRIGGERFISH_BENCH_METRICS_ROUNDS", "5"))
DURATION = float(os.environ.get("TRIGGERFISH_BENCH_METRICS_SECONDS", "5"))
N = int(os.environ.get("TRIGGERFISH_BENCH_METRICS_N", "3000"))
PRODUCERS = 4
CONNECTIONS = 32
TARGET_COST = 0.03
APPS = Path(__file__).resolve().parent / "apps"
PATH = "/hello?n=7"
SIDES = {"on": "metrics on", "off": "metrics off (`--no-metrics`)"}


def _command(side: str, app: Path, data: Path) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        arguments = ["platform", str(app), "--port", str(port), "--data-dir", str(data)]
        return launcher("asyncio", *arguments, *(["--no-metrics"] if side == "off" else []))

    return command


@dataclass(frozen=True, slots=True)
class Measured:
    """One run: invocations per second, and the platform process's CPU per invocation in µs."""

    rate: float
    cpu_us: float


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by the process `pid` alone (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: The platform's command line for a side ("on", "off"), an app and a data directory, taking the port.
Command = Callable[[str, Path, Path], Callable[[int], list[str]]]


def measure_http(work: Path, command: Command = _command) -> dict[str, Runs[Measured]]:
    urls, children = {}, {}
    try:
        for side in SIDES:
            children[side], port = serve_on_free_port(
                command(side, APPS / "http_app.py", work / f"http-{side}"),
                lambda port: f"http://127.0.0.1:{port}{PATH}",
                log=work / f"http-{side}.log",
            )
            urls[side] = f"http://127.0.0.1:{port}{PATH}"
        for url in urls.values():
            run_wrk(url, connections=CONNECTIONS, seconds=2.0)  # forks workers, fills caches

        def measured(side: str) -> Callable[[], Measured]:
            def run() -> Measured:
                pid = children[side].pid
                cpu = process_cpu_seconds(pid)
                result: WrkResult = run_wrk(urls[side], connections=CONNECTIONS, seconds=DURATION)
                used = process_cpu_seconds(pid) - cpu
                return Measured(result.rps, used / max(result.requests, 1) * 1e6)

            return run

        return interleave({side: measured(side) for side in SIDES}, ROUNDS)
    finally:
        for child in children.values():
            child.stop()


@contextmanager
def _async_platform(work: Path, side: str, command: Command = _command) -> Iterator[Target]:
    done = work / "done"
    app = async_systems._app_dir(work, done)
    child, port = serve_on_free_port(
        command(side, app, work / "data"),
        "http://127.0.0.1:{}/-/health".format,
        log=work / "platform.log",
        cwd=app.parent,
    )
    with child:
        invoke = f"http://127.0.0.1:{port}/-/api/v1/functions/noop/invoke"
        yield Target(["http", invoke], python_env(), async_systems._bytes_in(done), pid=child.pid)


def measure_async(root: Path, command: Command = _command) -> dict[str, Runs[Measured]]:
    def measured(side: str) -> Callable[[], Measured]:
        def run() -> Measured:
            work = Path(tempfile.mkdtemp(dir=root))
            with _async_platform(work, side, command) as target:
                produce(target, WARMUP, 1, first=0, already=0, log=work / "producers.log")
                cpu = process_cpu_seconds(target.pid)
                done: AsyncRun = produce(target, N, PRODUCERS, first=WARMUP, already=WARMUP, log=work / "producers.log")
                return Measured(done.rate, (process_cpu_seconds(target.pid) - cpu) / done.tasks * 1e6)

        return run

    return interleave({side: measured(side) for side in SIDES}, ROUNDS)


COUNTED = 100_000


@dataclass(frozen=True, slots=True)
class Counting:
    """Microseconds of CPU, per run: counting one invocation record, and one answered request."""

    record_us: list[float]
    request_us: list[float]


def count_cost() -> Counting:
    """CPU per record counted and per request observed (5 runs of COUNTED each, 4 functions, 2 triggers)."""
    records = [
        InvocationRecord(
            request_id=f"r{i}",
            function=f"f{i % 4}",
            version="1",
            trigger=("http", "async")[i % 2],
            attempt=1,
            status="succeeded" if i % 50 else "failed",
            started_at=0.0,
            ended_at=0.0,
            duration_ms=(i % 1000) / 10,
            billed_duration_ms=1 + i % 100,
            memory_mb=128,
            gb_seconds=0.0001,
            cold_start=i % 1000 == 0,
            init_duration_ms=50.0 if i % 1000 == 0 else None,
        )
        for i in range(1000)
    ]
    per_record, per_request = [], []
    routes = [f"GET /route{i}" for i in range(4)]
    for _ in range(5):
        metrics = Metrics()
        began = time.process_time()
        for i in range(COUNTED):
            metrics.count("bench", records[i % 1000])
        per_record.append((time.process_time() - began) / COUNTED * 1e6)
        began = time.process_time()
        for i in range(COUNTED):
            metrics.answered("bench", routes[i % 4], 200 if i % 50 else 500, 0.001)
        per_request.append((time.process_time() - began) / COUNTED * 1e6)
    return Counting(per_record, per_request)


def _cost(on: list[float], off: list[float]) -> list[float]:
    """Per round, how much slower "on" was: 1 - on/off (positive: metrics cost that share)."""
    return [1.0 - a / b for a, b in zip(on, off, strict=False)]


def _row(label: str, runs: dict[str, Runs[Measured]] | str, costs: list[float], direct_us: float) -> list[str]:
    if isinstance(runs, str):
        return [f"| {label} | {runs} | | | | | | |"]
    if not all(runs[side].runs and runs[side].error is None for side in SIDES):
        return [f"| {label} | could not run: {runs['on'].error or runs['off'].error} | | | | | | |"]
    rate_on, rate_off = (runs[side].values(lambda r: r.rate) for side in SIDES)
    cpu_on, cpu_off = (runs[side].values(lambda r: r.cpu_us) for side in SIDES)
    slower = [1.0 - a / b for a, b in zip(rate_on, rate_off, strict=False)]
    dearer = [a / b - 1.0 for a, b in zip(cpu_on, cpu_off, strict=False)]
    costs.append(direct_us / statistics.median(cpu_off))
    return [
        f"| {label} | {spread(rate_on)} / {spread(rate_off)} | {spread([c * 100 for c in slower], 1)} %"
        f" | {spread(cpu_on)} / {spread(cpu_off)} | {spread([c * 100 for c in dearer], 1)} %"
        f" | {direct_us:.2f} µs = {direct_us / statistics.median(cpu_off) * 100:.2f} %"
        f" | {loads(runs['on'])} / {loads(runs['off'])} |"
    ]


def report(http: dict[str, Runs[Measured]] | str, tasks: dict[str, Runs[Measured]], counting: Counting) -> str:
    costs: list[float] = []
    record_us = statistics.median(counting.record_us)
    request_us = statistics.median(counting.request_us)
    lines = [
        "## Metrics on the hot path",
        "",
        "The same platform (the launcher's `platform`, SQLite, asyncio) with its invocations counted for"
        " `GET /-/metrics` and without (`--no-metrics`), as separate processes taking turns,"
        f" {ROUNDS} rounds; medians with the lowest and highest run. Throughput lost is 1 - on/off per round;"
        " CPU added is the platform process's CPU per invocation (its workers apart), on/off - 1 per round."
        " Counting is what the metrics do per invocation, timed alone in one process (an invocation record"
        " counted; on the HTTP path also the request observed), and its share of the platform's CPU per"
        " invocation without metrics.",
        "",
        "| path | per second, on / off | throughput lost | platform CPU per invocation, µs, on / off"
        " | CPU added | counting | load avg at each run, on / off |",
        "|---|---:|---:|---:|---:|---:|---|",
        *_row(f"HTTP, {CONNECTIONS} connections", http, costs, record_us + request_us),
        *_row(f"async, {N} no-op invocations, {PRODUCERS} producers", tasks, costs, record_us),
        "",
    ]
    if costs:
        met = "met" if max(costs) < TARGET_COST else "**NOT met**"
        lines.append(
            f"- Target: counting costs under {TARGET_COST:.0%} of the platform's CPU per invocation on both paths:"
            f" {met}. The end-to-end columns move by more than that between rounds on a loaded shared machine (see"
            " the load averages); a negative figure there is noise (the run with metrics did better)."
        )
    lines.append(
        f"- Counting alone: {spread(counting.record_us, 2)} µs of CPU per invocation record (`Metrics.count`) and"
        f" {spread(counting.request_us, 2)} µs per request (`Metrics.answered`), {COUNTED:,} each, 5 runs."
    )
    return "\n".join(lines)


def main() -> str:
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        root = Path(tmp)
        try:
            wrk_path()
            http: dict[str, Runs[Measured]] | str = measure_http(root)
        except WrkMissing as exc:
            http = f"not measured: {exc}"
        return report(http, measure_async(root), count_cost())


if __name__ == "__main__":
    print(main())
