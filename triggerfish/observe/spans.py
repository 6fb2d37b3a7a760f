"""Spans: what a trace is made of, built from invocation records and from handlers' publishes and sends (pure).

Every invocation attempt is a span: its traceparent is a child of its
caller's (`tracecontext.span_of`), so the handler's context, and every event
or message it sends, continues the trace. A handler's `context.publish` or
`context.send` is a producer span of its own (the event's or message's
traceparent names it), whose parent is the invocation's span; the function
the event or message then invokes is that producer span's child. So a chain
HTTP → publish → rule → function → send → queue → function is one trace with
every parent known.

Attributes follow OpenTelemetry's semantic conventions: FaaS (`faas.trigger`,
`faas.invocation_id`, `faas.coldstart`, `faas.name`, `faas.version`),
messaging (`messaging.system`, `messaging.operation.type`,
`messaging.destination.name`), CloudEvents (`cloudevents.event_id`,
`cloudevents.event_source`, `cloudevents.event_type`) and, for a route's
invocation, HTTP (`http.request.method`, `http.route`,
`http.response.status_code`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # the records module writes spans: imported for annotations only
    from triggerfish.runtime.records import InvocationRecord

#: The span kinds, as OpenTelemetry names them.
KINDS = ("server", "consumer", "producer", "internal")
#: `faas.trigger` by Triggerfish's trigger: what OpenTelemetry's FaaS conventions call them.
FAAS_TRIGGERS = {"http": "http", "event": "pubsub", "queue": "pubsub", "topic": "pubsub", "schedule": "timer"}
#: Triggers whose invocation consumes a message someone produced (a consumer span); HTTP is a server span.
_CONSUMED = frozenset({"event", "queue", "topic", "async", "destination", "schedule"})
_CLOUDEVENT_ATTRIBUTES = (
    ("id", "cloudevents.event_id"),
    ("source", "cloudevents.event_source"),
    ("type", "cloudevents.event_type"),
)
#: What `messaging.system` says of Triggerfish's own buses, topics and queues.
MESSAGING_SYSTEM = "triggerfish"


@dataclass(frozen=True, slots=True)
class Span:
    """One span. Times are epoch seconds; ids lowercase hex (32 for the trace, 16 for a span)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start: float
    end: float
    #: "ok" or "error".
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)
    #: The invocation a span is (or the invocation that published or sent), and its function.
    request_id: str | None = None
    function: str | None = None
    #: Spans this one is linked to, not parented by (a batch's other messages): {"trace_id", "span_id"} each.
    links: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Span:
        return cls(**document)


#: Told of each producer span once stored (OTLP export).
SpanListener = Callable[[Span], None]


def ids_of(traceparent: str) -> tuple[str, str]:
    """The trace id and span id of a (valid) traceparent."""
    parts = traceparent.split("-")
    return parts[1], parts[2]


def invocation_span(record: InvocationRecord) -> Span | None:
    """The span of an invocation attempt; None for a record that carries no trace (older records)."""
    fields = _invocation_span_fields(record)
    return None if fields is None else Span(**fields)


def record_pointer(value: bytes) -> tuple[str, int] | None:
    """The request id and attempt a trace index entry names, as the version between rec13 and rec14 wrote an
    attempt's entry (a JSON array pointing to the record's key-value copy); None for any other entry (a span's JSON:
    a producer's, a handler's, a step's, or an attempt's written before rec13)."""
    if value[:1] != b"[":
        return None
    found = orjson.loads(value)
    if not (isinstance(found, list) and len(found) == 2 and isinstance(found[0], str) and type(found[1]) is int):
        raise ValueError(f"a trace index entry is neither a span nor a record's pointer: {value[:80]!r}")
    return found[0], found[1]


