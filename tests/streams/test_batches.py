"""`run_batch`: Lambda's error handling for stream batches, against tables of handler outcomes (no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from triggerfish.streams.batches import Attempt, BatchOptions, GivenUp, Item, first_failure, run_batch


def items(count: int, *, arrived: float = 1000.0) -> list[Item]:
    return [Item(f"{n:03d}", arrived, {"n": n}) for n in range(count)]


class Handler:
    """Records every batch it is given; `outcome(batch)` says how each goes."""

    def __init__(self, outcome: Callable[[list[int]], Attempt]) -> None:
        self.outcome = outcome
        self.calls: list[list[int]] = []

    async def __call__(self, batch: Sequence[Item]) -> Attempt:
        numbers = [int(item.sequence) for item in batch]
        self.calls.append(numbers)
        return self.outcome(numbers)


async def run(
    handler: Handler, options: BatchOptions, count: int = 8, *, now: float = 1000.0
) -> tuple[list[GivenUp], list[float], Any]:
    given_up: list[GivenUp] = []
    waits: list[float] = []

    async def fail(gone: GivenUp) -> None:
        given_up.append(gone)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    settled = await run_batch(
        items(count), handler, options, fail=fail, backoff=lambda n: float(n), sleep=sleep, clock=lambda: now
    )
    return given_up, waits, settled


def poison(bad: int) -> Callable[[list[int]], Attempt]:
    return lambda numbers: Attempt(False, error="boom") if bad in numbers else Attempt(True)


def test_a_successful_batch_is_one_invocation() -> None:
    handler = Handler(lambda numbers: Attempt(True, {"ignored": True}))
    given_up, waits, settled = asyncio.run(run(handler, BatchOptions()))
    assert handler.calls == [list(range(8))]
    assert (given_up, waits, settled.handled, settled.invocations) == ([], [], 8, 1)


def test_a_failing_batch_is_retried_whole_until_max_retries_then_given_up() -> None:
    handler = Handler(poison(3))
    given_up, waits, settled = asyncio.run(run(handler, BatchOptions(max_retries=2)))
    assert handler.calls == [list(range(8))] * 3
    assert waits == [1.0, 2.0]
    assert len(given_up) == 1
    assert [int(i.sequence) for i in given_up[0].items] == list(range(8))
    assert (given_up[0].condition, given_up[0].invoke_count, given_up[0].error) == ("RetryAttemptsExhausted", 3, "boom")
    assert settled.handled == 0


def test_bisect_isolates_a_poison_record_and_its_neighbours_succeed() -> None:
    handler = Handler(poison(5))
    given_up, _, settled = asyncio.run(run(handler, BatchOptions(max_retries=3, bisect_on_error=True)))
    assert handler.calls[:3] == [list(range(8)), [0, 1, 2, 3], [4, 5, 6, 7]]
    assert [[int(i.sequence) for i in gone.items] for gone in given_up] == [[5]]
    assert settled.handled == 7
    # Order is kept: every record before the poison ran before every record after it.
    flat = [n for call in handler.calls for n in call if call != [5]]
    assert flat.index(4) < flat.index(6)


def test_without_bisect_a_poison_record_takes_its_whole_batch_to_the_failure_destination() -> None:
    handler = Handler(poison(5))
    given_up, _, _ = asyncio.run(run(handler, BatchOptions(max_retries=0)))
    assert handler.calls == [list(range(8))]
    assert [int(i.sequence) for i in given_up[0].items] == list(range(8))


def test_partial_batch_responses_retry_from_the_first_failed_record() -> None:
    seen = 0

    def outcome(numbers: list[int]) -> Attempt:
        nonlocal seen
        seen += 1
        if seen == 1:
            return Attempt(True, {"batchItemFailures": [{"itemIdentifier": "006"}, {"itemIdentifier": "004"}]})
        return Attempt(True, {"batchItemFailures": []})

    handler = Handler(outcome)
    given_up, waits, settled = asyncio.run(run(handler, BatchOptions(report_batch_item_failures=True)))
    assert handler.calls == [list(range(8)), [4, 5, 6, 7]]
    assert (given_up, waits, settled.handled) == ([], [1.0], 8)


def test_batch_item_failures_are_ignored_unless_reporting_is_on() -> None:
    handler = Handler(lambda numbers: Attempt(True, {"batchItemFailures": [{"itemIdentifier": "002"}]}))
    given_up, _, settled = asyncio.run(run(handler, BatchOptions()))
    assert (handler.calls, given_up, settled.handled) == ([list(range(8))], [], 8)


def test_records_past_max_record_age_are_given_up_without_another_invocation() -> None:
    handler = Handler(lambda numbers: Attempt(True))
    given_up, _, settled = asyncio.run(run(handler, BatchOptions(max_record_age=60), now=1000.0 + 61))
    assert handler.calls == []
    assert given_up[0].condition == "RecordAgeExceeded"
    assert len(given_up[0].items) == 8
    assert settled.handled == 0


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (None, None),
        ("ok", None),
        ({"batchItemFailures": []}, None),
        ({"batchItemFailures": None}, None),
        ({"batchItemFailures": [{"itemIdentifier": "002"}]}, 2),
        ({"batchItemFailures": [{"itemIdentifier": "003"}, {"itemIdentifier": "001"}]}, 1),
        ({"batchItemFailures": [{"itemIdentifier": "999"}]}, 0),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, 0),
        ({"batchItemFailures": [{"id": "002"}]}, 0),
        ({"batchItemFailures": "002"}, 0),
    ],
)
def test_first_failure_reads_lambdas_partial_batch_response(result: object, expected: int | None) -> None:
    assert first_failure(result, items(4)) == expected
