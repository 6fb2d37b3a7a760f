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
from starlette.routing import BaseRoute, Route

from triggerfish._json import loads
from triggerfish.bus.rules import Rule
from triggerfish.errors import HandlerError, ThrottledError
from triggerfish.events import tracecontext
from triggerfish.loader import describe_trigger, spec_to_dict
from triggerfish.model import FunctionSpec, HttpTrigger
from triggerfish.names import record_stream
from triggerfish.runtime.invoke import new_request_id
from triggerfish.server import control_triggers, logs, openapi
from triggerfish.server.control_io import (
    ApiError,
    endpoint,
    fields,
    json_body,
    json_response,
    listed,
    moment,
    platform_of,
    query,
    query_int,
    read_body,
    text,
)
from triggerfish.server.platform import Platform
from triggerfish.server.versions import AppVersion
from triggerfish.store.base import check_name

#: Lambda's limits on an invocation's payload: 6 MB when the caller waits, 256 KB when it is queued.
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 256 * 1024
#: How much of the end of an invocation's captured output `X-Amz-Log-Type: Tail` returns, as Lambda does.
LOG_TAIL_BYTES = 4096
MAX_LISTED_INVOCATIONS = 1000
REQUEST_ID_HEADER = "x-triggerfish-request-id"
_INVOCATION_TYPES = {"requestresponse": "RequestResponse", "event": "Event", "dryrun": "DryRun"}


# --- functions -------------------------------------------------------------------------------


def _spec(version: AppVersion, name: str) -> FunctionSpec:
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


@endpoint
async def list_functions(request: Request) -> Response:
    version = platform_of(request).current
    functions = [_describe(version, spec) for spec in version.specs.values()]
    return json_response({"app": version.app_name, "version": version.number, "functions": functions})


@endpoint
async def get_function(request: Request) -> Response:
    version = platform_of(request).current
    return json_response(_describe(version, _spec(version, request.path_params["name"])))


@endpoint
async def invoke_function(request: Request) -> Response:
    platform = platform_of(request)
    name = request.path_params["name"]
    _spec(platform.current, name)
    kind = _invocation_type(request)
    body = await read_body(request, MAX_ASYNC_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD)
    # Lambda hands an invocation without a payload `{}`.
    event = loads(body, where="body") if body.strip() else {}
    if kind == "DryRun":
        return Response(status_code=204)
    request_id = new_request_id()
    headers = {REQUEST_ID_HEADER: request_id}
    parent = request.headers.get("traceparent")
    # A malformed traceparent is ignored, as W3C Trace Context says: the invocation starts a new trace.
    traceparent = parent if parent is not None and tracecontext.is_valid(parent) else None
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


def _invocation_type(request: Request) -> str:
    params = query(request, ("type",))
    given = params.get("type") or request.headers.get("x-amz-invocation-type") or "RequestResponse"
    kind = _INVOCATION_TYPES.get(given.lower())
    if kind is None:
        raise ApiError(
            400,
            "InvalidInput",
            f"invocation type {given!r} is unknown; use RequestResponse (wait for the result), Event (queue it)"
            " or DryRun (check the request only)",
        )
    return kind


async def _log_tail(request: Request, platform: Platform, request_id: str, headers: dict[str, str]) -> None:
    if (request.headers.get("x-amz-log-type") or "").lower() != "tail":
        return
    record = await platform.current.invoker.records.get(request_id)
    output = b"" if record is None else record.output.encode("utf-8", "replace")
    headers["X-Amz-Log-Result"] = base64.b64encode(output[-LOG_TAIL_BYTES:]).decode("ascii")


# --- invocations -----------------------------------------------------------------------------


