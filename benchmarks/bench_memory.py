"""Memory: the platform process's resident set over a long HTTP run, and where it goes if it keeps growing.

    scripts/bench memory

`triggerfish dev` serves `benchmarks/apps/http_app.py` while wrk sends
REQUESTS requests over 32 connections, in slices of about SAMPLE_EVERY
requests; after each slice the platform process's RSS (VmRSS) is read. The
run levels off when the last half of the requests grew the RSS by less than
LEVEL_MB. If it did not, a second run under tracemalloc (the launcher's
`--tracemalloc`) snapshots the heap after a warm-up and again after
TRACE_REQUESTS more requests, and the report lists the allocation sites that
grew most between the two (`Snapshot.compare_to`, by traceback).
"""

from __future__ import annotations

import json
import os
import re
import signal
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import load_average
from benchmarks.processes import Child, launcher, rss_mb, serve_on_free_port, wait_until
from benchmarks.wrk import WrkMissing, run_wrk, wrk_path

REQUESTS = int(os.environ.get("TRIGGERFISH_BENCH_MEMORY_REQUESTS", "200000"))
SAMPLE_EVERY = 10_000
TRACE_REQUESTS = int(os.environ.get("TRIGGERFISH_BENCH_MEMORY_TRACE_REQUESTS", "40000"))
#: Take the tracemalloc run even when the RSS levels off.
ALWAYS_TRACE = os.environ.get("TRIGGERFISH_BENCH_MEMORY_TRACE") == "1"
CONNECTIONS = 32
#: Growth over the last half of the run below which the RSS counts as level, in MiB.
LEVEL_MB = 3.0
TRACE_FRAMES = 12
#: The traced run stops after this many seconds even short of TRACE_REQUESTS (tracemalloc is slow).
TRACE_SECONDS = 150.0
TOP_SITES = 12
APP = Path(__file__).resolve().parent / "apps" / "http_app.py"
PATH = "/hello?n=7"


@dataclass(frozen=True, slots=True)
class Sample:
    requests: int
    rss_mb: float
    load: float


def _dev(work: Path, *launch: str) -> tuple[Child, str]:
    """`triggerfish dev` serving the app (through the launcher, with `launch` options); it and its URL."""

    def command(port: int) -> list[str]:
        arguments = ["triggerfish", "dev", str(APP), "--port", str(port), "--no-reload", "--quiet"]
        return launcher("asyncio", *launch, *arguments, "--data-dir", str(work / f"data-{port}"))

    child, port = serve_on_free_port(command, f"http://127.0.0.1:{{}}{PATH}".format, log=work / "dev.log")
    return child, f"http://127.0.0.1:{port}{PATH}"


def _drive(url: str, requests: int, rate: float) -> int:
    """About `requests` requests to `url` (wrk runs for whole seconds, sized from `rate`); returns how many."""
    return run_wrk(url, connections=CONNECTIONS, seconds=max(1.0, round(requests / rate))).requests


def rss_run(work: Path) -> tuple[list[Sample], float]:
    """RSS after every slice of about SAMPLE_EVERY requests, from the first answer on; and the rate seen."""
    child, url = _dev(work)
    with child:
        samples = [Sample(0, rss_mb(child.pid), load_average())]
        warm = run_wrk(url, connections=CONNECTIONS, seconds=2)
        rate = warm.rps or 1000.0
        done = warm.requests
        samples.append(Sample(done, rss_mb(child.pid), load_average()))
        while done < REQUESTS:
            done += _drive(url, SAMPLE_EVERY, rate)
            samples.append(Sample(done, rss_mb(child.pid), load_average()))
        return samples, rate


def levels_off(samples: list[Sample]) -> tuple[bool, float]:
    """Whether the RSS grew less than LEVEL_MB over the last half of the requests, and by how much it grew."""
    half = samples[-1].requests / 2
    middle = min(samples, key=lambda s: abs(s.requests - half))
    growth = samples[-1].rss_mb - middle.rss_mb
    return growth < LEVEL_MB, growth


@dataclass(frozen=True, slots=True)
class Traced:
    """What a tracemalloc run found: the sites that grew, requests between the snapshots, memory at each."""

    sites: list[str]
    requests: int
    #: Per snapshot: (traced MiB then, peak traced MiB so far, RSS MiB).
    memory: list[tuple[float, float, float]]


