"""The event bus: durable publish, and the consumer that turns each bus's log into deliveries.

A bus is the log stream `bus.<name>` (what `context.publish` appends to as
well). `EventBus.publish()` appends and returns the ids only once the append
is durable.

Each bus has one consumer at a time, across every server on the store (the
leased lock and the checkpoint moved by compare-and-set are consumer.py's,
in the key-value namespace `triggerfish.bus`). The consumer matches each
event against the bus's rules and makes one delivery per matched target
durable (a function target's asynchronous invocation is queued at once;
other targets get a message on `deliver.<bus>`, see delivery.py) before the
checkpoint moves past it: every event is delivered at least once.

    bus = EventBus(store, Rules(store, app.functions), invoker=invoker)
    await bus.start()
    ids = await bus.publish("default", [Event.create("OrderPlaced", "shop")])
    ...
    await bus.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import httpx
import orjson

from triggerfish.bus.consumer import LogConsumer
from triggerfish.bus.delivery import LEASE, Deliverer, Delivery
from triggerfish.bus.parking import park
from triggerfish.bus.publisher import Publisher
from triggerfish.bus.rules import Rules
from triggerfish.bus.targets import AsyncInvoker, Targets
from triggerfish.events.cloudevent import Event
from triggerfish.names import BUS_NAMESPACE, bus_of_stream, bus_stream
from triggerfish.store import LogRecord, Store

logger = logging.getLogger("triggerfish.bus")


class EventBus(LogConsumer):
    """Publishes events durably and routes them to rule targets, at least once.

    `lock_ttl` is how long a consumer's lock lasts without renewal: another
    server takes over a bus that long after its consumer died. `lease` is how
    long a delivery in progress is hidden from other workers; a delivery
    whose worker died comes back after it. Running in the background, the
    bus reads the run-time rules again every `rules_refresh` seconds, so a
    rule another server added takes effect here too.
    """

    kind = "bus"

    def __init__(
        self,
        store: Store,
        rules: Rules,
        *,
        invoker: AsyncInvoker | None = None,
        http: httpx.AsyncClient | None = None,
        publisher: Publisher | None = None,
        clock: Callable[[], float] = time.time,
        lock_ttl: float = 10.0,
        batch_size: int = 256,
        lease: float = LEASE,
        rules_refresh: float = 5.0,
    ) -> None:
        super().__init__(
            store,
            namespace=BUS_NAMESPACE,
            clock=clock,
            lock_ttl=lock_ttl,
            batch_size=batch_size,
            refresh=rules_refresh,
        )
        self.rules = rules
        self.rules_refresh = rules_refresh
        self.publisher = publisher or Publisher(store)
        self.targets = Targets(store, invoker=invoker, publisher=self.publisher, http=http)
        self.deliverer = Deliverer(store, self.targets, clock=clock, lease=lease)

    # --- publishing ------------------------------------------------------------------------------

    async def publish(self, bus: str, events: Sequence[Event]) -> list[str]:
        """Append `events` to `bus` (all or none) and return their ids once they are durable.

        Raises InvalidInputError for a bad bus name or batch, InvalidEventError
        for an event that is not an Event; nothing is stored then (see Publisher.publish).
        """
        return [published.id for published in await self.publisher.publish(bus, events)]

    # --- consuming ---------------------------------------------------------------------------

    async def buses(self) -> list[str]:
        """Every bus with rules or with events in the log."""
        logged = [bus for bus in map(bus_of_stream, await self.store.log.streams()) if bus is not None]
        return sorted({*self.rules.buses(), *logged})

    # --- what the LogConsumer asks -------------------------------------------------------------

    def stream(self, name: str) -> str:
        return bus_stream(name)

    async def names(self) -> list[str]:
        return await self.buses()

    async def reload(self) -> None:
        await self.rules.load()

    def workers(self, name: str) -> list[Coroutine[Any, Any, None]]:
        return [self.deliverer.run(name, self._stop)]

    async def consume(self, name: str, records: list[LogRecord]) -> None:
        await self._hand_over(await self._deliveries(name, records))

    async def _hand_over(self, deliveries: list[Delivery]) -> None:
        """Make every delivery durable: function targets invoked at once, the rest (and failures) queued."""
        direct = [d for d in deliveries if d.target.kind == "function" and self.targets.invoker is not None]
        queued = [d for d in deliveries if d.target.kind != "function" or self.targets.invoker is None]
        # Queuing an asynchronous invocation is itself durable, and the invocation has its own retries,
        # as EventBridge hands events to Lambda: the detour through `deliver.<bus>` would only add latency.
        invoked = await asyncio.gather(*(self._invoke(d) for d in direct))
        queued += [delivery for delivery, ok in zip(direct, invoked, strict=True) if not ok]
        await self.deliverer.enqueue(queued)

    async def _invoke(self, delivery: Delivery) -> bool:
        try:
            await self.targets.deliver(
                delivery.target, delivery.event, bus=delivery.bus, rule_id=delivery.rule_id, ingested=delivery.ingested
            )
        except Exception as exc:
            # The delivery queue retries it under the target's policy, or dead-letters it.
            logger.info("bus %r: invoking %r failed, queued for retry: %s", delivery.bus, delivery.target.name, exc)
            return False
        return True

    async def _deliveries(self, bus: str, records: list[LogRecord]) -> list[Delivery]:
        now = self.clock()
        deliveries = []
        for record in records:
            try:
                document = orjson.loads(record.data)
                event = Event.from_dict(document)
            except ValueError as exc:
                # Publishers validate on write, so this is a store written by something else: keep it, visibly.
                await park(self.store.log, record, f"bus {bus!r}: not a readable CloudEvent: {exc}")
                continue
            for rule in self.rules.matching(bus, document):
                for target in rule.targets:
                    deliveries.append(Delivery(bus, rule.id, target, event, queued_at=now, ingested=record.time))
        return deliveries

    async def drain(self, *, rounds: int = 100) -> None:
        """Consume every bus and deliver everything due now, until nothing is left (for tests and scripts).

        Deliveries waiting for a retry's backoff are not waited for.
        """
        for _ in range(rounds):
            progressed = 0
            for bus in await self.buses():
                while await self.pump(bus):
                    progressed += 1
                while await self.deliverer.run_once(bus):
                    progressed += 1
            if not progressed:
                return

    # --- running -----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop the background work, release the locks, close the HTTP client."""
        await super().stop()
        await self.targets.close()
