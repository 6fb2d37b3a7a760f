"""The control API under `/-/api/v1/`: functions, invocations, buses and their rules (queues, topics and
schedules are in control_triggers.py, the OpenAPI document in openapi.py).

JSON in and out. Every error is `{"error": {"code": ..., "message": ...}}`
(see control_io.py for which error gets which status); an unknown function,
invocation, bus, rule, queue, topic or schedule is 404 naming it. The
endpoints are documented in docs/api.md and served as OpenAPI 3.1 at
`GET /-/api/v1/openapi.json`.

Invoking follows Lambda's Invoke API: `X-Amz-Invocation-Type` (or `?type=`)
`RequestResponse` (the default) waits for the result, `Event` queues the
invocation durably and answers 202, `DryRun` only checks the request; a
handler error is status 200 with Lambda's error document in the body and
`X-Amz-Function-Error: Unhandled`, so a client tells it from an error of
the API itself by that header.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from triggerfish._json import loads
from triggerfish.bus.parking import parked
from triggerfish.bus.router import SHAPES
from triggerfish.bus.rules import KINDS as TARGET_KINDS
from triggerfish.bus.rules import Rule
from triggerfish.errors import HandlerError, ThrottledError
from triggerfish.loader import describe_trigger, spec_to_dict
from triggerfish.model import FunctionSpec, HttpTrigger
from triggerfish.names import record_stream
from triggerfish.observe.traces import trace_spans
from triggerfish.runtime.invoke import new_request_id
from triggerfish.runtime.records import STATUSES, InvocationRecord
from triggerfish.server import (
    control_batch,
    control_events,
    control_eventstore,
    control_inputs,
    control_secrets,
    control_streams,
    control_traces,
    control_triggers,
    control_usage,
    control_workflows,
    logs,
    openapi,
    progress,
)
from triggerfish.server.control_io import ApiError, json_response, listed, platform_of, read_body, valid_traceparent
from triggerfish.server.operations import Answer, Body, Operation, header, inputs, path, query, routes
from triggerfish.server.platform import Platform
from triggerfish.server.progress import BOARD, operation_of
from triggerfish.server.schema import (
    AnyValue,
    Array,
    Enum,
    Integer,
    Moment,
    Named,
    Nullable,
    Number,
    Object,
    Text,
)
from triggerfish.server.versions import AppVersion
from triggerfish.store.base import check_name

#: Lambda's limits on an invocation's payload: 6 MB when the caller waits, 256 KB when it is queued.
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 256 * 1024
#: How much of the end of an invocation's captured output `X-Amz-Log-Type: Tail` returns, as Lambda does.
LOG_TAIL_BYTES = 4096
MAX_LISTED_INVOCATIONS = 1000
REQUEST_ID_HEADER = "x-triggerfish-request-id"
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


# --- functions -------------------------------------------------------------------------------


def function_spec(version: AppVersion, name: str) -> FunctionSpec:
    """The function `name` of `version`, or the 404 that names the declared ones."""
    spec = version.specs.get(name)
    if spec is None:
        raise ApiError(
            404, "FunctionNotFound", f"no function named {name!r}; the app declares: {listed(version.specs)}"
        )
    return spec


def _describe(version: AppVersion, spec: FunctionSpec) -> dict[str, Any]:
    described = spec_to_dict(spec)
    triggers = []
    for document, trigger in zip(described["triggers"], spec.triggers, strict=True):
        if isinstance(trigger, HttpTrigger) and isinstance(trigger.auth, Mapping):
            # Already a description (specs cross from the zygote as JSON); keep it as it came.
            document["auth"] = dict(trigger.auth)
        triggers.append({**document, "description": describe_trigger(trigger)})
    return {
        "name": spec.name,
        "ref": spec.ref,
        "version": version.number,
        "settings": described["settings"],
        "triggers": triggers,
        "pool": version.runner.stats(spec.name),
    }


async def list_functions(request: Request) -> Response:
    version = platform_of(request).current
    functions = [_describe(version, spec) for spec in version.specs.values()]
    return json_response({"app": version.app_name, "version": version.number, "functions": functions})


async def get_function(request: Request) -> Response:
    version = platform_of(request).current
    return json_response(_describe(version, function_spec(version, inputs(request).path["name"])))


async def invoke_function(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    name = given.path["name"]
    function_spec(platform.current, name)
    kind = given.query.get("type") or given.headers.get("x-amz-invocation-type") or "RequestResponse"
    body = await read_body(request, MAX_ASYNC_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD)
    event = event_of(body)
    if kind == "DryRun":
        return Response(status_code=204)
    request_id = new_request_id()
    headers = {REQUEST_ID_HEADER: request_id}
    traceparent = valid_traceparent(request.headers.get("traceparent"))
    if kind == "Event":
        await platform.invoke_async(name, event, request_id=request_id, traceparent=traceparent)
        return json_response({"request_id": request_id}, 202, headers)
    try:
        result = await platform.invoke(name, event, request_id=request_id, traceparent=traceparent)
    except HandlerError as exc:
        headers["X-Amz-Function-Error"] = "Unhandled"
        await _log_tail(request, platform, request_id, headers)
        return json_response(exc.error, 200, headers)
    except ThrottledError as exc:
        raise ApiError(
            429,
            "TooManyRequestsException",
            f"{exc}; try again shortly",
            headers={"Retry-After": "1", REQUEST_ID_HEADER: request_id},
            function=name,
            request_id=request_id,
        ) from None
    await _log_tail(request, platform, request_id, headers)
    return json_response(result, 200, headers)


def event_of(body: bytes) -> Any:
    """An Invoke request's event: its body as strict JSON; none is `{}`, as Lambda hands it (InvalidJSONError)."""
    return loads(body, where="body") if body.strip() else {}