def _snapshot(child: Child, directory: Path, number: int) -> tuple[tracemalloc.Snapshot, tuple[float, float, float]]:
    os.kill(child.pid, signal.SIGUSR1)
    done = directory / f"snapshot-{number}.done"
    wait_until(done.exists, f"tracemalloc snapshot {number}", timeout=120, interval=0.05)
    traced = json.loads(done.read_text())
    memory = (traced["current"] / 2**20, traced["peak"] / 2**20, rss_mb(child.pid))
    return tracemalloc.Snapshot.load(str(directory / f"snapshot-{number}.bin")), memory


def trace_run(work: Path, rate: float) -> Traced:
    """The allocation sites that grew most over TRACE_REQUESTS requests after a warm-up, under tracemalloc."""
    snapshots = work / "snapshots"
    child, url = _dev(work, "--tracemalloc", str(TRACE_FRAMES), "--snapshots", str(snapshots))
    with child:
        _drive(url, 2 * SAMPLE_EVERY, rate / 3)  # tracemalloc slows every allocation
        first, before = _snapshot(child, snapshots, 1)
        requests = 0
        started = time.monotonic()
        while requests < TRACE_REQUESTS and time.monotonic() - started < TRACE_SECONDS:
            requests += _drive(url, SAMPLE_EVERY, rate / 3)
        second, after = _snapshot(child, snapshots, 2)
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    ]
    growth = second.filter_traces(ignore).compare_to(first.filter_traces(ignore), "traceback")
    sites = []
    for stat in growth[:TOP_SITES]:
        newest_first = list(stat.traceback)[::-1][:4]
        where = " ← ".join(f"`{_short(f.filename)}:{f.lineno}`" for f in newest_first)
        sites.append(f"| {stat.size_diff / 1024:+,.0f} KiB | {stat.count_diff:+,} | {where} |")
    return Traced(sites, requests, [before, after])


def _short(filename: str) -> str:
    """A frame's file as a reader finds it: `triggerfish/...`, a package's path, `asyncio/...`."""
    for pattern in (r"/(triggerfish/.*)$", r"site-packages/(.*)$", r"/python3\.\d+/(.*)$"):
        found = re.search(pattern, filename)
        if found:
            return found.group(1)
    return filename


def report(samples: list[Sample], level: bool, growth: float, trace: Traced | None) -> str:
    rows = ["| requests | RSS MiB | load avg |", "|---:|---:|---:|"]
    rows += [f"| {s.requests:,} | {s.rss_mb:.1f} | {s.load:.1f} |" for s in samples]
    first, last = samples[1], samples[-1]
    lines = [
        "## Memory: the platform process over a long HTTP run",
        "",
        f"`triggerfish dev` serving `benchmarks/apps/http_app.py`; wrk over {CONNECTIONS} connections for"
        f" {last.requests:,} requests in slices of about {SAMPLE_EVERY:,}, the platform process's RSS (VmRSS) read"
        " after each slice (the handler's worker processes are not counted: they are forked from the zygote and"
        " measured in the runtime benchmark).",
        "",
        *rows,
        "",
        f"- From {first.rss_mb:.1f} MiB after the first {first.requests:,} requests to {last.rss_mb:.1f} MiB after"
        f" {last.requests:,}; over the last half of the run: {growth:+.1f} MiB"
        f" ({growth / max(1, (last.requests / 2) / 10_000):+.2f} MiB per 10,000 requests):"
        f" {'it levels off' if level else '**it does not level off**'}"
        f" (level: less than {LEVEL_MB:g} MiB over the last half).",
    ]
    if trace is not None:
        (now1, peak1, rss1), (now2, peak2, rss2) = trace.memory
        lines += [
            "",
            f"Where it goes: tracemalloc ({TRACE_FRAMES} frames) snapshots after a warm-up of about"
            f" {2 * SAMPLE_EVERY:,} requests and again {trace.requests:,} requests later. Python objects traced:"
            f" {now1:.1f} MiB (peak so far {peak1:.1f}, RSS {rss1:.1f}) at the first, {now2:.1f} MiB (peak"
            f" {peak2:.1f}, RSS {rss2:.1f}) at the second. The allocation sites that grew most between the two"
            " (newest frame first):",
            "",
            "| grew by | blocks | where (allocating frame ← its callers) |",
            "|---:|---:|---|",
            *trace.sites,
        ]
    return "\n".join(lines)


def main() -> str:
    try:
        wrk_path()
    except WrkMissing as exc:
        return f"## Memory: the platform process over a long HTTP run\n\nNot measured: {exc}."
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        samples, rate = rss_run(work)
        level, growth = levels_off(samples)
        trace = trace_run(work, rate) if ALWAYS_TRACE or not level else None
    return report(samples, level, growth, trace)


if __name__ == "__main__":
    print(main())
