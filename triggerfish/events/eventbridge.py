"""The EventBridge view of an event: PutEvents entries in, the EventBridge envelope out (and back).

Handlers written for EventBridge read ``event["detail-type"]`` and
``event["detail"]``; producers written for it call PutEvents. These pure
functions translate both to and from the CloudEvent every bus carries.

The mapping (docs/events.md has the table):

* ``id`` <-> ``id``, ``type`` <-> ``detail-type``, ``source`` <-> ``source``,
  ``time`` <-> ``time``, ``data`` <-> ``detail``. The envelope's ``time`` is
  in AWS's own shape (UTC, whole seconds, ``Z``) because handlers parse it
  that way; when the event's text differs, the original rides in the extras.
* ``resources`` (an array) has no CloudEvents type, so it travels as the
  ``resources`` extension holding the array as compact JSON text.
* ``account`` and ``region`` are constants (``ACCOUNT_ID``, ``REGION``) unless the
  event carries ``account`` / ``region`` extensions, which is how a different
  value survives the round trip.
* Everything the envelope has no field for (``subject``, ``datacontenttype``,
  ``dataschema``, the other extensions such as ``traceparent``) rides in one
  extra envelope member, ``cloudevents``, so that Event -> envelope -> Event
  is the identity. EventBridge handlers ignore members they do not know.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from triggerfish._json import dumps, loads
from triggerfish.errors import InvalidEventError, InvalidInputError, InvalidJSONError
from triggerfish.events.cloudevent import DATA_MAX_DEPTH, MAX_EVENT_BYTES, TRACEPARENT, Event
from triggerfish.events.tracecontext import is_valid as is_traceparent
from triggerfish.identity import ACCOUNT_ID, REGION

__all__ = [
    "ACCOUNT_ID",
    "EXTRAS",
    "REGION",
    "PutEntry",
    "from_envelope",
    "from_put_events_entry",
    "to_envelope",
    "to_put_events_entry",
]

#: The envelope member carrying the CloudEvents attributes EventBridge has no field for.
EXTRAS = "cloudevents"

#: The extension marking a replayed event (bus/archive.py), the envelope's top-level `replay-name`.
REPLAY_EXTENSION = "replayname"
REPLAY_NAME = "replay-name"
_MAPPED_EXTENSIONS = ("account", "region", "resources", REPLAY_EXTENSION)
_DEFAULT_CONTENT_TYPE = "application/json"
# How `detail` holds the data when it is not JSON; not a valid extension name, so it cannot collide with one.
_DATA_MODE = "data_mode"
# AWS X-Ray: Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>
_XRAY = re.compile(r"Root=1-([0-9a-f]{8})-([0-9a-f]{24})(?:;Parent=([0-9a-f]{16}))?(?:;Sampled=([01?]))?", re.I)


class PutEntry(NamedTuple):
    """One PutEvents entry, read: the bus it targets and the event it carries."""

    bus: str
    event: Event


# --- the envelope ------------------------------------------------------------------------------


def to_envelope(
    event: Event, *, account: str = ACCOUNT_ID, region: str = REGION, extras: bool = True
) -> dict[str, Any]:
    """The EventBridge envelope for `event`, as an EventBridge target receives it.

    `time` is written as AWS writes it (``2024-05-01T12:00:00Z``); an event
    without `time` is stamped with the current time. A replayed event carries
    `replay-name` at the top level, as EventBridge's do. With `extras=False`
    the envelope has AWS's keys only (what targets are delivered): the
    CloudEvents attributes it has no field for are left out, so it no longer
    reads back into the same event.
    """
    ext = event.extensions
    kept: dict[str, Any] = {}
    if event.subject is not None:
        kept["subject"] = event.subject
    if event.dataschema is not None:
        kept["dataschema"] = event.dataschema
    # application/json is what an envelope's detail means; record only a departure from it.
    if event.datacontenttype != (_DEFAULT_CONTENT_TYPE if event.data is not None else None):
        kept["datacontenttype"] = event.datacontenttype
    for name, value in ext.items():
        if name not in _MAPPED_EXTENSIONS:
            kept[name] = value
    detail: Any
    if event.data is None:
        detail = {}
        kept[_DATA_MODE] = "none"
    elif isinstance(event.data, bytes):
        detail = base64.b64encode(event.data).decode("ascii")
        kept[_DATA_MODE] = "base64"
    else:
        detail = event.data
    envelope_time = _aws_time(event.timestamp or datetime.datetime.now(datetime.UTC))
    if envelope_time != event.time:
        kept["time"] = event.time
    envelope: dict[str, Any] = {
        "version": "0",
        "id": event.id,
        "detail-type": event.type,
        "source": event.source,
        "account": ext.get("account", account),
        "time": envelope_time,
        "region": ext.get("region", region),
        "resources": _resources_from_extension(ext.get("resources")),
        "detail": detail,
    }
    replay = ext.get(REPLAY_EXTENSION)
    if isinstance(replay, str):
        envelope[REPLAY_NAME] = replay
    if kept and extras:
        envelope[EXTRAS] = kept
    return envelope


def from_envelope(envelope: Any, *, account: str = ACCOUNT_ID, region: str = REGION) -> Event:
    """The CloudEvent for an EventBridge envelope; the inverse of `to_envelope`.

    Raises InvalidEventError naming the envelope field that is missing or wrong.
    """
    if not isinstance(envelope, Mapping):
        raise InvalidEventError("envelope", f"must be an object, not {type(envelope).__name__}")
    if envelope.get("version") != "0":
        raise InvalidEventError("version", f"must be '0' for an EventBridge envelope, not {envelope.get('version')!r}")
    for name in ("id", "detail-type", "source", "time"):
        if not isinstance(envelope.get(name), str):
            raise InvalidEventError(name, "is required in an EventBridge envelope and must be a string")
    extras = envelope.get(EXTRAS, {})
    if not isinstance(extras, Mapping):
        raise InvalidEventError(EXTRAS, "must be an object")
    extensions: dict[str, Any] = {}
    for name, value in (("account", envelope.get("account", account)), ("region", envelope.get("region", region))):
        if not isinstance(value, str):
            raise InvalidEventError(name, "must be a string")
        if value != (account if name == "account" else region):
            extensions[name] = value
    replay = envelope.get(REPLAY_NAME)
    if replay is not None:
        if not isinstance(replay, str):
            raise InvalidEventError(REPLAY_NAME, "must be a string")
        extensions[REPLAY_EXTENSION] = replay
    resources = envelope.get("resources", [])
    if resources:
        extensions["resources"] = _resources_to_extension(resources, "resources")
    mode = extras.get(_DATA_MODE)
    detail = envelope.get("detail")
    data: Any
    if mode == "none":
        data = None
    elif mode == "base64":
        data = _decode_base64(detail)
    else:
        if "detail" not in envelope:
            raise InvalidEventError("detail", "is required in an EventBridge envelope")
        data = detail
    for name, value in extras.items():
        if name not in ("subject", "dataschema", "datacontenttype", "time", _DATA_MODE):
            extensions[name] = value
    content_type = extras.get("datacontenttype", _DEFAULT_CONTENT_TYPE if data is not None else None)
    return Event(
        id=envelope["id"],
        source=envelope["source"],
        type=envelope["detail-type"],
        time=extras.get("time", envelope["time"]),
        subject=extras.get("subject"),
        datacontenttype=content_type,
        dataschema=extras.get("dataschema"),
        data=data,
        extensions=extensions,
    )


# --- PutEvents ---------------------------------------------------------------------------------


def from_put_events_entry(entry: Any, *, index: int | None = None, max_bytes: int = MAX_EVENT_BYTES) -> PutEntry:
    """Read one PutEvents request entry into the event it publishes and its bus.

    `Source`, `DetailType` and `Detail` (a JSON object as a string) are
    required; `Resources` (strings), `Time` (RFC 3339 text, a datetime or epoch
    seconds), `EventBusName` (default "default") and `TraceHeader` (a W3C
    traceparent or an AWS X-Ray header, kept as the `traceparent` extension)
    are optional. Errors name the field, prefixed ``Entries[i].`` when `index`
    is given.
    """
    where = "" if index is None else f"Entries[{index}]."
    if not isinstance(entry, Mapping):
        raise InvalidEventError(f"Entries[{index}]" if index is not None else "entry", "must be an object")
    known = {"Source", "DetailType", "Detail", "Resources", "Time", "EventBusName", "TraceHeader"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise InvalidEventError(f"{where}{unknown[0]}", f"is not a PutEvents entry field; use one of {sorted(known)}")
    for name in ("Source", "DetailType", "Detail"):
        value = entry.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidEventError(f"{where}{name}", "is required and must be a non-empty string")
    try:
        detail = loads(entry["Detail"], where=f"{where}Detail", max_depth=DATA_MAX_DEPTH)
    except InvalidJSONError as exc:
        raise InvalidEventError(f"{where}Detail", f"is not valid JSON: {exc}") from None
    if not isinstance(detail, dict):
        raise InvalidEventError(f"{where}Detail", "must be a JSON object, e.g. '{\"order\": 1}'")
    bus = entry.get("EventBusName", "default")
    if not isinstance(bus, str) or not bus:
        raise InvalidEventError(f"{where}EventBusName", "must be a non-empty string")
    bus = bus.rsplit("/", 1)[-1]  # an event bus ARN names the bus after its last slash
    extensions: dict[str, Any] = {}
    if entry.get("Resources"):
        extensions["resources"] = _resources_to_extension(entry["Resources"], f"{where}Resources")
    if entry.get("TraceHeader"):
        extensions[TRACEPARENT] = _traceparent_from_header(entry["TraceHeader"], f"{where}TraceHeader")
    try:
        event = Event.create(
            type=entry["DetailType"],
            source=entry["Source"],
            data=detail,
            time=_entry_time(entry.get("Time"), f"{where}Time"),
            max_bytes=max_bytes,
            **extensions,
        )
    except InvalidEventError as exc:
        field = {"type": "DetailType", "source": "Source", "time": "Time"}.get(exc.attribute)
        if field is not None:
            raise InvalidEventError(f"{where}{field}", exc.rule) from None
        raise
    return PutEntry(bus, event)


def to_put_events_entry(event: Event, *, bus: str = "default") -> dict[str, Any]:
    """A PutEvents request entry publishing `event`'s type, source, data and resources on `bus`."""
    entry: dict[str, Any] = {
        "Source": event.source,
        "DetailType": event.type,
        "Detail": dumps(event.data if event.data is not None else {}).decode("utf-8"),
        "EventBusName": bus,
    }
    resources = _resources_from_extension(event.extensions.get("resources"))
    if resources:
        entry["Resources"] = resources
    if event.time is not None:
        entry["Time"] = event.time
    if event.traceparent is not None:
        entry["TraceHeader"] = event.traceparent
    return entry


