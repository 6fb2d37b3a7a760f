"""The retry policy: backoff maths and the retry-or-give-up decision, as tables of cases."""

from __future__ import annotations

import pytest

from triggerfish.errors import InvalidInputError
from triggerfish.retry import MAX_RETRY_DELAY, Decision, RetryPolicy, decide

NO_JITTER = RetryPolicy(jitter=0.0)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 60.0), (2, 120.0), (3, 240.0), (4, 300.0), (50, 300.0), (10_000, 300.0)],
)
def test_default_backoff_doubles_from_a_minute_up_to_the_ceiling(attempt: int, expected: float) -> None:
    assert NO_JITTER.backoff(attempt) == expected


def test_jitter_only_shortens_a_wait_and_by_at_most_its_fraction() -> None:
    policy = RetryPolicy(base=10.0, jitter=0.5)
    assert policy.backoff(1, rand=lambda: 0.0) == 10.0
    assert policy.backoff(1, rand=lambda: 0.999999) == pytest.approx(5.0, abs=1e-4)
    waits = {policy.backoff(1) for _ in range(200)}
    assert len(waits) > 100  # spread out, not one value
    assert all(5.0 <= w <= 10.0 for w in waits)


def test_a_zero_policy_retries_at_once() -> None:
    assert RetryPolicy(base=0, ceiling=0).backoff(3) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": -1},
        {"base": float("nan")},
        {"ceiling": MAX_RETRY_DELAY + 1},
        {"multiplier": 0.5},
        {"jitter": 1.5},
        {"base": True},
        {"base": "60"},
    ],
)
def test_invalid_policies_are_rejected_with_the_setting_named(kwargs: dict[str, object]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(InvalidInputError, match=f"RetryPolicy: {name}"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempt", [0, -1, True, 1.5])
def test_backoff_needs_a_real_attempt_number(attempt: object) -> None:
    with pytest.raises(InvalidInputError, match="failed_attempt"):
        NO_JITTER.backoff(attempt)  # type: ignore[arg-type]


CASES: list[tuple[str, dict[str, object], Decision]] = [
    ("first failure retries after the backoff", {"attempt": 1}, Decision(retry=True, delay=60.0)),
    ("second failure waits longer", {"attempt": 2}, Decision(retry=True, delay=120.0)),
    ("third failure exhausts two retries", {"attempt": 3}, Decision(retry=False, condition="RetriesExhausted")),
    ("no retries configured", {"attempt": 1, "retries": 0}, Decision(retry=False, condition="RetriesExhausted")),
    ("NonRetryable stops at once", {"retryable": False}, Decision(retry=False, condition="NonRetryable")),
    ("Retry(delay) replaces the backoff", {"requested_delay": 5.0}, Decision(retry=True, delay=5.0)),
    ("Retry(delay=0) retries at once", {"requested_delay": 0.0}, Decision(retry=True, delay=0.0)),
    ("a huge Retry(delay) is capped", {"requested_delay": 1e9, "max_event_age": 1e10}, Decision(True, MAX_RETRY_DELAY)),
    ("a negative Retry(delay) is zero", {"requested_delay": -3.0}, Decision(retry=True, delay=0.0)),
    (
        "Retry(delay) still counts as an attempt",
        {"attempt": 3, "requested_delay": 1.0},
        Decision(retry=False, condition="RetriesExhausted"),
    ),
    (
        "a retry past max_event_age gives up",
        {"age": 3590.0, "max_event_age": 3600.0},
        Decision(retry=False, condition="EventAgeExceeded"),
    ),
    ("a retry that fits within the age runs", {"age": 3000.0, "max_event_age": 3600.0}, Decision(True, 60.0)),
]


@pytest.mark.parametrize(("case", "changes", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(case: str, changes: dict[str, object], expected: Decision) -> None:
    arguments: dict[str, object] = {
        "attempt": 1,
        "retries": 2,
        "retryable": True,
        "requested_delay": None,
        "age": 0.0,
        "max_event_age": 6 * 3600.0,
    }
    arguments.update(changes)
    assert decide(NO_JITTER, **arguments) == expected  # type: ignore[arg-type]
