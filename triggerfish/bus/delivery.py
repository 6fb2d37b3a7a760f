"""Durable delivery: every (event, rule, target) is a message on the store queue `deliver.<bus>`.

The bus consumer turns each matched target into one message (`Delivery`),
written before the bus checkpoint moves, so a crash at any point leaves
either the event unconsumed or its deliveries queued: at least once.

A `Deliverer` leases those messages, hands each to its target and acks it.
A failure releases the message to come back after a backoff (the target's
`DeliveryRetry`), until its attempts or its age run out; then it goes to the
target's dead-letter queue (by default `deliver.<bus>.dead-letter`) with the
error, the number of attempts and the rule, as EventBridge's dead-letter
messages carry them, and is acked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from triggerfish.bus.rules import RuleTarget
from triggerfish.bus.targets import Targets, rule_arn
from triggerfish.errors import NonRetryable
from triggerfish.events.cloudevent import Event
from triggerfish.retry import decide
from triggerfish.store import Message, OutgoingMessage, Store

logger = logging.getLogger("triggerfish.bus")

#: How long a delivery is leased: longer than the slowest target (a webhook's 10 s timeout).
LEASE = 60.0


def delivery_queue(bus: str) -> str:
    return f"deliver.{bus}"


def dead_letter_queue(bus: str, target: RuleTarget) -> str:
    return target.dead_letter or f"deliver.{bus}.dead-letter"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one target of one rule. `queued_at` starts the clock of `max_event_age`."""

    bus: str
    rule_id: str
    target: RuleTarget
    event: Event
    queued_at: float
    ingested: float

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


class Deliverer:
    """Leases deliveries of one store and hands them to their targets, with retries and dead letters."""

    def __init__(
        self, store: Store, targets: Targets, *, clock: Callable[[], float] = time.time, lease: float = LEASE
    ) -> None:
        self.store = store
        self.targets = targets
        self.clock = clock
        self.lease = lease

    async def enqueue(self, deliveries: list[Delivery]) -> None:
        """Queue deliveries durably (all or none per bus)."""
        by_bus: dict[str, list[OutgoingMessage]] = {}
        for delivery in deliveries:
            by_bus.setdefault(delivery.bus, []).append(delivery.to_message())
        for bus, messages in by_bus.items():
            await self.store.queues.send_many(delivery_queue(bus), messages)

    async def run_once(self, bus: str, *, max_messages: int = 64, wait: float = 0.0) -> int:
        """Deliver what is due on `bus` now (concurrently); returns how many messages were handled."""
        messages = await self.store.queues.receive(
            delivery_queue(bus), max_messages=max_messages, visibility_timeout=self.lease, wait=wait
        )
        done = await asyncio.gather(*(self._handle(bus, message) for message in messages))
        # One durable write acknowledges the whole batch.
        await self.store.queues.ack_many(delivery_queue(bus), [receipt for receipt in done if receipt is not None])
        return len(messages)

    async def run(self, bus: str, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set."""
        while not stop.is_set():
            try:
                await self.run_once(bus, wait=0.5)
            except Exception:
                logger.exception("bus %r: the delivery worker failed; trying again in 1 s", bus)
                await asyncio.sleep(1.0)

    async def _handle(self, bus: str, message: Message) -> str | None:
        """Deliver one message; returns its receipt to acknowledge, or None when it was released for a retry."""
        queue = delivery_queue(bus)
        try:
            delivery = Delivery.from_message(message)
        except (ValueError, KeyError, TypeError) as exc:
            # Cannot happen for messages this module wrote; never retry it forever.
            logger.error("bus %r: unreadable delivery %s dropped to the dead letters: %s", bus, message.message_id, exc)
            await self.store.queues.send(f"deliver.{bus}.dead-letter", message.body)
            return message.receipt
        try:
            await self.targets.deliver(
                delivery.target, delivery.event, bus=bus, rule_id=delivery.rule_id, ingested=delivery.ingested
            )
        except Exception as exc:
            return await self._failed(queue, message, delivery, exc)
        return message.receipt

    async def _failed(self, queue: str, message: Message, delivery: Delivery, exc: Exception) -> str | None:
        retry = delivery.target.retry
        decision = decide(
            retry.backoff,
            attempt=message.receive_count,
            retries=retry.max_attempts - 1,
            retryable=not isinstance(exc, NonRetryable),
            requested_delay=None,
            age=self.clock() - delivery.queued_at,
            max_event_age=retry.max_event_age,
        )
        if decision.retry:
            logger.info(
                "bus %r: delivery of %s to %s %r failed (attempt %d), retrying in %.1f s: %s",
                delivery.bus,
                delivery.event.id,
                delivery.target.kind,
                delivery.target.name,
                message.receive_count,
                decision.delay,
                exc,
            )
            await self.store.queues.release(queue, message.receipt, delay=decision.delay)
            return None
        dead = dead_letter_queue(delivery.bus, delivery.target)
        record = {
            "event": delivery.event.to_dict(),
            "bus": delivery.bus,
            "rule": delivery.rule_id,
            "target": {"id": delivery.target.id, "kind": delivery.target.kind, "name": delivery.target.name},
            "condition": decision.condition,
            "error": f"{type(exc).__name__}: {exc}",
            "attempts": message.receive_count,
            "first_queued_at": delivery.queued_at,
            "failed_at": self.clock(),
        }
        attributes = {
            "RULE_ARN": rule_arn(delivery.bus, delivery.rule_id),
            "TARGET_ARN": f"{delivery.target.kind}:{delivery.target.name}",
            "ERROR_CODE": str(decision.condition),
            "ERROR_MESSAGE": str(exc)[:1000],
            "RETRY_ATTEMPTS": str(message.receive_count),
        }
        logger.warning(
            "bus %r: gave up on %s for %s %r after %d attempts (%s); sent to dead-letter queue %r",
            delivery.bus,
            delivery.event.id,
            delivery.target.kind,
            delivery.target.name,
            message.receive_count,
            decision.condition,
            dead,
        )
        # Dead letter first, then ack: a crash between them repeats the dead letter, never loses it.
        await self.store.queues.send(dead, orjson.dumps(record), attributes=attributes)
        return message.receipt


def dead_letter(message: Message) -> dict[str, Any]:
    """A dead-letter message's record: event, bus, rule, target, condition, error, attempts."""
    record: dict[str, Any] = orjson.loads(message.body)
    return record
