"""Invocation inputs kept beside their records: the event an invocation was given, bounded and redacted (pure).

    kept = keep_input(request)                        # (key, document) for the store, or None
    shown = read_input(document)                      # {"event": ..., "size", "truncated", "redacted"}

An invocation's record says what it did; its input is what the dashboard's
"Re-run with this input", `GET /invocations/{id}` and `triggerfish
invocations show` need to say what it was given. It is kept under the
function's `keep_inputs` setting (on under `triggerfish dev`, off under
`serve` unless the app turns it on: inputs hold whatever the callers
sent, personal data included), one document per invocation inside its
records' key-value copies (triggerfish.runtime.records), with their
retention, so it is trimmed with them.

Bounded: at most `INPUT_CAP` bytes of the event's JSON are kept. A larger
event keeps its first `INPUT_CAP` bytes as text, flagged `truncated`, and
cannot be re-run (the handler would get something it was never sent).

Redacted: an HTTP event (API Gateway's payload, from a route) carries the
caller's credentials in headers; the platform's own API keys among them.
Those headers' values, and the cookies, are replaced by `REDACTED` before
anything is stored: a viewer of the dashboard must not learn a key by
reading an invocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from triggerfish.runtime.types import InvokeRequest

#: Bytes of an event's JSON kept at most (64 KiB); beyond it the input is kept truncated, not re-runnable.
INPUT_CAP = 64 * 1024
#: What a redacted value becomes.
REDACTED = "[redacted]"
#: Headers whose values are credentials (lower case, as API Gateway's payload 2.0 gives header names).
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "cookie", "set-cookie", "x-amz-security-token"}
)

#: A kept input: the request id it belongs to and its document as stored.
KeptInput = tuple[str, bytes]


def keep_input(request: InvokeRequest) -> KeptInput | None:
    """The document to store for `request`'s input (None: its event cannot be written as JSON)."""
    event = request.event
    if isinstance(event, orjson.Fragment):
        # The queued bytes as they are, never parsed: given with the request (the dispatcher's), else a copy.
        raw = request.event_json if request.event_json is not None else orjson.dumps(event)
        # An HTTP event queued as bytes is rare (routes run synchronously): decode only what may be one.
        if b'"requestContext"' in raw and b'"headers"' in raw:
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return None
        else:
            return request.request_id, _document(raw, [])
    redacted: list[str] = []
    kept = _redacted(event, redacted)
    if kept is event and request.event_json is not None:
        # Nothing to redact (the common case), and the runner encoded this very event for its worker already.
        return request.request_id, _document(request.event_json, redacted)
    try:
        raw = orjson.dumps(kept)
    except TypeError:
        return None
    return request.request_id, _document(raw, redacted)


def read_input(document: bytes) -> dict[str, Any]:
    """A stored input as the API shows it: `event` (None when `truncated`: then `text` has its beginning),
    `size` (bytes of the whole event's JSON), `truncated`, `redacted` (the fields replaced), `rerunnable`."""
    kept: dict[str, Any] = orjson.loads(document)
    return shown_input(kept)


def shown_input(kept: dict[str, Any]) -> dict[str, Any]:
    """A stored input already parsed (from inside its record's row) as the API shows it: see `read_input`."""
    kept.setdefault("event", None)
    kept["rerunnable"] = not kept["truncated"]
    return kept


def _document(raw: bytes, redacted: list[str]) -> bytes:
    head = b'{"size":%d,"redacted":%b,' % (len(raw), orjson.dumps(redacted) if redacted else b"[]")
    if len(raw) <= INPUT_CAP:
        return head + b'"truncated":false,"event":' + raw + b"}"
    text = raw[:INPUT_CAP].decode("utf-8", errors="ignore")  # cut at a character, not inside one
    return head + b'"truncated":true,"text":' + orjson.dumps(text) + b"}"


def _redacted(event: Any, redacted: list[str]) -> Any:
    """`event` with the credentials of an HTTP event replaced: a copy where anything was, else `event` itself (the
    handler's event is never touched; an event with nothing to redact is stored as it is, without a copy)."""
    # A dict first: the isinstance check against the Mapping ABC costs more than the rest of a small event's walk.
    if (type(event) is not dict and not isinstance(event, Mapping)) or "requestContext" not in event:
        return event
    copy: dict[str, Any] | None = None if type(event) is dict else dict(event)
    for field in ("headers", "multiValueHeaders"):
        headers = event.get(field)
        if type(headers) is dict and _no_secret_names(headers):
            continue  # kept as it is (the common case)
        if type(headers) is dict or isinstance(headers, Mapping):
            secret = [name for name in headers if isinstance(name, str) and name.lower() in SECRET_HEADERS]
            if not secret and type(headers) is dict:
                continue  # kept as it is (another Mapping becomes a dict: what orjson can write)
            cleaned = dict(headers)
            for name in secret:
                cleaned[name] = [REDACTED] if isinstance(headers[name], list) else REDACTED
                redacted.append(f"{field}.{name}")
            if copy is None:
                copy = dict(event)
            copy[field] = cleaned
    if isinstance(event.get("cookies"), list) and event["cookies"]:
        if copy is None:
            copy = dict(event)
        copy["cookies"] = [REDACTED]
        redacted.append("cookies")
    return event if copy is None else copy


def _no_secret_names(headers: dict[Any, Any]) -> bool:
    """Whether no name of `headers` is a secret one in any case: the common HTTP event's answer, found without a
    Python step per header (False when a name is not a string: the general walk then looks at each)."""
    try:
        return SECRET_HEADERS.isdisjoint(map(str.lower, headers))
    except TypeError:
        return False