async def _log_tail(request: Request, platform: Platform, request_id: str, headers: dict[str, str]) -> None:
    if (request.headers.get("x-amz-log-type") or "").lower() != "tail":
        return
    record = await platform.current.invoker.records.get(request_id)
    output = b"" if record is None else record.output.encode("utf-8", "replace")
    headers["X-Amz-Log-Result"] = base64.b64encode(output[-LOG_TAIL_BYTES:]).decode("ascii")


# --- invocations -----------------------------------------------------------------------------


async def list_parked(request: Request) -> Response:
    platform = platform_of(request)
    params = inputs(request).query
    found = await parked(platform.store.log, after=params.get("after", 0), limit=params.get("limit", 100))
    return json_response({"parked": [entry.to_dict() for entry in found]})


async def list_invocations(request: Request) -> Response:
    platform = platform_of(request)
    params = inputs(request).query
    function = params.get("function")
    if function is not None:
        await _check_recorded(platform, function)
    status = params.get("status")
    since, until = params.get("since"), params.get("until")
    limit = params.get("limit", 100)
    order = params.get("order", "asc")
    records = platform.current.invoker.records
    if "request_id" in params or "trace_id" in params:
        found = [
            r
            for r in await _attempts(platform, params)
            if (function is None or r.function == function)
            and (status is None or r.status == status)
            and (since is None or r.started_at >= since)
            and (until is None or r.started_at < until)
        ]
    elif order == "asc":
        found = await records.query(function, status, since, until, limit)
    else:
        # The newest `limit`: the query reads every match anyway, so ask for all of them.
        found = await records.query(function, status, since, until, 2**62)
    if order == "desc":
        found = found[::-1]
    return json_response({"invocations": [r.to_dict() for r in found[:limit]]})


async def _attempts(platform: Platform, params: Mapping[str, Any]) -> list[InvocationRecord]:
    """The attempts of the invocation `request_id` names, or of every invocation of the trace `trace_id` names."""
    records = platform.current.invoker.records
    wanted = params.get("request_id")
    if "trace_id" not in params:
        return await records.attempts(str(wanted))
    await records.settled()
    spans = await trace_spans(platform.store, params["trace_id"])
    ids = sorted({s.request_id for s in spans if s.kind != "producer" and s.request_id is not None})
    found = [r for request_id in ids if wanted in (None, request_id) for r in await records.attempts(request_id)]
    return sorted(found, key=lambda r: (r.started_at, r.request_id, r.attempt))


async def _check_recorded(platform: Platform, function: str) -> None:
    """A function filter names a declared function, or one that has records (from an earlier version)."""
    if function in platform.current.specs:
        return
    if record_stream(function) in await platform.store.log.streams():
        return
    raise ApiError(
        404,
        "FunctionNotFound",
        f"no function named {function!r} is declared or has invocation records; the app declares:"
        f" {listed(platform.current.specs)}",
    )


