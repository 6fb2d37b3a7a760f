"""`POST /-/events`: publishing events over HTTP, in every form the platform reads.

- CloudEvents HTTP binding: binary mode (`ce-` headers), structured mode
  (`application/cloudevents+json`) and batches (`application/cloudevents-batch+json`),
  to the bus named by the `bus` query parameter (default `default`);
- EventBridge PutEvents: `application/json` (or `application/x-amz-json-1.1`)
  with `{"Entries": [...]}` and no `ce-` headers, each entry naming its bus in
  `EventBusName`.

A request is all or nothing: every event is checked first, and the answer,
202 with the event ids, comes only after all of them are durably stored. A
malformed event is 400 naming the attribute (`ce-id`, `Entries[2].Detail`),
an oversize one 413, an unknown bus name 400.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from triggerfish._json import loads
from triggerfish.errors import (
    EventTooLargeError,
    InvalidEventError,
    InvalidInputError,
    InvalidJSONError,
    InvalidNameError,
)
from triggerfish.events.cloudevent import MAX_EVENT_BYTES, Event
from triggerfish.events.eventbridge import from_put_events_entry
from triggerfish.events.http_binding import BATCH_CONTENT_TYPE, MAX_BATCH_BYTES, STRUCTURED_CONTENT_TYPE, from_http
from triggerfish.server.control_io import ApiError, platform_of
from triggerfish.server.errors import error_response
from triggerfish.server.operations import Answer, Body, Operation, query
from triggerfish.server.schema import Text
from triggerfish.store.base import check_name

#: PutEvents takes at most this many entries per call, as EventBridge does.
MAX_PUT_ENTRIES = 10
_PUT_EVENTS_TYPES = ("application/json", "application/x-amz-json-1.1")


class _TooLarge(Exception):
    pass


async def publish_events(request: Request) -> Response:
    """The `/-/events` endpoint (Starlette)."""
    try:
        platform = platform_of(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.details)
    limit = MAX_BATCH_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return too_large(int(declared), limit)
    try:
        async with asyncio.timeout(platform.body_timeout):
            body = await _read_body(request, limit)
    except _TooLarge:
        return too_large(None, limit)
    except TimeoutError:
        message = f"the request body did not arrive within {platform.body_timeout:g} s"
        return error_response(408, "RequestTimeout", message, headers={"connection": "close"})
    except ClientDisconnect:
        return Response(status_code=400)
    content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    # A JSON body with ce- headers is a binary-mode CloudEvent whose data is JSON, not PutEvents.
    put_events = content_type in _PUT_EVENTS_TYPES and not any(name.startswith("ce-") for name in request.headers)
    try:
        if put_events:
            batches = _put_events(body)
        else:
            bus = request.query_params.get("bus", "default")
            check_name("bus", bus)
            batches = {bus: from_http(request.headers.items(), body, max_bytes=MAX_EVENT_BYTES)}
    except (InvalidInputError, InvalidNameError) as exc:
        return refusal(exc)
    ids: list[str] = []
    for bus, events in batches.items():
        ids += await platform.publish(bus, events)
    return JSONResponse(accepted(ids, put_events=put_events), status_code=202)


def refusal(exc: InvalidInputError | InvalidNameError) -> Response:
    """The answer to events that cannot be read: 413 for one over the size limit, else 400 naming what is wrong.

    InvalidJSONError carries no line and column here: a batch's body and its events are read by the codecs.
    """
    if isinstance(exc, EventTooLargeError):
        return error_response(413, "EventTooLarge", str(exc), attribute=exc.attribute)
    if isinstance(exc, InvalidEventError):
        return error_response(400, "InvalidEvent", str(exc), attribute=exc.attribute)
    if isinstance(exc, InvalidJSONError):
        return error_response(400, "InvalidJSON", str(exc))
    return error_response(400, "InvalidInput", str(exc))


def accepted(ids: list[str], *, put_events: bool = False) -> dict[str, Any]:
    """The 202 answer's document: the events' ids (and PutEvents' entries, for a PutEvents request)."""
    document: dict[str, Any] = {"ids": ids}
    if put_events:
        document.update(FailedEntryCount=0, Entries=[{"EventId": event_id} for event_id in ids])
    return document


def _put_events(body: bytes) -> dict[str, list[Event]]:
    document = loads(body, where="body")
    if not isinstance(document, dict) or "Entries" not in document:
        raise InvalidEventError(
            "Entries",
            'an application/json body is read as EventBridge PutEvents: {"Entries": [{"Source": ...,'
            ' "DetailType": ..., "Detail": "{...}"}]}; send CloudEvents as application/cloudevents+json',
        )
    entries = document["Entries"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_PUT_ENTRIES:
        raise InvalidEventError("Entries", f"must be a list of 1 to {MAX_PUT_ENTRIES} entries")
    batches: dict[str, list[Event]] = {}
    for index, entry in enumerate(entries):
        bus, event = from_put_events_entry(entry, index=index)
        try:
            check_name("bus", bus)
        except InvalidNameError as exc:
            raise InvalidEventError(f"Entries[{index}].EventBusName", str(exc)) from None
        batches.setdefault(bus, []).append(event)
    return batches


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def too_large(size: int | None, limit: int) -> Response:
    shown = f"{size} bytes" if size is not None else "larger than that"
    return error_response(
        413, "RequestTooLarge", f"the request body is {shown}; /-/events takes at most {limit} bytes per request"
    )


_ENTRY = {
    "type": "object",
    "required": ["Source", "DetailType", "Detail"],
    "properties": {
        "Source": {"type": "string", "minLength": 1},
        "DetailType": {"type": "string", "minLength": 1},
        "Detail": {"type": "string", "minLength": 1, "description": "The event's data: a JSON object, as text"},
        "EventBusName": {"type": "string", "minLength": 1, "description": "The bus (default `default`)"},
        "Time": {"type": ["string", "number"], "description": "RFC 3339, or epoch seconds"},
        "Resources": {"type": "array", "items": {"type": "string"}},
        "TraceHeader": {"type": "string", "description": "A W3C traceparent or an AWS X-Ray header"},
    },
    "additionalProperties": False,
}
_PUT_EVENTS = {
    "type": "object",
    "required": ["Entries"],
    "description": "EventBridge PutEvents; each entry names its bus in EventBusName",
    "properties": {"Entries": {"type": "array", "minItems": 1, "maxItems": MAX_PUT_ENTRIES, "items": _ENTRY}},
}
_CLOUDEVENT = {
    "type": "object",
    "required": ["specversion", "id", "source", "type"],
    "description": "One CloudEvent, structured mode",
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "type": {"type": "string", "minLength": 1},
    },
}

#: Where `triggerfish dev` takes events.
PATH = "/-/events"

#: `POST /-/events` in the table of operations (`triggerfish serve` has it per app, at `/-/apps/{app}/events`).
OPERATION = Operation(
    "POST",
    PATH,
    publish_events,
    "Publish events to the app's buses, all or nothing: CloudEvents (binary, structured, batch), PutEvents",
    {202: Answer("Every event is durably stored", "PublishedEvents")},
    "publish",
    params=(query("bus", "CloudEvents: the bus (default `default`)", Text(min_length=1)),),
    # Read and checked by the CloudEvents and PutEvents codecs, which name the attribute at fault.
    body=Body(
        media_types=(*_PUT_EVENTS_TYPES, STRUCTURED_CONTENT_TYPE, BATCH_CONTENT_TYPE, "*/*"),
        limit=MAX_BATCH_BYTES,
        raw=True,
        documented={
            "application/json": _PUT_EVENTS,
            "application/x-amz-json-1.1": _PUT_EVENTS,
            STRUCTURED_CONTENT_TYPE: _CLOUDEVENT,
            BATCH_CONTENT_TYPE: {"type": "array", "minItems": 1, "items": _CLOUDEVENT},
            "*/*": {
                "description": "Binary mode: the attributes in ce- headers (ce-specversion, ce-id, ...),"
                " the body its data"
            },
        },
        description="Any other content type is a binary-mode CloudEvent, and must carry its ce- headers",
    ),
    errors=(400, 413),
)

__all__: Sequence[str] = ["MAX_PUT_ENTRIES", "OPERATION", "accepted", "publish_events", "refusal", "too_large"]
