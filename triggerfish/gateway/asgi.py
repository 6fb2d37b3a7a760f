"""The HTTP gateway: an ASGI app that runs the app's functions for HTTP requests.

    gateway = Gateway(RouteTable.from_specs(app.functions), invoker.invoke)
    await serve_gateway(gateway, "127.0.0.1", 8080)     # or mount it beside the platform's /-/ endpoints

A plain ASGI callable rather than a Starlette app: it owns one idea (match,
build the payload 2.0 event, invoke, map the result), and going without a
framework's request and response objects keeps its overhead near zero (see
benchmarks/bench_http.py). It never serves paths under `/-/`, which belong
to the platform's own endpoints.

Errors never carry a stack trace to the client: every error response is
JSON `{"message": ..., "requestId": ...}`, and every response carries the
request id in `x-triggerfish-request-id` and `apigw-requestid`; the details
go to the `triggerfish.gateway` log under that id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple, Protocol

import orjson

from triggerfish.errors import HandlerError, InvalidInputError, StoreError, StoreFullError, ThrottledError
from triggerfish.events import tracecontext
from triggerfish.gateway.apigw import HttpResponse, MalformedResponseError, http_response, payload_event
from triggerfish.gateway.request_body import BodyTooLarge, ClientGone, read_body
from triggerfish.gateway.routes import RESERVED_PREFIX, MethodNotAllowed, Route, RouteTable
from triggerfish.http_auth import API_KEY
from triggerfish.names import TIMEOUT_ERROR
from triggerfish.runtime.invoke import new_request_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: API Gateway's limit on a request body, and Lambda's on a synchronous payload.
DEFAULT_MAX_BODY = 6 * 1024 * 1024
#: The request line's headers together may not exceed this (names and values); more is 431.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
#: Seconds a request body may take to arrive in full before the client gets 408.
DEFAULT_BODY_TIMEOUT = 30.0
#: A handler that failed because the platform's store could not write (its `context.send`, `publish`, a
#: key-value write) is answered as the store's failure, not the function's: 507 when it is full, else 503.
_STORE_ERROR_TYPES = {"StoreFullError": 507, "StoreUnavailableError": 503, "StoreError": 503}
# Where a request to an `auth="api_key"` route carries its key; kept from the function's event.
_KEY_HEADERS = frozenset({b"authorization", b"x-api-key"})
# The event's `protocol` for the HTTP versions ASGI servers name, made once rather than per request.
_PROTOCOLS = {version: f"HTTP/{version}" for version in ("1.0", "1.1", "2", "3")}

log = logging.getLogger("triggerfish.gateway")


#: Told of each answered request: its route key ("" when no route matched), its status, and how long it took.
RequestObserver = Callable[[str, int, float], None]


class Invoke(Protocol):
    """The Invoker's sync path, `Invoker.invoke`, or anything with its signature."""

    def __call__(
        self,
        function: str,
        event: Any = None,
        *,
        wait: float = ...,
        trigger: str = ...,
        traceparent: str | None = ...,
        request_id: str | None = ...,
    ) -> Awaitable[Any]: ...


class Refusal(NamedTuple):
    """A request its route's `auth=` refused: the status (401, 403), a message for the caller, a challenge.

    `challenge` goes into `WWW-Authenticate` (`Bearer` for API-key routes).
    """

    status: int
    message: str
    challenge: str | None = None


#: Checks a request to a route with `auth=` before its function runs (see triggerfish.gateway.route_auth):
#: called with the route, the request's headers as ASGI gives them and the whole body; None lets it through.
Authorize = Callable[[Route, list[tuple[bytes, bytes]], bytes], Awaitable[Refusal | None]]