# --- helpers -----------------------------------------------------------------------------------


def _aws_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _resources_to_extension(resources: Any, field: str) -> str:
    if not isinstance(resources, list) or not all(isinstance(r, str) and r for r in resources):
        raise InvalidEventError(field, "must be a list of non-empty strings (ARNs)")
    return dumps(resources).decode("utf-8")


def _resources_from_extension(value: Any) -> list[str]:
    if value is None:
        return []
    try:
        resources = loads(value, where="resources") if isinstance(value, str) else None
    except InvalidInputError:
        resources = None
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise InvalidEventError("resources", "the extension must hold a JSON array of strings, e.g. '[\"arn:...\"]'")
    return resources


def _decode_base64(value: Any) -> bytes:
    rule = "must be base64 text when the envelope marks its data as binary"
    if not isinstance(value, str):
        raise InvalidEventError("detail", rule)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEventError("detail", rule) from None


def _entry_time(value: Any, field: str) -> str | datetime.datetime | None:
    if value is None or isinstance(value, str | datetime.datetime):
        if isinstance(value, datetime.datetime) and value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)  # boto3 treats naive datetimes as UTC
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidEventError(field, f"{value!r} is not a representable epoch time in seconds") from None
    raise InvalidEventError(field, f"must be RFC 3339 text, a datetime or epoch seconds, not {type(value).__name__}")


def _traceparent_from_header(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidEventError(field, "must be a string")
    if is_traceparent(value):
        return value.strip(" \t")
    match = _XRAY.fullmatch(value.strip())
    if match is None or match.group(3) is None:
        raise InvalidEventError(
            field, "must be a W3C traceparent or an X-Ray header 'Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=1'"
        )
    trace = (match.group(1) + match.group(2)).lower()
    flags = "01" if match.group(4) == "1" else "00"
    candidate = f"00-{trace}-{match.group(3).lower()}-{flags}"
    if not is_traceparent(candidate):
        raise InvalidEventError(field, "the X-Ray trace or parent id is all zeros")
    return candidate
