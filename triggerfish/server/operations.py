"""The control API as one table: each operation's route, action, inputs and answers, declared once.

    Operation(
        "POST", "/queues/{name:path}/messages", send_message, "Send a message", action="publish",
        params=(path("name", "The queue's name"),),
        body=Body(SEND),
        answers={200: Answer("Stored", "SendResult")},
        errors=(404, 413),
    )

From one table come the routes (`routes()`: one Starlette route per path,
every method of it, so a wrong method is 405 with `Allow`), the checks every
request passes before its handler runs (`run()`: the content type, path, query
and header parameters, and the body, each against its schema), the action a
key must hold under `triggerfish serve`, and the OpenAPI document
(openapi.py). A handler reads what was checked with `inputs(request)`.

The order of the checks: the caller's key (under serve), the content type
(415), the parameters (400), the body (413, 408, 400), then the handler.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from triggerfish._json import loads
from triggerfish.server.control_io import MAX_BODY, ApiError, Endpoint, endpoint, read_body
from triggerfish.server.schema import Schema, Text

#: Methods whose requests change something: their bodies must be of a declared type, JSON unless said otherwise.
CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON = "application/json"

Location = Literal["path", "query", "header"]


@dataclass(frozen=True, slots=True)
class Param:
    """A path, query or header parameter: its schema reads and checks its text."""

    name: str
    location: Location
    schema: Schema
    description: str = ""
    required: bool = False


def path(name: str, description: str, schema: Schema | None = None) -> Param:
    return Param(name, "path", schema or Text(min_length=1), description, required=True)


def query(name: str, description: str, schema: Schema, *, required: bool = False) -> Param:
    return Param(name, "query", schema, description, required)


def header(name: str, description: str, schema: Schema) -> Param:
    return Param(name, "header", schema, description)


@dataclass(frozen=True, slots=True)
class Body:
    """A request body: JSON checked against `schema` (None: any JSON value), or `raw`: the handler reads it.

    `media_types` are the content types accepted (the first is the one JSON
    bodies are parsed as); `documented` replaces the document's schema per
    media type where a raw body's format is checked by its own codec.
    """

    schema: Schema | None = None
    media_types: tuple[str, ...] = (JSON,)
    required: bool = True
    limit: int = MAX_BODY
    raw: bool = False
    documented: Mapping[str, dict[str, Any]] | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """A success answer: its description, the component naming its JSON schema (None: no body), headers."""

    description: str
    schema: str | dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content: Mapping[str, dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path: the handler, what it takes, what it answers, and the action it performs.

    `errors` are the error statuses the handler itself answers (a missing
    queue's 404, a conflict's 409); those every operation can answer (bad
    input, limits, the store) are added by the document from what is declared.
    `action` is what a key's role must hold under `triggerfish serve` (None: no key).
    `audit` names the operation in the audit log (None: not recorded); every
    answer is then recorded, refusals and failures too (see audit.py).
    """

    method: str
    path: str
    handler: Endpoint
    summary: str
    answers: Mapping[int, Answer]
    action: str | None
    params: tuple[Param, ...] = ()
    body: Body | None = None
    errors: tuple[int, ...] = ()
    description: str = ""
    audit: str | None = None


