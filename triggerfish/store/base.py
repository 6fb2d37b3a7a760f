"""The store contract: the durable state behind the whole platform.

A `Store` bundles three parts, each its own small contract, so that a
deployment can take them from different engines (say NATS JetStream for the
log and queues, PostgreSQL for records) without callers noticing:

- `EventLog`: append-only streams of records, one per bus, read by offset or time.
- `Queues`: messages with leases (visibility timeouts), acknowledgements,
  receive counts, dead-lettering, FIFO groups and deduplication.
- `KeyValue`: records with versions for compare-and-set, and expiry.

The contract is written in leases and acknowledgements, not in SQL: a
backend promises that an awaited write is durable before it returns, that a
leased message is invisible to others until its lease ends, and that a stale
receipt is refused.

Each abstract base class follows the template-method split: the public
method validates its arguments and does the bookkeeping every backend
shares, then calls a small abstract `_primitive` that a backend implements.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from triggerfish.errors import InvalidInputError

if TYPE_CHECKING:
    from triggerfish.store.atomic import Op
from triggerfish.store._checks import (
    check_body as check_body,
)
from triggerfish.store._checks import (
    check_count as check_count,
)
from triggerfish.store._checks import (
    check_key as check_key,
)
from triggerfish.store._checks import (
    check_name as check_name,
)
from triggerfish.store._checks import (
    check_seconds as check_seconds,
)
from triggerfish.store._checks import (
    check_time as check_time,
)
from triggerfish.store._checks import (
    encodable as encodable,
)
from triggerfish.store._waiting import Notifier, wait_any

Clock = Callable[[], float]

#: Largest body (log record, message or value) a store accepts unless configured otherwise.
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024

# How often a long-poll re-checks when nothing told it to wake: covers writes by other
# processes (that a backend cannot hear of) and delayed messages becoming visible.
POLL_INTERVAL = 0.05
#: The longest a sent or released message may be delayed (SQS's 15 minutes).
_MAX_SEND_DELAY = 15 * 60.0


# --- the event log ---------------------------------------------------------------------------


@dataclass(slots=True)
class LogRecord:
    """One record of a stream. Offsets start at 1, grow by one, and are never reused."""

    stream: str
    offset: int
    time: float
    data: bytes


@dataclass(frozen=True, slots=True)
class LogClaim:
    """A contiguous range of a stream's offsets, `first` to `last`, leased to one consumer of `group`.

    `records` are the records of the range still in the stream (fewer than the range when
    retention trimmed some; possibly none). `token` names this lease: `commit`,
    `extend_claim` and `release_claim` are refused once another consumer re-claimed the
    range. `expires_at` is when the lease ends, on the store's clock.
    """

    stream: str
    group: str
    first: int
    last: int
    token: str
    records: list[LogRecord]
    expires_at: float


#: Most records one claim hands out.
MAX_CLAIM_RECORDS = 10_000

#: The keys a log record can be found by (`EventLog.find`): none, one or two.
RecordKeys = tuple[str, ...]
#: Most keys one log record has (a backend keeps them in columns of the record's row, each with its own index).
MAX_RECORD_KEYS = 2


def check_record_keys(keys: Sequence[RecordKeys], count: int) -> list[RecordKeys]:
    """`keys` as a list, one tuple of at most two keys for each of `count` records; raises for anything else."""
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence) or len(keys) != count:
        raise InvalidInputError(f"keys must be a list with one tuple of keys per record ({count}), not {keys!r:.80}")
    for found in keys:
        if type(found) is not tuple or len(found) > MAX_RECORD_KEYS:
            raise InvalidInputError(f"a record's keys are a tuple of at most {MAX_RECORD_KEYS} keys, not {found!r:.80}")
        for key in found:
            check_key(key)
    return keys if type(keys) is list else list(keys)


class EventLog(abc.ABC):
    """Append-only streams of opaque records (one stream per event bus), with consumer groups.

    A consumer group spreads the consumption of one stream over many consumers (on many
    machines): each `claim` leases the next range of records to one consumer, and a
    `commit` marks it done. See `claim`.
    """

    #: Seconds between re-checks of a waiting `read` or `claim` that nothing woke.
    poll_interval: float = POLL_INTERVAL

    def __init__(self, *, clock: Clock = time.time, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.clock = clock
        self.max_record_bytes = max_record_bytes
        self._appended = Notifier()

    async def append(self, stream: str, data: bytes) -> LogRecord:
        """Append one record; returns once it is durable."""
        return (await self.append_many(stream, [data]))[0]

    async def append_many(
        self, stream: str, items: Sequence[bytes], *, keys: Sequence[RecordKeys] | None = None
    ) -> list[LogRecord]:
        """Append records in order, all or none; returns once they are durable.

        `keys`, when given, has one entry per item: the keys (at most two, `MAX_RECORD_KEYS`) that item can be
        found by with `find`, in every stream at once. A key names one record; what a second record under the
        same key does to `find` is not defined, so keys are made unique (an id in them) by the caller.
        """
        bodies = self.check_append(stream, items)
        checked = None if keys is None else check_record_keys(keys, len(bodies))
        if not bodies:
            return []
        records = await self._append(stream, bodies, self.clock(), checked)
        self._appended.notify(stream)
        return records

    async def find(self, prefix: str, *, limit: int = 1000) -> list[tuple[str, LogRecord]]:
        """The records still kept that have a key (given at append) starting with `prefix`, in key order (UTF-8
        byte order), each with that key: a record with two such keys comes once for each."""
        if not isinstance(prefix, str) or not prefix or not encodable(prefix):
            raise InvalidInputError(f"prefix must be a non-empty string (UTF-8, no lone surrogates), not {prefix!r}")
        check_count("limit", limit, minimum=1)
        return await self._find(prefix, limit)

    async def read(
        self,
        stream: str,
        *,
        after: int = 0,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
        wait: float = 0.0,
    ) -> list[LogRecord]:
        """Records with offset greater than `after` (and time within [since, until)), oldest first.

        With `wait`, an empty read waits up to that many seconds for a new record.
        """
        check_name("stream", stream)
        check_count("after", after)
        check_count("limit", limit, minimum=1)
        since, until = check_time("since", since), check_time("until", until)
        check_seconds("wait", wait)
        deadline = time.monotonic() + wait
        while True:
            waiter = self._appended.waiter(stream)
            records = await self._read(stream, after, since, until, limit)
            remaining = deadline - time.monotonic()
            if records or remaining <= 0:
                return records
            await wait_any(waiter, min(remaining, self.poll_interval))

    def check_append(self, stream: str, items: Sequence[bytes]) -> list[bytes]:
        """The bodies `append_many(stream, items)` would write; raises as it would for bad input."""
        check_name("stream", stream)
        if isinstance(items, (bytes, bytearray, memoryview, str)):
            raise InvalidInputError("append_many takes a list of bytes records; use append() for one record")
        return [check_body("log record", item, self.max_record_bytes) for item in items]

    async def last_offset(self, stream: str) -> int:
        """The offset of the newest record ever appended (0 for a new stream)."""
        return await self._last_offset(check_name("stream", stream))

    async def trim(self, stream: str, *, max_age: float | None = None, max_bytes: int | None = None) -> int:
        """Apply retention: drop records older than `max_age` seconds, then the oldest past `max_bytes`.

        Returns how many records were removed. Offsets of the survivors do not change.
        """
        check_name("stream", stream)
        before = None if max_age is None else self.clock() - check_seconds("max_age", max_age, maximum=1e10)
        if max_bytes is not None:
            check_count("max_bytes", max_bytes)
        return await self._trim(stream, before, max_bytes)

    async def streams(self) -> list[str]:
        return sorted(await self._streams())

    # -- consumer groups --

    async def claim(
        self, stream: str, group: str, *, limit: int = 256, lease: float = 30.0, wait: float = 0.0
    ) -> LogClaim | None:
        """Lease the next range of `stream` to a consumer of `group`; None when nothing is new.

        First comes any range of the group whose lease ended without a commit (taken
        whole, under a new token), else the next `limit` records after the highest
        offset the group ever claimed. A new group starts at the beginning of the
        stream. Consumers of one group thus get disjoint ranges, wherever they run;
        a consumer that dies without committing has its range re-claimed by another
        once `lease` seconds passed: every record is handled at least once.

        With `wait`, a claim that finds nothing waits up to that many seconds for an append.
        Raises InvalidNameError or InvalidInputError for bad arguments.

            claim = await store.log.claim("bus.default", "rules", limit=100, lease=30)
            if claim is not None:
                for record in claim.records:
                    handle(record)
                await store.log.commit(claim)
        """
        check_name("stream", stream)
        check_name("group", group)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CLAIM_RECORDS:
            raise InvalidInputError(f"limit must be a whole number from 1 to {MAX_CLAIM_RECORDS}, not {limit!r}")
        check_seconds("lease", lease, allow_zero=False)
        check_seconds("wait", wait)
        deadline = time.monotonic() + wait
        while True:
            waiter = self._appended.waiter(stream)
            claim = await self._claim(stream, group, limit, lease, self.clock())
            remaining = deadline - time.monotonic()
            if claim is not None or remaining <= 0:
                return claim
            self._waiting_to_claim(stream, group, limit, lease, True)
            try:
                await wait_any(waiter, min(remaining, self.poll_interval))
            finally:
                self._waiting_to_claim(stream, group, limit, lease, False)

    def _waiting_to_claim(self, stream: str, group: str, limit: int, lease: float, waiting: bool) -> None:  # noqa: B027
        """A hook: a `claim` of `group` now waits for an append to `stream` (`waiting`), or no longer does.

        A backend may claim for it in the same write as this process's next append (see the SQLite log).
        """

    def _routed(self, stream: str, group: str) -> None:  # noqa: B027
        """A hook: a write of this process appended to `stream` and routed it for `group` (`atomic.Route`), and
        its waiters were just woken: a claim of `group` that this wakes has nothing new to take."""

    async def commit(self, claim: LogClaim) -> bool:
        """Mark a claimed range done; True once. False when another consumer re-claimed it since.

        After a False, both consumers handled the range (at least once). The group's
        `position` advances over every contiguous committed range.
        """
        check_claim(claim)
        return await self._commit(claim, self.clock())

    async def extend_claim(self, claim: LogClaim, lease: float) -> LogClaim | None:
        """Make the lease end `lease` seconds from now; the claim with its new `expires_at`, or None if lost."""
        check_claim(claim)
        check_seconds("lease", lease, allow_zero=False)
        return await self._extend_claim(claim, lease, self.clock())

    async def release_claim(self, claim: LogClaim) -> bool:
        """Give a claimed range back at once, for the next `claim` of its group; False if it was lost."""
        check_claim(claim)
        released = await self._release_claim(claim, self.clock())
        if released:
            self._appended.notify(claim.stream)
        return released

    async def position(self, stream: str, group: str) -> int:
        """The offset up to which `group` committed every record of `stream` (0 for a new group)."""
        return await self._position(check_name("stream", stream), check_name("group", group))

    async def seek(self, stream: str, group: str, offset: int) -> None:
        """Reset `group`: drop its claims and make `offset` its position (for replays and administration).

        Its next claim starts after `offset`; seek to `last_offset(stream)` to skip everything there is.
        Claims held when it moved can no longer be committed.
        """
        check_name("stream", stream)
        check_name("group", group)
        check_count("offset", offset)
        await self._seek(stream, group, offset)
        self._appended.notify(stream)

    async def advance(self, stream: str, group: str, *, expected: int, offset: int) -> bool:
        """Move `group`'s position in `stream` from `expected` to `offset`, durably: the commit of a consumer
        that reads the records itself (`read`, no claims), because it alone reads the stream for the group
        (a partition one node owns). With no claim, a batch costs one write, not two.

        False, and nothing changes, when the position is not at `expected` (another consumer moved it) or a
        claim of the group reaches into the range (another consumer claims here): read again from `position`.
        """
        check_name("stream", stream)
        check_name("group", group)
        check_count("expected", expected)
        check_count("offset", offset, minimum=expected + 1)
        return await self._advance(stream, group, expected, offset)

    async def groups(self, stream: str) -> list[str]:
        """The consumer groups of `stream`: those that ever claimed or were moved by `seek`."""
        return sorted(await self._groups(check_name("stream", stream)))

    @abc.abstractmethod
    async def _append(
        self, stream: str, bodies: list[bytes], now: float, keys: list[RecordKeys] | None = None
    ) -> list[LogRecord]: ...

    @abc.abstractmethod
    async def _find(self, prefix: str, limit: int) -> list[tuple[str, LogRecord]]: ...

    @abc.abstractmethod
    async def _read(
        self, stream: str, after: int, since: float | None, until: float | None, limit: int
    ) -> list[LogRecord]: ...

    @abc.abstractmethod
    async def _last_offset(self, stream: str) -> int: ...

    @abc.abstractmethod
    async def _trim(self, stream: str, before: float | None, max_bytes: int | None) -> int: ...

    @abc.abstractmethod
    async def _streams(self) -> list[str]: ...

    @abc.abstractmethod
    async def _claim(self, stream: str, group: str, limit: int, lease: float, now: float) -> LogClaim | None: ...

    @abc.abstractmethod
    async def _commit(self, claim: LogClaim, now: float) -> bool: ...

    @abc.abstractmethod
    async def _extend_claim(self, claim: LogClaim, lease: float, now: float) -> LogClaim | None: ...

    @abc.abstractmethod
    async def _release_claim(self, claim: LogClaim, now: float) -> bool: ...

    @abc.abstractmethod
    async def _position(self, stream: str, group: str) -> int: ...

    @abc.abstractmethod
    async def _seek(self, stream: str, group: str, offset: int) -> None: ...

    @abc.abstractmethod
    async def _advance(self, stream: str, group: str, expected: int, offset: int) -> bool: ...

    @abc.abstractmethod
    async def _groups(self, stream: str) -> list[str]: ...


def check_claim(claim: LogClaim) -> LogClaim:
    """Refuse what is not a LogClaim; a forged one is simply not found by the store."""
    if not isinstance(claim, LogClaim):
        raise InvalidInputError(f"takes the LogClaim that claim() returned, not {type(claim).__name__}")
    check_name("stream", claim.stream)
    check_name("group", claim.group)
    check_count("first", claim.first)
    check_count("last", claim.last)
    if not isinstance(claim.token, str):
        raise InvalidInputError(f"a claim's token is a string, not {type(claim.token).__name__}")
    return claim


# --- queues ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """How a queue behaves. Queues exist by use; an unconfigured queue has these defaults."""

    visibility_timeout: float = 30.0
    #: After this many receives, the next receive moves the message to `dead_letter` instead.
    max_receives: int | None = None
    dead_letter: str | None = None
    retention: float = 4 * 24 * 3600.0
    fifo: bool = False
    dedup_window: float = 300.0

    def __post_init__(self) -> None:
        check_seconds("visibility_timeout", self.visibility_timeout, allow_zero=False)
        check_seconds("retention", self.retention, allow_zero=False, maximum=14 * 24 * 3600)
        check_seconds("dedup_window", self.dedup_window)
        if self.max_receives is not None and (
            isinstance(self.max_receives, bool) or not isinstance(self.max_receives, int) or self.max_receives < 1
        ):
            raise InvalidInputError(f"max_receives must be a whole number of at least 1, not {self.max_receives!r}")
        if self.dead_letter is not None:
            check_name("dead-letter queue", self.dead_letter)
        if (self.max_receives is None) != (self.dead_letter is None):
            raise InvalidInputError("max_receives and dead_letter go together: set both, or neither")


@dataclass(slots=True)
class OutgoingMessage:
    body: bytes
    delay: float = 0.0
    dedup_id: str | None = None
    group: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SendResult:
    """`duplicate` is true when the dedup id was seen within the window; `message_id` is then the original's."""

    message_id: str
    duplicate: bool = False


