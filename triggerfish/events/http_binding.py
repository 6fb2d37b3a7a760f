"""The CloudEvents HTTP protocol binding: events to and from header mappings and body bytes.

Pure functions, no web framework: the gateway hands in the request's headers
and body, and writes out what these return. Three modes, chosen by Content-Type:

* structured, ``application/cloudevents+json``: the body is the event in the JSON format;
* batch, ``application/cloudevents-batch+json``: the body is a JSON array of events;
* binary, anything else with ``ce-`` headers: each attribute is a ``ce-<name>``
  header (percent-encoded as the binding requires), Content-Type carries
  `datacontenttype`, and the body is the data: parsed as JSON for JSON media
  types, text for ``text/*``, XML and other textual types (`is_text_media_type`),
  bytes otherwise.

Headers carry only text, so in binary mode extension values arrive as strings;
Triggerfish turns its own `hopcount` back into an integer. Use structured mode
to keep booleans and integers of other extensions typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from triggerfish._json import dumps, loads
from triggerfish.errors import EventTooLargeError, InvalidEventError
from triggerfish.events.cloudevent import (
    DATA_MAX_DEPTH,
    HOPCOUNT,
    MAX_EVENT_BYTES,
    SPEC_VERSION,
    Event,
    is_json_content_type,
)

__all__ = [
    "BATCH_CONTENT_TYPE",
    "MAX_BATCH_BYTES",
    "STRUCTURED_CONTENT_TYPE",
    "Headers",
    "from_http",
    "to_batch",
    "to_binary",
    "to_structured",
]

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
#: The largest batch body accepted by default; each event in it is also held to the per-event limit.
MAX_BATCH_BYTES = 1024 * 1024

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

_REQUIRED = ("specversion", "id", "source", "type")
_CONTEXT_HEADERS = ("time", "subject", "dataschema")
# The binding: space, '"', '%' and everything outside printable ASCII must be percent-encoded.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_ACCEPTED = (
    f"send {STRUCTURED_CONTENT_TYPE} (one event), {BATCH_CONTENT_TYPE} (a JSON array of events), "
    "or binary mode: any Content-Type with ce-specversion, ce-id, ce-source and ce-type headers"
)


def from_http(
    headers: Headers, body: bytes, *, max_bytes: int = MAX_EVENT_BYTES, max_batch_bytes: int = MAX_BATCH_BYTES
) -> list[Event]:
    """Read the events an HTTP request carries: one for binary or structured mode, any number for a batch.

    Header names are case-insensitive. Raises InvalidEventError naming the
    header or attribute at fault (``ce-id``, ``content-type``, ``batch[2].type``),
    InvalidJSONError for a body that is not strict JSON, and EventTooLargeError
    for an event over `max_bytes` or a batch over `max_batch_bytes`.
    """
    fields = _normalise(headers)
    content_type = fields.get("content-type")
    essence, params = _split_media_type(content_type)
    if essence == STRUCTURED_CONTENT_TYPE:
        _check_charset(params)
        return [Event.from_json(bytes(body), max_bytes=max_bytes)]
    if essence == BATCH_CONTENT_TYPE:
        _check_charset(params)
        return _read_batch(bytes(body), max_bytes, max_batch_bytes)
    if "ce-specversion" in fields or any(f"ce-{name}" in fields for name in _REQUIRED):
        return [_read_binary(fields, content_type, bytes(body), max_bytes)]
    if essence.startswith("application/cloudevents"):
        raise InvalidEventError("content-type", f"{content_type!r} is not a format Triggerfish reads; {_ACCEPTED}")
    shown = "no Content-Type" if content_type is None else f"Content-Type {content_type!r}"
    raise InvalidEventError("content-type", f"{shown} without ce- headers is not a CloudEvent; {_ACCEPTED}")


def to_binary(event: Event) -> tuple[dict[str, str], bytes]:
    """Binary mode: attributes as ``ce-`` headers, the data as the body."""
    headers = {
        "ce-specversion": event.specversion,
        "ce-id": _encode(event.id),
        "ce-source": _encode(event.source),
        "ce-type": _encode(event.type),
    }
    for name in _CONTEXT_HEADERS:
        value = getattr(event, name)
        if value is not None:
            headers[f"ce-{name}"] = _encode(value)
    for name, ext in event.extensions.items():
        headers[f"ce-{name}"] = _encode(("true" if ext else "false") if isinstance(ext, bool) else str(ext))
    content_type = event.datacontenttype
    data = event.data
    if isinstance(data, bytes):
        body = data
        content_type = content_type or "application/octet-stream"
    elif data is None:
        body = b""
    elif is_json_content_type(content_type):
        body = dumps(data)
        content_type = content_type or "application/json"
    elif isinstance(data, str):
        charset = _charset(content_type)
        try:
            body = data.encode(charset)
        except UnicodeEncodeError as exc:
            raise InvalidEventError("data", f"character {exc.start} cannot be written in {charset}") from None
    else:
        raise InvalidEventError(
            "data", f"is {type(data).__name__}, which datacontenttype {content_type!r} cannot carry; send str or bytes"
        )
    if content_type is not None:
        headers["content-type"] = content_type
    return headers, body


def to_structured(event: Event) -> tuple[dict[str, str], bytes]:
    """Structured mode: the whole event as JSON in the body."""
    return {"content-type": f"{STRUCTURED_CONTENT_TYPE}; charset=utf-8"}, event.to_json()


def to_batch(events: Sequence[Event]) -> tuple[dict[str, str], bytes]:
    """Batch mode: the events as one JSON array."""
    return {"content-type": f"{BATCH_CONTENT_TYPE}; charset=utf-8"}, dumps([event.to_dict() for event in events])


# --- reading ---------------------------------------------------------------------------------


def _normalise(headers: Headers) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    fields: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in fields and key.startswith("ce-"):
            raise InvalidEventError(key, "header appears more than once; send each attribute once")
        fields[key] = value
    return fields


def _split_media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if content_type is None:
        return "", {}
    essence, _, rest = content_type.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    return essence.strip().lower(), params


def _check_charset(params: Mapping[str, str]) -> None:
    charset = params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise InvalidEventError("content-type", f"charset {charset!r} is not supported; CloudEvents JSON is UTF-8")


def _charset(content_type: str | None) -> str:
    charset = _split_media_type(content_type)[1].get("charset", "utf-8")
    try:
        "".encode(charset)
    except LookupError:
        raise InvalidEventError("content-type", f"unknown charset {charset!r}; use utf-8") from None
    return charset


def _read_batch(body: bytes, max_bytes: int, max_batch_bytes: int) -> list[Event]:
    if len(body) > max_batch_bytes:
        raise EventTooLargeError(len(body), max_batch_bytes)
    items = loads(body, where="batch")
    if not isinstance(items, list):
        raise InvalidEventError("batch", "must be a JSON array of events")
    events = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidEventError(f"batch[{index}]", f"must be a JSON object (an event), not {type(item).__name__}")
        try:
            # Parsed strictly with the batch: its data is not walked again (from_parsed).
            events.append(Event.from_parsed(item, max_bytes=max_bytes))
        except EventTooLargeError:
            raise
        except InvalidEventError as exc:
            raise InvalidEventError(f"batch[{index}].{exc.attribute}", exc.rule) from None
    return events


def _read_binary(fields: Mapping[str, str], content_type: str | None, body: bytes, max_bytes: int) -> Event:
    if len(body) > max_bytes:
        raise EventTooLargeError(len(body), max_bytes)
    attributes: dict[str, str] = {}
    for header, raw in fields.items():
        if header.startswith("ce-"):
            attributes[header[3:]] = _decode(header, raw)
    for name in _REQUIRED:
        if name not in attributes:
            raise InvalidEventError(f"ce-{name}", "header is required in binary mode")
    if attributes["specversion"] != SPEC_VERSION:
        raise InvalidEventError(
            "ce-specversion", f"{attributes['specversion']!r} is not supported; Triggerfish accepts '1.0' only"
        )
    if "datacontenttype" in attributes:
        raise InvalidEventError("ce-datacontenttype", "is not used in binary mode; send the Content-Type header")
    extensions: dict[str, Any] = {
        name: value for name, value in attributes.items() if name not in _REQUIRED and name not in _CONTEXT_HEADERS
    }
    if HOPCOUNT in extensions:
        extensions[HOPCOUNT] = _hopcount(extensions[HOPCOUNT])
    try:
        event = Event(
            id=attributes["id"],
            source=attributes["source"],
            type=attributes["type"],
            time=attributes.get("time"),
            subject=attributes.get("subject"),
            dataschema=attributes.get("dataschema"),
            datacontenttype=content_type,
            data=_read_data(content_type, body),
            extensions=extensions,
        )
    except InvalidEventError as exc:
        raise InvalidEventError(_header_for(exc.attribute), exc.rule) from None
    event.to_json(max_bytes=max_bytes)  # the limit is on the event's JSON form, as for every other mode
    return event


def _read_data(content_type: str | None, body: bytes) -> Any:
    if not body:
        return None
    if is_json_content_type(content_type):
        return loads(body, where="body", max_depth=DATA_MAX_DEPTH)
    if is_text_media_type(_split_media_type(content_type)[0]):
        charset = _charset(content_type)
        try:
            return body.decode(charset)
        except UnicodeDecodeError as exc:
            raise InvalidEventError(
                "body", f"is not valid {charset} text at byte offset {exc.start} (as Content-Type declares)"
            ) from None
    return body


#: Media types outside text/* whose bodies are text: handed to handlers as `data` text, not `data_base64`.
TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-www-form-urlencoded",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/graphql",
        "application/sql",
        "application/x-ndjson",
        "application/csv",
    }
)


def is_text_media_type(essence: str) -> bool:
    """True for `text/*`, XML (`application/xml`, `*+xml`) and the other textual application types above."""
    essence = essence.lower()
    return essence.startswith("text/") or essence.endswith("+xml") or essence in TEXT_APPLICATION_TYPES


def _hopcount(value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise InvalidEventError("ce-hopcount", f"must be a whole number >= 0, not {value!r}")
    return int(value)


def _header_for(attribute: str) -> str:
    if attribute == "datacontenttype":
        return "content-type"
    if attribute in ("data", "body", "extensions", "content-type"):
        return attribute
    return f"ce-{attribute}"


def _encode(value: str) -> str:
    return quote(value, safe=_HEADER_SAFE)


def _decode(header: str, value: str) -> str:
    if "%" not in value:
        return value.strip(" \t")  # nothing encoded: decoding would give the same text
    try:
        return unquote_to_bytes(value.strip(" \t")).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEventError(header, f"is not valid UTF-8 after percent-decoding (byte {exc.start})") from None
