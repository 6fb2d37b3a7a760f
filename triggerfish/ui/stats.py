"""The overview's figures per function, from invocation records (pure: the records come from the control API).

    rows = function_stats(records, names=["place_order"], window=300.0)
    rows[0].rate_per_minute, rows[0].p99_ms

A record is one attempt (docs/observability.md), so a retried invocation
counts each attempt: that is what ran, took time and was billed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Statuses that are not a success (throttled and expired attempts never ran, but they are failures to see).
ERROR_STATUSES = frozenset({"failed", "timed_out", "out_of_memory", "throttled", "expired"})
#: Attempts that never ran: counted, but their zero durations are left out of the percentiles.
UNRUN_STATUSES = frozenset({"throttled", "expired"})


@dataclass(frozen=True, slots=True)
class FunctionStats:
    """One function's figures over the window: attempts, errors, durations, cold starts."""

    name: str
    invocations: int
    errors: int
    cold_starts: int
    p50_ms: float | None
    p99_ms: float | None
    window: float

    @property
    def rate_per_minute(self) -> float:
        return self.invocations * 60.0 / self.window if self.window > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.invocations if self.invocations else 0.0


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (`fraction` 0.5 for p50): a value that occurred, as Prometheus' summaries give."""
    if not values:
        return None
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"a percentile's fraction is in (0, 1], not {fraction!r}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def function_stats(
    records: Iterable[Mapping[str, Any]], *, names: Iterable[str] = (), window: float
) -> list[FunctionStats]:
    """A row per function named in `names` (even with no records) and per function the records name, by name."""
    durations: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, int] = {}
    errors: dict[str, int] = {}
    colds: dict[str, int] = {}
    for record in records:
        name = str(record["function"])
        counts[name] = counts.get(name, 0) + 1
        ran = durations.setdefault(name, [])
        if record["status"] not in UNRUN_STATUSES:
            ran.append(float(record["duration_ms"]))
        if record["status"] in ERROR_STATUSES:
            errors[name] = errors.get(name, 0) + 1
        if record.get("cold_start"):
            colds[name] = colds.get(name, 0) + 1
    return [
        FunctionStats(
            name=name,
            invocations=counts.get(name, 0),
            errors=errors.get(name, 0),
            cold_starts=colds.get(name, 0),
            p50_ms=percentile(found, 0.5),
            p99_ms=percentile(found, 0.99),
            window=window,
        )
        for name, found in sorted(durations.items())
    ]


def trigger_counts(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """Attempts by (function, trigger kind): the flow map's rates on the edges into functions."""
    counts: dict[tuple[str, str], int] = {}
    for record in records:
        key = (str(record["function"]), str(record["trigger"]))
        counts[key] = counts.get(key, 0) + 1
    return counts