@dataclass(slots=True)
class Message:
    """A received message. `receipt` is the lease: it acknowledges, releases or extends, until the lease ends."""

    queue: str
    message_id: str
    receipt: str
    body: bytes
    attributes: Mapping[str, str]
    group: str | None
    dedup_id: str | None
    receive_count: int
    sent_at: float
    first_received_at: float
    lease_expires_at: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    visible: int
    delayed: int
    in_flight: int
    #: Seconds since the oldest message still in the queue was sent; None when it is empty.
    oldest_age: float | None
    #: When (store clock) the next delayed message becomes visible; None when none is delayed.
    #: A message leased now comes back when its lease ends, which is not counted here.
    next_visible_at: float | None = None

    @property
    def depth(self) -> int:
        """Every message still in the queue: waiting, delayed or leased."""
        return self.visible + self.delayed + self.in_flight


class Queues(abc.ABC):
    """Durable queues with leases. Delivery is at least once: an unacknowledged message comes back."""

    #: Seconds between re-checks of a waiting `receive` that nothing woke (delayed messages need them).
    poll_interval: float = POLL_INTERVAL

    def __init__(self, *, clock: Clock = time.time, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.clock = clock
        self.max_record_bytes = max_record_bytes
        self._sent = Notifier()

    async def configure(self, queue: str, config: QueueConfig) -> None:
        check_name("queue", queue)
        if not isinstance(config, QueueConfig):
            raise InvalidInputError(f"configure takes a QueueConfig, not {type(config).__name__}")
        if config.dead_letter == queue:
            raise InvalidInputError(f"queue {queue!r} cannot be its own dead-letter queue")
        await self._configure(queue, config)

    async def config(self, queue: str) -> QueueConfig:
        return await self._config(check_name("queue", queue))

    async def send(
        self,
        queue: str,
        body: bytes,
        *,
        delay: float = 0.0,
        dedup_id: str | None = None,
        group: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> SendResult:
        """Send one message; returns once it is durable."""
        message = OutgoingMessage(body, delay, dedup_id, group, attributes or {})
        return (await self.send_many(queue, [message]))[0]

    async def send_many(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Send messages in order, all or none; returns once they are durable."""
        checked = self.check_send(queue, messages)
        if not checked:
            return []
        results = await self._send(queue, checked, self.clock())
        self._sent.notify(queue)
        return results

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        visibility_timeout: float | None = None,
        wait: float = 0.0,
    ) -> list[Message]:
        """Lease up to `max_messages` visible messages, oldest first.

        With `wait`, an empty receive waits up to that many seconds for one to become visible.
        """
        check_name("queue", queue)
        if isinstance(max_messages, bool) or not isinstance(max_messages, int) or not 1 <= max_messages <= 10_000:
            raise InvalidInputError(f"max_messages must be from 1 to 10000, not {max_messages!r}")
        if visibility_timeout is not None:
            check_seconds("visibility_timeout", visibility_timeout, allow_zero=False)
        check_seconds("wait", wait)
        deadline = time.monotonic() + wait
        # A receive that waits anyway need not look first where the backend knows a look would find nothing: it
        # looks once woken by a send or after a poll interval, as it would after an empty look.
        skip = wait > 0 and self._found_empty(queue)
        while True:
            waiter = self._sent.waiter(queue)
            if skip:
                skip, messages = False, []
            else:
                messages = await self._receive(queue, max_messages, visibility_timeout, self.clock())
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            self._waiting_to_receive(queue, max_messages, visibility_timeout, True)
            try:
                await wait_any(waiter, min(remaining, self.poll_interval))
            finally:
                self._waiting_to_receive(queue, max_messages, visibility_timeout, False)

    def _found_empty(self, queue: str) -> bool:
        """A hook: whether a look at `queue` now would surely find nothing (this process has just seen it empty and
        changed nothing since); a receive that waits then waits at once. False: look (the default)."""
        return False

    def _waiting_to_receive(  # noqa: B027
        self, queue: str, max_messages: int, visibility_timeout: float | None, waiting: bool
    ) -> None:
        """A hook: a `receive` now waits for a send to `queue` (`waiting`), or no longer does.

        A backend may lease for it in the same write as this process's next send (see the SQLite queues).
        """

    async def ack(self, queue: str, receipt: str) -> bool:
        """Delete a leased message. False when the lease already ended (the message may be redelivered)."""
        return (await self.ack_many(queue, [receipt]))[0]

    async def ack_many(self, queue: str, receipts: Sequence[str]) -> list[bool]:
        receipts = self.check_ack(queue, receipts)
        if not receipts:
            return []
        return await self._ack(queue, list(receipts), self.clock())

    async def release(self, queue: str, receipt: str, *, delay: float = 0.0) -> bool:
        """End a lease early; the message becomes visible again after `delay` seconds."""
        check_name("queue", queue)
        check_seconds("delay", delay, maximum=_MAX_SEND_DELAY)
        released = await self._release(queue, _check_receipt(receipt), delay, self.clock())
        if released:
            self._sent.notify(queue)
        return released

    async def extend(self, queue: str, receipt: str, visibility_timeout: float) -> bool:
        """Make a lease end `visibility_timeout` seconds from now. False when it already ended."""
        check_name("queue", queue)
        check_seconds("visibility_timeout", visibility_timeout, allow_zero=False)
        return await self._extend(queue, _check_receipt(receipt), visibility_timeout, self.clock())

    async def purge(self, queue: str) -> int:
        """Delete every message of the queue, leased or not. Returns how many."""
        return await self._purge(check_name("queue", queue))

    async def stats(self, queue: str) -> QueueStats:
        return await self._stats(check_name("queue", queue), self.clock())

    async def queues(self) -> list[str]:
        return sorted(await self._queues())

    def check_send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[OutgoingMessage]:
        """The messages `send_many(queue, messages)` would send; raises as it would for bad input."""
        check_name("queue", queue)
        if isinstance(messages, (bytes, bytearray, memoryview, str, OutgoingMessage)):
            raise InvalidInputError("send_many takes a list of OutgoingMessage; use send() for one message")
        return [self._check_outgoing(m) for m in messages]

    def check_ack(self, queue: str, receipts: Sequence[str]) -> list[str]:
        """The receipts `ack_many(queue, receipts)` would acknowledge; raises as it would for bad input."""
        check_name("queue", queue)
        if isinstance(receipts, str):
            raise InvalidInputError("ack_many takes a list of receipts; use ack() for one receipt")
        return [_check_receipt(r) for r in receipts]

    def _check_outgoing(self, message: OutgoingMessage) -> OutgoingMessage:
        attributes = message.attributes if type(message) is OutgoingMessage else None
        if (
            type(attributes) is dict
            and type(message.body) is bytes
            and len(message.body) <= self.max_record_bytes
            and type(message.delay) is float
            and 0.0 <= message.delay <= _MAX_SEND_DELAY
            and message.dedup_id is None
            and message.group is None
            and _ascii_strings(attributes)
        ):
            # The common message (an invocation the bus or the invoker built): every check below holds, by the
            # same tests' cheapest form (an ASCII string is encodable). Its attributes are copied, as below, so
            # a caller changing its dict afterwards cannot change what is stored.
            return OutgoingMessage(message.body, message.delay, None, None, dict(attributes))
        if not isinstance(message, OutgoingMessage):
            raise InvalidInputError(f"send_many takes OutgoingMessage items, not {type(message).__name__}")
        body = check_body("message body", message.body, self.max_record_bytes)
        check_seconds("delay", message.delay, maximum=_MAX_SEND_DELAY)
        if message.dedup_id is not None:
            check_key(message.dedup_id)
        if message.group is not None:
            check_key(message.group)
        if not isinstance(message.attributes, Mapping):
            raise InvalidInputError(f"message attributes must be a mapping, not {type(message.attributes).__name__}")
        attributes = dict(message.attributes)
        for name, value in attributes.items():
            if not isinstance(name, str) or not isinstance(value, str) or not encodable(name + value):
                raise InvalidInputError(
                    f"message attribute {name!r} must map a string to a string (UTF-8, no lone surrogates)"
                )
        return OutgoingMessage(body, float(message.delay), message.dedup_id, message.group, attributes)

    @abc.abstractmethod
    async def _configure(self, queue: str, config: QueueConfig) -> None: ...

    @abc.abstractmethod
    async def _config(self, queue: str) -> QueueConfig: ...

    @abc.abstractmethod
    async def _send(self, queue: str, messages: list[OutgoingMessage], now: float) -> list[SendResult]: ...

    @abc.abstractmethod
    async def _receive(
        self, queue: str, max_messages: int, visibility_timeout: float | None, now: float
    ) -> list[Message]: ...

    @abc.abstractmethod
    async def _ack(self, queue: str, receipts: list[str], now: float) -> list[bool]: ...

    @abc.abstractmethod
    async def _release(self, queue: str, receipt: str, delay: float, now: float) -> bool: ...

    @abc.abstractmethod
    async def _extend(self, queue: str, receipt: str, visibility_timeout: float, now: float) -> bool: ...

    @abc.abstractmethod
    async def _purge(self, queue: str) -> int: ...

    @abc.abstractmethod
    async def _stats(self, queue: str, now: float) -> QueueStats: ...

    @abc.abstractmethod
    async def _queues(self) -> list[str]: ...


def _ascii_strings(attributes: dict[str, str]) -> bool:
    """Whether every name and value is an exact `str` of ASCII (so also encodable as UTF-8)."""
    for name, value in attributes.items():
        if type(name) is not str or type(value) is not str or not name.isascii() or not value.isascii():
            return False
    return True


def _check_receipt(receipt: str) -> str:
    if not isinstance(receipt, str):
        raise InvalidInputError(f"a receipt is the string Message.receipt, not {type(receipt).__name__}")
    # No store ever hands out a receipt that is not valid UTF-8; refuse it like any unknown receipt.
    return receipt if encodable(receipt) else ""


# --- key-value records -----------------------------------------------------------------------


@dataclass(slots=True)
class KVRecord:
    """A record's `version` is unique in its store and never reused, so compare-and-set has no ABA problem."""

    namespace: str
    key: str
    value: bytes
    version: int
    expires_at: float | None


#: Pass as `if_version` to create a record only if none exists (an expired one counts as none).
ABSENT = 0


class KeyValue(abc.ABC):
    """Versioned records with compare-and-set and expiry: idempotency keys, schedule state, leased locks."""

    def __init__(self, *, clock: Clock = time.time, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.clock = clock
        self.max_record_bytes = max_record_bytes

    async def get(self, namespace: str, key: str) -> KVRecord | None:
        """The live record, or None when there is none or it expired."""
        return await self._get(check_name("namespace", namespace), check_key(key), self.clock())

    async def put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        ttl: float | None = None,
        if_version: int | None = None,
    ) -> KVRecord | None:
        """Write a record; returns it, or None when `if_version` did not hold.

        `if_version=None` writes unconditionally, `ABSENT` (0) only if there is no
        live record, any other number only if the live record has that version.
        """
        value = self.check_put(namespace, key, value, ttl, if_version)
        now = self.clock()
        expires_at = None if ttl is None else now + ttl
        return await self._put(namespace, key, value, expires_at, if_version, now)

    def check_put(self, namespace: str, key: str, value: bytes, ttl: float | None, if_version: int | None) -> bytes:
        """The value `put` would write; raises as it would for bad input."""
        check_name("namespace", namespace)
        check_key(key)
        value = check_body("value", value, self.max_record_bytes)
        if ttl is not None:
            check_seconds("ttl", ttl, allow_zero=False, maximum=1e10)
        check_version(if_version)
        return value

    def check_delete(self, namespace: str, key: str, if_version: int | None) -> None:
        """Raise as `delete` would for bad input."""
        check_version(if_version)
        check_name("namespace", namespace)
        check_key(key)

    async def put_many(
        self, namespace: str, items: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> list[KVRecord]:
        """Write several records unconditionally, in order; returns them. All are durable when this returns.

        The same as one `put` per item (a key listed twice ends with its last value), in one
        round trip where the backend can. Raises InvalidNameError for a bad key and
        InvalidInputError for a bad value or ttl, before anything is written.

            await store.kv.put_many("invocations", [("r/a/00001", b"..."), ("r/b/00001", b"...")], ttl=3600)
        """
        check_name("namespace", namespace)
        checked = [(check_key(key), check_body("value", value, self.max_record_bytes)) for key, value in items]
        if ttl is not None:
            check_seconds("ttl", ttl, allow_zero=False, maximum=1e10)
        if not checked:
            return []
        now = self.clock()
        return await self._put_many(namespace, checked, None if ttl is None else now + ttl, now)

    async def _put_many(
        self, namespace: str, items: list[tuple[str, bytes]], expires_at: float | None, now: float
    ) -> list[KVRecord]:
        """One `_put` after another; a backend that can write them in one round trip overrides this."""
        records: list[KVRecord] = []
        for key, value in items:
            record = await self._put(namespace, key, value, expires_at, None, now)
            assert record is not None  # unconditional
            records.append(record)
        return records

    async def delete(self, namespace: str, key: str, *, if_version: int | None = None) -> bool:
        """Delete a live record; False when there was none or `if_version` did not hold."""
        self.check_delete(namespace, key, if_version)
        return await self._delete(namespace, key, if_version, self.clock())

    async def scan(
        self, namespace: str, *, prefix: str = "", limit: int = 1000, start: str = "", end: str | None = None
    ) -> list[KVRecord]:
        """Live records whose key starts with `prefix`, in key order (UTF-8 byte order).

        `start` (inclusive) and `end` (exclusive) narrow it to a key range, for paging
        (`start=last.key + "\x01"` is the least key after `last`, since keys hold no NUL)
        and for range reads such as a table's sort-key conditions.
        """
        check_name("namespace", namespace)
        for what, text in (("prefix", prefix), ("start", start), ("end", "" if end is None else end)):
            if not isinstance(text, str) or not encodable(text):
                raise InvalidInputError(f"{what} must be a string (UTF-8, no lone surrogates), not {text!r}")
        check_count("limit", limit, minimum=1)
        return await self._scan(namespace, prefix, limit, self.clock(), start, end)

    @abc.abstractmethod
    async def _get(self, namespace: str, key: str, now: float) -> KVRecord | None: ...

    @abc.abstractmethod
    async def _put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        expires_at: float | None,
        if_version: int | None,
        now: float,
    ) -> KVRecord | None: ...

    @abc.abstractmethod
    async def _delete(self, namespace: str, key: str, if_version: int | None, now: float) -> bool: ...

    @abc.abstractmethod
    async def _scan(
        self, namespace: str, prefix: str, limit: int, now: float, start: str = "", end: str | None = None
    ) -> list[KVRecord]: ...


def check_version(if_version: int | None) -> None:
    if if_version is None or (type(if_version) is int and if_version >= 0):
        return
    if isinstance(if_version, bool) or not isinstance(if_version, int) or if_version < 0:
        raise InvalidInputError(f"if_version must be a version number, ABSENT (0) or None, not {if_version!r}")


# --- the bundle ------------------------------------------------------------------------------


class Store:
    """The three parts a platform needs, opened together from one URL (see `triggerfish.store.open_store`)."""

    #: Whether `atomic` writes all its operations in one transaction (all or nothing). False for a
    #: store whose parts come from different engines: there `atomic` runs them one after another.
    atomic_writes: bool = False
    #: Whether each `atomic` call commits on its own (PostgreSQL: a transaction on a pooled connection each), so
    #: that a caller with many concurrent writes gains by sending them as one. False where concurrent writes share
    #: commits already (SQLite's writer thread batches them) or commits cost nothing (memory).
    commits_apart: bool = False
    #: The version of the backend's schema this store runs on (None for stores without one, like memory).
    schema_version: int | None = None
    #: Whether a publisher gains by routing its own events in its append's write (`atomic.Route`): the store
    #: decides a Route in the write's transaction, and one write is cheaper than an append and a consumer's.
    routes_appends: bool = False

    def __init__(
        self,
        url: str,
        *,
        log: EventLog,
        queues: Queues,
        kv: KeyValue,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.url = url
        self.log = log
        self.queues = queues
        self.kv = kv
        self._on_close = on_close
        self.closed = False

    async def atomic(self, ops: Sequence[Op]) -> list[Any]:
        """Run writes to several parts together: all of them, or (on a failed condition) none.

        `ops` are `Append`, `Send`, `Put`, `Delete`, `Ack` and `Commit` from
        `triggerfish.store.atomic`; the result of each is what its single-operation method
        returns (`Append`: the records, `Send`: the send results, `Put`: the record, `Delete`:
        whether a record was deleted, `Ack`: a bool per receipt, `Commit`: True). Every op is
        checked before anything is written, as the single-operation methods check them.

        A `Put` or `Delete` whose `if_version` does not hold, or a `Commit` of a claim another
        consumer re-claimed, raises AtomicConflictError naming the op, and nothing is written
        (where `atomic_writes` is False, the ops before it were). An `Ack` of a lease that
        ended is a False result, not a conflict.

            from triggerfish.store.atomic import Commit, Send
            await store.atomic([Send("fn.notify", [OutgoingMessage(b"...")]), Commit(claim)])
        """
        from triggerfish.store.atomic import check_ops, run_in_order

        checked = check_ops(self, ops)
        if not checked:
            return []
        if not self.atomic_writes:
            return await run_in_order(self, checked)
        results = await self._atomic(checked, self.kv.clock())
        self._wake(checked, results)
        return results

    async def _atomic(self, ops: list[Op], now: float) -> list[Any]:
        """One transaction for `ops`, already checked; raises AtomicConflictError. For atomic backends."""
        raise NotImplementedError(f"{type(self).__name__} sets atomic_writes but does not implement _atomic")

    def _wake(self, ops: list[Op], results: list[Any]) -> None:
        from triggerfish.store.atomic import Append, Forward, Put, Route, Send

        for op, result in zip(ops, results, strict=True):
            if type(op) is Put:
                continue  # nothing waits for a key-value write; most ops of a batch of records are these
            if isinstance(op, Append) and op.items:
                self.log._appended.notify(op.stream)
            elif isinstance(op, Send) and op.messages:
                self.queues._sent.notify(op.queue)
            elif isinstance(op, Forward) and result:
                for stream in op.streams:
                    self.log._appended.notify(stream)
            elif isinstance(op, Route) and result:
                for send in op.sends:
                    if send.messages:
                        self.queues._sent.notify(send.queue)
                self.log._routed(op.source, op.group)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._on_close is not None:
            result = self._on_close()
            if asyncio.iscoroutine(result):
                await result

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Store {self.url}>"
