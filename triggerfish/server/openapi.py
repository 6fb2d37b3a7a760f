"""The OpenAPI 3.1 document of the control API, generated from its table (`control.OPERATIONS`).

    document(OPERATIONS)   # served at GET /-/api/v1/openapi.json

Each operation's paths, parameters, request bodies and their constraints come
from the same declarations that route and check requests (operations.py,
schema.py); the error answers from what the checks can refuse. Only what no
check needs is written here: the JSON schemas of the answers, named by the
table's `Answer`s, and the error answers' descriptions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from triggerfish import __version__
from triggerfish.server.operations import CHANGING_METHODS, JSON, Operation, Param
from triggerfish.server.schema import Schema

_JSON = JSON

#: Error answers: status -> (component name, description). Every error is {"error": {"code", "message", ...}}.
ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("BadRequest", "Bad input: invalid JSON (with line and column), a wrong field, a bad value or parameter"),
    401: ("Unauthorized", "No API key, a malformed one, an unknown one, or a revoked one"),
    403: (
        "Forbidden",
        "Refused: the Host header names no allowed host (HostNotAllowed), the Origin is another site's"
        " (OriginNotAllowed), or the key's role does not hold the action (Forbidden)",
    ),
    404: ("NotFound", "The function, invocation, bus, rule, queue, topic or schedule does not exist"),
    408: ("RequestTimeout", "The request body did not arrive in time"),
    409: ("Conflict", "It comes from the app's code and changes only with it"),
    413: ("TooLarge", "The request body or message is over the limit"),
    415: ("UnsupportedMediaType", "The body is not of a type this operation takes: send application/json"),
    422: ("DeployFailed", "The deploy changed nothing: `phase` says which step failed, `details` why"),
    429: ("Throttled", "The function is at its concurrency limit (Retry-After says when to try again)"),
    500: ("InternalError", "The platform failed; its log has the details"),
    503: (
        "Unavailable",
        "The store cannot write just now (StoreUnavailable), or every connection is busy (TooManyConnections);"
        " Retry-After says when to try again",
    ),
    507: ("StoreFull", "The store's disk is full: nothing was stored"),
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "string"}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {_JSON: {"schema": schema}}


def error_ref(status: int) -> dict[str, Any]:
    return {"$ref": f"#/components/responses/{ERRORS[status][0]}"}


_OBJECT: dict[str, Any] = {"type": "object"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}


def _schemas() -> dict[str, Any]:
    nullable_string = {"type": ["string", "null"]}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "examples": ["InvalidJSON", "FunctionNotFound"]},
                        "message": {"type": "string"},
                        "line": {"type": "integer", "description": "InvalidJSON: where the syntax error is"},
                        "column": {"type": "integer"},
                    },
                    "additionalProperties": True,
                }
            },
        },
        "Function": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "ref": {"type": "string", "description": "module:qualname of the handler"},
                "version": {"type": "integer", "description": "The app version serving it"},
                "settings": _OBJECT,
                "triggers": {"type": "array", "items": _OBJECT},
                "pool": {
                    "type": "object",
                    "description": "The function's worker pool",
                    "properties": {
                        name: {"type": "integer"}
                        for name in ("workers", "idle", "busy", "invocations", "cold_starts", "timeouts", "crashes")
                    },
                },
            },
        },
        "FunctionList": {
            "type": "object",
            "properties": {
                "app": {"type": "string"},
                "version": {"type": "integer"},
                "functions": {"type": "array", "items": _ref("Function")},
            },
        },
        "Accepted": {"type": "object", "properties": {"request_id": {"type": "string"}}},
        "Batch": {
            "type": "object",
            "required": ["request_ids"],
            "properties": {"request_ids": {"type": "array", "items": {"type": "string"}}},
        },
        "Secret": {
            "type": "object",
            "description": "A secret as it may be shown: never its value",
            "required": ["name", "version", "created_at", "updated_at", "key_id"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "integer", "description": "1 when first set, one more at every set after"},
                "created_at": {"type": "number", "description": "Epoch seconds"},
                "updated_at": {"type": "number", "description": "Epoch seconds: its last set"},
                "key_id": {"type": "string", "description": "The id of the secrets key its value is sealed with"},
            },
        },
        "Span": {
            "type": "object",
            "description": "One span: an invocation attempt (server or consumer), or a handler's publish or send"
            " (producer)",
            "required": ["trace_id", "span_id", "name", "kind", "start", "end", "status"],
            "properties": {
                "trace_id": {"type": "string"},
                "span_id": {"type": "string"},
                "parent_span_id": {"type": ["string", "null"]},
                "name": {"type": "string", "description": "The function, or `publish BUS` / `send QUEUE`"},
                "kind": {"enum": ["server", "consumer", "producer", "internal"]},
                "start": {"type": "number", "description": "Epoch seconds"},
                "end": {"type": "number"},
                "status": {"enum": ["ok", "error"]},
                "attributes": _OBJECT,
                "links": {
                    "type": "array",
                    "description": "Spans linked, not parents: a batch's other messages",
                    "items": {
                        "type": "object",
                        "properties": {"trace_id": {"type": "string"}, "span_id": {"type": "string"}},
                    },
                },
                "request_id": {"type": ["string", "null"]},
                "function": {"type": ["string", "null"]},
            },
        },
        "Trace": {
            "type": "object",
            "required": ["trace_id", "spans"],
            "properties": {"trace_id": {"type": "string"}, "spans": {"type": "array", "items": _ref("Span")}},
        },
        "TraceList": {
            "type": "object",
            "properties": {
                "traces": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "trace_id": {"type": "string"},
                            "started_at": {"type": "number"},
                            "ended_at": {"type": "number"},
                            "duration_ms": {"type": "number"},
                            "invocations": {"type": "integer"},
                            "errors": {"type": "integer"},
                            "functions": {"type": "array", "items": {"type": "string"}},
                            "root": {"type": "string", "description": "The function of the trace's first invocation"},
                        },
                    },
                }
            },
        },
        "UsageReport": {
            "type": "object",
            "required": ["app", "by", "rows", "total"],
            "properties": {
                "app": {"type": "string"},
                "by": {"enum": ["function", "day", "hour"]},
                "since": {"type": ["number", "null"]},
                "until": {"type": ["number", "null"]},
                "prices": {
                    "type": ["object", "null"],
                    "properties": {"gb_second": {"type": "number"}, "million_requests": {"type": "number"}},
                },
                "rows": {"type": "array", "items": _ref("UsageRow")},
                "total": _ref("UsageRow"),
            },
        },
        "UsageRow": {
            "type": "object",
            "description": "Usage of one function, day (YYYY-MM-DD) or hour (YYYY-MM-DDTHH, UTC); `total` sums them",
            "required": [
                "key",
                "invocations",
                "requests",
                "errors",
                "billed_ms",
                "gb_seconds",
                "bytes_in",
                "bytes_out",
            ],
            "properties": {
                "key": {"type": "string"},
                "invocations": {"type": "integer", "description": "Attempts, throttled and expired ones too"},
                "requests": {"type": "integer", "description": "Attempts that ran (what Lambda bills a request for)"},
                "errors": {"type": "integer", "description": "Attempts that ran and failed"},
                "billed_ms": {"type": "integer"},
                "gb_seconds": {"type": "number"},
                "bytes_in": {
                    "type": "integer",
                    "description": "Bytes of the events' JSON the attempts that ran were sent",
                },
                "bytes_out": {"type": "integer", "description": "Bytes of the results' JSON they returned"},
                "cost": {"type": "number", "description": "With prices: GB-seconds and requests at those prices"},
            },
        },
        "SecretList": {
            "type": "object",
            "required": ["app", "secrets"],
            "properties": {"app": {"type": "string"}, "secrets": {"type": "array", "items": _ref("Secret")}},
        },
        "InvocationRecord": {
            "type": "object",
            "description": "One attempt of one invocation, with its captured output",
            "properties": {
                "request_id": {"type": "string"},
                "function": {"type": "string"},
                "attempt": {"type": "integer"},
                "status": {"enum": ["succeeded", "failed", "timed_out", "out_of_memory", "throttled", "expired"]},
                "trigger": {"type": "string"},
                "started_at": {"type": "number"},
                "ended_at": {"type": "number"},
                "duration_ms": {"type": "number"},
                "billed_duration_ms": {"type": "integer"},
                "cold_start": {"type": "boolean"},
                "error": {"type": ["object", "null"]},
                "output": {"type": "string"},
                "input_bytes": {"type": "integer", "description": "Bytes of the event's JSON sent to the handler"},
                "output_bytes": {"type": "integer", "description": "Bytes of the result's JSON (0: an error)"},
                "http_route": {"type": ["string", "null"], "description": "A route's invocation: its routeKey"},
                "http_status": {"type": ["integer", "null"], "description": "The status the route answered with"},
                "consumed": {
                    "type": ["object", "null"],
                    "description": "What an event, queue or topic invocation consumed (messaging and CloudEvents"
                    " attributes of its span)",
                },
                "trace_id": {"type": ["string", "null"], "description": "The trace the attempt is a span of"},
                "span_id": {"type": ["string", "null"]},
                "parent_span_id": {"type": ["string", "null"], "description": "Its caller's span; null: a new trace"},
                "links": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Traceparents of a batch's other messages (the span's links)",
                },
            },
        },
        "ParkedList": {
            "type": "object",
            "properties": {
                "parked": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "stream", "offset", "reason", "parked_at"],
                        "properties": {
                            "id": {"type": "integer", "description": "The entry's id: page with ?after="},
                            "stream": {"type": "string", "description": "The log stream it was read from"},
                            "offset": {"type": "integer", "description": "Its offset there"},
                            "reason": {"type": "string", "description": "Why it could not be read"},
                            "parked_at": {"type": "number"},
                            "data": {"type": "string", "description": "The record, when it is UTF-8 text"},
                            "data_base64": {"type": "string", "description": "The record, when it is not"},
                        },
                    },
                }
            },
        },
        "InvocationList": {
            "type": "object",
            "properties": {"invocations": {"type": "array", "items": _ref("InvocationRecord")}},
        },
        "LogLine": {
            "type": "object",
            "description": "One log line of an attempt (see docs/logs.md)",
            "properties": {
                "time": {"type": "string", "format": "date-time", "description": "RFC 3339, UTC, milliseconds"},
                "timestamp": {"type": "number", "description": "The same time in epoch seconds"},
                "function": {"type": "string"},
                "version": {"type": ["string", "null"]},
                "request_id": {"type": "string"},
                "attempt": {"type": "integer"},
                "level": {"enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]},
                "kind": {"enum": ["start", "output", "error", "end", "report"]},
                "message": {"type": "string"},
                "logger": {"type": "string", "description": "Output lines written by logging: the logger's name"},
                "report": {"type": "object", "description": "REPORT lines: duration, billing, memory, cold start"},
            },
        },
        "LogLines": {
            "type": "object",
            "properties": {
                "lines": {"type": "array", "items": _ref("LogLine")},
                "truncated": {"type": "boolean", "description": "Older matching lines were left out (see limit)"},
            },
        },
        "Invocation": {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "function": {"type": "string"},
                "status": {"type": "string", "description": "The latest attempt's"},
                "attempts": {"type": "array", "items": _ref("InvocationRecord")},
                "input": {
                    "oneOf": [_ref("InvocationInput"), {"type": "null"}],
                    "description": "The event it was given; null: its function does not keep inputs, or it expired",
                },
            },
        },
        "Progress": {
            "type": "object",
            "required": ["step", "done", "total", "unit", "finished", "updated"],
            "properties": {
                "step": {"type": "string", "description": "redrive, replay; a deploy's install, import, switch, live"},
                "done": {"type": "integer", "description": "Units done so far"},
                "total": {"type": ["integer", "null"], "description": "Units in all (null: not known)"},
                "unit": {"enum": ["messages", "events", "steps"]},
                "finished": {"type": "boolean", "description": "The operation answered (done or failed)"},
                "updated": {"type": "number", "description": "The server's monotonic clock at the last report"},
            },
        },
        "InvocationInput": {
            "type": "object",
            "required": ["size", "truncated", "redacted", "event", "rerunnable"],
            "properties": {
                "event": {"description": "The event as the handler got it (null when truncated)"},
                "size": {"type": "integer", "description": "Bytes of the event's JSON"},
                "truncated": {
                    "type": "boolean",
                    "description": "Larger than 64 KiB: only `text`, its beginning, is kept",
                },
                "text": {"type": "string", "description": "When truncated: the first 64 KiB of the event's JSON"},
                "redacted": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Fields whose values were replaced by [redacted] (credentials of HTTP events)",
                },
                "rerunnable": {"type": "boolean"},
            },
        },
        "Rerun": {
            "type": "object",
            "required": ["request_id", "rerun_of", "function", "version", "ok"],
            "properties": {
                "request_id": {"type": "string", "description": "The new invocation's"},
                "rerun_of": {"type": "string"},
                "function": {"type": "string"},
                "version": {"type": "string", "description": "The version it ran on"},
                "note": {"type": ["string", "null"], "description": "Why it ran on another version than the original"},
                "ok": {"type": "boolean"},
                "result": {"description": "What the handler returned, when ok"},
                "error": {"type": "object", "description": "Lambda's error document, when not ok"},
            },
        },
        "BusList": {
            "type": "object",
            "properties": {
                "buses": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "rules": {"type": "integer"}},
                    },
                }
            },
        },
        "Rule": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "bus": {"type": "string"},
                "pattern": _OBJECT,
                "targets": {"type": "array", "items": _OBJECT},
                "source": {"enum": ["app", "api"]},
            },
        },
        "RuleList": {
            "type": "object",
            "properties": {"bus": {"type": "string"}, "rules": {"type": "array", "items": _ref("Rule")}},
        },
        "ReplayResult": {
            "type": "object",
            "properties": {"bus": {"type": "string"}, "name": {"type": "string"}, "queued": {"type": "integer"}},
        },
        "Queue": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "config": _OBJECT,
                "stats": {
                    "type": "object",
                    "properties": {
                        "visible": {"type": "integer"},
                        "delayed": {"type": "integer"},
                        "in_flight": {"type": "integer"},
                        "depth": {"type": "integer"},
                        "oldest_age": {"type": ["number", "null"]},
                    },
                },
                "consumers": {"type": "array", "items": {"type": "string"}},
                "dead_letter": {"type": ["object", "null"]},
            },
        },
        "QueueList": {"type": "object", "properties": {"queues": {"type": "array", "items": _ref("Queue")}}},
        "StreamPut": {
            "type": "object",
            "properties": {
                "stream": {"type": "string"},
                "records": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"partition": {"type": "string"}, "sequenceNumber": {"type": "string"}},
                    },
                },
            },
        },
        "SendResult": {
            "type": "object",
            "properties": {"message_id": {"type": "string"}, "duplicate": {"type": "boolean"}},
        },
        "Received": {
            "type": "object",
            "properties": {
                "messages": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "message_id": {"type": "string"},
                            "receipt": {"type": "string"},
                            "body": {"type": "string"},
                            "body_base64": {"type": "string", "description": "Instead of body when not UTF-8"},
                            "attributes": _STRINGS,
                            "receive_count": {"type": "integer"},
                        },
                    },
                }
            },
        },
        "AckResult": {"type": "object", "properties": {"acked": {"type": "array", "items": {"type": "boolean"}}}},
        "Purged": {"type": "object", "properties": {"queue": {"type": "string"}, "purged": {"type": "integer"}}},
        "Redriven": {
            "type": "object",
            "properties": {
                "queue": {"type": "string"},
                "dead_letter": {"type": "string"},
                "moved": {"type": "integer"},
            },
        },
        "Published": {
            "type": "object",
            "properties": {"topic": {"type": "string"}, "message_id": {"type": "string"}},
        },
        "TopicList": {
            "type": "object",
            "properties": {
                "topics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "subscriptions": {"type": "integer"}},
                    },
                }
            },
        },
        "Subscription": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "arn": {"type": "string"},
                "topic": {"type": "string"},
                "kind": {"enum": ["function", "queue", "webhook"]},
                "endpoint": {"type": "string"},
                "filter": {"type": ["object", "null"]},
                "signed": {"type": "boolean"},
                "source": {"enum": ["app", "api"]},
            },
        },
        "Subscriptions": {
            "type": "object",
            "properties": {
                "topic": {"type": "string"},
                "subscriptions": {"type": "array", "items": _ref("Subscription")},
            },
        },
        "Schedule": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "function": {"type": "string"},
                "expression": {"type": "string"},
                "tz": nullable_string,
                "paused": {"type": "boolean"},
                "next_fires": {"type": "array", "items": {"type": "string", "format": "date-time"}},
                "last_fired": nullable_string,
                "first_seen": nullable_string,
            },
        },
        "ScheduleList": {"type": "object", "properties": {"schedules": {"type": "array", "items": _ref("Schedule")}}},
    }


def template(path: str) -> str:
    """A Starlette path as an OpenAPI template: `{bus:path}` is `{bus}`."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def error_statuses(operation: Operation) -> set[int]:
    """The error statuses `operation` can answer: its own, and those of the checks it passes through."""
    statuses = set(operation.errors) | {403, 500, 503, 507}
    if operation.params or operation.body is not None:
        statuses.add(400)
    if any(p.location == "path" for p in operation.params):
        statuses.add(404)
    if operation.body is not None:
        statuses |= {408, 413}
    if operation.method in CHANGING_METHODS:
        statuses |= {400, 415}
    return statuses


