"""Lambda's durable-execution API (`/2025-12-01/...`), over the app's workflow records (workflows/durable_service.py).

What `aws-durable-execution-sdk-python` calls while a durable handler runs (CheckpointDurableExecution,
GetDurableExecutionState), and what an operator's boto3 calls (GetDurableExecution,
GetDurableExecutionHistory, ListDurableExecutionsByFunction, StopDurableExecution, and
SendDurableExecutionCallbackSuccess / Failure / Heartbeat for the external systems that answer
callbacks). The paths and shapes are botocore's Lambda model's (boto3 1.42 and later carry it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from triggerfish._json import loads
from triggerfish.aws.endpoint import AwsCall, Operation
from triggerfish.aws.protocol import Answer, AwsError
from triggerfish.errors import InvalidInputError
from triggerfish.workflows.aws_ops import BadUpdate
from triggerfish.workflows.durable_service import DurableExecutions
from triggerfish.workflows.errors import WorkflowNotFoundError, WorkflowStateError

_VERSION = "/2025-12-01"
_EXECUTION = rf"{_VERSION}/durable-executions/(.+)"
_CALLBACK = rf"{_VERSION}/durable-execution-callbacks/([^/]+)"
_FUNCTION = rf"{_VERSION}/functions/([^/]+)"
_ARN, _CALLBACK_ID = "DurableExecutionArn", "CallbackId"
#: (method, path, operation, the path's parameter), tried in order: the most specific paths first.
_ROUTES: list[tuple[str, re.Pattern[str], str, str]] = [
    ("POST", re.compile(f"{_EXECUTION}/checkpoint"), "CheckpointDurableExecution", _ARN),
    ("GET", re.compile(f"{_EXECUTION}/state"), "GetDurableExecutionState", _ARN),
    ("GET", re.compile(f"{_EXECUTION}/history"), "GetDurableExecutionHistory", _ARN),
    ("POST", re.compile(f"{_EXECUTION}/stop"), "StopDurableExecution", _ARN),
    ("GET", re.compile(_EXECUTION), "GetDurableExecution", _ARN),
    ("GET", re.compile(f"{_FUNCTION}/durable-executions"), "ListDurableExecutionsByFunction", "FunctionName"),
    ("POST", re.compile(f"{_CALLBACK}/succeed"), "SendDurableExecutionCallbackSuccess", _CALLBACK_ID),
    ("POST", re.compile(f"{_CALLBACK}/fail"), "SendDurableExecutionCallbackFailure", _CALLBACK_ID),
    ("POST", re.compile(f"{_CALLBACK}/heartbeat"), "SendDurableExecutionCallbackHeartbeat", _CALLBACK_ID),
]  # fmt: skip
#: The most items one page holds, as Lambda's MaxItems allows.
MAX_ITEMS = 1000


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    path = path.rstrip("/")
    for wanted, pattern, operation, parameter in _ROUTES:
        if method == wanted and (match := pattern.fullmatch(path)):
            return operation, {parameter: unquote(match.group(1))}
    return None


def _durable(call: AwsCall) -> DurableExecutions:
    return call.platform.workflows.durable


def _body(params: dict[str, Any]) -> dict[str, Any]:
    raw: bytes = params["body"]
    if not raw.strip():
        return {}
    try:
        document = loads(raw, where="request body")
    except InvalidInputError as exc:
        raise AwsError("InvalidRequestContentException", str(exc)) from None
    if not isinstance(document, dict):
        raise AwsError("InvalidRequestContentException", "the body must be a JSON object of the operation's input")
    return document


def _max_items(params: dict[str, Any]) -> int:
    given = params["query"].get("MaxItems")
    try:
        value = MAX_ITEMS if given is None else int(given)
    except ValueError:
        raise AwsError("InvalidParameterValueException", f"MaxItems must be a whole number, not {given!r}") from None
    if not 0 <= value <= MAX_ITEMS:
        raise AwsError("InvalidParameterValueException", f"MaxItems must be from 0 to {MAX_ITEMS}, not {value}")
    return value or MAX_ITEMS  # 0: the default, as Lambda takes it


def _flag(params: dict[str, Any], name: str) -> bool:
    return str(params["query"].get(name, "")).lower() == "true"


def _answering(handler: Callable[[AwsCall, dict[str, Any]], Any]) -> Callable[[AwsCall, dict[str, Any]], Any]:
    """The workflow service's errors in Lambda's words: unknown → 404 ResourceNotFound, a bad update or a
    finished execution → 400 InvalidParameterValue."""

    async def answer(call: AwsCall, params: dict[str, Any]) -> Any:
        try:
            return await handler(call, params)
        except WorkflowNotFoundError as exc:
            raise AwsError("ResourceNotFoundException", str(exc), status=404) from None
        except (BadUpdate, WorkflowStateError) as exc:
            raise AwsError("InvalidParameterValueException", str(exc)) from None

    return answer


@_answering
async def checkpoint(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    body = _body(params)
    token, updates = body.get("CheckpointToken"), body.get("Updates") or []
    if not isinstance(token, str) or not token:
        raise AwsError("InvalidParameterValueException", "CheckpointToken is required: the one the last answer gave")
    if not isinstance(updates, list):
        raise AwsError("InvalidParameterValueException", "Updates must be a list of OperationUpdates")
    return await _durable(call).checkpoint(params["path"]["DurableExecutionArn"], token, updates)


@_answering
async def get_state(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    query = params["query"]
    token = query.get("CheckpointToken")
    if not token:
        raise AwsError("InvalidParameterValueException", "CheckpointToken is required")
    arn = params["path"]["DurableExecutionArn"]
    return await _durable(call).state(arn, token, query.get("Marker"), _max_items(params))


@_answering
async def get_execution(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    arn = params["path"]["DurableExecutionArn"]
    include = params["query"].get("IncludeExecutionData", "true").lower() != "false"
    return await _durable(call).describe(arn, call.platform.current.app_name, include_data=include)


@_answering
async def get_history(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    query = params["query"]
    return await _durable(call).history(
        params["path"]["DurableExecutionArn"],
        include_data=_flag(params, "IncludeExecutionData"),
        marker=query.get("Marker"),
        max_items=_max_items(params),
        reverse=_flag(params, "ReverseOrder"),
    )


@_answering
async def list_by_function(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    from triggerfish.aws.lambda_api import _function  # the one place a Lambda FunctionName is resolved

    name, _ = _function(call, params["path"]["FunctionName"])
    query = params["query"]
    raw_statuses = params.get("query_lists", {}).get("Statuses", [])
    return await _durable(call).by_function(
        name,
        call.platform.current.app_name,
        statuses=raw_statuses,
        marker=query.get("Marker"),
        max_items=_max_items(params),
        reverse=_flag(params, "ReverseOrder"),
        name=query.get("DurableExecutionName"),
    )


@_answering
async def stop(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    error = _body(params).get("Error")
    stopped = await _durable(call).stop(
        params["path"]["DurableExecutionArn"], error if isinstance(error, dict) else None
    )
    return {"StopTimestamp": stopped}


@_answering
async def callback_success(call: AwsCall, params: dict[str, Any]) -> Answer:
    raw: bytes = params["body"]
    # The Result is the request's raw body (the model's payload): the SDK deserializes it as it wrote it.
    await call.platform.workflows.complete_callback(params["path"]["CallbackId"], result=raw.decode("utf-8", "replace"))
    return Answer(200, b"{}", {"content-type": "application/json"})


@_answering
async def callback_failure(call: AwsCall, params: dict[str, Any]) -> Answer:
    body = _body(params)
    error = {
        "errorType": body.get("ErrorType") or "CallbackFailed",
        "errorMessage": body.get("ErrorMessage") or "",
        **({"errorData": body["ErrorData"]} if body.get("ErrorData") else {}),
        **({"stackTrace": body["StackTrace"]} if body.get("StackTrace") else {}),
    }
    await call.platform.workflows.complete_callback(params["path"]["CallbackId"], error=error)
    return Answer(200, b"{}", {"content-type": "application/json"})


@_answering
async def callback_heartbeat(call: AwsCall, params: dict[str, Any]) -> Answer:
    await _durable(call).heartbeat(params["path"]["CallbackId"])
    return Answer(200, b"{}", {"content-type": "application/json"})


OPERATIONS = {
    "CheckpointDurableExecution": Operation(checkpoint, "invoke"),
    "GetDurableExecutionState": Operation(get_state, "read"),
    "GetDurableExecution": Operation(get_execution, "read"),
    "GetDurableExecutionHistory": Operation(get_history, "read"),
    "ListDurableExecutionsByFunction": Operation(list_by_function, "read"),
    "StopDurableExecution": Operation(stop, "invoke"),
    "SendDurableExecutionCallbackSuccess": Operation(callback_success, "invoke"),
    "SendDurableExecutionCallbackFailure": Operation(callback_failure, "invoke"),
    "SendDurableExecutionCallbackHeartbeat": Operation(callback_heartbeat, "invoke"),
}
