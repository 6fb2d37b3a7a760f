"""API Gateway's HTTP API payload format 2.0: the event a handler receives, and how its result becomes a response.

    event = http_event(request, "GET /orders/{id}", {"id": "42"}, request_id="...", now=time.time())
    response = http_response(handler_result)     # raises MalformedResponseError -> 502

Pure: no I/O, so both directions are tested against tables of cases. The
event follows AWS's documented shape: lower-cased headers with repeated
ones joined by commas, the `cookie` header moved to `cookies`, repeated
query keys joined by commas, a text body as is and any other body
base64-encoded, `body` absent when the request has none.

The result follows AWS's rule for payload 2.0: a dict with `statusCode` is
the Lambda proxy form; any other JSON value is a 200 `application/json`
response whose body is the string itself, or the value as JSON.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson

from triggerfish.errors import InvocationError

ACCOUNT_ID = "000000000000"
API_ID = "triggerfish"
STAGE = "$default"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "application/xml",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/yaml",
        "application/x-yaml",
    }
)
# RFC 9110 token characters: anything else in a header name could split or smuggle headers.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_JSON = [(b"content-type", b"application/json")]
# The gateway frames the body itself; a handler's own framing headers would contradict it.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


class MalformedResponseError(InvocationError):
    """A handler returned a proxy response the gateway cannot send; the client gets 502."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What the gateway read from the client, as ASGI gives it."""

    method: str
    #: The path as sent, still percent-encoded, without the query string.
    raw_path: str
    #: The path percent-decoded.
    path: str
    query_string: bytes
    headers: Sequence[tuple[bytes, bytes]]
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def http_event(
    request: HttpRequest, route_key: str, path_parameters: dict[str, str], *, request_id: str, now: float
) -> dict[str, Any]:
    """The payload 2.0 event for `request` matched to `route_key`, at time `now` (seconds since the epoch)."""
    return payload_event(
        request.method,
        request.raw_path,
        request.path,
        request.query_string,
        request.headers,
        request.body,
        request.source_ip,
        request.protocol,
        route_key,
        path_parameters,
        request_id,
        now,
    )


def payload_event(
    method: str,
    raw_path: str,
    path: str,
    query_string: bytes,
    raw_headers: Sequence[tuple[bytes, bytes]],
    body: bytes,
    source_ip: str,
    protocol: str,
    route_key: str,
    path_parameters: dict[str, str],
    request_id: str,
    now: float,
) -> dict[str, Any]:
    """`http_event` from the request's parts (`HttpRequest`'s fields, in its order): the gateway's way, which has
    them at hand and need not make a request object to be read back once."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    raw_query = query_string.decode("latin-1")
    host = headers.get("host", "localhost")
    domain = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": STAGE,
            "time": format_time(now),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    # AWS leaves out the keys that would be empty; handlers written for Lambda test for them.
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        event["queryStringParameters"] = query_parameters(raw_query)
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        text = _as_text(body, headers.get("content-type", ""))
        if text is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


def query_parameters(raw_query: str) -> dict[str, str]:
    """Decoded query parameters; a repeated key's values joined by commas, as API Gateway does."""
    parameters: dict[str, str] = {}
    for pair in raw_query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        # Most keys and values have nothing to decode, and unquote_plus would return them unchanged.
        name = unquote_plus(key, errors="replace") if "%" in key or "+" in key else key
        decoded = unquote_plus(value, errors="replace") if "%" in value or "+" in value else value
        parameters[name] = f"{parameters[name]},{decoded}" if name in parameters else decoded
    return parameters


def format_time(now: float) -> str:
    """API Gateway's request time, e.g. `12/Mar/2020:19:03:58 +0000` (English month names whatever the locale)."""
    return _format_second(int(now))


@functools.lru_cache(maxsize=4)
def _format_second(second: int) -> str:
    # Cached: every request within a second shares the text, and formatting costs more than the rest of the event.
    moment = datetime.datetime.fromtimestamp(second, datetime.UTC)
    return f"{moment.day:02d}/{_MONTHS[moment.month - 1]}/{moment.year}:{moment:%H:%M:%S} +0000"


def is_text(content_type: str) -> bool:
    """Whether a body of this content type goes to the handler as text rather than base64."""
    media = content_type.partition(";")[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def _as_text(body: bytes, content_type: str) -> str | None:
    if not is_text(content_type):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None  # declared as text but is not UTF-8: base64 keeps every byte


# --- the response ----------------------------------------------------------------------------


def http_response(result: Any) -> HttpResponse:
    """The HTTP response for a handler's return value; raises MalformedResponseError naming the fault."""
    if isinstance(result, dict) and "statusCode" in result:
        return _proxy_response(result)
    if isinstance(result, str):
        return HttpResponse(200, list(_JSON), result.encode("utf-8", "replace"))
    try:
        body = orjson.dumps(result)
    except TypeError as exc:
        raise MalformedResponseError(f"the return value is not JSON: {exc}") from None
    return HttpResponse(200, list(_JSON), body)


def _proxy_response(result: dict[str, Any]) -> HttpResponse:
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponseError(f"statusCode must be a whole number from 100 to 599, not {status!r}")
    headers: list[tuple[bytes, bytes]] = []
    single = result.get("headers") or {}
    if not isinstance(single, dict):
        raise MalformedResponseError(f"headers must be a dict of strings, not {type(single).__name__}")
    for name, value in single.items():
        headers.append(_header(name, value, "headers"))
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(multi, dict):
        raise MalformedResponseError(f"multiValueHeaders must be a dict of lists, not {type(multi).__name__}")
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedResponseError(f"multiValueHeaders[{name!r}] must be a list of strings, not {values!r}")
        headers.extend(_header(name, value, "multiValueHeaders") for value in values)
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponseError(f"cookies must be a list of strings, not {type(cookies).__name__}")
    headers.extend(_header("set-cookie", cookie, "cookies") for cookie in cookies)
    headers = [header for header in headers if header[0] not in _FRAMING]
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise MalformedResponseError(f"body must be a string, not {type(body).__name__}; use json.dumps() for JSON")
    elif result.get("isBase64Encoded") is True:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResponseError("isBase64Encoded is true but body is not valid base64") from None
    else:
        data = body.encode("utf-8", "replace")
    return HttpResponse(status, headers, data)


def _header(name: object, value: object, where: str) -> tuple[bytes, bytes]:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise MalformedResponseError(f"{where}: {name!r} is not a valid header name")
    if not isinstance(value, str):
        raise MalformedResponseError(f"{where}[{name!r}] must be a string, not {type(value).__name__}")
    try:
        encoded = value.encode("latin-1")
    except UnicodeEncodeError:
        raise MalformedResponseError(f"{where}[{name!r}] has characters a header cannot carry") from None
    if b"\r" in encoded or b"\n" in encoded or b"\0" in encoded:
        raise MalformedResponseError(f"{where}[{name!r}] contains a line break or NUL")
    return name.lower().encode("ascii"), encoded
