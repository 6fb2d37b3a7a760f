"""The event bus: durable publish, and the consumer that turns each bus's log into deliveries.

A bus is the log stream `bus.<name>` (what `context.publish` appends to as
well). `EventBus.publish()` appends and returns the ids only once the append
is durable.

Every node consumes every bus, in the log's consumer group `router`: each
claims the next range of a bus's events (consumer.py), matches each event
against the bus's rules and writes one delivery per matched target (a
function target's asynchronous invocation straight into its queue, other
targets a message on `deliver.<bus>`, see delivery.py) together with the
range's commit, in one durable write: every event is delivered at least
once, and a bus's consumption spreads over the nodes.

Where the store gains by it (`Store.routes_appends`: SQLite), a running bus
also routes what this process publishes in the publish's own write
(`atomic.Route`): the same matching, the same deliveries, stored with the
events and the group's move past them in one transaction, when the group has
consumed everything before them; else its consumer takes them as ever. An
event then reaches its targets one durable write after it was published, not
two, and the consumer is not woken to claim it.

    bus = EventBus(store, Rules(store, app.functions), invoker=invoker)
    await bus.start()
    ids = await bus.publish("default", [Event.create("OrderPlaced", "shop")])
    ...
    await bus.stop()
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from triggerfish.bus.consumer import CLAIM_LEASE, LogConsumer
from triggerfish.bus.delivery import LEASE, Deliverer, Delivery
from triggerfish.bus.parking import park
from triggerfish.bus.publisher import Publisher
from triggerfish.bus.rules import Rules, RuleTarget
from triggerfish.bus.targets import AsyncInvoker, Targets, render
from triggerfish.errors import InvalidInputError
from triggerfish.events.cloudevent import Event
from triggerfish.names import BUS_GROUP, BUS_NAMESPACE, bus_of_stream, bus_stream
from triggerfish.runtime.invocation_message import RawJSON
from triggerfish.runtime.records import event_consumed
from triggerfish.store import LogRecord, OutgoingMessage, Store
from triggerfish.store.atomic import Op, Route, Send

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("triggerfish.bus")


class EventBus(LogConsumer):
    """Publishes events durably and routes them to rule targets, at least once.

    `lease` is how long a delivery in progress is hidden from other workers;
    a delivery whose worker died comes back after it. Running in the background, the
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
        batch_size: int = 256,
        lease: float = LEASE,
        claim_lease: float = CLAIM_LEASE,
        rules_refresh: float = 5.0,
    ) -> None:
        super().__init__(
            store,
            group=BUS_GROUP,
            namespace=BUS_NAMESPACE,
            clock=clock,
            claim_lease=claim_lease,
            batch_size=batch_size,
            refresh=rules_refresh,
        )
        self.rules = rules
        self.rules_refresh = rules_refresh
        self.publisher = publisher or Publisher(store)
        self.targets = Targets(store, invoker=invoker, publisher=self.publisher, http=http)
        self.deliverer = Deliverer(store, self.targets, clock=clock, lease=lease)
        #: Events matched on this node, by bus and rule id (what the metrics report; counted as matched, so a
        #: range consumed again after a lost claim counts again).
        self.matches: collections.Counter[tuple[str, str]] = collections.Counter()

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

    async def consume(self, name: str, records: list[LogRecord]) -> list[Op]:
        """Every matched target's delivery as a write: a function target's asynchronous invocation straight
        into its queue (it has Lambda's retries, as EventBridge hands events to Lambda), every other target
        (and an invocation that cannot be queued) a message on `deliver.<bus>`.

        The whole range is handled in one pass: each event is decoded once (the log is trusted: its
        publisher validated it, so its data is not walked again), matched once on the bus's compiled
        rules, and its invocations go into one write per function queue.
        """
        writes, unreadable, matched = self._deliveries(name, records)
        for record, reason in unreadable:
            # Publishers validate on write, so this is a store written by something else: keep it, visibly.
            await park(self.store.log, record, reason)
        self.matches.update(matched)
        return writes

    def _route_published(
        self, bus: str, bodies: list[bytes], events: list[Event]
    ) -> tuple[Route, Callable[[], None]] | None:
        """The Route of events this process is about to publish on `bus` (the publisher's `router`): what `consume`
        would write for them, stored in their append's write if the group is not behind (else it consumes them)."""
        stream = bus_stream(bus)
        # Their time as the append will store it, to within the two readings of the clock (a delivery's `ingested`).
        now = self.clock()
        records = [LogRecord(stream, 0, now, body) for body in bodies]
        writes, unreadable, matched = self._deliveries(bus, records, events)
        if unreadable:
            return None  # a published event is always readable; if not, the consumer parks it, visibly
        sends = tuple(write for write in writes if isinstance(write, Send))
        return Route(stream, self.group, sends), lambda: self.matches.update(matched)

    def _deliveries(
        self, name: str, records: list[LogRecord], published: list[Event] | None = None
    ) -> tuple[list[Op], list[tuple[LogRecord, str]], dict[tuple[str, str], int]]:
        """`consume`'s writes for `records`, the records it cannot read (with why) and the rules matched (how many
        times each: a plain dict, which `Counter.update` adds as a Counter's counts, without a Counter per call).

        `published`: the events `records` encode, when the publisher has them (a route of its own publish). Each is
        then used as it is instead of being built again from its record (`Event.from_log`), where that gives the
        same: its attributes and the JSON of its data are the record's. Matching still reads the record's JSON (a
        tuple in data built in Python is a list there), and so does a target's rendering (a transformer's paths
        step into lists only), for which the event is built from the record as the consumer builds it.
        """
        now = self.clock()
        invocations: dict[str, list[OutgoingMessage]] = {}
        queued: list[Delivery] = []
        unreadable: list[tuple[LogRecord, str]] = []
        matched: dict[tuple[str, str], int] = {}
        invoker = self.targets.invoker
        # One build for an event's invocations of several functions with the event as it is (the fan-out), where
        # the invoker offers it: what they share is checked and encoded once.
        build_each: BuildEach | None = getattr(invoker, "messages", None)
        matching = self.rules.matching
        for index, record in enumerate(records):
            try:
                document = orjson.loads(record.data)
                event = Event.from_log(document) if published is None else published[index]
            except ValueError as exc:
                unreadable.append((record, f"bus {name!r}: not a readable CloudEvent: {exc}"))
                continue
            consumed: dict[str, str] | None = None
            plain: list[tuple[str, RuleTarget]] = []
            for rule in matching(name, document):
                matched[name, rule.id] = matched.get((name, rule.id), 0) + 1
                for target in rule.targets:
                    if invoker is not None and target.kind == "function":
                        if consumed is None:
                            # What its span consumed, from the event decoded here: the record need not parse it.
                            consumed = event_consumed(event.id, event.source, event.type)
                        if build_each is not None and _as_stored(target):
                            plain.append((rule.id, target))
                            continue
                        rendered = event
                        if published is not None and not _as_stored(target):
                            rendered = Event.from_log(document)  # rendered as the consumer renders it
                        invocation = self._invocation(invoker, name, rule.id, target, rendered, record, consumed)
                        if invocation is not None:
                            invocations.setdefault(invocation[0], []).append(invocation[1])
                            continue
                    queued.append(Delivery(name, rule.id, target, event, queued_at=now, ingested=record.time))
            if plain and build_each is not None:
                built = build_each(
                    [target.name for _, target in plain],
                    RawJSON(record.data),
                    trigger="event",
                    traceparent=event.traceparent,
                    hop_count=event.hopcount or 0,
                    consumed=consumed,
                )
                for (rule_id, target), result in zip(plain, built, strict=True):
                    if isinstance(result, tuple):
                        invocations.setdefault(result[0], []).append(result[1])
                    else:
                        _cannot_invoke(name, target, result)
                        queued.append(Delivery(name, rule_id, target, event, queued_at=now, ingested=record.time))
        writes: list[Op] = [Send(queue, messages) for queue, messages in invocations.items()]
        if queued:
            writes.append(Send(self.deliverer.queue(name), [delivery.to_message() for delivery in queued]))
        return writes, unreadable, matched

    def _invocation(
        self,
        invoker: AsyncInvoker,
        bus: str,
        rule_id: str,
        target: RuleTarget,
        event: Event,
        record: LogRecord,
        consumed: dict[str, str],
    ) -> tuple[str, OutgoingMessage] | None:
        """A function target's invocation message, or None when it cannot be queued (the delivery queue then
        dead-letters it, naming why)."""
        # The CloudEvent as it was stored goes to the function as those bytes: no decoding and encoding again.
        payload = (
            RawJSON(record.data)
            if _as_stored(target)
            else render(target, event, bus=bus, rule_id=rule_id, ingested=record.time)
        )
        try:
            queue, message, _ = invoker.message(
                target.name,
                payload,
                trigger="event",
                traceparent=event.traceparent,
                hop_count=event.hopcount or 0,
                consumed=consumed,
            )
        except (InvalidInputError, LookupError) as exc:
            _cannot_invoke(bus, target, exc)
            return None
        return queue, message

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

    async def start(self) -> None:
        """Consume every bus in the background (see LogConsumer.start), and route this process's publishes in their
        own writes where the store gains by it."""
        await super().start()
        if self.store.routes_appends and self.publisher.router is None:
            self.publisher.router = self._route_published

    async def stop(self) -> None:
        """Stop the background work, release the locks, close the HTTP client."""
        if self.publisher.router == self._route_published:
            self.publisher.router = None
        await super().stop()
        await self.targets.close()


class BuildEach(Protocol):
    """An invoker's build of one event's invocations of several functions (`Invoker.messages`)."""

    def __call__(
        self,
        functions: Sequence[str],
        event: RawJSON,
        *,
        trigger: str,
        traceparent: str | None,
        hop_count: int,
        consumed: dict[str, str] | None,
    ) -> list[tuple[str, OutgoingMessage] | InvalidInputError | LookupError]: ...


def _as_stored(target: RuleTarget) -> bool:
    """Whether a function target gets the CloudEvent as it was stored (no envelope, no transformation)."""
    return target.shape == "cloudevent" and target.transformer is None


def _cannot_invoke(bus: str, target: RuleTarget, exc: Exception) -> None:
    logger.info("bus %r: %r cannot be invoked, queued for its dead letters: %s", bus, target.name, exc)
