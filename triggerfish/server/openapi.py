"""The control API described as OpenAPI 3.1, written by hand as data (served at `GET /-/api/v1/openapi.json`).

Kept beside the code it describes: tests/server/test_control.py checks that
every route of `control_routes()` is here with its methods, and that every
path here is a route, so the document cannot drift from the server.
"""

from __future__ import annotations

from typing import Any

from triggerfish import __version__

_JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: dict[str, Any]) -> dict[str, Any]:
    return {_JSON: {"schema": schema}}


def _answer(description: str, schema: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = _content(schema)
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
        }
    return answer


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: {"$ref": f"#/components/responses/{_ERRORS[status][0]}"} for status in statuses}


def _op(
    summary: str,
    ok: dict[str, dict[str, Any]],
    *,
    errors: tuple[str, ...] = (),
    body: dict[str, Any] | None = None,
    body_required: bool = True,
    params: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**ok, **_errors(*errors)}}
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": _content(body)}
    return operation


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_ERRORS = {
    "400": ("BadRequest", "Bad input: invalid JSON (with line and column), a wrong field, a bad value"),
    "404": ("NotFound", "The function, invocation, bus, rule, queue, topic or schedule does not exist"),
    "409": ("Conflict", "The rule comes from the app's code and changes only with it"),
    "413": ("TooLarge", "The request body or message is over the limit"),
    "429": ("Throttled", "The function is at its concurrency limit (Retry-After says when to try again)"),
}

