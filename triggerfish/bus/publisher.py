"""The one way anything reaches a bus's or a topic's log.

Every emitter publishes through a `Publisher`: `POST /-/events` and
`EventBus.publish`, a handler's `context.publish`, bus-to-bus rule targets,
the dispatcher's bus and topic destinations, topic publishes and topic rule
targets. It validates on write, so the caller hears about a bad event and
nothing is acknowledged that could not be delivered: only `Event`s (which
validate themselves when built) and `TopicMessage`s (checked by
`new_message`) are accepted, each is encoded here and held to the store's
record limit, and the loop guard stops what went round too many times.
The log is then trusted on read; a record that still cannot be read (a
store written by a buggy or newer version) is parked, never dropped (see
`triggerfish.bus.parking`).

    publisher = Publisher(store)
    [published] = await publisher.publish("orders", [Event.create("OrderPlaced", "/shop", {"id": 1})])
    published.id, published.offset

A bus's consumer may route what this process publishes in the publish's own
write (`router`, set by the running `EventBus`; see `atomic.Route`): the
events reach their targets one durable write after they are published, not
two, and when the store declines (the consumer is behind) it delivers them
as ever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from triggerfish.errors import InvalidEventError, InvalidInputError
from triggerfish.events.cloudevent import Event
from triggerfish.loop_guard import MAX_HOPS, LoopGuard, Origin, check_max_hops
from triggerfish.names import bus_stream, topic_stream
from triggerfish.store import Store
from triggerfish.store.atomic import Append, Route
from triggerfish.store.base import check_name
from triggerfish.triggers.sns import TopicMessage, check_topic

#: Most events one publish takes (EventBridge's PutEvents takes 10; a batch of the HTTP binding more).
MAX_PUBLISH_BATCH = 1000


#: Given a bus, the records about to be appended to it and the events they encode (in the same order), the Route of
#: them (None: the bus's consumer takes them), and what to call once the store routed them.
Router = Callable[[str, list[bytes], list[Event]], tuple[Route, Callable[[], None]] | None]


@dataclass(frozen=True, slots=True)
class Published:
    """What became of one event: its id, and its log offset (None when the loop guard stopped it)."""

    id: str
    offset: int | None

    @property
    def stopped(self) -> bool:
        return self.offset is None


class Publisher:
    """Writes events to buses and messages to topics, validated, durably, through the loop guard."""

    def __init__(self, store: Store, *, max_hops: int = MAX_HOPS) -> None:
        check_max_hops(max_hops)
        self.store = store
        self.guard = LoopGuard(store.log, max_hops=max_hops)
        #: Routes a bus's events in their publish's write (the running EventBus sets it where the store gains).
        self.router: Router | None = None

    def encode(self, events: Sequence[Event]) -> list[bytes]:
        """The log records of `events`; raises InvalidEventError (naming the index) for one that is not an Event
        or is over the store's record limit."""
        if isinstance(events, (Event, str, bytes)) or not isinstance(events, Sequence):
            raise InvalidInputError("publish takes a list of events")
        if len(events) > MAX_PUBLISH_BATCH:
            raise InvalidInputError(f"publish takes at most {MAX_PUBLISH_BATCH} events at once, not {len(events)}")
        bodies = []
        for index, event in enumerate(events):
            if not isinstance(event, Event):
                raise InvalidEventError(f"events[{index}]", f"must be an Event, not {type(event).__name__}")
            bodies.append(event.to_json(max_bytes=self.store.log.max_record_bytes))
        return bodies

    def append_op(self, bus: str, events: Sequence[Event]) -> Append:
        """The write that publishes `events` on `bus`, for a caller's `Store.atomic` (the event store's outbox).

        Checked as `publish` checks; the loop guard is the caller's to ask (`guard.allows`).
        """
        check_name("bus", bus)
        return Append(bus_stream(bus), self.encode(events))

    async def publish(self, bus: str, events: Sequence[Event], *, origin: Origin | None = None) -> list[Published]:
        """Append `events` to `bus` (all or none) once each is valid; returns when they are durable.

        Raises InvalidInputError for a bad bus name or batch and InvalidEventError
        for a bad event; nothing is stored then. An event whose `hopcount` is over
        the loop guard's limit is kept in `platform.loop-stopped` instead, and its
        `Published.offset` is None.
        """
        check_name("bus", bus)
        bodies = self.encode(events)
        allowed = [self.guard.allows(event.hopcount or 0) for event in events]
        for event, ok in zip(events, allowed, strict=True):
            if not ok:
                await self.guard.stop(
                    op="publish", target=bus, hops=event.hopcount or 0, payload=event.to_dict(), origin=origin
                )
        kept = [body for body, ok in zip(bodies, allowed, strict=True) if ok]
        routing = None
        if self.router is not None and kept:
            routing = self.router(bus, kept, [event for event, ok in zip(events, allowed, strict=True) if ok])
        if routing is None:
            records = await self.store.log.append_many(bus_stream(bus), kept)
        else:
            route, routed = routing
            records, done = await self.store.atomic([Append(bus_stream(bus), kept), route])
            if done:
                routed()
        offsets = iter([record.offset for record in records])
        return [Published(event.id, next(offsets) if ok else None) for event, ok in zip(events, allowed, strict=True)]

    async def publish_message(self, topic: str, message: TopicMessage, *, origin: Origin | None = None) -> Published:
        """Append a topic message (built by `new_message`, which checks it); returns when it is durable.

        A message past the loop guard's hop limit is kept in `platform.loop-stopped` instead.
        """
        check_topic(topic)
        if not isinstance(message, TopicMessage):
            raise InvalidInputError(f"publish_message takes a TopicMessage, not {type(message).__name__}")
        if not self.guard.allows(message.hop_count):
            await self.guard.stop(
                op="topic", target=topic, hops=message.hop_count, payload=message.message, origin=origin
            )
            return Published(message.message_id, None)
        body = message.to_json()
        if len(body) > self.store.log.max_record_bytes:
            raise InvalidInputError(
                f"the topic message is {len(body)} bytes as stored, over the store's limit of"
                f" {self.store.log.max_record_bytes} bytes; publish a reference to the data instead"
            )
        record = await self.store.log.append(topic_stream(topic), body)
        return Published(message.message_id, record.offset)
