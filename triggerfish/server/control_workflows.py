"""The control API's workflow endpoints: start, list, describe, cancel, and answer callbacks.

    GET  /workflows?function=&status=&since=&until=&limit=   newest first, summaries
    POST /workflows                                          {"function", "input", "id"} -> 202 {"workflow_id"}
    GET  /workflows/{id}                                     status, input, result or error, every operation
    POST /workflows/{id}/cancel                              {"reason"}
    POST /workflows/{id}/resume                              202: a run again (after its invocation dead-lettered)
    POST /workflows/callbacks/{token}/succeed                {"result"}
    POST /workflows/callbacks/{token}/fail                   {"error", "message"}

Starting, cancelling, resuming and answering callbacks are the `invoke` action (what a
key that may run the app's functions may do); reading is `read`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.server.control_io import ApiError, json_response, listed, platform_of
from triggerfish.server.operations import Answer, Body, Operation, inputs, path, query
from triggerfish.server.platform import Platform
from triggerfish.server.schema import AnyValue, Enum, Integer, Moment, Named, Object, Text
from triggerfish.workflows.errors import WorkflowNotFoundError, WorkflowStateError
from triggerfish.workflows.history import EXECUTION_STATUSES

#: The most workflows one listing answers.
MAX_LISTED = 1000
#: Longest reason or error text kept.
MAX_TEXT = 4096


def _workflow_functions(platform: Platform) -> list[str]:
    return [name for name, spec in platform.specs.items() if spec.workflow or spec.durable]


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """A workflow in a listing: no input, result or operations."""
    return {
        "id": record["id"],
        "function": record["function"],
        "status": record["status"],
        "started": record["started"],
        "ended": record["ended"],
        "operations": len(record["ops"]),
        "parent": (record.get("parent") or {}).get("id"),
    }


async def list_workflows(request: Request) -> Response:
    params = inputs(request).query
    found = await platform_of(request).workflows.records(function=params.get("function"), status=params.get("status"))
    since, until = params.get("since"), params.get("until")
    chosen = [
        summary(r)
        for r in found
        if (since is None or r["started"] >= since) and (until is None or r["started"] < until)
    ]
    return json_response({"workflows": chosen[: params.get("limit", 100)]})


async def start_workflow(request: Request) -> Response:
    platform = platform_of(request)
    body = inputs(request).body
    function = body["function"]
    known = _workflow_functions(platform)
    if function not in known:
        raise ApiError(
            404, "WorkflowNotFound", f"no workflow named {function!r}; the app's workflows are: {listed(known)}"
        )
    workflow_id = await platform.workflows.start_workflow(function, body.get("input"), workflow_id=body.get("id"))
    return json_response({"workflow_id": workflow_id}, 202)


async def get_workflow(request: Request) -> Response:
    workflow_id = inputs(request).path["id"]
    try:
        record = await platform_of(request).workflows.describe(workflow_id)
    except WorkflowNotFoundError as exc:
        raise ApiError(404, "WorkflowNotFound", str(exc)) from None
    return json_response(record)


async def cancel_workflow(request: Request) -> Response:
    workflow_id = inputs(request).path["id"]
    reason = (inputs(request).body or {}).get("reason") or "cancelled over the control API"
    try:
        record = await platform_of(request).workflows.cancel(workflow_id, reason)
    except WorkflowNotFoundError as exc:
        raise ApiError(404, "WorkflowNotFound", str(exc)) from None
    except WorkflowStateError as exc:
        raise ApiError(409, "WorkflowConflict", str(exc)) from None
    return json_response(summary(record))


async def resume_workflow(request: Request) -> Response:
    workflow_id = inputs(request).path["id"]
    try:
        record = await platform_of(request).workflows.resume(workflow_id)
    except WorkflowNotFoundError as exc:
        raise ApiError(404, "WorkflowNotFound", str(exc)) from None
    except WorkflowStateError as exc:
        raise ApiError(409, "WorkflowConflict", str(exc)) from None
    return json_response(summary(record), 202)


async def _answer(request: Request, *, failed: bool) -> Response:
    token = inputs(request).path["token"]
    body = inputs(request).body or {}
    workflows = platform_of(request).workflows
    try:
        if failed:
            error = {"errorType": body.get("error") or "CallbackFailed", "errorMessage": body.get("message") or ""}
            await workflows.complete_callback(token, error=error)
        else:
            await workflows.complete_callback(token, result=body.get("result"))
    except WorkflowNotFoundError as exc:
        raise ApiError(404, "CallbackNotFound", str(exc)) from None
    except WorkflowStateError as exc:
        raise ApiError(409, "CallbackConflict", str(exc)) from None
    return json_response({"ok": True})


async def succeed_callback(request: Request) -> Response:
    return await _answer(request, failed=False)


async def fail_callback(request: Request) -> Response:
    return await _answer(request, failed=True)


_ID = path("id", "The workflow's id")
_TOKEN = path("token", "The callback's token (what ctx.callback(...).token gave)")
_SUMMARY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "function": {"type": "string"},
        "status": {"type": "string", "enum": list(EXECUTION_STATUSES)},
        "started": {"type": "number"},
        "ended": {"type": ["number", "null"]},
        "operations": {"type": "integer"},
        "parent": {"type": ["string", "null"]},
    },
}
START_INPUT = Named(
    "WorkflowStart",
    Object(
        {
            "function": Text("The workflow (a function declared with @app.workflow)", min_length=1),
            "input": AnyValue("The workflow's input: any JSON value"),
            "id": Text(
                "The workflow's id: starting one with an id again starts nothing new", min_length=1, max_length=128
            ),
        },
        required=("function",),
    ),
)
CANCEL_INPUT = Named("WorkflowCancel", Object({"reason": Text("Why (kept as its error)", max_length=MAX_TEXT)}))
SUCCEED_INPUT = Named("CallbackSuccess", Object({"result": AnyValue("What ctx's callback.result() returns")}))
FAIL_INPUT = Named(
    "CallbackFailure",
    Object(
        {
            "error": Text("The error's type (default CallbackFailed)", min_length=1, max_length=256),
            "message": Text("What went wrong", max_length=MAX_TEXT),
        }
    ),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/workflows",
        list_workflows,
        "Workflows, newest first",
        {200: Answer("", {"type": "object", "properties": {"workflows": {"type": "array", "items": _SUMMARY}}})},
        "read",
        params=(
            query("function", "Only this workflow's", Text(min_length=1)),
            query("status", "Only workflows in this status", Enum(EXECUTION_STATUSES)),
            query("since", "Started at or after", Moment()),
            query("until", "Started before", Moment()),
            query("limit", "At most this many (default 100)", Integer(minimum=1, maximum=MAX_LISTED)),
        ),
    ),
    Operation(
        "POST",
        "/workflows",
        start_workflow,
        "Start a workflow",
        {202: Answer("Queued", {"type": "object", "properties": {"workflow_id": {"type": "string"}}})},
        "invoke",
        body=Body(START_INPUT),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/workflows/{id}",
        get_workflow,
        "A workflow: status, input, result or error, and every operation with its timing",
        {200: Answer("", {"type": "object"})},
        "read",
        params=(_ID,),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/workflows/{id}/cancel",
        cancel_workflow,
        "Cancel a workflow that has not finished (and the children it runs)",
        {200: Answer("", _SUMMARY)},
        "invoke",
        params=(_ID,),
        body=Body(CANCEL_INPUT, required=False),
        errors=(404, 409),
    ),
    Operation(
        "POST",
        "/workflows/{id}/resume",
        resume_workflow,
        "Run a workflow that has not finished again from its checkpoints: after its invocation failed past its"
        " retries (dead-lettered), once the cause is fixed",
        {202: Answer("Queued", _SUMMARY)},
        "invoke",
        params=(_ID,),
        errors=(404, 409),
    ),
    Operation(
        "POST",
        "/workflows/callbacks/{token}/succeed",
        succeed_callback,
        "Complete a callback with success: the workflow goes on with the result",
        {200: Answer("", {"type": "object", "properties": {"ok": {"type": "boolean"}}})},
        "invoke",
        params=(_TOKEN,),
        body=Body(SUCCEED_INPUT, required=False),
        errors=(404, 409),
    ),
    Operation(
        "POST",
        "/workflows/callbacks/{token}/fail",
        fail_callback,
        "Complete a callback with failure: the workflow's callback.result() raises it",
        {200: Answer("", {"type": "object", "properties": {"ok": {"type": "boolean"}}})},
        "invoke",
        params=(_TOKEN,),
        body=Body(FAIL_INPUT, required=False),
        errors=(404, 409),
    ),
)
