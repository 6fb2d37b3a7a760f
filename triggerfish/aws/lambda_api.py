"""Lambda's REST-JSON API (`/2015-03-31/functions/...`) over the app's functions: Invoke, ListFunctions, GetFunction.

A function is named as Lambda names it (`APP-FUNCTION`, its ARN, or the app's own name for it); a
qualifier (`:3`, `:live`, `$LATEST`) is accepted and the serving version runs. Invoke is the same
invocation as the control API's: RequestResponse waits and answers the handler's result (or its
error, with `X-Amz-Function-Error: Unhandled`), `Event` queues it durably (202), `DryRun` checks
(204); `X-Amz-Log-Type: Tail` answers the invocation's log lines (START, output, END, REPORT) as
`X-Amz-Log-Result`.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import unquote

from triggerfish._json import dumps, loads
from triggerfish.aws import lambda_durable
from triggerfish.aws.endpoint import AwsCall, Operation, Service
from triggerfish.aws.protocol import Answer, AwsError
from triggerfish.errors import HandlerError, InvalidInputError, ThrottledError
from triggerfish.identity import function_arn, function_name
from triggerfish.model import FunctionSpec
from triggerfish.runtime.invoke import new_request_id
from triggerfish.server.log_lines import lines_of

#: Lambda's payload limits: 6 MiB synchronous, 1 MiB asynchronous (as Lambda has since 2025: 256 KiB before).
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
#: The log tail Lambda answers: the last 4 KB.
LOG_TAIL_BYTES = 4096
_VERSION = "/2015-03-31"
_INVOKE = re.compile(rf"{_VERSION}/functions/([^/]+)/invocations/?")
_FUNCTION = re.compile(rf"{_VERSION}/functions/([^/]+)/?")
_CONFIGURATION = re.compile(rf"{_VERSION}/functions/([^/]+)/configuration/?")


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    if method == "POST" and (match := _INVOKE.fullmatch(path)):
        return "Invoke", {"FunctionName": unquote(match.group(1))}
    if method == "GET" and path.rstrip("/") == f"{_VERSION}/functions":
        return "ListFunctions", {}
    if method == "GET" and (match := _CONFIGURATION.fullmatch(path)):
        return "GetFunctionConfiguration", {"FunctionName": unquote(match.group(1))}
    if method == "GET" and (match := _FUNCTION.fullmatch(path)):
        return "GetFunction", {"FunctionName": unquote(match.group(1))}
    return lambda_durable.route(method, path)


def _function(call: AwsCall, given: str) -> tuple[str, FunctionSpec]:
    """The app's function a Lambda FunctionName (name, APP-NAME, ARN, each optionally qualified) means."""
    app = call.platform.current.app_name
    name = given.split(":function:", 1)[1] if ":function:" in given else given
    name = name.split(":", 1)[0]
    specs = call.platform.current.specs
    for candidate in (name, name.removeprefix(f"{app}-")):
        if candidate in specs:
            return candidate, specs[candidate]
    raise AwsError(
        "ResourceNotFoundException",
        f"Function not found: {given} (the app {app!r} declares {', '.join(sorted(specs)) or 'none'})",
        status=404,
    )


def _configuration(app: str, spec: FunctionSpec) -> dict[str, Any]:
    return {
        "FunctionName": function_name(app, spec.name),
        "FunctionArn": function_arn(app, spec.name),
        "Runtime": "python3.11",
        "Handler": spec.ref,
        "MemorySize": spec.settings.memory_mb,
        "Timeout": int(spec.settings.timeout),
        "Version": "$LATEST",
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
    }


async def list_functions(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    app = call.platform.current.app_name
    return {"Functions": [_configuration(app, s) for _, s in sorted(call.platform.current.specs.items())]}


async def get_function(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    _, spec = _function(call, params["path"]["FunctionName"])
    return {"Configuration": _configuration(call.platform.current.app_name, spec)}


async def get_function_configuration(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    _, spec = _function(call, params["path"]["FunctionName"])
    return _configuration(call.platform.current.app_name, spec)


async def invoke(call: AwsCall, params: dict[str, Any]) -> Answer:
    name, _ = _function(call, params["path"]["FunctionName"])
    headers: dict[str, str] = params["headers"]
    kind = headers.get("x-amz-invocation-type", "RequestResponse")
    if kind not in ("RequestResponse", "Event", "DryRun"):
        raise AwsError("InvalidParameterValueException", f"X-Amz-Invocation-Type {kind!r} is not one of Lambda's")
    body: bytes = params["body"]
    limit = MAX_ASYNC_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD
    if len(body) > limit:
        raise AwsError(
            "RequestTooLargeException", f"Request must be smaller than {limit} bytes for the {kind} invocation type",
            status=413,
        )  # fmt: skip
    try:
        event = loads(body, where="payload") if body.strip() else {}
    except InvalidInputError as exc:
        raise AwsError("InvalidRequestContentException", f"Could not parse request body into json: {exc}") from None
    answer_headers = {"content-type": "application/json", "x-amz-executed-version": "$LATEST"}
    if kind == "DryRun":
        return Answer(204, b"", answer_headers)
    request_id = new_request_id()
    answer_headers["x-amzn-requestid"] = request_id
    if kind == "Event":
        await call.platform.invoke_async(name, event, request_id=request_id)
        return Answer(202, b"", answer_headers)
    try:
        result = await call.platform.invoke(name, event, request_id=request_id)
        payload = dumps(result)
    except HandlerError as exc:
        answer_headers["x-amz-function-error"] = "Unhandled"
        payload = dumps(exc.error)
    except ThrottledError as exc:
        raise AwsError("TooManyRequestsException", f"Rate Exceeded: {exc}", status=429) from None
    if headers.get("x-amz-log-type", "").lower() == "tail":
        answer_headers["x-amz-log-result"] = await _log_tail(call, request_id)
    return Answer(200, payload, answer_headers)


async def _log_tail(call: AwsCall, request_id: str) -> str:
    record = await call.platform.current.invoker.records.get(request_id)
    lines = [] if record is None else [line.message for line in lines_of(record)]
    text = "".join(f"{line}\n" for line in lines).encode("utf-8", "replace")
    return base64.b64encode(text[-LOG_TAIL_BYTES:]).decode("ascii")


SERVICE = Service(
    name="lambda",
    target_prefix="Lambda",
    protocol="rest-json",
    rest_route=route,
    operations={
        "Invoke": Operation(invoke, "invoke"),
        "ListFunctions": Operation(list_functions, "read"),
        "GetFunction": Operation(get_function, "read"),
        "GetFunctionConfiguration": Operation(get_function_configuration, "read"),
        **lambda_durable.OPERATIONS,
    },
)
