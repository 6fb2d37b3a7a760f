"""What a function's queue (`fn.<name>`) holds for each asynchronous invocation: pure encoding and decoding.

The message body is the event's JSON exactly as it was given, and the
invocation's envelope (request id, trigger, trace, hop count, when it was
queued, the attempts so far) is one message attribute. So an event read from
a bus's log travels to the worker as the bytes that were stored: the
dispatcher never decodes it and encodes it again (the worker's request frame
embeds the bytes as they are). Only a failure that needs the event as a value
(a destination record's `requestPayload`) parses it.

Messages queued by earlier versions (one JSON document holding both) are
still read.

    message = encode(Invocation.new("ship", b'{"order": 7}', trigger="event", now=time.time()))
    invocation = decode(received, queue="fn.ship")
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from triggerfish.names import FUNCTION_QUEUE_PREFIX
from triggerfish.store import Message, OutgoingMessage

#: The message attribute carrying the invocation's envelope (platform attributes start with `triggerfish.`).
ENVELOPE_ATTRIBUTE = "triggerfish.invocation"


@dataclass(slots=True)
class Invocation:
    """One asynchronous invocation as it is queued: `event` is the event's JSON text, as bytes."""

    request_id: str
    function: str
    event: bytes
    trigger: str
    enqueued_at: float
    traceparent: str | None = None
    hop_count: int = 0
    #: Each failed attempt so far: its number, start and end, and a compact error.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: What the invocation consumes, as its span's attributes (`cloudevents.event_id`, ...), when the queuer
    #: knew them (the bus, from the event it decoded to match it): the record need not parse the event for them.
    consumed: dict[str, str] | None = None

    @property
    def attempt(self) -> int:
        """The number of the attempt this message is for (1 for the first)."""
        return len(self.attempts) + 1

    def payload(self) -> Any:
        """The event as a value (parsed now: only failures and destinations need it)."""
        return orjson.loads(self.event)

    def retried(self, attempt: dict[str, Any]) -> Invocation:
        """This invocation again, after the failed `attempt`."""
        return replace(self, attempts=[*self.attempts, attempt])


@dataclass(frozen=True, slots=True)
class RawJSON:
    """An event already in its JSON form (a record read from a bus's log), queued as these bytes."""

    data: bytes


def encode_event(event: Any) -> bytes:
    """An event value as the JSON a queued invocation carries; TypeError when it is not a JSON value."""
    if isinstance(event, RawJSON):
        return event.data
    data = orjson.dumps(event)  # first: it refuses nesting too deep for the walk below
    # orjson writes a NaN or an infinity as `null`, so text without that word holds none: the walk (a Python
    # step per value, the most of an event's cost on a producer's batch) is needed only when it is there.
    if b"null" in data:
        _check_finite(event)
    return data


def encode(invocation: Invocation, *, delay: float = 0.0, dedup_id: str | None = None) -> OutgoingMessage:
    envelope = _envelope(
        invocation.trigger,
        invocation.traceparent,
        invocation.hop_count,
        invocation.enqueued_at,
        invocation.attempts,
        invocation.consumed,
    )
    envelope["request_id"], envelope["function"] = invocation.request_id, invocation.function
    attributes = {ENVELOPE_ATTRIBUTE: orjson.dumps(envelope).decode("utf-8")}
    return OutgoingMessage(invocation.event, delay=delay, dedup_id=dedup_id, attributes=attributes)


def encode_each(
    event: bytes,
    invocations: list[tuple[str, str]],
    *,
    trigger: str,
    traceparent: str | None,
    hop_count: int,
    enqueued_at: float,
    consumed: dict[str, str] | None,
) -> list[OutgoingMessage]:
    """First attempts of one event by several functions, as `encode` writes each (the same bytes): `invocations`
    are (request id, function) pairs. What they share is laid out once: an event the bus matched to four
    functions costs one envelope and four request ids, not four `Invocation`s."""
    first = FirstAttempts(trigger, traceparent, hop_count, enqueued_at, consumed)
    return [first.message(request_id, function, event) for request_id, function in invocations]


