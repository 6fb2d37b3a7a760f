"""Queueing many asynchronous invocations in one request: `POST /functions/{name}/invoke-batch`.

Lambda's Invoke takes one event per request; a producer with many (a web
application's burst of jobs, an importer) pays a request and a durable commit
for each. This takes up to MAX_BATCH events, checks them all, queues one
invocation per event in one write (`Invoker.invoke_async_many`) and answers
202 with their request ids in the order of the events, once every one of them
is durably queued: the batched send of SQS's SendMessageBatch, Dramatiq's
groups and Celery's groups, for Triggerfish. All or nothing: one bad event
(not JSON-encodable, too large) is a 400 naming its index, and nothing is
queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.runtime.invoke import MAX_BATCH
from triggerfish.server.control_io import json_response, platform_of, valid_traceparent
from triggerfish.server.operations import Answer, Body, Operation, inputs, path
from triggerfish.server.platform import Platform
from triggerfish.server.schema import AnyValue, Array, Object

#: Each event's JSON at most, as one `Event` invocation's payload (Lambda's 256 KiB; control.MAX_ASYNC_PAYLOAD).
MAX_ASYNC_PAYLOAD = 256 * 1024
#: The largest request body.
MAX_BATCH_BODY = 6 * 1024 * 1024

BATCH = Object(
    {
        "events": Array(
            AnyValue("One invocation's event"),
            f"The events, one invocation each (1 to {MAX_BATCH})",
            min_items=1,
            max_items=MAX_BATCH,
        )
    },
    required=("events",),
)


async def invoke_batch(request: Request) -> Response:
    given = inputs(request)
    request_ids = await queue_batch(
        platform_of(request), given.path["name"], given.body, request.headers.get("traceparent")
    )
    return json_response({"request_ids": request_ids}, 202)


async def queue_batch(platform: Platform, function: str, body: Mapping[str, Any], parent: str | None) -> list[str]:
    """Queue one invocation of `function` per event of a checked BATCH `body`, traced under `parent` (the
    request's traceparent header); their request ids. Shared with the lean route (invoke_routes.py)."""
    return await platform.invoke_async_many(
        function, body["events"], traceparent=valid_traceparent(parent), max_event_bytes=MAX_ASYNC_PAYLOAD
    )


OPERATIONS = (
    Operation(
        "POST",
        "/functions/{name}/invoke-batch",
        invoke_batch,
        "Queue one asynchronous invocation per event, all in one durable write (as `Event` invocations each)",
        {202: Answer("Every invocation is durably queued: their request ids, in the order of the events", "Batch")},
        "invoke",
        params=(path("name", "The function's name"),),
        body=Body(BATCH, limit=MAX_BATCH_BODY),
        errors=(404, 413),
    ),
)
