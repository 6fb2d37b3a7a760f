"""The platform's side of the event store: appends that also publish, and handlers' `events` calls.

Every appended event is also a CloudEvent on the app's bus (`type` the event's
type, `source` `/<app>/eventstore/<category>`, `subject` the stream, `data` the
event's data, extensions `streamversion` and `eventschema`), written to the bus's
log in the append's own transaction: the bus's log is the outbox, so a rule sees
every committed event (after a crash too) and never one whose append failed.
The loop guard counts like any publish: past its hop limit the events are still
appended (they are facts) but not published, and `platform.loop-stopped` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from triggerfish.bus.publisher import Publisher
from triggerfish.errors import InvalidInputError
from triggerfish.events.cloudevent import Event
from triggerfish.eventstore.records import NewEvent, RecordedEvent, WrongExpectedVersionError
from triggerfish.eventstore.snapshots import Snapshots
from triggerfish.eventstore.store import AppendResult, EventStore
from triggerfish.loop_guard import Origin
from triggerfish.runtime.types import PlatformCall
from triggerfish.store import Store
from triggerfish.store.atomic import Op

#: The platform call `context.events` goes through.
PLATFORM_OP = "events"
#: The bus appended events are published on unless the platform is told otherwise.
DEFAULT_BUS = "default"


def cloud_event(app: str, event: RecordedEvent, *, hopcount: int, traceparent: str | None) -> Event:
    """The CloudEvent the bus carries for a recorded event."""
    extensions: dict[str, Any] = {"streamversion": event.version, "eventschema": event.schema, "hopcount": hopcount}
    if traceparent is not None:
        extensions["traceparent"] = traceparent
    return Event.create(
        event.type,
        f"/{app}/eventstore/{event.category}",
        event.data,
        id=event.id,
        time=event.time,
        subject=event.stream,
        datacontenttype="application/json",
        **extensions,
    )


class EventStoreService:
    """Appends (with their bus copies) and reads for handlers, the control API and projections."""

    def __init__(self, store: Store, publisher: Publisher, *, app: str, bus: str = DEFAULT_BUS) -> None:
        self.store = store
        self.events = EventStore(store)
        self.snapshots = Snapshots(store)
        self.publisher = publisher
        self.app = app
        self.bus = bus

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent | dict[str, Any]],
        *,
        expected_version: int | None = None,
        hopcount: int = 1,
        traceparent: str | None = None,
        origin: Origin | None = None,
    ) -> AppendResult:
        """Append and publish in one transaction (EventStore.append's arguments and errors)."""
        allowed = self.publisher.guard.allows(hopcount)

        def on_bus(recorded: list[RecordedEvent]) -> Sequence[Op]:
            if not allowed:
                return []
            cloud = [cloud_event(self.app, e, hopcount=hopcount, traceparent=traceparent) for e in recorded]
            return [self.publisher.append_op(self.bus, cloud)]

        result = await self.events.append(stream, events, expected_version=expected_version, also=on_bus)
        if not allowed:
            await self.publisher.guard.stop(
                op="publish", target=self.bus, hops=hopcount, payload={"stream": stream}, origin=origin
            )
        return result

    async def call(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        """Answer a handler's `events` platform call (from `context.events`)."""
        action = args.get("action")
        if action == "append":
            try:
                result = await self.append(
                    _stream(args),
                    args.get("events"),  # type: ignore[arg-type]  # checked by parse_events
                    expected_version=args.get("expected_version"),
                    hopcount=call.hop_count + 1,
                    traceparent=call.traceparent,
                    origin=Origin(call.function, call.request_id),
                )
            except WrongExpectedVersionError as exc:
                # An answer, not an error: the handler's client raises it again with the current version.
                return {"conflict": {"stream": exc.stream, "expected": exc.expected, "current": exc.current}}
            return result.to_dict()
        if action == "read":
            events = await self.events.read_stream(
                _stream(args),
                start=args.get("start"),
                backwards=args.get("backwards") is True,
                limit=args.get("limit", 100),
            )
            return {"events": [e.to_dict() for e in events]}
        if action == "read_all":
            events = await self.events.read_all(
                after=args.get("after", 0), limit=args.get("limit", 100), category=args.get("category")
            )
            return {"events": [e.to_dict() for e in events]}
        if action == "version":
            return {"version": await self.events.version(_stream(args))}
        if action == "save_snapshot":
            saved = await self.snapshots.save(
                _stream(args),
                version=args.get("version"),  # type: ignore[arg-type]  # checked by save
                state=args.get("state"),
                schema=args.get("schema"),  # type: ignore[arg-type]
            )
            return {"saved": saved}
        if action == "load_snapshot":
            snapshot = await self.snapshots.load(_stream(args), schema=args.get("schema"))  # type: ignore[arg-type]
            return {"snapshot": None if snapshot is None else snapshot.to_dict()}
        raise InvalidInputError(
            f"events: unknown action {action!r}; use append, read, read_all, version, save_snapshot, load_snapshot"
        )


def _stream(args: dict[str, Any]) -> str:
    stream = args.get("stream")
    if not isinstance(stream, str):
        raise InvalidInputError(f"events: 'stream' must be a stream name such as 'account-42', not {stream!r}")
    return stream