class Gateway:
    """The ASGI app serving `routes` by calling `invoke` (usually `invoker.invoke`).

    `max_body` bounds a request body (bytes; 413 beyond it, refused from
    Content-Length before reading, or as soon as a chunked body passes it);
    `max_header_bytes` the headers' names and values together (431; the
    server's own limit catches a head still arriving, this one a head that
    arrived whole in one read);
    `body_timeout` bounds the seconds a body may take to arrive (408);
    `invoke_wait` is how long a request waits for a free concurrency slot
    before it gets 429 with `Retry-After: throttle_retry_after`;
    `authorize` checks requests to routes declared with `auth=` (routes
    without it are public and never reach it); with no `authorize`, such a
    route answers 500 rather than run unchecked.
    """

    def __init__(
        self,
        routes: RouteTable,
        invoke: Invoke,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        invoke_wait: float = 1.0,
        throttle_retry_after: int = 1,
        clock: Callable[[], float] = time.time,
        authorize: Authorize | None = None,
        observers: list[RequestObserver] | None = None,
    ) -> None:
        for name, value, low in (
            ("max_body", max_body, 0),
            ("max_header_bytes", max_header_bytes, 1),
            ("body_timeout", body_timeout, 0),
            ("invoke_wait", invoke_wait, 0),
            ("throttle_retry_after", throttle_retry_after, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= low:
                raise InvalidInputError(f"Gateway({name}=...) must be a number of at least {low}, not {value!r}")
        if not isinstance(throttle_retry_after, int):
            raise InvalidInputError(
                f"Gateway(throttle_retry_after=...) must be whole seconds, not {throttle_retry_after!r}"
            )
        if not 0 <= invoke_wait <= 900:
            raise InvalidInputError(f"Gateway(invoke_wait=...) must be from 0 to 900 seconds, not {invoke_wait!r}")
        self.routes = routes
        self.invoke = invoke
        self.max_body = max_body
        self.max_header_bytes = max_header_bytes
        self.body_timeout = body_timeout
        self.invoke_wait = invoke_wait
        self.throttle_retry_after = throttle_retry_after
        self.clock = clock
        self.authorize = authorize
        #: Told of every answered request: its route key ("" when none matched), status and seconds (metrics).
        self.observers: list[RequestObserver] = [] if observers is None else observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            # Served here rather than in a coroutine of its own: every await of the request's way (a slot, the
            # worker's answer) resumes each frame between the server and the worker once more.
            if not self.observers:
                await self._serve(scope, receive, send)
                return
            began = time.perf_counter()
            route, status = await self._serve(scope, receive, send)
            if status:
                self._observe(route, status, time.perf_counter() - began)
        elif kind == "lifespan":
            await lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    def _observe(self, route: str, status: int, seconds: float) -> None:
        for observe in self.observers:
            try:
                observe(route, status, seconds)
            except Exception:
                log.exception("a request observer failed")

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> tuple[str, int]:
        """Answer one request; its route key ("" when none matched) and status (0 when the client left)."""
        request_id = new_request_id()
        raw = scope.get("raw_path")
        raw_path = raw.decode("latin-1").partition("?")[0] if raw else scope["path"]
        method = scope["method"]
        if raw_path.startswith(RESERVED_PREFIX):
            await _send(send, _error(404, "Not Found", request_id), request_id)
            return "", 404
        found = self.routes.match(method, raw_path)
        if found is None:
            await _send(send, _error(404, "Not Found", request_id), request_id)
            return "", 404
        if isinstance(found, MethodNotAllowed):
            not_allowed = _error(405, "Method Not Allowed", request_id)
            not_allowed.headers.append((b"allow", ", ".join(found.allow).encode("ascii")))
            await _send(send, not_allowed, request_id)
            return "", 405
        headers = scope["headers"]
        response, has_body, traceparent, has_xray = self._read_head(headers, request_id)
        if response is None:
            try:
                if has_body:
                    async with asyncio.timeout(self.body_timeout):
                        body = await read_body(receive, self.max_body)
                else:  # nothing to wait for: the server hands over the empty body at once
                    body = await read_body(receive, self.max_body)
            except BodyTooLarge:
                response = self._too_large(request_id)
            except TimeoutError:
                response = _error(408, "Request Timeout", request_id)
                response.headers.append((b"connection", b"close"))
            except ClientGone:
                return found.route.route_key, 0
            else:
                if found.route.auth is not None:
                    refused = await self._refusal(found.route, headers, body, request_id)
                    if refused is not None:
                        await _send(send, refused, request_id)
                        return found.route.route_key, refused.status
                    if found.route.auth == API_KEY:
                        # The platform's key is for the platform: an admin calling a route must not hand
                        # the app's code a key that could do anything on the server.
                        headers = [(name, value) for name, value in headers if name not in _KEY_HEADERS]
                client = scope.get("client")
                if not has_xray:
                    # As API Gateway adds it: the caller's trace in X-Ray's form (a new one when it sent none;
                    # the invocation then starts its own root span, as before).
                    valid = traceparent is not None and tracecontext.is_valid(traceparent)
                    trace = (
                        tracecontext.trace_id(traceparent)
                        if valid and traceparent is not None
                        else tracecontext.new_trace_id()
                    )
                    headers = [*headers, (b"x-amzn-trace-id", _xray_root(trace))]
                # The event straight from the request's parts: an `HttpRequest` (a frozen dataclass, set field
                # by field) would be made for `http_event` alone to read back.
                version = scope.get("http_version", "1.1")
                event = payload_event(
                    method,
                    raw_path,
                    scope["path"],
                    scope.get("query_string", b""),
                    headers,
                    body,
                    client[0] if client else "",
                    _PROTOCOLS.get(version) or f"HTTP/{version}",
                    found.route.route_key,
                    found.path_parameters,
                    request_id,
                    self.clock(),
                )
                function = found.route.function
                try:
                    result = await self.invoke(
                        function,
                        event,
                        wait=self.invoke_wait,
                        trigger="http",
                        traceparent=traceparent,
                        request_id=request_id,
                    )
                except Exception as exc:
                    response = self._failed(exc, function, request_id)
                else:
                    response = _response_of(result, function, request_id)
        await _send(send, response, request_id)
        return found.route.route_key, response.status

    async def _refusal(
        self, route: Route, headers: list[tuple[bytes, bytes]], body: bytes, request_id: str
    ) -> HttpResponse | None:
        """The answer to a request its route's `auth=` refuses, or None to run the function."""
        if self.authorize is None:
            # Fail closed: a route that asked for a check must not run without one.
            log.error("request %s: route %r declares auth; this gateway has no authorizer", request_id, route.route_key)
            return _error(500, "Internal Server Error", request_id)
        try:
            refusal = await self.authorize(route, headers, body)
        except Exception:
            log.exception("request %s: checking the auth of route %r failed", request_id, route.route_key)
            return _error(500, "Internal Server Error", request_id)
        if refusal is None:
            return None
        log.info("request %s: %r refused (%d): %s", request_id, route.route_key, refusal.status, refusal.message)
        response = _error(refusal.status, refusal.message, request_id)
        if refusal.challenge is not None:
            response.headers.append((b"www-authenticate", refusal.challenge.encode("latin-1")))
        return response

    def _read_head(
        self, headers: list[tuple[bytes, bytes]], request_id: str
    ) -> tuple[HttpResponse | None, bool, str | None, bool]:
        """What the gateway needs of the headers, read in one pass: a refusal they alone justify (431, 400, 413,
        in that order of precedence), whether a body is coming, the caller's `traceparent` (its first) and
        whether it sent `x-amzn-trace-id`."""
        size = 0
        has_body = has_xray = False
        traceparent: str | None = None
        refusal: HttpResponse | None = None
        max_body = self.max_body
        for name, value in headers:
            size += len(name) + len(value)
            if name == b"content-length":
                if refusal is not None:
                    continue  # the first faulty length is the one answered
                try:
                    declared = int(value)
                except ValueError:
                    refusal = _error(400, "Bad Request", request_id)
                    continue
                if declared > max_body:
                    refusal = self._too_large(request_id)
                has_body = has_body or declared > 0
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"traceparent":
                if traceparent is None:
                    traceparent = value.decode("latin-1")
            elif name == b"x-amzn-trace-id":
                has_xray = True
        if size > self.max_header_bytes:
            response = _error(431, "Request Header Fields Too Large", request_id)
            response.headers.append((b"connection", b"close"))
            return response, False, traceparent, has_xray
        if refusal is not None:
            return refusal, False, traceparent, has_xray
        return None, has_body, traceparent, has_xray

    def _too_large(self, request_id: str) -> HttpResponse:
        response = _error(413, "Request Entity Too Large", request_id)
        # The rest of the body is never read: the connection cannot carry another request.
        response.headers.append((b"connection", b"close"))
        return response

    def _failed(self, exc: Exception, function: str, request_id: str) -> HttpResponse:
        """The response to an invocation that raised `exc` (the function's failure, or the platform's)."""
        if isinstance(exc, ThrottledError):
            response = _error(429, "Too Many Requests", request_id)
            response.headers.append((b"retry-after", str(self.throttle_retry_after).encode("ascii")))
            return response
        if isinstance(exc, HandlerError):
            if exc.error_type == TIMEOUT_ERROR:
                log.warning("request %s: function %r timed out", request_id, function)
                return _error(504, "Gateway Timeout", request_id)
            log.error("request %s: function %r failed: %s", request_id, function, exc)
            status = _STORE_ERROR_TYPES.get(exc.error_type)
            return _store_failure(status, request_id) if status else _error(500, "Internal Server Error", request_id)
        if isinstance(exc, StoreError):
            log.error("request %s: invoking function %r: the store failed: %s", request_id, function, exc)
            return _store_failure(507 if isinstance(exc, StoreFullError) else 503, request_id)
        log.error("request %s: invoking function %r failed", request_id, function, exc_info=exc)
        return _error(500, "Internal Server Error", request_id)


def _response_of(result: Any, function: str, request_id: str) -> HttpResponse:
    """The response for a function's result; 502 when it is a proxy response the gateway cannot send."""
    try:
        return http_response(result)
    except MalformedResponseError as exc:
        log.error("request %s: function %r returned a malformed response: %s", request_id, function, exc)
        return _error(502, "Bad Gateway", request_id)


def _xray_root(trace: str) -> bytes:
    """X-Ray's form of a 32-hex trace id."""
    return f"Root=1-{trace[:8]}-{trace[8:]}".encode("ascii")


def _store_failure(status: int, request_id: str) -> HttpResponse:
    if status == 507:
        return _error(507, "Insufficient Storage", request_id)
    response = _error(503, "Service Unavailable", request_id)
    response.headers.append((b"retry-after", b"1"))
    return response


def _error(status: int, message: str, request_id: str) -> HttpResponse:
    body = orjson.dumps({"message": message, "requestId": request_id})
    return HttpResponse(status, [(b"content-type", b"application/json")], body)


async def _send(send: Send, response: HttpResponse, request_id: str) -> None:
    id_bytes = request_id.encode("ascii")
    headers = [
        *response.headers,
        (b"content-length", str(len(response.body)).encode("ascii")),
        (b"x-triggerfish-request-id", id_bytes),
        (b"apigw-requestid", id_bytes),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def lifespan(receive: Receive, send: Send) -> None:
    """Answer ASGI lifespan messages with nothing to do: whoever runs the platform starts and stops it."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
