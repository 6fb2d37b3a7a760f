"""The control API's recent events of a bus: `GET /buses/{bus}/events`, newest first, each with the rules that
match it now, and those that nearly do (the dashboard's Events screen).

A rule nearly matches an event when every top-level field of its pattern
but one matches (`near: [{"rule", "field"}]`): the usual reason an event
"went nowhere" is one field off (a `type` misspelt, a `source` without its
prefix), and this names it. Patterns with a top-level `$or` are not judged.

The bus's log is its archive (bus/archive.py): the events are read from it
as stored, so what is listed is what a replay of the same range would
deliver again. Which rules match is worked out when asked, against the
rules of now: a rule added since shows as matching an event that was
published before it existed (the replay would deliver it there too).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from triggerfish.events.patterns import Pattern, compile_pattern
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
    compiled: dict[str, Pattern] = {}
    for record in reversed(newest):
        try:
            document = orjson.loads(record.data)
        except orjson.JSONDecodeError:
            continue  # parked by the consumer, listed at GET /parked
        if not isinstance(document, dict):
            continue
        matched = [rule.id for rule in platform.bus.rules.matching(bus, document)]
        near = [
            {"rule": rule.id, "field": field}
            for rule in platform.bus.rules.all(bus)
            if rule.id not in matched and (field := near_miss(rule.pattern, document, compiled)) is not None
        ]
        events.append(
            {"offset": record.offset, "time": record.time, "event": document, "matched": matched, "near": near}
        )
    return json_response({"bus": bus, "events": events})


def near_miss(pattern: Mapping[str, Any], event: Mapping[str, Any], compiled: dict[str, Pattern]) -> str | None:
    """The one top-level field of `pattern` that `event` fails, when it matches all the others (and the pattern
    has two or more); else None. `compiled` caches the one-field patterns (pure apart from that cache)."""
    if len(pattern) < 2 or "$or" in pattern:
        return None
    failed = None
    for field, value in pattern.items():
        key = orjson.dumps({field: value}, option=orjson.OPT_SORT_KEYS).decode()
        single = compiled.get(key)
        if single is None:
            single = compiled[key] = compile_pattern({field: value})
        if not single.matches(event):
            if failed is not None:
                return None
            failed = field
    return failed


OPERATION = Operation(
    "GET",
    "/buses/{bus:path}/events",
    recent_events,
    "A bus's recent events (from its archive), newest first, with the rules that match each now and those that"
    " miss it by one field",
    {200: Answer("", {"type": "object"})},
    "read",
    params=(
        path("bus", "The bus's name (`default` always exists)"),
        query("since", "Events stored at or after (default: an hour ago)", Moment()),
        query("limit", "At most this many (default 50)", Integer(minimum=1, maximum=500)),
    ),
    errors=(404,),
)
