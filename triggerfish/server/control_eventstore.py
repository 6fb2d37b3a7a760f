"""The control API's event store endpoints: streams, events, appends, projections and their rebuilds.

    GET  /eventstore/streams?category=&limit=                 streams and their versions; the newest position
    GET  /eventstore/streams/{stream}?start=&backwards=&limit= a stream's events
    POST /eventstore/streams/{stream}                         {"events", "expected_version"} -> 201; 409 on conflict
    GET  /eventstore/events?after=&category=&limit=           every stream's events in global order
    GET  /eventstore/projections                              each projection's position, lag, node, error
    POST /eventstore/projections/{name}/rebuild               start it again from position 0 -> 202

Reading is the `read` action; appending and rebuilding are `invoke` (what a
key that may run the app's functions may do, since a handler could do as much).
Events come back as stored, not upcast: upcasters are the app's code and run
in its workers.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.errors import InvalidInputError
from triggerfish.eventstore.records import MAX_APPEND_EVENTS, WrongExpectedVersionError
from triggerfish.eventstore.store import MAX_READ
from triggerfish.server.control_io import ApiError, json_response, listed, platform_of
from triggerfish.server.operations import Answer, Body, Operation, inputs, path, query
from triggerfish.server.schema import AnyValue, Array, Boolean, Integer, Named, Nullable, Object, Text


async def list_streams(request: Request) -> Response:
    params = inputs(request).query
    service = platform_of(request).eventstore
    found = await service.events.streams(category=params.get("category"), limit=params.get("limit", 1000))
    streams = [{"stream": stream, "version": version} for stream, version in found]
    return json_response({"streams": streams, "position": await service.events.position()})


async def read_stream(request: Request) -> Response:
    given = inputs(request)
    events = await platform_of(request).eventstore.events.read_stream(
        given.path["stream"],
        start=given.query.get("start"),
        backwards=given.query.get("backwards", False),
        limit=given.query.get("limit", 100),
    )
    return json_response({"events": [e.to_dict() for e in events]})


async def append(request: Request) -> Response:
    given = inputs(request)
    try:
        result = await platform_of(request).eventstore.append(
            given.path["stream"], given.body["events"], expected_version=given.body.get("expected_version")
        )
    except WrongExpectedVersionError as exc:
        raise ApiError(409, "WrongExpectedVersion", str(exc), current_version=exc.current) from None
    return json_response(result.to_dict(), 201)


async def read_all(request: Request) -> Response:
    params = inputs(request).query
    events = await platform_of(request).eventstore.events.read_all(
        after=params.get("after", 0), limit=params.get("limit", 100), category=params.get("category")
    )
    return json_response({"events": [e.to_dict() for e in events]})


async def projections(request: Request) -> Response:
    return json_response({"projections": await platform_of(request).projections.status()})


async def rebuild(request: Request) -> Response:
    name = inputs(request).path["name"]
    platform = platform_of(request)
    try:
        await platform.projections.rebuild(name)
    except InvalidInputError:
        known = listed(platform.projections.projections)
        raise ApiError(404, "ProjectionNotFound", f"no projection named {name!r}; the app's are: {known}") from None
    return json_response({"projection": name, "position": 0, "rebuilding": True}, 202)


_STREAM = path("stream", "The stream's name, e.g. account-42 (its category is the part before the first '-')")
_NAME = path("name", "The projection (a function declared with @app.projection)")
_EVENT = Named(
    "NewEvent",
    Object(
        {
            "type": Text("The event's type, e.g. Deposited", min_length=1, max_length=200),
            "data": AnyValue("The event's data: any JSON value"),
            "metadata": Object({}, "Anything about the event that is not its data", additional=AnyValue()),
            "schema": Integer("The schema version of its data (default 1)", minimum=1),
            "id": Text("The event's id (default: a new UUID)", min_length=1, max_length=200),
        },
        required=("type",),
    ),
)
APPEND_INPUT = Named(
    "EventAppend",
    Object(
        {
            "events": Array(_EVENT, "The events, appended all or none", min_items=1, max_items=MAX_APPEND_EVENTS),
            "expected_version": Nullable(
                Integer("null: any; 0: the stream must be new; n: the stream's last version must be n", minimum=0)
            ),
        },
        required=("events",),
    ),
)
_EVENTS: dict[str, Any] = {"type": "object", "properties": {"events": {"type": "array", "items": {"type": "object"}}}}
_LIMIT = query("limit", "At most this many (default 100)", Integer(minimum=1, maximum=MAX_READ))

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/eventstore/streams",
        list_streams,
        "The event store's streams and their versions, and the newest global position",
        {200: Answer("", {"type": "object"})},
        "read",
        params=(
            query("category", "Only this category's streams", Text(min_length=1, max_length=200)),
            query("limit", "At most this many (default 1000)", Integer(minimum=1, maximum=1000)),
        ),
    ),
    Operation(
        "GET",
        "/eventstore/streams/{stream}",
        read_stream,
        "A stream's events, from a version forwards or backwards",
        {200: Answer("", _EVENTS)},
        "read",
        params=(
            _STREAM,
            query("start", "The first version to read (backwards: the newest)", Integer(minimum=0)),
            query("backwards", "Newest first", Boolean()),
            _LIMIT,
        ),
    ),
    Operation(
        "POST",
        "/eventstore/streams/{stream}",
        append,
        "Append events to a stream at an expected version (and publish them on the app's bus)",
        {201: Answer("Appended", {"type": "object"})},
        "invoke",
        params=(_STREAM,),
        body=Body(APPEND_INPUT),
        errors=(409,),
    ),
    Operation(
        "GET",
        "/eventstore/events",
        read_all,
        "Every stream's events in global (commit) order, after a position",
        {200: Answer("", _EVENTS)},
        "read",
        params=(
            query("after", "Events after this global position (default 0)", Integer(minimum=0)),
            query("category", "Only this category's events", Text(min_length=1, max_length=200)),
            _LIMIT,
        ),
    ),
    Operation(
        "GET",
        "/eventstore/projections",
        projections,
        "Each projection: its category, position, lag behind the newest event, the node running it, its error",
        {200: Answer("", {"type": "object"})},
        "read",
    ),
    Operation(
        "POST",
        "/eventstore/projections/{name}/rebuild",
        rebuild,
        "Start a projection again from position 0 (its records are deleted first)",
        {202: Answer("Rebuilding", {"type": "object"})},
        "invoke",
        params=(_NAME,),
        errors=(404,),
    ),
)
