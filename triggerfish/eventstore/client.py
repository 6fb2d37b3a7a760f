"""`context.events`: a handler's event store, carried out by the platform through the `events` platform call.

    def withdraw(event, context):
        history = context.events.read("account-1")
        balance = sum(e.data["amount"] if e.type == "Deposited" else -e.data["amount"] for e in history)
        if balance < 30:
            return {"statusCode": 409}
        context.events.append("account-1", [{"type": "Withdrawn", "data": {"amount": 30}}],
                              expected_version=history[-1].version if history else 0)

Events read come back upcast to their newest schema (see `triggerfish.eventstore.upcasting`).
An append whose `expected_version` does not hold raises `WrongExpectedVersionError` with `.current`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from triggerfish.eventstore.records import NewEvent, RecordedEvent, WrongExpectedVersionError
from triggerfish.eventstore.snapshots import Snapshot
from triggerfish.eventstore.upcasting import upcast

PLATFORM_OP = "events"
#: Most events one platform call reads.
PAGE = 1000


class Events:
    """The app's event store as a handler sees it. Every call blocks until the platform answered."""

    def __init__(self, call_platform: Callable[[str, dict[str, Any]], Any]) -> None:
        self._call = call_platform

    def append(
        self, stream: str, events: Sequence[NewEvent | dict[str, Any]], *, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Append `events` (`{"type", "data", "metadata", "schema"}` or `NewEvent`s) to `stream`, all or none.

        `expected_version`: None (whatever it is), 0 (a new stream) or the stream's version. Returns
        `{"stream", "first_version", "version", "position"}`; raises WrongExpectedVersionError.
        Each event is also published on the app's bus as a CloudEvent, in the same commit.
        """
        documents = [_document(event) for event in events] if isinstance(events, (list, tuple)) else events
        answer = self._call(
            PLATFORM_OP,
            {"action": "append", "stream": stream, "events": documents, "expected_version": expected_version},
        )
        conflict = answer.get("conflict")
        if conflict is not None:
            raise WrongExpectedVersionError(conflict["stream"], conflict["expected"], conflict["current"])
        return dict(answer)

    def read(
        self, stream: str, *, start: int | None = None, backwards: bool = False, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The events of `stream` from version `start` (oldest first; `backwards`: from `start` down, newest first),
        at most `limit` of them (None: all, read a page of 1,000 at a time)."""
        events: list[RecordedEvent] = []
        while limit is None or len(events) < limit:
            page = PAGE if limit is None else min(PAGE, limit - len(events))
            args = {"action": "read", "stream": stream, "start": start, "backwards": backwards, "limit": page}
            found = [RecordedEvent.from_dict(upcast(d)) for d in self._call(PLATFORM_OP, args)["events"]]
            events.extend(found)
            if len(found) < page:
                break
            start = found[-1].version - 1 if backwards else found[-1].version + 1
            if start < 1:
                break
        return events

    def read_all(self, *, after: int = 0, limit: int = 100, category: str | None = None) -> list[RecordedEvent]:
        """Events of every stream (or of `category`) after global position `after`, in commit order."""
        args = {"action": "read_all", "after": after, "limit": limit, "category": category}
        return [RecordedEvent.from_dict(upcast(d)) for d in self._call(PLATFORM_OP, args)["events"]]

    def version(self, stream: str) -> int:
        """The stream's version (0: no events yet)."""
        return int(self._call(PLATFORM_OP, {"action": "version", "stream": stream})["version"])

    def save_snapshot(self, stream: str, *, version: int, state: Any, schema: str) -> bool:
        """Keep `state` as of `version` of `stream`, under `schema` (False: a newer one is kept)."""
        args = {"action": "save_snapshot", "stream": stream, "version": version, "state": state, "schema": schema}
        return bool(self._call(PLATFORM_OP, args)["saved"])

    def load_snapshot(self, stream: str, *, schema: str) -> Snapshot | None:
        """The newest snapshot of `stream` taken under `schema`; None when there is none under this schema."""
        found = self._call(PLATFORM_OP, {"action": "load_snapshot", "stream": stream, "schema": schema})["snapshot"]
        return None if found is None else Snapshot(found["stream"], found["version"], found["schema"], found["state"])


def _document(event: NewEvent | dict[str, Any]) -> Any:
    if isinstance(event, NewEvent):
        return {
            "type": event.type,
            "data": event.data,
            "metadata": dict(event.metadata),
            "schema": event.schema,
            "id": event.id,
        }
    return event