class Auditor(Protocol):
    """Records an audited operation's answer (the server's audit log, in `app.state.audit`)."""

    async def after(self, request: Request, operation: str, response: Response, *, refused: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a request carried, checked: parameters by name, and the body (parsed JSON, or raw bytes)."""

    path: Mapping[str, Any]
    query: Mapping[str, Any]
    headers: Mapping[str, Any]
    body: Any = None
    raw: bytes = b""


def inputs(request: Request) -> Inputs:
    """The checked inputs of the request an operation's handler is serving."""
    found: Inputs = request.state.inputs
    return found


Guard = Callable[[Request, Operation], Awaitable[None]]


def run(operation: Operation, guard: Guard | None = None) -> Endpoint:
    """`operation`'s handler behind its checks (and `guard`'s, first); every refusal is a JSON error. An audited
    operation's answer is then given to the app's auditor (`app.state.audit`, if it has one)."""

    @endpoint
    @functools.wraps(operation.handler)
    async def serve(request: Request) -> Response:
        if guard is not None:
            await guard(request, operation)
        request.state.allowed = True
        check_content_type(request, operation)
        request.state.inputs = await _read_inputs(request, operation)
        return await operation.handler(request)

    audit = operation.audit
    if audit is None:
        return serve

    @functools.wraps(operation.handler)
    async def audited(request: Request) -> Response:
        response = await serve(request)
        auditor: Auditor | None = getattr(request.app.state, "audit", None)
        if auditor is not None:
            refused = not getattr(request.state, "allowed", False)
            await auditor.after(request, audit, response, refused=refused)
        return response

    return audited


def routes(operations: Sequence[Operation], guard: Guard | None = None) -> list[BaseRoute]:
    """One Starlette route per path (in the table's order), dispatching on the method to its operation."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for operation in operations:
        methods = by_path.setdefault(operation.path, {})
        if operation.method in methods:
            raise ValueError(f"{operation.method} {operation.path} is declared twice")
        methods[operation.method] = run(operation, guard)
    return [Route(path, _dispatch(methods), methods=list(methods)) for path, methods in by_path.items()]


def _dispatch(methods: Mapping[str, Endpoint]) -> Endpoint:
    async def dispatch(request: Request) -> Response:
        method = request.method
        if method == "HEAD" and "HEAD" not in methods:
            method = "GET"  # Starlette answers HEAD wherever GET is; the body is dropped on the way out
        return await methods[method](request)

    return dispatch


# --- the checks ------------------------------------------------------------------------------------


def media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def check_content_type(request: Request, operation: Operation) -> None:
    """A request that changes something must say its body is of a declared type (JSON unless declared otherwise).

    A web page's form or a script without CORS can send only text/plain,
    application/x-www-form-urlencoded or multipart/form-data to another origin
    without the browser asking first, so insisting on JSON keeps such pages
    from calling the API (docs/security.md). A POST without a body must say so too.
    """
    if request.method not in CHANGING_METHODS:
        return
    accepted = operation.body.media_types if operation.body is not None else (JSON,)
    given = media_type(request)
    if given in accepted or ("*/*" in accepted and _binary_event(request)):
        return
    shown = f"Content-Type {given!r}" if given else "no Content-Type"
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"{request.method} {request.url.path} takes {' or '.join(t for t in accepted if t != '*/*')}, and this"
        f" request has {shown}: send `Content-Type: {accepted[0]}`, even with no body (a request of another"
        " type could come from any web page's form)",
        accepted=[t for t in accepted if t != "*/*"],
    )


def _binary_event(request: Request) -> bool:
    """A CloudEvent in binary mode: its attributes in `ce-` headers, which no cross-site form can send."""
    return any(name.startswith("ce-") for name in request.headers)


async def _read_inputs(request: Request, operation: Operation) -> Inputs:
    path_values: dict[str, Any] = {}
    query_values: dict[str, Any] = {}
    header_values: dict[str, Any] = {}
    declared_query = {p.name: p for p in operation.params if p.location == "query"}
    seen: set[str] = set()
    for name, text in request.query_params.multi_items():
        param = declared_query.get(name)
        if param is None:
            allowed = ", ".join(declared_query) or "none"
            raise ApiError(400, "InvalidInput", f"unknown query parameter {name!r}; the parameters are: {allowed}")
        if name in seen:
            raise ApiError(400, "InvalidInput", f"query parameter {name!r} is given twice; give it once")
        seen.add(name)
        query_values[name] = param.schema.parse(text, name)
    for param in operation.params:
        if param.location == "path":
            path_values[param.name] = param.schema.parse(request.path_params[param.name], param.name)
        elif param.location == "header":
            given = request.headers.get(param.name)
            if given is not None:
                header_values[param.name.lower()] = param.schema.parse(given, param.name)
        elif param.required and param.name not in query_values:
            raise ApiError(400, "InvalidInput", f"query parameter {param.name!r} is required")
    body: Any = None
    raw = b""
    declared = operation.body
    if declared is not None and not declared.raw:
        raw = await read_body(request, declared.limit)
        body = parse_body(declared, raw, f"{request.method} {request.url.path}")
    return Inputs(path_values, query_values, header_values, body, raw)


def parse_body(declared: Body, raw: bytes, request: str) -> Any:
    """A JSON body read and checked against `declared` (ApiError, InvalidJSONError, InvalidInputError);
    `request` ("POST /-/api/v1/...") names the request when a required body is missing. Shared with the lean
    routes that serve a hot operation without the framework (invoke_routes.py)."""
    if not raw.strip():
        if declared.required:
            raise ApiError(400, "MissingBody", f"{request} needs a JSON body")
        return None
    document = loads(raw, where="body")
    return document if declared.schema is None else declared.schema.check(document, "body")