@endpoint
async def list_invocations(request: Request) -> Response:
    platform = platform_of(request)
    params = query(request, ("function", "status", "request_id", "since", "until", "limit", "order"))
    function = params.get("function")
    if function is not None:
        await _check_recorded(platform, function)
    status = params.get("status")
    since = None if "since" not in params else moment(params["since"], "since")
    until = None if "until" not in params else moment(params["until"], "until")
    limit = query_int(params, "limit", low=1, high=MAX_LISTED_INVOCATIONS, default=100)
    order = params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise ApiError(400, "InvalidInput", f"order must be asc (oldest first) or desc (newest first), not {order!r}")
    records = platform.current.invoker.records
    if "request_id" in params:
        found = [
            r
            for r in await records.attempts(params["request_id"])
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


@endpoint
async def get_invocation(request: Request) -> Response:
    platform = platform_of(request)
    request_id = request.path_params["request_id"]
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


@endpoint
async def list_buses(request: Request) -> Response:
    platform = platform_of(request)
    rules = platform.bus.rules
    return json_response({"buses": [{"name": b, "rules": len(rules.all(b))} for b in await _buses(platform)]})


@endpoint
async def list_rules(request: Request) -> Response:
    platform = platform_of(request)
    bus = await _known_bus(platform, request.path_params["bus"])
    return json_response({"bus": bus, "rules": [_rule_json(r) for r in platform.bus.rules.all(bus)]})


@endpoint
async def put_rule(request: Request) -> Response:
    platform = platform_of(request)
    bus, rule_id = check_name("bus", request.path_params["bus"]), request.path_params["id"]
    document = fields(await json_body(request), ("pattern", "targets", "id", "bus"))
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


@endpoint
async def delete_rule(request: Request) -> Response:
    platform = platform_of(request)
    bus, rule_id = request.path_params["bus"], request.path_params["id"]
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


@endpoint
async def replay(request: Request) -> Response:
    platform = platform_of(request)
    bus = await _known_bus(platform, request.path_params["bus"])
    document = fields(await json_body(request), ("start", "end", "rule", "name"))
    for name in ("start", "end"):
        if name not in document:
            raise ApiError(400, "InvalidInput", f"body: {name} is required (epoch seconds or ISO 8601 time)")
    start, end = moment(document["start"], "start"), moment(document["end"], "end")
    rule_id = text(document, "rule")
    if rule_id is not None:
        _rule(platform, bus, rule_id)
    name = text(document, "name") or "replay"
    queued = await platform.archive.replay(bus, start, end, rule=rule_id, name=name)
    return json_response({"bus": bus, "name": name, "rule": rule_id, "start": start, "end": end, "queued": queued}, 202)


# --- the route table -------------------------------------------------------------------------


@endpoint
async def openapi_document(request: Request) -> Response:
    document = openapi.document()
    app = request.path_params.get("app")
    if app is not None:
        # Under `triggerfish serve` this app's API lives under its own prefix: say so, or clients call dev's paths.
        document["servers"] = [{"url": f"/-/api/v1/apps/{app}"}]
    return json_response(document)


def control_routes() -> list[BaseRoute]:
    """The control API's routes, mounted at `/-/api/v1` by triggerfish.server.http."""
    return [
        Route("/openapi.json", openapi_document, methods=["GET"]),
        Route("/functions", list_functions, methods=["GET"]),
        Route("/functions/{name}", get_function, methods=["GET"]),
        Route("/functions/{name}/invoke", invoke_function, methods=["POST"]),
        Route("/invocations", list_invocations, methods=["GET"]),
        Route("/invocations/{request_id}", get_invocation, methods=["GET"]),
        Route("/logs", logs.get_logs, methods=["GET"]),
        Route("/buses", list_buses, methods=["GET"]),
        Route("/buses/{bus:path}/rules", list_rules, methods=["GET"]),
        Route("/buses/{bus:path}/rules/{id}", put_rule, methods=["PUT"]),
        Route("/buses/{bus:path}/rules/{id}", delete_rule, methods=["DELETE"]),
        Route("/buses/{bus:path}/replay", replay, methods=["POST"]),
        *control_triggers.routes(),
    ]
