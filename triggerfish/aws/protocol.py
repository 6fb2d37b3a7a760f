"""The wire shapes the AWS endpoint speaks: a parsed call, errors, and answers in each protocol's own form.

- JSON protocols (`awsJson1_0`: SQS; `awsJson1_1`: EventBridge): the operation is named by
  `X-Amz-Target: <prefix>.<Operation>`, the input is a JSON object, an error is
  `{"__type": code, "message": ...}` with a 4xx/5xx status. SQS's JSON protocol also says the
  query protocol's code in `x-amzn-query-error: <code>;Sender`, which botocore reads.
- query protocol (SNS, and SQS for older clients: sqs_query.py): a form body with `Action=...`; errors
  are the XML `ErrorResponse` document.
- REST-JSON (Lambda): the operation is the method and path (`POST /2015-03-31/functions/NAME/invocations`);
  errors are the JSON protocols' document with the code also in `x-amzn-errortype`.

Pure: no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
from xml.sax.saxutils import escape

from triggerfish._json import dumps

Protocol = Literal["json1.0", "json1.1", "query", "rest-json"]

JSON_CONTENT_TYPES: dict[str, str] = {
    "json1.0": "application/x-amz-json-1.0",
    "json1.1": "application/x-amz-json-1.1",
    "rest-json": "application/json",
}


class AwsError(Exception):
    """An AWS error answer: `code` as AWS names it, a message saying what to change, the HTTP status.

    `query_code` is the code the query protocol gives the same error, where it differs (SQS's
    `AWS.SimpleQueueService.NonExistentQueue` for `QueueDoesNotExist`).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 400,
        sender: bool = True,
        query_code: str | None = None,
        headers: dict[str, str] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        #: More members of a JSON protocol's error document (DynamoDB's `CancellationReasons`, `Item`).
        self.fields = fields or {}
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender
        self.query_code = query_code
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class Answer:
    """What an endpoint sends back: status, headers, body bytes."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def request_id() -> str:
    return str(uuid.uuid4())


def json_answer(protocol: Protocol, document: dict[str, Any], rid: str) -> Answer:
    return Answer(200, dumps(document), {"content-type": JSON_CONTENT_TYPES[protocol], "x-amzn-requestid": rid})


def xml_answer(operation: str, result: dict[str, Any], rid: str, namespace: str, *, inner: str | None = None) -> Answer:
    """A query protocol's answer: `<OperationResponse><OperationResult>...` with lists as `<member>` items
    (or `inner`, the result's XML as a service writes it)."""
    if inner is None:
        inner = "".join(_xml_element(name, value) for name, value in result.items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{operation}Response xmlns="{namespace}"><{operation}Result>{inner}</{operation}Result>'
        f"<ResponseMetadata><RequestId>{rid}</RequestId></ResponseMetadata></{operation}Response>"
    )
    return Answer(200, body.encode("utf-8"), {"content-type": "text/xml", "x-amzn-requestid": rid})


class XmlMap(dict[str, str]):
    """A query protocol map in an answer: `<entry><key>K</key><value>V</value></entry>` per item (SNS's Attributes)."""


def _xml_element(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, XmlMap):
        inner = "".join(
            f"<entry><key>{escape(key)}</key><value>{escape(item)}</value></entry>" for key, item in value.items()
        )
    elif isinstance(value, list):
        inner = "".join(_xml_element("member", item) for item in value)
    elif isinstance(value, dict):
        inner = "".join(_xml_element(key, item) for key, item in value.items())
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"


def query_entries(params: dict[str, Any], prefix: str, key: str, value: str) -> dict[str, str]:
    """A query protocol map (`Attributes.entry.1.key=...&Attributes.entry.1.value=...`) as a dict."""
    found: dict[str, str] = {}
    index = 1
    while f"{prefix}.entry.{index}.{key}" in params:
        name = str(params[f"{prefix}.entry.{index}.{key}"])
        found[name] = str(params.get(f"{prefix}.entry.{index}.{value}", ""))
        index += 1
    return found


def query_members(params: dict[str, Any], prefix: str) -> list[dict[str, str]]:
    """A query protocol list of structures (`Tags.member.1.Key=...`) as dicts of their fields."""
    found: list[dict[str, str]] = []
    index = 1
    while any(k.startswith(f"{prefix}.member.{index}.") for k in params):
        start = f"{prefix}.member.{index}."
        found.append({k[len(start) :]: str(v) for k, v in params.items() if k.startswith(start)})
        index += 1
    return found


def json_error(protocol: Protocol, error: AwsError, rid: str, *, query_compatible: bool = False) -> Answer:
    headers = {"content-type": JSON_CONTENT_TYPES.get(protocol, JSON_CONTENT_TYPES["json1.1"]), "x-amzn-requestid": rid}
    if protocol == "rest-json":
        headers["x-amzn-errortype"] = error.code
    if query_compatible:
        headers["x-amzn-query-error"] = f"{error.query_code or error.code};{'Sender' if error.sender else 'Receiver'}"
    headers.update(error.headers)
    document = {"__type": error.code, "message": error.message, **error.fields}
    return Answer(error.status, dumps(document), headers)


def xml_error(error: AwsError, rid: str) -> Answer:
    kind = "Sender" if error.sender else "Receiver"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{escape(error.query_code or error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
    )
    headers = {"content-type": "text/xml", "x-amzn-requestid": rid, **error.headers}
    return Answer(error.status, body.encode("utf-8"), headers)


def error_answer(protocol: Protocol, error: AwsError, rid: str, *, query_compatible: bool = False) -> Answer:
    if protocol == "query":
        return xml_error(error, rid)
    return json_error(protocol, error, rid, query_compatible=query_compatible)


# --- input checks every service shares ------------------------------------------------------------


def required_text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise missing(name)
    if not isinstance(value, str):
        raise invalid(name, value, "a string")
    return value


def optional_text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(name, value, "a string")
    return value


def optional_int(params: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AwsError(
            "InvalidParameterValue",
            f"Value {value!r} for parameter {name} is invalid. Reason: must be an integer from {low} to {high}.",
        )
    return value


def optional_list(params: dict[str, Any], name: str) -> list[Any]:
    value = params.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(name, value, "a list")
    return value


def optional_map(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(name, value, "a map")
    return value


def missing(name: str) -> AwsError:
    return AwsError("MissingParameter", f"The request must contain the parameter {name}.")


def invalid(name: str, value: Any, expected: str) -> AwsError:
    return AwsError(
        "InvalidParameterValue", f"Value {value!r} for parameter {name} is invalid. Reason: it must be {expected}."
    )