async def get_invocation(request: Request) -> Response:
    platform = platform_of(request)
    request_id = inputs(request).path["request_id"]
    records = platform.current.invoker.records
    attempts = await records.attempts(request_id)
    if not attempts:
        days = records.retention / 86400
        raise ApiError(
            404,
            "InvocationNotFound",
            f"no invocation with request id {request_id!r} has a record (records are kept {days:g} days)",
        )
    last = attempts[-1]
    return json_response(
        {
            "request_id": request_id,
            "function": last.function,
            "status": last.status,
            "attempts": [r.to_dict() for r in attempts],
            "input": await records.input(request_id),
        }
    )


# --- buses and rules -------------------------------------------------------------------------


async def _buses(platform: Platform) -> list[str]:
    # `default` always exists, even before its first rule or event.
    return sorted({"default", *await platform.bus.buses()})


async def _known_bus(platform: Platform, bus: str) -> str:
    buses = await _buses(platform)
    if bus not in buses:
        raise ApiError(404, "BusNotFound", f"no bus named {bus!r}; the buses are: {listed(buses)}")
    return bus


def _rule_json(rule: Rule) -> dict[str, Any]:
    document = rule.to_dict()
    document["source"] = rule.source
    for target in document["targets"]:
        # A webhook's secret is write-only: say that it is set, never what it is.
        target["signed"] = target.pop("secret") is not None
    return document


async def list_buses(request: Request) -> Response:
    platform = platform_of(request)
    rules = platform.bus.rules
    return json_response({"buses": [{"name": b, "rules": len(rules.all(b))} for b in await _buses(platform)]})


async def list_rules(request: Request) -> Response:
    platform = platform_of(request)
    bus = await _known_bus(platform, inputs(request).path["bus"])
    return json_response({"bus": bus, "rules": [_rule_json(r) for r in platform.bus.rules.all(bus)]})


