"""Durable delivery: every (event, rule, target) is a message on the store queue `deliver.<bus>`.

The bus consumer turns each matched target into one message (`Delivery`),
written before the bus checkpoint moves, so a crash at any point leaves
either the event unconsumed or its deliveries queued: at least once.

A `Deliverer` leases those messages, hands each to its target and acks it
(the leasing, retries and dead letters are `DeliveryQueue`'s, which topics
reuse for their subscriptions).
A failure releases the message to come back after a backoff (the target's
`DeliveryRetry`), until its attempts or its age run out; then it goes to the
target's dead-letter queue (by default `deliver.<bus>.dead-letter`) with the
error, the number of attempts and the rule, as EventBridge's dead-letter
messages carry them, and is acked.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import orjson

from triggerfish.bus.rules import DeliveryRetry, RuleTarget
from triggerfish.bus.targets import Targets
from triggerfish.errors import NonRetryable
from triggerfish.events.cloudevent import Event
from triggerfish.identity import bus_rule_arn
from triggerfish.names import bus_dead_letter_queue, bus_delivery_queue
from triggerfish.retry import decide
from triggerfish.store import Message, OutgoingMessage, Store

logger = logging.getLogger("triggerfish.bus")

#: How long a delivery is leased: longer than the slowest target (a webhook's 10 s timeout).
LEASE = 60.0


def dead_letter_queue(bus: str, target: RuleTarget) -> str:
    """Where `target`'s undeliverable events go: the queue it names, else the bus's."""
    return target.dead_letter or bus_dead_letter_queue(bus)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one target of one rule. `queued_at` starts the clock of `max_event_age`."""

    bus: str
    rule_id: str
    target: RuleTarget
    event: Event
    queued_at: float
    ingested: float

    @property
    def retry(self) -> DeliveryRetry:
        return self.target.retry

    def to_message(self) -> OutgoingMessage:
        document = {
            "bus": self.bus,
            "rule": self.rule_id,
            "target": self.target.to_dict(),
            "event": self.event.to_dict(),
            "queued_at": self.queued_at,
            "ingested": self.ingested,
        }
        return OutgoingMessage(orjson.dumps(document))

    @classmethod
    def from_message(cls, message: Message) -> Delivery:
        document = orjson.loads(message.body)
        return cls(
            bus=document["bus"],
            rule_id=document["rule"],
            target=RuleTarget.from_dict(document["target"]),
            event=Event.from_dict(document["event"]),
            queued_at=float(document["queued_at"]),
            ingested=float(document["ingested"]),
        )


class Job(Protocol):
    """What a delivery queue carries: one thing for one target, with the target's retry policy."""

    @property
    def retry(self) -> DeliveryRetry: ...

    @property
    def queued_at(self) -> float: ...

    def to_message(self) -> OutgoingMessage: ...


J = TypeVar("J", bound=Job)


