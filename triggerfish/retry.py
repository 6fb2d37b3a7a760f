"""When to try a failed asynchronous invocation again, and after how long: pure maths, no I/O.

Lambda retries a failed asynchronous invocation twice, waiting about one
minute and then about two. Triggerfish does the same by default with
exponential backoff: the wait before attempt `n + 1` is
`base * multiplier ** (n - 1)`, capped at `ceiling`, then jittered down by
up to `jitter` of itself so that invocations failing together do not all
come back at the same moment. A handler's own `Retry(delay=...)` replaces
the computed wait.

`decide()` is the whole policy in one function: given how an attempt went,
it says whether to try again (and when) or to give up (and why).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from triggerfish.errors import InvalidInputError

#: The longest a retry can be put off: the store's longest message delay (SQS's 15 minutes).
MAX_RETRY_DELAY = 15 * 60.0

#: Why an invocation was given up on; the `condition` of its failure destination record.
FailureCondition = Literal["RetriesExhausted", "EventAgeExceeded", "NonRetryable"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for failed asynchronous invocations.

    The defaults give Lambda's rhythm: about 60 s before the second
    attempt, about 120 s before the third. For tests, `RetryPolicy(base=0,
    ceiling=0)` retries at once.
    """

    #: Seconds before the second attempt (before jitter).
    base: float = 60.0
    #: Each further wait is this many times the previous one.
    multiplier: float = 2.0
    #: No wait is longer than this many seconds (at most MAX_RETRY_DELAY).
    ceiling: float = 300.0
    #: Fraction (0 to 1) of a wait that may be taken off at random.
    jitter: float = 0.2

    def __post_init__(self) -> None:
        _check_number("base", self.base, 0.0, MAX_RETRY_DELAY)
        _check_number("multiplier", self.multiplier, 1.0, 100.0)
        _check_number("ceiling", self.ceiling, 0.0, MAX_RETRY_DELAY)
        _check_number("jitter", self.jitter, 0.0, 1.0)

    def backoff(self, failed_attempt: int, *, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after attempt `failed_attempt` (1 for the first) failed."""
        if isinstance(failed_attempt, bool) or not isinstance(failed_attempt, int) or failed_attempt < 1:
            raise InvalidInputError(f"failed_attempt must be a whole number from 1, not {failed_attempt!r}")
        # Cap the exponent first: 2.0 ** 10_000 overflows a float.
        exponent = min(failed_attempt - 1, 64)
        wait = min(self.ceiling, self.base * self.multiplier**exponent)
        return wait * (1.0 - self.jitter * rand())


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an attempt failed: `retry` after `delay` seconds, or give up for `condition`."""

    retry: bool
    delay: float = 0.0
    condition: FailureCondition | None = None


def decide(
    policy: RetryPolicy,
    *,
    attempt: int,
    retries: int,
    retryable: bool,
    requested_delay: float | None,
    age: float,
    max_event_age: float,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Decide what follows a failed attempt.

    `attempt` is the number of the attempt that failed (1 for the first),
    `retries` how many further attempts the function allows, `retryable`
    False when the handler raised NonRetryable, `requested_delay` the
    handler's `Retry(delay=...)`, `age` the seconds since the invocation
    was first queued. A retry whose wait would carry the invocation past
    `max_event_age` is not scheduled: it gives up with EventAgeExceeded.
    """
    if not retryable:
        return Decision(retry=False, condition="NonRetryable")
    if attempt > retries:
        return Decision(retry=False, condition="RetriesExhausted")
    if requested_delay is not None:
        delay = min(max(float(requested_delay), 0.0), MAX_RETRY_DELAY)
    else:
        delay = policy.backoff(attempt, rand=rand)
    if age + delay > max_event_age:
        return Decision(retry=False, condition="EventAgeExceeded")
    return Decision(retry=True, delay=delay)


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or not low <= value <= high:
        raise InvalidInputError(f"RetryPolicy: {name} must be a number from {low:g} to {high:g}, not {value!r}")