async def put_rule(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    bus, rule_id = check_name("bus", given.path["bus"]), given.path["id"]
    document = given.body
    for name, expected in (("id", rule_id), ("bus", bus)):
        if name in document and document[name] != expected:
            raise ApiError(
                400, "InvalidInput", f"body: {name} {document[name]!r} differs from the path's {expected!r}; drop it"
            )
    rules = platform.bus.rules
    existing = rules.get(bus, rule_id)
    if existing is not None and existing.source == "app":
        raise _app_rule(bus, rule_id)
    rule = Rule.from_dict(
        {"id": rule_id, "bus": bus, "pattern": document.get("pattern"), "targets": document.get("targets")}
    )
    specs = platform.current.specs
    for index, target in enumerate(rule.targets):
        if target.kind == "function" and target.name not in specs:
            raise ApiError(
                400,
                "UnknownFunction",
                f"rule {rule_id!r}: targets[{index}] names no function {target.name!r}; the app declares:"
                f" {listed(specs)}",
            )
    stored = await rules.put(rule)
    await platform.changed("rules")
    return json_response(_rule_json(stored), 201 if existing is None else 200)


async def delete_rule(request: Request) -> Response:
    platform = platform_of(request)
    bus, rule_id = inputs(request).path["bus"], inputs(request).path["id"]
    rule = _rule(platform, bus, rule_id)
    if rule.source == "app":
        raise _app_rule(bus, rule_id)
    await platform.bus.rules.remove(bus, rule_id)
    await platform.changed("rules")
    return Response(status_code=204)


def _rule(platform: Platform, bus: str, rule_id: str) -> Rule:
    rules = platform.bus.rules
    rule = rules.get(bus, rule_id)
    if rule is None:
        raise ApiError(
            404,
            "RuleNotFound",
            f"bus {bus!r} has no rule {rule_id!r}; its rules are: {listed(r.id for r in rules.all(bus))}",
        )
    return rule


def _app_rule(bus: str, rule_id: str) -> ApiError:
    return ApiError(
        409,
        "RuleFromApp",
        f"rule {rule_id!r} on bus {bus!r} comes from the app's @app.on_event; it changes only with the code."
        " Give a run-time rule another id",
    )


async def replay(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    bus = await _known_bus(platform, given.path["bus"])
    document = given.body
    start, end = document["start"], document["end"]
    rule_id = document.get("rule")
    if rule_id is not None:
        _rule(platform, bus, rule_id)
    name = document.get("name") or "replay"
    operation = operation_of(request)
    try:
        queued = await platform.archive.replay(
            bus, start, end, rule=rule_id, name=name, progress=BOARD.reporter(operation, "events")
        )
    finally:
        BOARD.finish(operation)
    return json_response({"bus": bus, "name": name, "rule": rule_id, "start": start, "end": end, "queued": queued}, 202)


async def openapi_document(request: Request) -> Response:
    document = openapi.document(OPERATIONS)
    app = request.path_params.get("app")
    if app is not None:
        # Under `triggerfish serve` this app's API lives under its own prefix: say so, or clients call dev's paths.
        document["servers"] = [{"url": f"/-/api/v1/apps/{app}"}]
    return json_response(document)


# --- the table -------------------------------------------------------------------------------

_FUNCTION = path("name", "The function's name")
_BUS = path("bus", "The bus's name (`default` always exists)")
_RULE = path("id", "The rule's id", Text(min_length=1, max_length=64, pattern="[^/]+", hint="a rule id without '/'"))
_TIME = Moment()
_OBJECT = Object({}, additional=AnyValue())

RULE_INPUT = Named(
    "RuleInput",
    Object(
        {
            "pattern": Object({}, "An EventBridge event pattern", additional=AnyValue()),
            "targets": Array(
                Object(
                    {
                        "id": Text("Unique within the rule (default: the name)", min_length=1),
                        "kind": Enum(TARGET_KINDS),
                        "name": Text("The function, queue, topic or bus; a webhook's URL", min_length=1),
                        "shape": Enum(SHAPES, "How the event is delivered (default cloudevent)"),
                        "transformer": Object(
                            {"input_template": Text(), "input_paths": Object({}, additional=Text())},
                            "EventBridge's input transformer",
                            required=("input_template",),
                        ),
                        "retry": Object(
                            {
                                "max_event_age": Number(minimum=0),
                                "max_attempts": Integer(minimum=0),
                                "backoff": Object(
                                    {"base": Number(), "multiplier": Number(), "ceiling": Number(), "jitter": Number()}
                                ),
                            },
                            "EventBridge's retry policy (default: 24 hours, 185 attempts)",
                        ),
                        "dead_letter": Nullable(Text("The queue that gets what could not be delivered", min_length=1)),
                        "secret": Nullable(Text("Webhooks: the signing secret (write-only)", min_length=1)),
                    },
                    required=("kind", "name"),
                ),
                min_items=1,
                max_items=5,
            ),
            "id": Text("The rule's id, as in the path (may be left out)"),
            "bus": Text("The bus, as in the path (may be left out)"),
        },
        required=("pattern", "targets"),
    ),
)
REPLAY_INPUT = Named(
    "ReplayInput",
    Object(
        {
            "start": Moment(),
            "end": Moment(),
            "rule": Text("Replay to this rule only", min_length=1),
            "name": Text("Marks the replayed events (extension replayname; default replay)", min_length=1),
        },
        required=("start", "end"),
    ),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET",
        "/openapi.json",
        openapi_document,
        "This document",
        {200: Answer("OpenAPI 3.1", {"type": "object"})},
        "read",
    ),
    Operation(
        "GET",
        "/functions",
        list_functions,
        "The serving version's functions: triggers, settings, pool",
        {200: Answer("", "FunctionList")},
        "read",
    ),
    Operation(
        "GET",
        "/functions/{name}",
        get_function,
        "One function",
        {200: Answer("", "Function")},
        "read",
        params=(_FUNCTION,),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/functions/{name}/invoke",
        invoke_function,
        "Invoke a function (Lambda's Invoke API); the body is the event",
        {
            200: Answer(
                "The result; with X-Amz-Function-Error, the handler's error document",
                {},
                {
                    REQUEST_ID_HEADER: "The invocation's request id",
                    "X-Amz-Function-Error": "Unhandled when the handler failed",
                    "X-Amz-Log-Result": "With X-Amz-Log-Type: Tail",
                },
            ),
            202: Answer("Queued (type Event)", "Accepted"),
            204: Answer("DryRun: the request is valid"),
        },
        "invoke",
        params=(
            _FUNCTION,
            query("type", "Like X-Amz-Invocation-Type", Enum(INVOCATION_TYPES, any_case=True)),
            header(
                "X-Amz-Invocation-Type",
                "RequestResponse (default), Event or DryRun, as Lambda's Invoke",
                Enum(INVOCATION_TYPES, any_case=True),
            ),
            header(
                "X-Amz-Log-Type",
                "Tail: the last 4 KB of the captured output in X-Amz-Log-Result (base64)",
                Enum(("None", "Tail"), any_case=True),
            ),
        ),
        # Read whole and parsed by the handler: an empty body is `{}` (as Lambda gives), `null` is null.
        body=Body(AnyValue("The event: any JSON value (empty: {})"), required=False, limit=MAX_SYNC_PAYLOAD, raw=True),
        errors=(404, 429),
    ),
    Operation(
        "GET",
        "/invocations",
        list_invocations,
        "Invocation records, one per attempt",
        {200: Answer("", "InvocationList")},
        "read",
        params=(
            query("function", "Only this function's", Text(min_length=1)),
            query("status", "Only attempts with this status", Enum(STATUSES)),
            query("request_id", "Only this invocation's attempts", Text(min_length=1)),
            query("trace_id", "Only the attempts of this trace's invocations", control_traces.TRACE_ID),
            query("since", "Started at or after", _TIME),
            query("until", "Started before", _TIME),
            query("limit", "At most this many (default 100)", Integer(minimum=1, maximum=MAX_LISTED_INVOCATIONS)),
            query("order", "asc: oldest first (default); desc: newest first", Enum(("asc", "desc"))),
        ),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/invocations/{request_id}",
        get_invocation,
        "Every attempt of one invocation, with its captured output, and its input where its function keeps inputs",
        {200: Answer("", "Invocation")},
        "read",
        params=(path("request_id", "The invocation's request id"),),
        errors=(404,),
    ),
    logs.OPERATION,
    Operation(
        "GET",
        "/parked",
        list_parked,
        "Log records a consumer could not read (kept, never dropped), with where they came from and why",
        {200: Answer("", "ParkedList")},
        "read",
        params=(
            query("after", "Only entries after this id (to page)", Integer(minimum=0)),
            query("limit", "At most this many (default 100)", Integer(minimum=1, maximum=1000)),
        ),
    ),
    Operation(
        "GET", "/buses", list_buses, "The buses, with how many rules each has", {200: Answer("", "BusList")}, "read"
    ),
    Operation(
        "GET",
        "/buses/{bus:path}/rules",
        list_rules,
        "A bus's rules",
        {200: Answer("", "RuleList")},
        "read",
        params=(_BUS,),
        errors=(404,),
    ),
    Operation(
        "PUT",
        "/buses/{bus:path}/rules/{id}",
        put_rule,
        "Add or replace a run-time rule (kept in the store)",
        {200: Answer("Replaced", "Rule"), 201: Answer("Added", "Rule")},
        "configure",
        params=(_BUS, _RULE),
        body=Body(RULE_INPUT),
        errors=(409,),
    ),
    Operation(
        "DELETE",
        "/buses/{bus:path}/rules/{id}",
        delete_rule,
        "Remove a run-time rule",
        {204: Answer("Removed")},
        "configure",
        params=(_BUS, _RULE),
        errors=(404, 409),
    ),
    Operation(
        "POST",
        "/buses/{bus:path}/replay",
        replay,
        "Deliver a time range of a bus's events again, to one rule or all",
        {202: Answer("Deliveries queued", "ReplayResult")},
        "configure",
        params=(_BUS,),
        body=Body(REPLAY_INPUT),
        errors=(404,),
    ),
    control_events.OPERATION,
    *control_triggers.OPERATIONS,
    *control_secrets.OPERATIONS,
    *control_workflows.OPERATIONS,
    *control_eventstore.OPERATIONS,
    *control_usage.OPERATIONS,
    *control_streams.OPERATIONS,
    *control_traces.OPERATIONS,
    *control_inputs.OPERATIONS,
    *control_batch.OPERATIONS,
    progress.OPERATION,
)


def control_routes() -> list[BaseRoute]:
    """The control API's routes, mounted at `/-/api/v1` by triggerfish.server.http (open: `triggerfish dev`)."""
    return routes(OPERATIONS)
