"""The event envelope: an immutable CloudEvents 1.0 event and its JSON format.

Every event on a Triggerfish bus is a CloudEvent. This module owns the rules
(required attributes, the type system, extension names, the size limit) and the
JSON form; the HTTP binding and the EventBridge mapping build on it.

Decisions, so that every part of the platform agrees:

* `time` stays the RFC 3339 string it arrived as (validated), so a round trip
  never changes its text; `Event.timestamp` gives the aware datetime.
* Binary data is `bytes` in `data`; the JSON form carries it as `data_base64`.
* A JSON `null` attribute means "absent", as the JSON format requires;
  `data: null` therefore reads back as no data.
* Extension names are 1-20 lowercase letters or digits (the spec's naming rule
  with its recommended length made a limit); values are strings, booleans or
  32-bit integers (the spec's Integer type). Triggerfish's own extensions:
  `traceparent` (W3C Trace Context) and `hopcount` (events in the causal chain
  before this one, an integer >= 0, which stops runaway event loops).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from triggerfish._json import check_value, dumps, loads
from triggerfish.errors import EventTooLargeError, InvalidEventError, InvalidInputError, InvalidJSONError
from triggerfish.events import tracecontext

__all__ = [
    "DATA_MAX_DEPTH",
    "HOPCOUNT",
    "MAX_EVENT_BYTES",
    "SPEC_VERSION",
    "TRACEPARENT",
    "Event",
    "ExtensionValue",
    "format_time",
    "is_json_content_type",
    "validate_extension",
]

#: The largest event, as JSON, that Triggerfish accepts by default (EventBridge's limit).
MAX_EVENT_BYTES = 256 * 1024
#: The only CloudEvents version accepted.
SPEC_VERSION = "1.0"
#: Extension carrying the W3C traceparent of the work that produced the event.
TRACEPARENT = "traceparent"
#: Extension counting the events in the causal chain before this one.
HOPCOUNT = "hopcount"

ExtensionValue = str | bool | int

#: How deeply `data` may nest: one level less than strict JSON's 64, which the event object itself takes.
DATA_MAX_DEPTH = 63
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_CONTEXT = ("id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time")
_RESERVED = frozenset((*_CONTEXT, "data", "data_base64"))
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}\Z")


def _noncharacters() -> str:
    planes = "".join(f"\\U{plane:04x}fffe\\U{plane:04x}ffff" for plane in range(0x11))
    return "\\ufdd0-\\ufdef" + planes


# The spec's String type forbids control characters, surrogates and Unicode noncharacters.
_FORBIDDEN_CHAR = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff" + _noncharacters() + "]")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# Characters RFC 3986 never allows in a URI reference (non-ASCII is tolerated, as IRIs do).
_NOT_IN_URI = re.compile(r"[\s<>\"{}|\\^`]")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z\-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|\"[^\"\\]*\"))*[ \t]*\Z")


# Events repeat a handful of sources, types, extension names and media types; remembering the
# ones already validated skips the checks. Bounded, so hostile input cannot grow them forever.
_GOOD_SOURCES: set[object] = set()
_GOOD_TYPES: set[object] = set()
_GOOD_NAMES: set[object] = set()
_GOOD_MEDIA_TYPES: set[object] = set()
_REMEMBER_AT_MOST = 1024


def _known(seen: set[object], value: object) -> bool:
    return type(value) is str and value in seen


def _remember(seen: set[object], value: object) -> None:
    if len(seen) >= _REMEMBER_AT_MOST:
        seen.clear()
    seen.add(value)


def is_json_content_type(content_type: str | None) -> bool:
    """True for ``application/json``, any ``+json`` type, and absent (the JSON format's default)."""
    if content_type is None:
        return True
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence == "application/json" or essence.endswith("+json") or essence == "text/json"


@dataclass(frozen=True, slots=True)
class Event:
    """An immutable CloudEvents 1.0 event.

    Build one for publishing with `Event.create`, read one with
    `Event.from_json`; constructing directly validates the same rules.
    `extensions` maps extension names to string, boolean or integer values.
    Every broken rule raises InvalidEventError naming the attribute.

    >>> e = Event.create(type="order.placed", source="/shop", data={"id": 1})
    >>> Event.from_json(e.to_json()) == e
    True
    """

    id: str
    source: str
    type: str
    specversion: str = SPEC_VERSION
    time: str | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    extensions: Mapping[str, ExtensionValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.specversion != SPEC_VERSION:
            _check_specversion(self.specversion)
        _check_string("id", self.id, required=True)
        if not _known(_GOOD_SOURCES, self.source):
            _check_string("source", self.source, required=True)
            _check_uri_reference("source", self.source)
            _remember(_GOOD_SOURCES, self.source)
        if not _known(_GOOD_TYPES, self.type):
            _check_string("type", self.type, required=True)
            _remember(_GOOD_TYPES, self.type)
        if self.subject is not None:
            # CloudEvents 1.0: "If present, MUST be a non-empty string" (absent is None, never "").
            _check_string("subject", self.subject, required=True)
        if self.time is not None:
            _check_time(self.time)
        if self.datacontenttype is not None and not _known(_GOOD_MEDIA_TYPES, self.datacontenttype):
            _check_string("datacontenttype", self.datacontenttype)
            if _MEDIA_TYPE.match(self.datacontenttype) is None:
                raise InvalidEventError(
                    "datacontenttype", f"{self.datacontenttype!r} is not a media type like 'application/json'"
                )
            _remember(_GOOD_MEDIA_TYPES, self.datacontenttype)
        if self.dataschema is not None:
            _check_string("dataschema", self.dataschema, required=True)
            _check_uri_reference("dataschema", self.dataschema)
            if _URI_SCHEME.match(self.dataschema) is None:
                raise InvalidEventError("dataschema", f"{self.dataschema!r} is not an absolute URI (it needs a scheme)")
        if isinstance(self.data, bytearray | memoryview):
            object.__setattr__(self, "data", bytes(self.data))
        elif self.data is not None and type(self.data) is not bytes:
            # Held to what the JSON form carries exactly, so an event accepted here reads back the same.
            try:
                check_value(self.data, max_depth=DATA_MAX_DEPTH)
            except InvalidJSONError as exc:
                raise InvalidEventError("data", str(exc)) from None
        if not isinstance(self.extensions, Mapping):
            raise InvalidEventError("extensions", f"must be a mapping, not {type(self.extensions).__name__}")
        for name, value in self.extensions.items():
            validate_extension(name, value)
        # A read-only view, so an event cannot be changed behind a router's back.
        object.__setattr__(self, "extensions", MappingProxyType(dict(self.extensions)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # A mappingproxy cannot be pickled; rebuild from a plain dict (re-validating on the way in).
        return (
            Event,
            (
                self.id,
                self.source,
                self.type,
                self.specversion,
                self.time,
                self.subject,
                self.datacontenttype,
                self.dataschema,
                self.data,
                dict(self.extensions),
            ),
        )

    # --- building --------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        type: str,
        source: str,
        data: Any = None,
        *,
        id: str | None = None,
        time: str | datetime.datetime | None = None,
        subject: str | None = None,
        datacontenttype: str | None = None,
        dataschema: str | None = None,
        max_bytes: int = MAX_EVENT_BYTES,
        **extensions: ExtensionValue,
    ) -> Event:
        """Build a new event to publish: a uuid4 `id` and the current UTC `time` unless given.

        `datacontenttype` defaults to ``application/json`` for data and to
        ``application/octet-stream`` for `bytes`. Keyword arguments beyond the
        named ones become extensions (``traceparent=...``, ``hopcount=...``).
        Raises InvalidEventError for a broken rule and EventTooLargeError when
        the JSON form is over `max_bytes`.
        """
        if isinstance(time, datetime.datetime):
            time = format_time(time)
        if datacontenttype is None and data is not None:
            datacontenttype = "application/octet-stream" if isinstance(data, bytes) else "application/json"
        event = cls(
            id=str(uuid.uuid4()) if id is None else id,
            source=source,
            type=type,
            time=format_time(datetime.datetime.now(datetime.UTC)) if time is None else time,
            subject=subject,
            datacontenttype=datacontenttype,
            dataschema=dataschema,
            data=data,
            extensions=extensions,
        )
        event.to_json(max_bytes=max_bytes)  # checks that data is JSON and the size within limit
        return event

    @classmethod
    def from_json(
        cls, value: str | bytes | bytearray | memoryview | Mapping[str, Any], *, max_bytes: int = MAX_EVENT_BYTES
    ) -> Event:
        """Read an event in the CloudEvents JSON format (text, bytes, or an already-parsed dict).

        Raises InvalidJSONError for a document that is not strict JSON,
        EventTooLargeError over `max_bytes`, and InvalidEventError for a
        broken CloudEvents rule.
        """
        if isinstance(value, Mapping):
            event = cls.from_dict(value)
            event.to_json(max_bytes=max_bytes)
            return event
        if isinstance(value, str):
            size = len(value)
            if size <= max_bytes:
                size = len(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, bytes | bytearray | memoryview):
            size = len(value)
        else:
            raise InvalidEventError("event", f"expected JSON text, bytes or a dict, not {type(value).__name__}")
        _check_size(size, max_bytes)
        return cls._from_document(loads(value, where="event"), data_is_strict=True)

    @classmethod
    def from_parsed(cls, document: Any, *, max_bytes: int = MAX_EVENT_BYTES) -> Event:
        """`from_json` for an event that strict `loads` parsed inside a larger document (an item of a batch,
        at most 62 levels of data under the batch's 64): its data meets every rule `check_value` enforces
        already, so it is not walked again; the size is checked as `from_json` checks it."""
        event = cls._from_document(document, data_is_strict=True)
        event.to_json(max_bytes=max_bytes)
        return event

    @classmethod
    def from_dict(cls, document: Any) -> Event:
        """Build an event from a parsed CloudEvents JSON object (no size check; see `from_json`)."""
        return cls._from_document(document, data_is_strict=False)

    @classmethod
    def from_log(cls, document: Any) -> Event:
        """Build an event from a log record a publisher wrote (parsed): its attributes are checked as ever,
        but not its data, which the publisher held to the JSON form when it wrote the record (the log is
        trusted on read; a record that is not an event still raises InvalidEventError)."""
        return cls._from_document(document, data_is_strict=True)

    @classmethod
    def _from_document(cls, document: Any, *, data_is_strict: bool) -> Event:
        if not isinstance(document, Mapping):
            raise InvalidEventError("event", f"must be a JSON object, not {_json_type(document)}")
        if "specversion" not in document or document["specversion"] is None:
            raise InvalidEventError("specversion", "is required; set it to '1.0'")
        _check_specversion(document["specversion"])
        for name in ("id", "source", "type"):
            if document.get(name) is None:
                raise InvalidEventError(name, "is required")
        data = document.get("data")
        encoded = document.get("data_base64")
        if encoded is not None:
            if data is not None:
                raise InvalidEventError("data_base64", "cannot be present together with 'data'; send one of them")
            data = _decode_base64(encoded)
        extensions = {}
        for name, value in document.items():
            if name not in _RESERVED and value is not None:
                extensions[name] = value
        # Data that strict `loads` just produced (within 64 levels for the whole event, so 63 for data)
        # already meets every rule `check_value` would enforce; set it after validation instead.
        skip = data_is_strict and data is not None and type(data) is not bytes
        event = cls(
            id=document["id"],
            source=document["source"],
            type=document["type"],
            time=document.get("time"),
            subject=document.get("subject"),
            datacontenttype=document.get("datacontenttype"),
            dataschema=document.get("dataschema"),
            data=None if skip else data,
            extensions=extensions,
        )
        if skip:
            object.__setattr__(event, "data", data)
        return event

    # --- reading ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The CloudEvents JSON object; binary data appears as `data_base64`."""
        out: dict[str, Any] = {"specversion": self.specversion, "id": self.id, "source": self.source, "type": self.type}
        if self.time is not None:
            out["time"] = self.time
        if self.subject is not None:
            out["subject"] = self.subject
        if self.datacontenttype is not None:
            out["datacontenttype"] = self.datacontenttype
        if self.dataschema is not None:
            out["dataschema"] = self.dataschema
        out.update(self.extensions)
        if isinstance(self.data, bytes):
            out["data_base64"] = base64.b64encode(self.data).decode("ascii")
        elif self.data is not None:
            out["data"] = self.data
        return out

    def to_json(self, *, max_bytes: int = MAX_EVENT_BYTES) -> bytes:
        """The event in the CloudEvents JSON format, compact UTF-8.

        Raises InvalidEventError when `data` is not JSON-serialisable and
        EventTooLargeError when the result is over `max_bytes`.
        """
        body = _dump_event(self.to_dict())
        _check_size(len(body), max_bytes)
        return body

    def with_extensions(self, **extensions: ExtensionValue | None) -> Event:
        """A copy with these extensions set (a value of None removes one)."""
        merged = dict(self.extensions)
        for name, value in extensions.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = value
        return Event(
            id=self.id,
            source=self.source,
            type=self.type,
            time=self.time,
            subject=self.subject,
            datacontenttype=self.datacontenttype,
            dataschema=self.dataschema,
            data=self.data,
            extensions=merged,
        )

    @property
    def traceparent(self) -> str | None:
        """The W3C traceparent this event carries, if any."""
        value = self.extensions.get(TRACEPARENT)
        return value if isinstance(value, str) else None

    @property
    def hopcount(self) -> int | None:
        """How many events came before this one in its causal chain, if recorded."""
        value = self.extensions.get(HOPCOUNT)
        return value if isinstance(value, int) else None

    @property
    def timestamp(self) -> datetime.datetime | None:
        """`time` as a timezone-aware datetime (fractions beyond microseconds are truncated)."""
        if self.time is None:
            return None
        try:
            return datetime.datetime.fromisoformat(self.time)  # C-fast for the common shapes
        except ValueError:
            return _parse_time(self.time)


# --- the rules -------------------------------------------------------------------------------


def validate_extension(name: object, value: object) -> None:
    """Check one extension attribute; raise InvalidEventError naming it and the rule broken."""
    if not isinstance(name, str):
        raise InvalidEventError(type(name).__name__, "extension names must be strings")
    if name not in _GOOD_NAMES:
        if _EXTENSION_NAME.match(name) is None:
            raise InvalidEventError(
                name, "extension names are 1-20 characters, lowercase letters a-z and digits only (e.g. 'traceparent')"
            )
        if name in _RESERVED:
            raise InvalidEventError(name, "is a CloudEvents attribute name and cannot be used for an extension")
        _remember(_GOOD_NAMES, name)
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not _INT32_MIN <= value <= _INT32_MAX:
            raise InvalidEventError(name, f"integer {value} is outside the CloudEvents Integer range (32-bit signed)")
    elif isinstance(value, str):
        _check_string(name, value)
    else:
        raise InvalidEventError(
            name, f"must be a string, boolean or integer, not {_json_type(value)}; encode it as a string"
        )
    if name == TRACEPARENT:
        if not tracecontext.is_valid(value):
            tracecontext.parse(value, attribute=name)  # type: ignore[arg-type]  # raises, naming the rule
    elif name == HOPCOUNT and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidEventError(name, f"must be an integer >= 0, not {value!r}")


def _check_specversion(value: object) -> None:
    if value != SPEC_VERSION:
        raise InvalidEventError(
            "specversion", f"{value!r} is not supported; Triggerfish accepts CloudEvents '1.0' only"
        )


def _check_string(name: str, value: object, *, required: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidEventError(name, f"must be a string, not {_json_type(value)}")
    if required and not value:
        raise InvalidEventError(name, "must not be empty")
    if value.isprintable():  # fast path: every forbidden character is non-printable
        return
    bad = _FORBIDDEN_CHAR.search(value)
    if bad is not None:
        raise InvalidEventError(
            name, f"contains U+{ord(bad.group()):04X} at position {bad.start()}; control characters are not allowed"
        )


def _check_uri_reference(name: str, value: str) -> None:
    bad = _NOT_IN_URI.search(value)
    if bad is not None:
        raise InvalidEventError(
            name, f"is not a URI reference: {bad.group()!r} at position {bad.start()} must be percent-encoded"
        )


def _check_time(value: object) -> None:
    if not isinstance(value, str):
        raise InvalidEventError("time", f"must be an RFC 3339 string, not {_json_type(value)}")
    if _RFC3339.match(value) is None:
        raise InvalidEventError("time", f"{value!r} is not an RFC 3339 timestamp like '2024-05-01T12:00:00Z'")
    try:
        datetime.datetime.fromisoformat(value)  # C-fast range check for the common shapes
    except ValueError:
        _parse_time(value)  # lowercase t/z, odd fraction lengths: the exact, slower check


def _parse_time(value: str) -> datetime.datetime:
    match = _RFC3339.match(value)
    if match is None:
        raise InvalidEventError("time", f"{value!r} is not an RFC 3339 timestamp like '2024-05-01T12:00:00Z'")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        if offset in ("Z", "z"):
            tz = datetime.UTC
        else:
            sign = -1 if offset[0] == "-" else 1
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError(f"offset {offset} out of range")
            tz = datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
        micro = int((fraction or ".0")[1:7].ljust(6, "0"))
        return datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    except ValueError as exc:
        raise InvalidEventError("time", f"{value!r} is not a valid date and time: {exc}") from None


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 text for an aware datetime, in UTC with a ``Z``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidEventError("time", "a datetime must be timezone-aware; use datetime.now(datetime.UTC)")
    return moment.astimezone(datetime.UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _decode_base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidEventError("data_base64", f"must be a base64 string, not {_json_type(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEventError("data_base64", f"is not valid base64 (RFC 4648): {exc}") from None


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise EventTooLargeError(size, limit)


def _dump_event(document: dict[str, Any]) -> bytes:
    try:
        return dumps(document)
    except InvalidInputError as exc:
        raise InvalidEventError("data", f"is not JSON: {exc}") from None


def _json_type(value: object) -> str:
    names = {
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "an array",
        dict: "an object",
    }
    if value is None:
        return "null"
    return names.get(type(value), type(value).__name__)