class FirstAttempts:
    """First attempts that share their trigger, trace, hop count, time queued and consumed attributes, each
    encoded as `encode` writes it (the same bytes) from its request id, function and event's JSON. The shared
    part of the envelope is laid out once: one event to several functions (`encode_each`), or a batch of events
    to one function (`Invoker.invoke_async_many`), without an `Invocation` per message."""

    __slots__ = ("_function", "_rest", "_tail")

    def __init__(
        self,
        trigger: str,
        traceparent: str | None,
        hop_count: int,
        enqueued_at: float,
        consumed: dict[str, str] | None = None,
    ) -> None:
        # The envelope's JSON after its request id: `,"function":"...",` and this (`{` dropped), made once per
        # function. orjson writes an object as its members in order, so the pieces joined are what `encode` writes.
        shared = _envelope(trigger, traceparent, hop_count, enqueued_at, [], consumed)
        del shared["request_id"], shared["function"]
        self._rest = orjson.dumps(shared)[1:].decode("utf-8")
        self._function: str | None = None
        self._tail = ""

    def message(self, request_id: str, function: str, event: bytes) -> OutgoingMessage:
        if function != self._function:
            self._function = function
            self._tail = f',"function":{orjson.dumps(function).decode("utf-8")},{self._rest}'
        envelope = f'{{"request_id":{orjson.dumps(request_id).decode("utf-8")}{self._tail}'
        return OutgoingMessage(event, attributes={ENVELOPE_ATTRIBUTE: envelope})


def _envelope(
    trigger: str,
    traceparent: str | None,
    hop_count: int,
    enqueued_at: float,
    attempts: list[dict[str, Any]],
    consumed: dict[str, str] | None,
) -> dict[str, Any]:
    """An envelope without its request id and function (set by the caller; the keys come first, so the JSON
    reads in one order whichever way it was made)."""
    envelope: dict[str, Any] = {
        "request_id": None,
        "function": None,
        "trigger": trigger,
        "traceparent": traceparent,
        "hop_count": hop_count,
        "enqueued_at": enqueued_at,
        "attempts": attempts,
    }
    if consumed is not None:
        envelope["consumed"] = consumed
    return envelope


def size(message: OutgoingMessage) -> int:
    """What the message weighs against the store's record limit: its body and its envelope."""
    return len(message.body) + sum(map(len, message.attributes.values()))


def decode(message: Message) -> Invocation:
    """The invocation a message carries; ValueError, KeyError or TypeError when it is not one (or not for
    the queue it came from)."""
    envelope_text = message.attributes.get(ENVELOPE_ATTRIBUTE)
    if envelope_text is None:  # queued by an earlier version: one document with the event inside
        document = orjson.loads(message.body)
        if not isinstance(document, dict):
            raise TypeError("an invocation message is a JSON object")
        if "event" not in document:
            raise KeyError("event")
        envelope, event = document, orjson.dumps(document["event"])
    else:
        envelope, event = orjson.loads(envelope_text), message.body
        if not isinstance(envelope, dict):
            raise TypeError("an invocation envelope is a JSON object")
    for name, kind in (("request_id", str), ("function", str), ("trigger", str), ("attempts", list)):
        if not isinstance(envelope[name], kind):
            raise TypeError(f"{name} must be a {kind.__name__}")
    if FUNCTION_QUEUE_PREFIX + envelope["function"] != message.queue:
        raise ValueError(f"the message names function {envelope['function']!r} but came from queue {message.queue!r}")
    enqueued_at = envelope["enqueued_at"]
    if isinstance(enqueued_at, bool) or not isinstance(enqueued_at, int | float):
        raise TypeError("enqueued_at must be a number")
    hops = envelope.get("hop_count")
    if hops is not None and (isinstance(hops, bool) or not isinstance(hops, int) or hops < 0):
        raise TypeError("hop_count must be a whole number")
    traceparent = envelope.get("traceparent")
    if traceparent is not None and not isinstance(traceparent, str):
        raise TypeError("traceparent must be a string")
    consumed = envelope.get("consumed")
    if consumed is not None and (
        not isinstance(consumed, dict) or not all(isinstance(value, str) for value in consumed.values())
    ):
        raise TypeError("consumed must be an object of strings")
    return Invocation(
        request_id=envelope["request_id"],
        function=envelope["function"],
        event=bytes(event),
        trigger=envelope["trigger"],
        enqueued_at=float(enqueued_at),
        traceparent=traceparent,
        hop_count=hops or 0,
        attempts=list(envelope["attempts"]),
        consumed=consumed,
    )


def _check_finite(value: Any) -> None:
    # orjson writes NaN and infinities as null: refuse them rather than change the event.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise TypeError(f"{item!r} has no JSON form")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