class DeliveryQueue(Generic[J], abc.ABC):
    """Durable delivery with retries and dead letters, one store queue per name (a bus, a topic).

    A subclass says which queue a name uses, how a job is read back and
    handed to its target, and what its dead letter says; the leasing,
    backoff, age limit and acknowledgement are the same for every kind.
    """

    #: What a name is called in log messages: "bus", "topic".
    kind = "bus"

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time, lease: float = LEASE) -> None:
        self.store = store
        self.clock = clock
        self.lease = lease
        #: Failed deliveries on this node by name (bus, topic) and outcome: "retried" or "dead_lettered" (metrics).
        self.failures: collections.Counter[tuple[str, str]] = collections.Counter()

    @abc.abstractmethod
    def queue(self, name: str) -> str:
        """The store queue holding the deliveries of `name`."""

    @abc.abstractmethod
    def name_of(self, job: J) -> str:
        """The name (bus, topic) a job belongs to."""

    @abc.abstractmethod
    def decode(self, message: Message) -> J:
        """A job read back from its message; raises ValueError, KeyError or TypeError when it cannot be."""

    @abc.abstractmethod
    async def deliver(self, job: J) -> None:
        """Hand the job to its target. Raises NonRetryable for failures a retry cannot fix, other errors otherwise."""

    @abc.abstractmethod
    def dead_letter(
        self, job: J, *, condition: str, error: Exception, attempts: int
    ) -> tuple[str, dict[str, Any], dict[str, str]]:
        """Where a job that ran out of attempts goes: the queue, the record, the message attributes."""

    @abc.abstractmethod
    def unreadable_queue(self, name: str) -> str:
        """Where a message that is not a job goes (it cannot name its own dead-letter queue)."""

    def describe(self, job: J) -> str:
        """The job in log messages."""
        return repr(job)

    async def enqueue(self, jobs: Sequence[J]) -> None:
        """Queue jobs durably (all or none per name)."""
        by_name: dict[str, list[OutgoingMessage]] = {}
        for job in jobs:
            by_name.setdefault(self.name_of(job), []).append(job.to_message())
        for name, messages in by_name.items():
            await self.store.queues.send_many(self.queue(name), messages)

    async def run_once(self, name: str, *, max_messages: int = 64, wait: float = 0.0) -> int:
        """Deliver what is due on `name` now (concurrently); returns how many messages were handled."""
        queue = self.queue(name)
        messages = await self.store.queues.receive(
            queue, max_messages=max_messages, visibility_timeout=self.lease, wait=wait
        )
        done = await asyncio.gather(*(self._handle(name, message) for message in messages))
        # One durable write acknowledges the whole batch.
        await self.store.queues.ack_many(queue, [receipt for receipt in done if receipt is not None])
        return len(messages)

    async def run(self, name: str, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set."""
        while not stop.is_set():
            try:
                await self.run_once(name, wait=0.5)
            except Exception:
                logger.exception("%s %r: the delivery worker failed; trying again in 1 s", self.kind, name)
                await asyncio.sleep(1.0)

    async def _handle(self, name: str, message: Message) -> str | None:
        """Deliver one message; returns its receipt to acknowledge, or None when it was released for a retry."""
        try:
            job = self.decode(message)
        except (ValueError, KeyError, TypeError) as exc:
            # Cannot happen for messages this module wrote; never retry it forever.
            logger.error(
                "%s %r: unreadable delivery %s dropped to the dead letters: %s",
                self.kind,
                name,
                message.message_id,
                exc,
            )
            await self.store.queues.send(self.unreadable_queue(name), message.body)
            return message.receipt
        try:
            await self.deliver(job)
        except Exception as exc:
            return await self._failed(name, message, job, exc)
        return message.receipt

    async def _failed(self, name: str, message: Message, job: J, exc: Exception) -> str | None:
        retry = job.retry
        decision = decide(
            retry.backoff,
            attempt=message.receive_count,
            retries=retry.max_attempts - 1,
            retryable=not isinstance(exc, NonRetryable),
            requested_delay=None,
            age=self.clock() - job.queued_at,
            max_event_age=retry.max_event_age,
        )
        self.failures[name, "retried" if decision.retry else "dead_lettered"] += 1
        if decision.retry:
            logger.info(
                "%s %r: delivery of %s failed (attempt %d), retrying in %.1f s: %s",
                self.kind,
                name,
                self.describe(job),
                message.receive_count,
                decision.delay,
                exc,
            )
            await self.store.queues.release(self.queue(name), message.receipt, delay=decision.delay)
            return None
        dead, record, attributes = self.dead_letter(
            job, condition=str(decision.condition), error=exc, attempts=message.receive_count
        )
        logger.warning(
            "%s %r: gave up on %s after %d attempts (%s); sent to dead-letter queue %r",
            self.kind,
            name,
            self.describe(job),
            message.receive_count,
            decision.condition,
            dead,
        )
        # Dead letter first, then ack: a crash between them repeats the dead letter, never loses it.
        await self.store.queues.send(dead, orjson.dumps(record), attributes=attributes)
        return message.receipt


class Deliverer(DeliveryQueue[Delivery]):
    """Leases deliveries of one store and hands them to their targets, with retries and dead letters."""

    def __init__(
        self, store: Store, targets: Targets, *, clock: Callable[[], float] = time.time, lease: float = LEASE
    ) -> None:
        super().__init__(store, clock=clock, lease=lease)
        self.targets = targets

    def queue(self, name: str) -> str:
        return bus_delivery_queue(name)

    def name_of(self, job: Delivery) -> str:
        return job.bus

    def decode(self, message: Message) -> Delivery:
        return Delivery.from_message(message)

    def unreadable_queue(self, name: str) -> str:
        return bus_dead_letter_queue(name)

    def describe(self, job: Delivery) -> str:
        return f"{job.event.id} for {job.target.kind} {job.target.name!r}"

    async def deliver(self, job: Delivery) -> None:
        await self.targets.deliver(job.target, job.event, bus=job.bus, rule_id=job.rule_id, ingested=job.ingested)

    def dead_letter(
        self, job: Delivery, *, condition: str, error: Exception, attempts: int
    ) -> tuple[str, dict[str, Any], dict[str, str]]:
        record = {
            "event": job.event.to_dict(),
            "bus": job.bus,
            "rule": job.rule_id,
            "target": {"id": job.target.id, "kind": job.target.kind, "name": job.target.name},
            "condition": condition,
            "error": f"{type(error).__name__}: {error}",
            "attempts": attempts,
            "first_queued_at": job.queued_at,
            "failed_at": self.clock(),
        }
        attributes = {
            "RULE_ARN": bus_rule_arn(job.bus, job.rule_id),
            "TARGET_ARN": f"{job.target.kind}:{job.target.name}",
            "ERROR_CODE": condition,
            "ERROR_MESSAGE": str(error)[:1000],
            "RETRY_ATTEMPTS": str(attempts),
        }
        return dead_letter_queue(job.bus, job.target), record, attributes


def dead_letter(message: Message) -> dict[str, Any]:
    """A dead-letter message's record: event, bus, rule, target, condition, error, attempts."""
    record: dict[str, Any] = orjson.loads(message.body)
    return record
