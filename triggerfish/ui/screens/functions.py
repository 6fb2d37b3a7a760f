"""Functions: each one's settings, triggers, versions and aliases; invoke one with a JSON payload and see what
it returned and printed."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish._json import loads
from triggerfish.errors import InvalidInputError
from triggerfish.server.control import REQUEST_ID_HEADER
from triggerfish.server.control_inputs import NOT_KEPT
from triggerfish.ui.api import ApiFailure, ControlApi, log_tail
from triggerfish.ui.render import page
from triggerfish.ui.screen import form_of, screen

INVOCATION_TYPES = {"RequestResponse": "Wait for the result", "Event": "Queue it (asynchronous)"}


@screen
async def functions(request: Request, api: ControlApi) -> Response:
    listed = await api.get("/functions")
    return page(
        request, "functions.html", title="Functions", current="Functions", functions=listed["functions"], listed=listed
    )


async def _versions(api: ControlApi) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The app's deployed versions and aliases under serve; none under dev, whose versions are its reloads."""
    try:
        versions = (await api.get("/versions")).get("versions", [])
        aliases = (await api.get("/aliases")).get("aliases", [])
    except ApiFailure as failure:
        if failure.status in (401, 403):
            raise
        return [], []
    return versions, aliases


async def _function_page(
    request: Request, api: ControlApi, *, payload: str = "{}", status: int = 200, **context: Any
) -> Response:
    name = request.path_params["name"]
    function = await api.get(f"/functions/{name}")
    versions, aliases = await _versions(api)
    return page(
        request,
        "function.html",
        status,
        title=f"Function {name}",
        current="Functions",
        function=function,
        versions=versions,
        aliases=aliases,
        payload=payload,
        types=INVOCATION_TYPES,
        **context,
    )


@screen
async def function(request: Request, api: ControlApi) -> Response:
    rerun = request.query_params.get("rerun")
    payload = "{}"
    note = None
    if rerun:
        kept = (await api.get(f"/invocations/{rerun}")).get("input")
        if kept is None:
            note = f"The input of invocation {rerun} was not kept ({NOT_KEPT}). Type the payload to send."
        elif not kept["rerunnable"]:
            note = f"The input of invocation {rerun} was too large to keep whole ({kept['size']} bytes of JSON)."
        else:
            payload = json.dumps(kept["event"], indent=2, ensure_ascii=False)
    return await _function_page(request, api, payload=payload, note=note)


@screen
async def invoke(request: Request, api: ControlApi) -> Response:
    """Invoke with the form's payload; a payload that is not JSON is shown back with where it went wrong (400)."""
    name = request.path_params["name"]
    form = await form_of(request)
    payload = form.get("payload", "")
    kind = form.get("type") or "RequestResponse"
    if kind not in INVOCATION_TYPES:
        return await _function_page(
            request, api, payload=payload, status=400, error=f"type must be one of {', '.join(INVOCATION_TYPES)}"
        )
    try:
        loads(payload or "{}", where="payload")
    except InvalidInputError as exc:
        return await _function_page(request, api, payload=payload, status=400, error=str(exc))
    answer = await api.call(
        "POST",
        f"/functions/{name}/invoke",
        raw=(payload or "{}").encode(),
        headers={"X-Amz-Log-Type": "Tail", "X-Amz-Invocation-Type": kind},
    )
    request_id = answer.headers.get(REQUEST_ID_HEADER) or (answer.body or {}).get("request_id")
    result = {
        "request_id": request_id,
        "queued": answer.status == 202,
        "failed": answer.headers.get("x-amz-function-error") is not None,
        "body": answer.body,
        "logs": log_tail(answer.headers),
    }
    return await _function_page(request, api, payload=payload, result=result)
