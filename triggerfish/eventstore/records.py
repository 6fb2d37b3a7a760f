"""Events as the event store keeps them, and the rules for streams and categories (pure: no I/O).

A stream holds one aggregate's events (`account-42`); its category is the name
before the first `-` (`account`), as Message DB and EventStoreDB name them. Each
event in a stream has a version (1, 2, 3, ... with no gaps), and each event in the
store a global position: the order of commits across every stream, again with no
gaps. An event carries its own schema version (`schema`), which upcasters raise
when it is read (see `triggerfish.eventstore.upcasting`).

    >>> category_of("account-42"), category_of("ledger")
    ('account', 'ledger')
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError, TriggerfishError
from triggerfish.store.base import check_name

#: `expected_version` meaning "the stream must not exist yet".
NO_STREAM = 0
#: Most events one append takes.
MAX_APPEND_EVENTS = 1000


class WrongExpectedVersionError(TriggerfishError):
    """An append's expected version did not hold: another writer got there first. Nothing was written.

    `current` is the stream's version now: read the stream again from there, decide again, and retry.
    """

    def __init__(self, stream: str, expected: int, current: int) -> None:
        super().__init__(
            f"stream {stream!r} is at version {current}, not the expected {expected}; nothing was appended:"
            " read the stream again, decide again and append with expected_version={current}"
        )
        self.stream = stream
        self.expected = expected
        self.current = current


def category_of(stream: str) -> str:
    """The category a stream belongs to: its name up to the first `-` (the whole name when it has none)."""
    return stream.split("-", 1)[0]


def check_stream(stream: str) -> str:
    """A stream name as the store's names go (letters, digits, `. _ : / @ -`, at most 200 characters)."""
    check_name("event stream", stream)
    if len(stream) > 200:
        raise InvalidInputError(f"event stream name {stream[:40]!r}... is {len(stream)} characters; use at most 200")
    return stream


def check_expected(expected_version: object) -> int | None:
    if expected_version is None:
        return None
    if isinstance(expected_version, bool) or not isinstance(expected_version, int) or expected_version < 0:
        raise InvalidInputError(
            f"expected_version must be None (any), 0 (no stream yet) or the stream's version, not {expected_version!r}"
        )
    return expected_version


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its type, its data (any JSON value), metadata, and the schema version of its data."""

    type: str
    data: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    schema: int = 1
    id: str = ""

    @classmethod
    def parse(cls, value: object, where: str) -> NewEvent:
        """A `NewEvent` from itself or from a JSON object `{"type", "data", "metadata", "schema", "id"}`."""
        if isinstance(value, NewEvent):
            document: Mapping[str, Any] = {
                "type": value.type,
                "data": value.data,
                "metadata": value.metadata,
                "schema": value.schema,
                "id": value.id,
            }
        elif isinstance(value, Mapping):
            document = value
            unknown = set(document) - {"type", "data", "metadata", "schema", "id"}
            if unknown:
                raise InvalidInputError(
                    f"{where}: unknown field(s) {sorted(unknown)}; use type, data, metadata, schema, id"
                )
        else:
            raise InvalidInputError(f"{where} must be an object with a 'type', not {type(value).__name__}")
        kind = document.get("type")
        if not isinstance(kind, str) or not kind or len(kind) > 200:
            raise InvalidInputError(f"{where}.type must be a non-empty string of at most 200 characters, not {kind!r}")
        metadata = document.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise InvalidInputError(f"{where}.metadata must be an object, not {type(metadata).__name__}")
        schema = document.get("schema", 1)
        if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
            raise InvalidInputError(f"{where}.schema must be a whole number from 1, not {schema!r}")
        event_id = document.get("id") or ""
        if not isinstance(event_id, str) or len(event_id) > 200:
            raise InvalidInputError(f"{where}.id must be a string of at most 200 characters, not {event_id!r}")
        return cls(kind, document.get("data"), dict(metadata), schema, event_id)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: where it is (stream, version; position in the global order, when read from it)."""

    stream: str
    version: int
    type: str
    data: Any
    metadata: dict[str, Any]
    schema: int
    id: str
    time: str
    #: Its place in the global order (None when read from its stream, which does not record it).
    position: int | None = None

    @property
    def category(self) -> str:
        return category_of(self.stream)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document handlers, projections and the control API see."""
        document = {
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "data": self.data,
            "metadata": self.metadata,
            "schema": self.schema,
            "id": self.id,
            "time": self.time,
        }
        if self.position is not None:
            document["position"] = self.position
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> RecordedEvent:
        position = document.get("position")
        return cls(
            stream=str(document["stream"]),
            version=int(document["version"]),
            type=str(document["type"]),
            data=document.get("data"),
            metadata=dict(document.get("metadata") or {}),
            schema=int(document.get("schema", 1)),
            id=str(document.get("id", "")),
            time=str(document.get("time", "")),
            position=None if position is None else int(position),
        )


def record(stream: str, version: int, event: NewEvent, at: float) -> RecordedEvent:
    """The stored form of `event` as version `version` of `stream`, appended at `at` (epoch seconds)."""
    when = datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="microseconds")
    return RecordedEvent(
        stream=stream,
        version=version,
        type=event.type,
        data=event.data,
        metadata=dict(event.metadata),
        schema=event.schema,
        id=event.id or str(uuid.uuid4()),
        time=when.replace("+00:00", "Z"),
    )


def encode(event: RecordedEvent) -> bytes:
    """The log record of an event (without its position: the log's offset is the position)."""
    try:
        return orjson.dumps(event.to_dict())
    except TypeError as exc:
        raise InvalidInputError(f"event {event.type!r} of {event.stream!r}: its data is not JSON: {exc}") from None


def decode(body: bytes, position: int | None = None) -> RecordedEvent:
    """An event from its log record; `position` is the global log's offset when read from there."""
    document = orjson.loads(body)
    document["position"] = position
    return RecordedEvent.from_dict(document)


def parse_events(events: object) -> list[NewEvent]:
    """A list of `NewEvent`s from what a caller gave (NewEvents or JSON objects), each checked."""
    if isinstance(events, (str, bytes, Mapping, NewEvent)) or not isinstance(events, Sequence):
        raise InvalidInputError("append takes a list of events, e.g. [{'type': 'Deposited', 'data': {...}}]")
    if not events:
        raise InvalidInputError("append takes at least one event")
    if len(events) > MAX_APPEND_EVENTS:
        raise InvalidInputError(f"append takes at most {MAX_APPEND_EVENTS} events at once, not {len(events)}")
    return [NewEvent.parse(event, f"events[{index}]") for index, event in enumerate(events)]