def parameter(param: Param) -> dict[str, Any]:
    document: dict[str, Any] = {"name": param.name, "in": param.location, "required": param.required}
    if param.description:
        document["description"] = param.description
    schema = param.schema.json_schema()
    schema.pop("description", None)
    document["schema"] = schema
    return document


def operation_object(operation: Operation) -> dict[str, Any]:
    """The OpenAPI operation object of one table row (without the security a server adds)."""
    responses: dict[str, Any] = {}
    for status, answer in sorted(operation.answers.items()):
        response: dict[str, Any] = {"description": answer.description or "OK"}
        content: dict[str, Any] = {}
        if answer.schema is not None:
            schema = _ref(answer.schema) if isinstance(answer.schema, str) else answer.schema
            content[_JSON] = {"schema": schema}
        content.update(answer.content or {})
        if content:
            response["content"] = content
        if answer.headers:
            response["headers"] = {
                name: {"description": text, "schema": {"type": "string"}} for name, text in answer.headers.items()
            }
        responses[str(status)] = response
    for status in sorted(error_statuses(operation)):
        responses.setdefault(str(status), error_ref(status))
    document: dict[str, Any] = {"summary": operation.summary}
    if operation.description:
        document["description"] = operation.description
    if operation.params:
        document["parameters"] = [parameter(p) for p in operation.params]
    body = operation.body
    if body is not None:
        media: dict[str, Any] = {}
        for kind in body.media_types:
            if body.documented is not None and kind in body.documented:
                media[kind] = {"schema": body.documented[kind]}
            elif body.schema is not None:
                media[kind] = {"schema": body.schema.json_schema()}
            else:
                media[kind] = {}
        document["requestBody"] = {"required": body.required, "content": media}
        if body.description:
            document["requestBody"]["description"] = body.description
    document["responses"] = dict(sorted(responses.items()))
    return document


