"""The control API's traces: `GET /traces` (recent traces, from the invocation records) and `GET /traces/{trace_id}`
(every span still kept: invocation attempts, and handlers' publishes and sends), for the app of the request."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.observe.traces import check_trace_id, summaries, trace_spans
from triggerfish.server.control_io import ApiError, json_response, platform_of
from triggerfish.server.operations import Answer, Operation, inputs, path, query
from triggerfish.server.schema import Integer, Moment, Text

#: How far back `GET /traces` looks when not told: an hour.
DEFAULT_WINDOW = 3600.0
TRACE_ID = Text("32 lowercase hex digits", pattern="[0-9a-f]{32}", hint="a trace id: 32 lowercase hex digits")


async def list_traces(request: Request) -> Response:
    platform = platform_of(request)
    params = inputs(request).query
    until = params.get("until")
    since = params.get("since", (until or time.time()) - DEFAULT_WINDOW)
    records = await platform.current.invoker.records.query(since=since, until=until, limit=2**62)
    found = summaries(records)[: params.get("limit", 50)]
    return json_response({"traces": [summary.to_dict() for summary in found]})


async def get_trace(request: Request) -> Response:
    platform = platform_of(request)
    trace_id = check_trace_id(inputs(request).path["trace_id"])
    await platform.current.invoker.records.settled()  # the sync path's records (and spans) are written just after
    spans = await trace_spans(platform.store, trace_id)
    if not spans:
        days = platform.current.invoker.records.retention / 86400
        raise ApiError(404, "TraceNotFound", f"no span of trace {trace_id} is kept (spans are kept {days:g} days)")
    return json_response({"trace_id": trace_id, "spans": [span.to_dict() for span in spans]})


OPERATIONS = (
    Operation(
        "GET",
        "/traces",
        list_traces,
        "Recent traces, newest first: where each started, how long it ran, its invocations and errors",
        {200: Answer("", "TraceList")},
        "read",
        params=(
            query("since", "Traces with an invocation started at or after (default: an hour ago)", Moment()),
            query("until", "... and before", Moment()),
            query("limit", "At most this many (default 50)", Integer(minimum=1, maximum=1000)),
        ),
    ),
    Operation(
        "GET",
        "/traces/{trace_id}",
        get_trace,
        "Every span of a trace still kept, parents before children: invocation attempts, publishes, sends",
        {200: Answer("", "Trace")},
        "read",
        params=(path("trace_id", "The trace id", TRACE_ID),),
        errors=(404,),
    ),
)
