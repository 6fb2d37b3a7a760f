"""What every benchmark reports: systems measured in turns, medians with their spread, the load beside each run.

The machine is shared and noisy, so no figure is a single run: systems take
turns (A B C, A B C, ... for `rounds` rounds), each run notes the 1-minute
load average when it started, and a system's figure is the median of its
runs with the lowest and highest beside it.

    runs = interleave({"ours": run_ours, "peer": run_peer}, rounds=3)
    print(spread(runs["ours"].values(rate)))  # "3,210 (3,050 to 3,330)" in a report
"""

from __future__ import annotations

import cProfile
import io
import math
import os
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
#: Between the lowest and the highest run in a report (written as an escape: the linters flag the character).
EN_DASH = "\u2013"


def load_average() -> float:
    """The 1-minute load average (runnable and waiting tasks); 0.0 where the system has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


@dataclass(frozen=True, slots=True)
class Run(Generic[T]):
    """One run of one system: what it measured, and the load average when it started."""

    result: T
    load: float
    round: int


@dataclass(slots=True)
class Runs(Generic[T]):
    """Every run of one system, in the order they ran; `error` when it could not run (the reason)."""

    runs: list[Run[T]] = field(default_factory=list)
    error: str | None = None

    def values(self, pick: Callable[[T], float]) -> list[float]:
        return [pick(run.result) for run in self.runs]

    def median(self, pick: Callable[[T], float]) -> float:
        values = self.values(pick)
        return statistics.median(values) if values else math.nan

    @property
    def loads(self) -> list[float]:
        return [run.load for run in self.runs]


def interleave(systems: Mapping[str, Callable[[], T]], rounds: int) -> dict[str, Runs[T]]:
    """Run every system once per round, in turns; a system that raises is not run again (its reason kept)."""
    measured: dict[str, Runs[T]] = {name: Runs() for name in systems}
    for number in range(1, rounds + 1):
        for name, run in systems.items():
            series = measured[name]
            if series.error is not None:
                continue
            load = load_average()
            try:
                series.runs.append(Run(run(), load, number))
            except Exception as exc:
                series.error = f"{type(exc).__name__}: {exc}"
    return measured


async def interleave_async(systems: Mapping[str, Callable[[], Awaitable[T]]], rounds: int) -> dict[str, Runs[T]]:
    """`interleave` for systems measured by coroutines."""
    measured: dict[str, Runs[T]] = {name: Runs() for name in systems}
    for number in range(1, rounds + 1):
        for name, run in systems.items():
            series = measured[name]
            if series.error is not None:
                continue
            load = load_average()
            try:
                series.runs.append(Run(await run(), load, number))
            except Exception as exc:
                series.error = f"{type(exc).__name__}: {exc}"
    return measured


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0-1) of `values`, nearest rank; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def number(value: float, decimals: int = 0) -> str:
    """`value` with thousands separators, or "-" for NaN."""
    if math.isnan(value):
        return "-"
    text = f"{value:,.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.,") else text  # no "-0.00"


def spread(values: Sequence[float], decimals: int = 0) -> str:
    """The median of `values`, then the lowest and highest in brackets; for one run, just the value."""
    if not values:
        return "-"
    middle = number(statistics.median(values), decimals)
    if len(values) == 1:
        return middle
    return f"{middle} ({number(min(values), decimals)}{EN_DASH}{number(max(values), decimals)})"


def loads(runs: Runs[T]) -> str:
    """The load averages of a system's runs, in order: "2.1, 3.4, 2.8"."""
    return ", ".join(f"{load:.1f}" for load in runs.loads) or "-"


def fsync_latency(directory: str, samples: int = 200) -> tuple[float, float]:
    """The p50 and p99 in ms of one 4 KiB write and fsync in `directory`: the floor under every durable commit."""
    path = os.path.join(directory, ".fsync-probe")
    seconds = []
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(samples):
            os.write(descriptor, b"\0" * 4096)
            began = time.perf_counter()
            os.fsync(descriptor)
            seconds.append(time.perf_counter() - began)
    finally:
        os.close(descriptor)
        os.unlink(path)
    seconds.sort()
    return seconds[len(seconds) // 2] * 1000, seconds[min(len(seconds) - 1, round(len(seconds) * 0.99))] * 1000


def profile_text(profile: cProfile.Profile, top: int) -> str:
    """The `top` functions of a cProfile run by their own time, as pstats prints them."""
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()