def components_of(operations: Iterable[Operation]) -> dict[str, Any]:
    """The named input schemas the operations use, as JSON Schema."""
    found: dict[str, Schema] = {}
    for operation in operations:
        for param in operation.params:
            found.update(param.schema.components())
        if operation.body is not None and operation.body.schema is not None:
            found.update(operation.body.schema.components())
    return {name: schema.json_schema() for name, schema in sorted(found.items())}


def error_responses(statuses: Iterable[int]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in sorted(statuses):
        name, description = ERRORS[status]
        response: dict[str, Any] = {"description": description, "content": _content(_ref("Error"))}
        if status in (429, 503):
            response["headers"] = dict(_RETRY_AFTER)
        responses[name] = response
    return responses


def used_statuses(paths: Mapping[str, Mapping[str, Any]]) -> set[int]:
    """The error statuses a document's operations refer to."""
    return {
        int(status)
        for item in paths.values()
        for operation in item.values()
        for status, response in operation["responses"].items()
        if "$ref" in response and "/responses/" in response["$ref"]
    }


def paths_of(operations: Iterable[Operation], prefix: str = "") -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(prefix + template(operation.path), {})[operation.method.lower()] = operation_object(operation)
    return paths


def document(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the control API (as `triggerfish dev` serves it)."""
    operations = list(operations)
    paths = paths_of(operations)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Triggerfish control API",
            "version": __version__,
            "description": "The platform's own endpoints under /-/api/v1 (see docs/api.md). JSON in and out;"
            ' errors are {"error": {"code", "message"}}. Requests that change anything send'
            " `Content-Type: application/json`; the Host header must name this server (docs/security.md).",
        },
        "servers": [{"url": "/-/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": {**_schemas(), **components_of(operations)},
            "responses": error_responses(used_statuses(paths)),
        },
    }
