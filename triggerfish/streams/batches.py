"""One batch of stream records through a function, with Lambda's error handling for streams.

    settled = await run_batch(items, invoke, options, fail=send_to_destination, backoff=policy.backoff)

What Lambda's Kinesis and Kafka event source mappings do with a batch, and
nothing else: the function gets the batch; on success the batch is done.
With `report_batch_item_failures`, a result naming failed records
(`{"batchItemFailures": [{"itemIdentifier": sequenceNumber}]}`) marks the
records before the first failed one done and retries from it (an identifier
not in the batch fails the whole batch, as on Lambda). On an error the
batch is retried after a backoff; with `bisect_on_error` it is split in two
first, and each half retried alone, so a poison record ends up alone. A
retry counts against `max_retries` (-1: no limit) for every record it holds.
Records older than `max_record_age` (-1: no limit) are not sent again.
Records given up on go to `fail` with the condition (`RetryAttemptsExhausted`
or `RecordAgeExceeded`), and the batch is settled: the caller moves its
checkpoint past every record, handled or given up on.

No I/O of its own: `invoke`, `fail`, `sleep` and `clock` are passed in, so
this is tested against tables of outcomes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    from triggerfish.model import StreamSettings

#: Why records were given up on: the `condition` of Lambda's on-failure record for streams.
GiveUpCondition = Literal["RetryAttemptsExhausted", "RecordAgeExceeded"]


@dataclass(frozen=True, slots=True)
class Item:
    """A record of a batch: its sequence number (what `batchItemFailures` names), arrival time and event record."""

    sequence: str
    arrived: float
    record: Mapping[str, Any]
    #: The traceparent of the work that wrote the record (a table write's invocation); None: none known.
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one invocation of a batch went: its result, or the error that failed it."""

    ok: bool
    result: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """The stream settings a batch runs under (a trigger's `max_retries`, `bisect_on_error`, ...)."""

    max_retries: int = -1
    max_record_age: float = -1.0
    bisect_on_error: bool = False
    report_batch_item_failures: bool = False

    @classmethod
    def of(cls, settings: StreamSettings) -> BatchOptions:
        """A trigger's settings that decide how a batch runs."""
        return cls(
            settings.max_retries, settings.max_record_age, settings.bisect_on_error, settings.report_batch_item_failures
        )


def filter_texts(settings: StreamSettings) -> tuple[str, ...]:
    """A trigger's filter patterns as JSON text, as subscriptions carry them (compared, sent between processes)."""
    return tuple(orjson.dumps(dict(pattern)).decode() for pattern in settings.filters)


@dataclass(frozen=True, slots=True)
class GivenUp:
    """Records given up on, for the failure destination."""

    items: tuple[Item, ...]
    condition: GiveUpCondition
    #: Invocations that held these records (Lambda's `approximateInvokeCount`).
    invoke_count: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """What became of a batch: invocations made, records handled, and what was given up on."""

    invocations: int
    handled: int
    given_up: tuple[GivenUp, ...] = ()


Invoke = Callable[[Sequence[Item]], Awaitable[Attempt]]
Fail = Callable[[GivenUp], Awaitable[None]]


async def run_batch(
    items: Sequence[Item],
    invoke: Invoke,
    options: BatchOptions,
    *,
    fail: Fail,
    backoff: Callable[[int], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> Settled:
    """Run `items` through `invoke` until each is handled or given up on. See the module docstring.

    `backoff(n)` is the wait before the n-th retry. Returns when the batch is settled; the caller
    then moves its checkpoint past the batch.
    """
    pending: deque[tuple[list[Item], int]] = deque([(list(items), 0)])
    invocations = handled = 0
    given_up: list[GivenUp] = []

    async def give_up(part: Sequence[Item], condition: GiveUpCondition, count: int, error: str | None) -> None:
        gone = GivenUp(tuple(part), condition, count, error)
        given_up.append(gone)
        await fail(gone)

    while pending:
        batch, retries = pending.popleft()
        if options.max_record_age >= 0:
            now = clock()
            expired = [item for item in batch if now - item.arrived > options.max_record_age]
            if expired:
                await give_up(expired, "RecordAgeExceeded", retries, None)
                batch = [item for item in batch if now - item.arrived <= options.max_record_age]
        if not batch:
            continue
        attempt = await invoke(batch)
        invocations += 1
        if attempt.ok:
            first = first_failure(attempt.result, batch) if options.report_batch_item_failures else None
            if first is None:
                handled += len(batch)
                continue
            handled += first
            rest = batch[first:]
            error: str | None = "the function reported batchItemFailures"
        else:
            rest, error = batch, attempt.error
        if 0 <= options.max_retries <= retries:
            await give_up(rest, "RetryAttemptsExhausted", retries + 1, error)
            continue
        await sleep(backoff(retries + 1))
        if options.bisect_on_error and not attempt.ok and len(rest) > 1:
            half = len(rest) // 2
            pending.appendleft((rest[half:], retries + 1))
            pending.appendleft((rest[:half], retries + 1))
        else:
            pending.appendleft((rest, retries + 1))
    return Settled(invocations, handled, tuple(given_up))


def first_failure(result: Any, batch: Sequence[Item]) -> int | None:
    """The index of the first record a handler's result reports failed; None when it reports none.

    Lambda's contract for streams: `{"batchItemFailures": [{"itemIdentifier": sequenceNumber}, ...]}`;
    processing resumes from the lowest one reported. An empty or unknown identifier, or a list that
    is not one, fails the whole batch (index 0); anything else, an empty list or no key, is success.
    """
    if not isinstance(result, Mapping) or result.get("batchItemFailures") is None:
        return None
    failures = result["batchItemFailures"]
    if not isinstance(failures, list):
        return 0
    index = {item.sequence: n for n, item in enumerate(batch)}
    first: int | None = None
    for failure in failures:
        ident = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(ident, str) or ident not in index:
            return 0
        first = index[ident] if first is None else min(first, index[ident])
    return first
