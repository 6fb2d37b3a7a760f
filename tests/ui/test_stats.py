"""The overview's figures from invocation records: rates, errors, nearest-rank percentiles, cold starts."""

from __future__ import annotations

from typing import Any

import pytest

from triggerfish.ui.stats import function_stats, percentile, trigger_counts


def record(function: str, ms: float, status: str = "succeeded", *, cold: bool = False, trigger: str = "http") -> Any:
    return {"function": function, "duration_ms": ms, "status": status, "cold_start": cold, "trigger": trigger}


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.99, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([float(n) for n in range(1, 101)], 0.99, 99.0),
        ([float(n) for n in range(1, 101)], 1.0, 100.0),
        ([5.0, 1.0, 3.0], 0.5, 3.0),  # unsorted input
    ],
)
def test_percentiles_are_nearest_rank_values_that_occurred(
    values: list[float], fraction: float, expected: float | None
) -> None:
    assert percentile(values, fraction) == expected


def test_a_percentile_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        percentile([1.0], 0.0)


def test_each_function_gets_a_row_even_without_records() -> None:
    records = [
        record("place_order", 10.0, cold=True),
        record("place_order", 30.0),
        record("charge_payment", 5.0, "failed", trigger="event"),
        record("charge_payment", 7.0, "timed_out", trigger="event"),
        record("charge_payment", 9.0, trigger="event"),
        record("charge_payment", 0.0, "throttled", trigger="event"),  # never ran: no duration to count
    ]
    rows = {row.name: row for row in function_stats(records, names=["place_order", "restock"], window=60.0)}
    assert list(rows) == ["charge_payment", "place_order", "restock"]
    place = rows["place_order"]
    assert (place.invocations, place.errors, place.cold_starts, place.p50_ms, place.p99_ms) == (2, 0, 1, 10.0, 30.0)
    assert place.rate_per_minute == 2.0
    charge = rows["charge_payment"]
    assert (charge.invocations, charge.errors, charge.error_rate) == (4, 3, 0.75)
    assert (charge.p50_ms, charge.p99_ms) == (7.0, 9.0)
    idle = rows["restock"]
    assert (idle.invocations, idle.p50_ms, idle.rate_per_minute, idle.error_rate) == (0, None, 0.0, 0.0)
    assert trigger_counts(records) == {("place_order", "http"): 2, ("charge_payment", "event"): 4}