_TIME = {
    "description": "Epoch seconds, or an ISO 8601 time with a zone (2024-05-01T12:00:00Z)",
    "oneOf": [{"type": "number"}, {"type": "string"}],
}
_NAME = _path("name", "The function's name")
_QUEUE = _path("name", "The queue's name")
_TOPIC = _path("name", "The topic's name")
_BUS = _path("bus", "The bus's name (`default` always exists)")
_RULE = _path("id", "The rule's id")
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
        "RuleInput": {
            "type": "object",
            "required": ["pattern", "targets"],
            "properties": {
                "pattern": {"type": "object", "description": "An EventBridge event pattern"},
                "targets": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 5,
                    "items": {
                        "type": "object",
                        "required": ["kind", "name"],
                        "properties": {
                            "id": {"type": "string"},
                            "kind": {"enum": ["function", "queue", "topic", "bus", "webhook"]},
                            "name": {"type": "string", "description": "Function, queue, topic, bus, or webhook URL"},
                            "shape": {"enum": ["cloudevent", "eventbridge"]},
                            "transformer": _OBJECT,
                            "retry": _OBJECT,
                            "dead_letter": nullable_string,
                            "secret": {"type": "string", "description": "Webhooks: the signing secret (write-only)"},
                        },
                    },
                },
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
        "ReplayInput": {
            "type": "object",
            "required": ["start", "end"],
            "properties": {
                "start": _TIME,
                "end": _TIME,
                "rule": {"type": "string", "description": "Replay to this rule only"},
                "name": {"type": "string", "description": "Marks the replayed events (extension replayname)"},
            },
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
        "SendInput": {
            "type": "object",
            "required": ["body"],
            "properties": {
                "body": {"description": "A string is sent as it is; any other JSON value as its JSON text"},
                "delay": {"type": "number", "minimum": 0, "maximum": 900},
                "group": {"type": "string", "description": "The message group (required on FIFO queues)"},
                "dedup_id": {"type": "string"},
                "attributes": _STRINGS,
            },
        },
        "SendResult": {
            "type": "object",
            "properties": {"message_id": {"type": "string"}, "duplicate": {"type": "boolean"}},
        },
        "ReceiveInput": {
            "type": "object",
            "properties": {
                "max": {"type": "integer", "minimum": 1, "maximum": 10},
                "visibility_timeout": {"type": "number"},
                "wait": {"type": "number", "minimum": 0, "maximum": 20},
            },
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
        "AckInput": {
            "type": "object",
            "required": ["receipts"],
            "properties": {"receipts": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        },
        "AckResult": {"type": "object", "properties": {"acked": {"type": "array", "items": {"type": "boolean"}}}},
        "Purged": {"type": "object", "properties": {"queue": {"type": "string"}, "purged": {"type": "integer"}}},
        "RedriveInput": {
            "type": "object",
            "properties": {
                "dead_letter": {"type": "string", "description": "Move from this queue (default: the configured one)"},
                "max": {"type": "integer", "minimum": 1},
            },
        },
        "Redriven": {
            "type": "object",
            "properties": {
                "queue": {"type": "string"},
                "dead_letter": {"type": "string"},
                "moved": {"type": "integer"},
            },
        },
        "PublishInput": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"description": "A string is published as it is; any other JSON value as its JSON text"},
                "subject": {"type": "string"},
                "attributes": _STRINGS,
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
        "SubscribeInput": {
            "type": "object",
            "required": ["kind", "endpoint"],
            "properties": {
                "kind": {"enum": ["function", "queue", "webhook"]},
                "endpoint": {"type": "string", "description": "The function, the queue, or the webhook's URL"},
                "filter": {"type": "object", "description": "An EventBridge pattern, as SNS filter policies"},
                "filter_scope": {"enum": ["attributes", "body"]},
                "raw": {"type": "boolean", "description": "Queues and webhooks: the message itself, not SNS's JSON"},
                "secret": {"type": "string", "description": "Webhooks: the signing secret (write-only)"},
                "dead_letter": {"type": "string"},
                "retry": _OBJECT,
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


def _paths() -> dict[str, Any]:
    invocation_type = {
        "name": "X-Amz-Invocation-Type",
        "in": "header",
        "required": False,
        "description": "RequestResponse (default), Event or DryRun, as Lambda's Invoke",
        "schema": {"enum": ["RequestResponse", "Event", "DryRun"]},
    }
    log_type = {
        "name": "X-Amz-Log-Type",
        "in": "header",
        "required": False,
        "description": "Tail: the last 4 KB of the captured output in X-Amz-Log-Result (base64)",
        "schema": {"enum": ["None", "Tail"]},
    }
    invocation_filters = (
        _query("function", "Only this function's", {"type": "string"}),
        _query("status", "Only attempts with this status", {"type": "string"}),
        _query("request_id", "Only this invocation's attempts", {"type": "string"}),
        _query("since", "Started at or after", _TIME),
        _query("until", "Started before", _TIME),
        _query("limit", "At most this many (default 100)", {"type": "integer", "minimum": 1, "maximum": 1000}),
        _query("order", "asc: oldest first (default); desc: newest first", {"enum": ["asc", "desc"]}),
    )
    return {
        "/openapi.json": {"get": _op("This document", {"200": _answer("OpenAPI 3.1", _OBJECT)})},
        "/functions": {
            "get": _op(
                "The serving version's functions: triggers, settings, pool", {"200": _answer("", _ref("FunctionList"))}
            )
        },
        "/functions/{name}": {
            "get": _op("One function", {"200": _answer("", _ref("Function"))}, errors=("404",), params=(_NAME,))
        },
        "/functions/{name}/invoke": {
            "post": _op(
                "Invoke a function (Lambda's Invoke API); the body is the event",
                {
                    "200": _answer(
                        "The result; with X-Amz-Function-Error, the handler's error document",
                        {},
                        **{
                            "x-triggerfish-request-id": "The invocation's request id",
                            "X-Amz-Function-Error": "Unhandled when the handler failed",
                            "X-Amz-Log-Result": "With X-Amz-Log-Type: Tail",
                        },
                    ),
                    "202": _answer("Queued (type Event)", _ref("Accepted")),
                    "204": _answer("DryRun: the request is valid"),
                },
                errors=("400", "404", "413", "429"),
                body={"description": "The event: any JSON value (empty: {})"},
                body_required=False,
                params=(
                    _NAME,
                    _query("type", "Like X-Amz-Invocation-Type", {"enum": ["RequestResponse", "Event", "DryRun"]}),
                    invocation_type,
                    log_type,
                ),
            )
        },
        "/invocations": {
            "get": _op(
                "Invocation records, one per attempt",
                {"200": _answer("", _ref("InvocationList"))},
                errors=("400", "404"),
                params=invocation_filters,
            )
        },
        "/invocations/{request_id}": {
            "get": _op(
                "Every attempt of one invocation, with its captured output",
                {"200": _answer("", _ref("Invocation"))},
                errors=("404",),
                params=(_path("request_id", "The invocation's request id"),),
            )
        },
        "/logs": {
            "get": _op(
                "Log lines made from the invocation records: START, output, errors, END and REPORT",
                {
                    "200": {
                        "description": "The newest matching lines, oldest first; with follow=1, an event stream",
                        "content": {
                            **_content(_ref("LogLines")),
                            "text/event-stream": {
                                "schema": {
                                    "type": "string",
                                    "description": "`data: {LogLine}` per line; `: heartbeat` every 15 s;"
                                    " `event: end` when the server stops or the key is revoked",
                                }
                            },
                        },
                    }
                },
                errors=("400", "404"),
                params=(
                    _query("function", "Only this function's lines", {"type": "string"}),
                    _query("request_id", "Only this invocation's lines", {"type": "string"}),
                    _query(
                        "level",
                        "The lowest level shown (default DEBUG)",
                        {"enum": ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]},
                    ),
                    _query("since", "30s, 10m, 2h, 1d ago, or an RFC 3339 time", {"type": "string"}),
                    _query("limit", "The newest this many lines (default 1000)", {"type": "integer", "maximum": 10000}),
                    _query("follow", "1: stream new lines as server-sent events", {"enum": ["0", "1"]}),
                ),
            )
        },
        "/buses": {"get": _op("The buses, with how many rules each has", {"200": _answer("", _ref("BusList"))})},
        "/buses/{bus}/rules": {
            "get": _op("A bus's rules", {"200": _answer("", _ref("RuleList"))}, errors=("404",), params=(_BUS,))
        },
        "/buses/{bus}/rules/{id}": {
            "put": _op(
                "Add or replace a run-time rule (kept in the store)",
                {"200": _answer("Replaced", _ref("Rule")), "201": _answer("Added", _ref("Rule"))},
                errors=("400", "409", "413"),
                body=_ref("RuleInput"),
                params=(_BUS, _RULE),
            ),
            "delete": _op(
                "Remove a run-time rule", {"204": _answer("Removed")}, errors=("404", "409"), params=(_BUS, _RULE)
            ),
        },
        "/buses/{bus}/replay": {
            "post": _op(
                "Deliver a time range of a bus's events again, to one rule or all",
                {"202": _answer("Deliveries queued", _ref("ReplayResult"))},
                errors=("400", "404"),
                body=_ref("ReplayInput"),
                params=(_BUS,),
            )
        },
        "/queues": {"get": _op("Every queue, with its stats", {"200": _answer("", _ref("QueueList"))})},
        "/queues/{name}": {
            "get": _op(
                "A queue: configuration, stats, consumers, dead-letter queue",
                {"200": _answer("", _ref("Queue"))},
                errors=("404",),
                params=(_QUEUE,),
            )
        },
        "/queues/{name}/messages": {
            "post": _op(
                "Send a message",
                {"200": _answer("Stored", _ref("SendResult"))},
                errors=("400", "404", "413"),
                body=_ref("SendInput"),
                params=(_QUEUE,),
            ),
            "delete": _op(
                "Purge: delete every message", {"200": _answer("", _ref("Purged"))}, errors=("404",), params=(_QUEUE,)
            ),
        },
        "/queues/{name}/receive": {
            "post": _op(
                "Receive (lease) messages",
                {"200": _answer("", _ref("Received"))},
                errors=("400", "404"),
                body=_ref("ReceiveInput"),
                body_required=False,
                params=(_QUEUE,),
            )
        },
        "/queues/{name}/ack": {
            "post": _op(
                "Acknowledge (delete) received messages by receipt",
                {"200": _answer("One boolean per receipt: false when its lease had ended", _ref("AckResult"))},
                errors=("400", "404"),
                body=_ref("AckInput"),
                params=(_QUEUE,),
            )
        },
        "/queues/{name}/redrive": {
            "post": _op(
                "Move the messages of the queue's dead-letter queue back to it",
                {"200": _answer("", _ref("Redriven"))},
                errors=("400", "404"),
                body=_ref("RedriveInput"),
                body_required=False,
                params=(_QUEUE,),
            )
        },
        "/topics": {
            "get": _op("Every topic, with how many subscriptions it has", {"200": _answer("", _ref("TopicList"))})
        },
        "/topics/{name}/messages": {
            "post": _op(
                "Publish a message to a topic",
                {"202": _answer("Stored; fanned out to every subscription", _ref("Published"))},
                errors=("400", "404", "413"),
                body=_ref("PublishInput"),
                params=(_TOPIC,),
            )
        },
        "/topics/{name}/subscriptions": {
            "get": _op(
                "A topic's subscriptions",
                {"200": _answer("", _ref("Subscriptions"))},
                errors=("404",),
                params=(_TOPIC,),
            ),
            "post": _op(
                "Subscribe a function, queue or webhook (kept in the store); the same again changes nothing",
                {
                    "200": _answer("Already subscribed", _ref("Subscription")),
                    "201": _answer("Added", _ref("Subscription")),
                },
                errors=("400", "413"),
                body=_ref("SubscribeInput"),
                params=(_TOPIC,),
            ),
        },
        "/topics/{name}/subscriptions/{id}": {
            "delete": _op(
                "Remove a run-time subscription",
                {"204": _answer("Removed")},
                errors=("404", "409"),
                params=(_TOPIC, _path("id", "The subscription's id")),
            )
        },
        "/schedules": {
            "get": _op(
                "Every schedule, with its next fire times",
                {"200": _answer("", _ref("ScheduleList"))},
                errors=("400",),
                params=(_query("count", "Fire times per schedule (default 5)", {"type": "integer", "maximum": 100}),),
            )
        },
        "/schedules/{name}/pause": {
            "post": _op(
                "Pause a schedule (on every server, across restarts)",
                {"200": _answer("", _ref("Schedule"))},
                errors=("404",),
                params=(_path("name", "The schedule's name"),),
            )
        },
        "/schedules/{name}/resume": {
            "post": _op(
                "Resume a schedule from now: the times it was paused do not fire",
                {"200": _answer("", _ref("Schedule"))},
                errors=("404",),
                params=(_path("name", "The schedule's name"),),
            )
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the control API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Triggerfish control API",
            "version": __version__,
            "description": "The platform's own endpoints under /-/api/v1 (see docs/api.md). JSON in and out;"
            ' errors are {"error": {"code", "message"}}.',
        },
        "servers": [{"url": "/-/api/v1"}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": {
                name: {"description": description, "content": _content(_ref("Error"))}
                for name, description in _ERRORS.values()
            },
        },
    }
