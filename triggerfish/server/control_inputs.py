"""Re-running an invocation with its kept input: `POST /invocations/{request_id}/rerun` of the control API.

The input is the one kept beside the invocation's records (the function's
`keep_inputs`, triggerfish.runtime.inputs); an input that was not kept, or
kept truncated, cannot be re-run and the refusal says why and what to
change. The re-run is a new synchronous invocation of the same function on
the version the original ran on while that version still serves (a number
or the alias in `version` chooses another), else on the serving one, and
the answer says which it ran on: under `triggerfish dev` every reload is a
new version, and re-running on the code just fixed is the point.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish.errors import HandlerError, ThrottledError
from triggerfish.runtime.inputs import INPUT_CAP
from triggerfish.runtime.invoke import new_request_id
from triggerfish.server.control_io import ApiError, json_response, listed, platform_of
from triggerfish.server.operations import Answer, Operation, inputs, path, query
from triggerfish.server.platform import Platform
from triggerfish.server.schema import Text
from triggerfish.server.versions import AppVersion

NOT_KEPT = (
    "its function does not keep inputs (keep_inputs = true in triggerfish.toml or on the decorator keeps them;"
    " `triggerfish dev` keeps them unless a function says otherwise), or it expired with the records"
)


async def rerun_invocation(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    request_id = given.path["request_id"]
    records = platform.current.invoker.records
    attempts = await records.attempts(request_id)
    if not attempts:
        raise ApiError(
            404,
            "InvocationNotFound",
            f"no invocation with request id {request_id!r} has a record (records are kept"
            f" {records.retention / 86400:g} days)",
        )
    original = attempts[-1]
    kept = await records.input(request_id)
    if kept is None:
        raise ApiError(409, "InputNotKept", f"the input of invocation {request_id} was not kept: {NOT_KEPT}")
    if kept["truncated"]:
        raise ApiError(
            409,
            "InputTruncated",
            f"the input of invocation {request_id} was {kept['size']} bytes of JSON, more than the {INPUT_CAP} kept:"
            " only its beginning is kept, so it cannot be re-run",
        )
    version, note = await _version(platform, original.version, given.query.get("version"))
    if original.function not in version.specs:
        raise ApiError(
            404,
            "FunctionNotFound",
            f"version {version.number} has no function named {original.function!r}; it declares:"
            f" {listed(version.specs)}",
        )
    new_id = new_request_id()
    answer: dict[str, Any] = {
        "request_id": new_id,
        "rerun_of": request_id,
        "function": original.function,
        "version": str(version.number),
        "note": note,
    }
    try:
        answer["result"] = await version.invoke(original.function, kept["event"], request_id=new_id)
        answer["ok"] = True
    except HandlerError as exc:
        answer["ok"] = False
        answer["error"] = exc.error
    except ThrottledError as exc:
        raise ApiError(
            429, "TooManyRequestsException", f"{exc}; try again shortly", headers={"Retry-After": "1"}
        ) from None
    return json_response(answer)


async def _version(platform: Platform, ran_on: str | None, asked: str | None) -> tuple[AppVersion, str | None]:
    """The version to re-run on, and a note when it is not the one the original ran on."""
    serving = {str(version.number): version for version in platform.serving()}
    if asked is not None:
        number = asked
        if not asked.isdigit():
            alias = None if platform.releases is None else await platform.releases.alias(asked)
            if alias is None:
                raise ApiError(404, "AliasNotFound", f"no alias named {asked!r}; give a version number or an alias")
            number = str(alias.version)
        if number not in serving:
            raise ApiError(
                409,
                "VersionNotServing",
                f"version {number} is not serving; the versions that run are {', '.join(sorted(serving))}",
            )
        return serving[number], None
    if ran_on is not None and ran_on in serving:
        return serving[ran_on], None
    current = platform.current
    if ran_on is None:
        return current, None
    return current, f"version {ran_on} no longer serves: re-ran on version {current.number}"


OPERATIONS = (
    Operation(
        "POST",
        "/invocations/{request_id}/rerun",
        rerun_invocation,
        "Invoke the same function again with an invocation's kept input, waiting for the result",
        {200: Answer("The new invocation: its request id, the version it ran on, its result or error", "Rerun")},
        "invoke",
        params=(
            path("request_id", "The invocation whose input to send again"),
            query(
                "version",
                "Run on this version number or alias (default: the original's while it serves, else the serving one)",
                Text(min_length=1),
            ),
        ),
        errors=(404, 409, 429),
    ),
)
