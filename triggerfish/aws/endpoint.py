"""`/-/aws`: one endpoint for every AWS client, told apart as AWS's own front door does.

    endpoint = AwsEndpoint(SERVICES, identify=OpenCredentials(ACTIONS), platform_for=lambda app: platform)
    await endpoint(scope, receive, send)       # an ASGI app, mounted at /-/aws by dev and serve

A request is routed by, in order:

1. `X-Amz-Target: <prefix>.<Operation>` (the JSON protocols: `AmazonSQS.SendMessage`,
   `AWSEvents.PutEvents`): the prefix names the service;
2. otherwise the service of the SigV4 credential scope (`.../lambda/aws4_request`): a REST service
   (Lambda) by the method and path, a query protocol service (SNS) by the form's `Action`.

Then the signature is checked against the caller's secret (credentials.py), the caller's app is
looked up, the operation's action is authorized, and the service's handler runs with the parsed
input. Every failure is answered in the protocol's own error shape with AWS's error code.

A service is data (`Service`: its signing name, target prefix, protocol and a table of
`Operation`s), so S3, DynamoDB or Lambda join by adding a table.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from triggerfish._json import loads
from triggerfish.aws import sigv4, sns_links
from triggerfish.aws.credentials import Caller, Identify
from triggerfish.aws.protocol import (
    Answer,
    AwsError,
    Protocol,
    error_answer,
    json_answer,
    request_id,
    xml_answer,
)
from triggerfish.aws.s3 import S3Endpoint
from triggerfish.aws.s3_auth import is_s3
from triggerfish.aws.sigv4 import SignatureError
from triggerfish.errors import InvalidInputError, StoreError

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

log = logging.getLogger("triggerfish.aws")

#: The path the endpoint answers under (and anything below it: SQS queue URLs).
PATH = "/-/aws"
#: The largest request body taken: Lambda's synchronous payload (6 MiB), with room for its envelope.
MAX_BODY_BYTES = 6 * 1024 * 1024 + 64 * 1024


def is_aws_path(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


@dataclass(frozen=True, slots=True)
class AwsCall:
    """What a service's handler is given besides its input: the app's platform, the caller, where to point URLs."""

    platform: Platform
    caller: Caller
    #: `http://host:port/-/aws`, as the client reached it (queue URLs are built on it).
    base_url: str
    request_id: str


#: A service's operation: the parsed input in, the output document out (REST operations: an Answer of their own).
Handler = Callable[[AwsCall, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Operation:
    handler: Handler
    #: The platform action it performs (server.auth.ACTIONS): read, publish, configure, invoke.
    action: str
    #: Other actions that allow it too: a publisher may look a queue's URL up to send to it.
    also: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    #: The SigV4 signing name (`sqs`, `events`).
    name: str
    #: The X-Amz-Target prefix of its JSON protocol (`AmazonSQS`, `AWSEvents`).
    target_prefix: str
    protocol: Protocol
    operations: Mapping[str, Operation]
    #: SQS's JSON protocol also sends the query protocol's error code (`x-amzn-query-error`).
    query_compatible: bool = False
    #: The query protocol's XML namespace (its API version's documentation URL).
    xml_namespace: str = ""
    #: REST protocols: the operation and path parameters of a method and path (below /-/aws); None: not one.
    rest_route: Callable[[str, str], tuple[str, dict[str, str]] | None] | None = None
    #: A JSON protocol service also spoken in the query protocol (SQS, for older clients): the form (and the
    #: queue URL the request was posted to, if any) to the JSON input, and the JSON output to the XML result.
    from_query: Callable[[str, Mapping[str, str], str | None], dict[str, Any]] | None = None
    to_xml: Callable[[str, Mapping[str, Any]], str] | None = None


PlatformFor = Callable[[str | None], "Platform | None"]


class AwsEndpoint:
    def __init__(
        self,
        services: Sequence[Service],
        *,
        identify: Identify,
        platform_for: PlatformFor,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._by_target = {service.target_prefix: service for service in services}
        self._by_name = {service.name: service for service in services}
        self._identify = identify
        self._platform_for = platform_for
        self._clock = clock
        # S3 streams its bodies (objects up to 5 GiB), so it is an ASGI app of its own (docs/objects.md).
        self._s3 = S3Endpoint(identify, platform_for, prefix=PATH, clock=clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_s3(
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])},
            scope.get("query_string", b"").decode("latin-1"),
        ):
            await self._s3(scope, receive, send)
            return
        rid = request_id()
        service: Service | None = None
        protocol: Protocol = "json1.1"
        try:
            below = scope.get("path", "")[len(PATH) :]
            if sns_links.is_link(below):
                # Unsigned, as SNS's own: what a receiver of an SNS message fetches (sns_links.py).
                protocol = "query"
                query = scope.get("query_string", b"").decode("latin-1")
                answer = await sns_links.answer_link(self._platform_for, scope.get("method", "GET"), below, query, rid)
                await _send(send, answer)
                return
            body = await _read_body(receive)
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]
            found = {name.lower(): value for name, value in headers}
            # Until the service is known, an error is answered in the protocol the request spoke.
            protocol = "json1.1" if "x-amz-target" in found else self._protocol_of(found)
            service, protocol, operation_name, params = self._route(scope, found, body)
            caller = await self._authenticate(scope, headers, found, body, service)
            answer = await self._run(scope, found, service, protocol, operation_name, params, caller, rid)
        except AwsError as error:
            compatible = service is not None and service.query_compatible
            answer = error_answer(protocol, error, rid, query_compatible=compatible)
        except InvalidInputError as exc:
            compatible = service is not None and service.query_compatible
            refused = AwsError("InvalidParameterValue", str(exc))
            answer = error_answer(protocol, refused, rid, query_compatible=compatible)
        except StoreError as exc:
            log.warning("AWS request %s failed in the store: %s", rid, exc)
            failed = AwsError("ServiceUnavailable", f"the platform's store failed: {exc}", status=503, sender=False)
            answer = error_answer(protocol, failed, rid)
        await _send(send, answer)

    def _route(
        self, scope: Scope, headers: Mapping[str, str], body: bytes
    ) -> tuple[Service, Protocol, str, dict[str, Any]]:
        target = headers.get("x-amz-target")
        if target is not None:
            prefix, _, operation = target.rpartition(".")
            service = self._by_target.get(prefix)
            if service is None or not operation:
                raise AwsError(
                    "UnknownOperationException",
                    f"X-Amz-Target {target!r} names no service of this endpoint; it serves"
                    f" {', '.join(sorted(self._by_target))}",
                )
            return service, service.protocol, operation, _json_params(body)
        query = scope.get("query_string", b"").decode("latin-1")
        scoped = self._by_name.get(_scope_service(headers.get("authorization")) or "")
        if scoped is not None and scoped.rest_route is not None:
            path = scope.get("path", "")[len(PATH) :] or "/"
            routed = scoped.rest_route(scope.get("method", "GET"), path)
            if routed is None:
                raise AwsError(
                    "UnknownOperationException",
                    f"{scope.get('method')} {path} is no {scoped.target_prefix} operation served here (docs/aws.md)",
                )
            operation, path_params = routed
            pairs = parse_qsl(query)
            params = {"path": path_params, "query": dict(pairs), "headers": dict(headers), "body": body}
            # A list in the query (`Statuses=A&Statuses=B`): every value, in order.
            params["query_lists"] = {name: [v for k, v in pairs if k == name] for name in {k for k, _ in pairs}}
            return scoped, scoped.protocol, operation, params
        form = dict(parse_qsl(query, keep_blank_values=True))
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = form.pop("Action", None)
        name = _scope_service(headers.get("authorization"))
        service = self._by_name.get(name or "")
        if action is None or service is None:
            raise AwsError(
                "MissingAction",
                "the request names no operation: send X-Amz-Target (JSON protocols) or Action (query protocol),"
                f" signed for one of the services {', '.join(sorted(self._by_name))}",
            )
        form.pop("Version", None)
        if service.from_query is not None:
            below = scope.get("path", "")[len(PATH) :].strip("/")
            posted_to = f"{_base_url(scope, headers)}/{below}" if below else None
            return service, "query", action, service.from_query(action, form, posted_to)
        if service.protocol != "query":
            raise AwsError(
                "InvalidAction",
                f"{service.target_prefix} is served in its JSON protocol here (X-Amz-Target: {service.target_prefix}."
                f"{action}); update the client (botocore 1.34 or later speaks it)",
            )
        return service, "query", action, dict(form)

    def _protocol_of(self, headers: Mapping[str, str]) -> Protocol:
        scoped = self._by_name.get(_scope_service(headers.get("authorization")) or "")
        return "rest-json" if scoped is not None and scoped.rest_route is not None else "query"

    async def _authenticate(
        self,
        scope: Scope,
        headers: list[tuple[str, str]],
        found: Mapping[str, str],
        body: bytes,
        service: Service,
    ) -> Caller:
        json_protocol = service.protocol != "query"
        try:
            header = sigv4.parse_authorization(found.get("authorization"))
            identified = await self._identify(header.scope.access_key_id)
            if identified is None:
                raise AwsError(
                    "UnrecognizedClientException" if json_protocol else "InvalidClientTokenId",
                    f"The security token included in the request is invalid: no access key"
                    f" {header.scope.access_key_id!r} here (under serve, the access key id of an API key of one"
                    " app: `triggerfish keys create --app APP` shows it)",
                    status=403,
                    query_code="InvalidClientTokenId",
                )
            caller, secret = identified
            if secret is not None:
                raw_path = (scope.get("raw_path") or scope.get("path", "").encode()).decode("latin-1")
                payload = found.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
                sigv4.verify(
                    header,
                    secret,
                    method=scope.get("method", "POST"),
                    raw_path=raw_path.split("?", 1)[0],
                    raw_query=scope.get("query_string", b"").decode("latin-1"),
                    headers=headers,
                    payload_sha256=payload,
                    now=self._clock(),
                )
            return caller
        except SignatureError as exc:
            raise _signature_error(exc, json_protocol) from None

    async def _run(
        self,
        scope: Scope,
        headers: Mapping[str, str],
        service: Service,
        protocol: Protocol,
        operation_name: str,
        params: dict[str, Any],
        caller: Caller,
        rid: str,
    ) -> Any:
        operation = service.operations.get(operation_name)
        if operation is None:
            raise AwsError(
                "InvalidAction" if protocol == "query" else "UnknownOperationException",
                f"{service.target_prefix} operation {operation_name!r} is not served here; the operations are"
                f" {', '.join(sorted(service.operations))} (docs/aws.md)",
                query_code="InvalidAction",
            )
        if not any(caller.may(action) for action in (operation.action, *operation.also)):
            raise AwsError(
                "AccessDeniedException" if protocol != "query" else "AccessDenied",
                f"access key {caller.access_key_id} may not {operation_name}: its role does not hold the"
                f" {operation.action!r} action",
                status=403 if protocol == "query" else 400,
                query_code="AccessDenied",
            )
        platform = self._platform_for(caller.app)
        if platform is None:
            raise AwsError(
                "UnrecognizedClientException",
                f"the app of access key {caller.access_key_id} is not deployed here",
                status=403,
            )
        call = AwsCall(platform, caller, _base_url(scope, headers), rid)
        document = await operation.handler(call, params)
        if isinstance(document, Answer):  # a REST operation answers with its own status and headers
            return document
        if protocol == "query":
            inner = None if service.to_xml is None else service.to_xml(operation_name, document)
            return xml_answer(operation_name, document, rid, service.xml_namespace, inner=inner)
        return json_answer(protocol, document, rid)


async def _send(send: Send, answer: Answer) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
            + [(b"content-length", str(len(answer.body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise AwsError("RequestEntityTooLarge", f"the request body is over {MAX_BODY_BYTES} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _json_params(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        document = loads(body, where="request body")
    except InvalidInputError as exc:
        raise AwsError("SerializationException", f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise AwsError("SerializationException", "the body must be a JSON object of the operation's input")
    return document


def _scope_service(authorization: str | None) -> str | None:
    try:
        return sigv4.parse_authorization(authorization).scope.service
    except SignatureError:
        return None


def _base_url(scope: Scope, headers: Mapping[str, str]) -> str:
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{PATH}"


def _signature_error(exc: SignatureError, json_protocol: bool) -> AwsError:
    if exc.kind == "missing":
        code = "MissingAuthenticationTokenException" if json_protocol else "MissingAuthenticationToken"
        return AwsError(code, exc.message, status=403, query_code="MissingAuthenticationToken")
    if exc.kind == "incomplete":
        code = "IncompleteSignatureException" if json_protocol else "IncompleteSignature"
        return AwsError(code, exc.message, query_code="IncompleteSignature")
    if exc.kind == "expired":
        code = "InvalidSignatureException" if json_protocol else "SignatureDoesNotMatch"
        return AwsError(code, exc.message, status=403, query_code="RequestExpired")
    code = "InvalidSignatureException" if json_protocol else "SignatureDoesNotMatch"
    return AwsError(code, exc.message, status=403, query_code="SignatureDoesNotMatch")
