"""The control API's recent events of a bus: `GET /buses/{bus}/events`, newest first, each with the rules that
match it now (the dashboard's Events screen; `triggerfish` has no other way to look into a bus's archive).

The bus's log is its archive (bus/archive.py): the events are read from it
as stored, so what is listed is what a replay of the same range would
deliver again. Which rules match is worked out when asked, against the
rules of now: a rule added since shows as matching an event that was
published before it existed (the replay would deliver it there too).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from triggerfish.names import bus_stream
from triggerfish.server.control_io import ApiError, json_response, listed, platform_of
from triggerfish.server.operations import Answer, Operation, inputs, path, query
from triggerfish.server.schema import Integer, Moment

#: How far back the list looks when not told: an hour.
DEFAULT_WINDOW = 3600.0
#: Log records read at most to find the newest events of the window (past that, the newest of these).
MAX_SCANNED = 20_000
_PAGE = 1000


async def recent_events(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    bus = given.path["bus"]
    buses = sorted({"default", *await platform.bus.buses()})
    if bus not in buses:
        raise ApiError(404, "BusNotFound", f"no bus named {bus!r}; the buses are: {listed(buses)}")
    limit = given.query.get("limit", 50)
    since = given.query.get("since", time.time() - DEFAULT_WINDOW)
    log = platform.store.log
    newest: list[Any] = []
    after, scanned = 0, 0
    while scanned < MAX_SCANNED:
        records = await log.read(bus_stream(bus), after=after, since=since, limit=_PAGE)
        if not records:
            break
        newest = [*newest, *records][-limit:]
        scanned += len(records)
        after = records[-1].offset
    events = []
    for record in reversed(newest):
        try:
            document = orjson.loads(record.data)
        except orjson.JSONDecodeError:
            continue  # parked by the consumer, listed at GET /parked
        matched = [rule.id for rule in platform.bus.rules.matching(bus, document)] if isinstance(document, dict) else []
        events.append({"offset": record.offset, "time": record.time, "event": document, "matched": matched})
    return json_response({"bus": bus, "events": events})


OPERATION = Operation(
    "GET",
    "/buses/{bus:path}/events",
    recent_events,
    "A bus's recent events (from its archive), newest first, each with the ids of the rules that match it now",
    {200: Answer("", {"type": "object"})},
    "read",
    params=(
        path("bus", "The bus's name (`default` always exists)"),
        query("since", "Events stored at or after (default: an hour ago)", Moment()),
        query("limit", "At most this many (default 50)", Integer(minimum=1, maximum=500)),
    ),
    errors=(404,),
)