def _invocation_span_fields(record: InvocationRecord) -> dict[str, Any] | None:
    """The fields of an attempt's Span, in the order Span declares them (orjson writes a dataclass so)."""
    if record.trace_id is None or record.span_id is None:
        return None
    attributes: dict[str, Any] = {
        "faas.trigger": FAAS_TRIGGERS.get(record.trigger, "other"),
        "faas.invocation_id": record.request_id,
        "faas.coldstart": record.cold_start,
        "faas.name": record.function,
        "triggerfish.trigger": record.trigger,
        "triggerfish.attempt": record.attempt,
        "triggerfish.status": record.status,
        "triggerfish.billed_duration_ms": record.billed_duration_ms,
    }
    if record.version is not None:
        attributes["faas.version"] = record.version
    if record.error is not None:
        attributes["error.type"] = str(record.error.get("errorType", "Error"))
    if record.http_route is not None:
        method, _, route = record.http_route.partition(" ")
        attributes["http.request.method"] = method
        attributes["http.route"] = route
    if record.http_status is not None:
        attributes["http.response.status_code"] = record.http_status
    if record.consumed:
        attributes.update(record.consumed)
    trigger = record.trigger
    kind = "server" if trigger == "http" else "consumer" if trigger in _CONSUMED else "internal"
    return {
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "parent_span_id": record.parent_span_id,
        "name": record.function,
        "kind": kind,
        "start": record.started_at,
        "end": record.ended_at,
        "status": "ok" if record.status == "succeeded" else "error",
        "attributes": attributes,
        "request_id": record.request_id,
        "function": record.function,
        "links": [{"trace_id": trace, "span_id": span} for trace, span in map(ids_of, record.links)],
    }


def producer_span(
    traceparent: str,
    parent: str | None,
    *,
    operation: str,
    destination: str,
    start: float,
    end: float,
    ok: bool,
    function: str,
    request_id: str,
    event: dict[str, Any] | None = None,
) -> Span:
    """The span of a handler's publish (`operation` "publish", to a bus) or send ("send", to a queue): `traceparent`
    is what the event or message carries, `parent` the publishing invocation's traceparent."""
    trace, span = ids_of(traceparent)
    attributes: dict[str, Any] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": destination,
    }
    if event is not None:
        for name, key in _CLOUDEVENT_ATTRIBUTES:
            if isinstance(event.get(name), str):
                attributes[key] = event[name]
    return Span(
        trace_id=trace,
        span_id=span,
        parent_span_id=None if parent is None else ids_of(parent)[1],
        name=f"{operation} {destination}",
        kind="producer",
        start=start,
        end=end,
        status="ok" if ok else "error",
        attributes=attributes,
        request_id=request_id,
        function=function,
    )


#: Spans one handler invocation may hand over at most (observe/handler_spans.py sends no more).
MAX_HANDLER_SPANS = 512
_HEX16 = re.compile(r"[0-9a-f]{16}")
_KIND_NAMES = frozenset(KINDS)


def handler_span(document: Any, trace_id: str, function: str, request_id: str) -> Span:
    """A span a handler started with the OpenTelemetry API, checked: it must be in the invocation's trace
    (`trace_id`), with well-formed ids, times and a name; attributes are kept as given (scalars and lists).
    Raises InvalidInputError naming what is wrong."""
    from triggerfish.errors import InvalidInputError

    if not isinstance(document, dict):
        raise InvalidInputError(f"spans: each span is an object, not {type(document).__name__}")
    if document.get("trace_id") != trace_id:
        raise InvalidInputError(f"spans: a span of trace {document.get('trace_id')!r} is not in this invocation's")
    span_id, parent = document.get("span_id"), document.get("parent_span_id")
    if not isinstance(span_id, str) or not _HEX16.fullmatch(span_id):
        raise InvalidInputError(f"spans: span_id must be 16 lowercase hex digits, not {span_id!r}")
    if parent is not None and (not isinstance(parent, str) or not _HEX16.fullmatch(parent)):
        raise InvalidInputError(f"spans: parent_span_id must be 16 lowercase hex digits, not {parent!r}")
    start, end = _seconds(document.get("start")), _seconds(document.get("end"))
    if start is None or end is None or end < start:
        given = f"{document.get('start')!r}..{document.get('end')!r}"
        raise InvalidInputError(f"spans: start and end are epoch seconds, end not before start, not {given}")
    name, kind, attributes = document.get("name"), document.get("kind"), document.get("attributes") or {}
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"spans: name must be non-empty text, not {name!r}")
    if not isinstance(attributes, dict):
        raise InvalidInputError("spans: attributes must be an object")
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name[:256],
        kind=kind if kind in _KIND_NAMES else "internal",
        start=start,
        end=end,
        status="error" if document.get("status") == "error" else "ok",
        attributes={str(k): v for k, v in list(attributes.items())[:64]},
        request_id=request_id,
        function=function,
    )


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def span_key(span: Span) -> str:
    """A span's key in the trace index: every span of a trace under one prefix, `t/<trace id>/`."""
    return trace_key(span.trace_id, span.span_id)


def trace_key(trace_id: str, span_id: str) -> str:
    """The key a span is found by in its trace: its entry's in the trace index, and an attempt's record's second
    key (triggerfish.runtime.records.record_keys)."""
    return f"t/{trace_id}/{span_id}"
