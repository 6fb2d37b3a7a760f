"""Topic messages, pure: the checks SNS makes on a publish, the record a topic's log keeps, what subscribers get.

A topic is the log stream `topic.<name>`. Everything that publishes to a
topic (`Topics.publish`, a bus rule's topic target, a function's `topic:`
destination) appends the same record, built by `new_message()`, so the
topic's one consumer reads one format:

    {"id": "<MessageId>", "message": "...", "subject": null, "attributes": {...},
     "timestamp": 1700000000.123, "hop_count": 0, "traceparent": null}

The message id is assigned when the record is built, so a message delivered
twice (at least once) carries the same `MessageId` both times: subscribers
deduplicate on it, as they would with SNS.

Filters are EventBridge patterns (the engine in `triggerfish.events`), as
SNS filter policies are written in the same language. With the scope
"attributes" (SNS's default, `FilterPolicyScope: MessageAttributes`) a
pattern is matched against the message attributes as an object of strings;
with "body" (`MessageBody`) against the message parsed as a JSON object, and
a message that is not one matches no body filter.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from triggerfish._json import loads
from triggerfish.errors import InvalidInputError, InvalidJSONError
from triggerfish.events.shapes import PLATFORM_ATTRIBUTE_PREFIX, SnsMessage, iso_millis
from triggerfish.identity import sns_topic_arn
from triggerfish.model import check_resource_name

#: SNS's limit on a message: its text and its attributes' names, types and values together.
MAX_MESSAGE_BYTES = 256 * 1024
#: SNS delivers at most 10 attributes to queues and functions; more are refused at publish.
MAX_ATTRIBUTES = 10
#: SNS subjects are shorter than 100 characters.
MAX_SUBJECT_CHARS = 99
MAX_ATTRIBUTE_NAME_CHARS = 256

FilterScope = Literal["attributes", "body"]
FILTER_SCOPES: tuple[FilterScope, ...] = ("attributes", "body")

_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_RESERVED_ATTRIBUTE_PREFIXES = ("aws.", "amazon.", PLATFORM_ATTRIBUTE_PREFIX)


def check_topic(topic: object) -> str:
    """A topic name, or InvalidInputError saying which characters a name may use."""
    try:
        return check_resource_name("topic", topic)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class TopicMessage:
    """A message as a topic keeps it: SNS's fields, and the trace and hop count it carries on."""

    message_id: str
    message: str
    timestamp: float
    subject: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    hop_count: int = 0
    traceparent: str | None = None

    def sns(self) -> SnsMessage:
        """The message for `triggerfish.events.shapes.sns_records`."""
        return SnsMessage(self.message_id, self.message, self.timestamp, self.subject, self.attributes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "message": self.message,
            "subject": self.subject,
            "attributes": dict(self.attributes),
            "timestamp": self.timestamp,
            "hop_count": self.hop_count,
            "traceparent": self.traceparent,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, document: Any) -> TopicMessage:
        """Read a record back; ValueError when it is not one (written by hand, or by a newer version)."""
        if not isinstance(document, Mapping):
            raise ValueError(f"a topic record is a JSON object, not {type(document).__name__}")
        message_id, message, subject = document.get("id"), document.get("message"), document.get("subject")
        attributes, timestamp = document.get("attributes") or {}, document.get("timestamp")
        hop_count, traceparent = document.get("hop_count", 0), document.get("traceparent")
        if not isinstance(message_id, str) or not isinstance(message, str):
            raise ValueError("a topic record needs the string fields id and message")
        if subject is not None and not isinstance(subject, str):
            raise ValueError("a topic record's subject is a string or null")
        if not isinstance(attributes, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
        ):
            raise ValueError("a topic record's attributes map strings to strings")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise ValueError("a topic record's timestamp is a number of seconds")
        if isinstance(hop_count, bool) or not isinstance(hop_count, int) or hop_count < 0:
            raise ValueError("a topic record's hop_count is a whole number")
        if traceparent is not None and not isinstance(traceparent, str):
            raise ValueError("a topic record's traceparent is a string or null")
        return cls(message_id, message, float(timestamp), subject, dict(attributes), hop_count, traceparent)

    @classmethod
    def from_json(cls, data: bytes) -> TopicMessage:
        return cls.from_dict(orjson.loads(data))


def new_message(
    message: object,
    *,
    subject: object = None,
    attributes: object = None,
    hop_count: int = 0,
    traceparent: str | None = None,
    clock: Callable[[], float] = time.time,
    limit: int | None = MAX_MESSAGE_BYTES,
) -> TopicMessage:
    """Check a message as SNS's Publish does and give it its id and timestamp.

    Raises InvalidInputError naming the argument and the fix: a message that
    is not a non-empty str, a subject that is not one line of ASCII under 100
    characters, attributes that are not at most 10 names (letters, digits,
    `_ - .`) mapped to strings, or a message over `limit` bytes with its
    attributes (SNS's 256 KiB; None for the platform's own records, which
    the store's limit bounds).
    """
    if not isinstance(message, str):
        raise InvalidInputError(
            f"the message must be a str, not {type(message).__name__}; send JSON as text, e.g. json.dumps(value)"
        )
    if not message:
        raise InvalidInputError("the message must not be empty (SNS refuses empty messages)")
    size = _utf8_size("the message", message)
    checked_subject = _subject(subject)
    checked = _attributes(attributes)
    for name, value in checked.items():
        size += len(name.encode("utf-8")) + len("String") + _utf8_size(f"attribute {name!r}", value)
    if limit is not None and size > limit:
        raise InvalidInputError(
            f"the message is {size} bytes with its attributes, over the limit of {limit} bytes (256 KiB, as SNS);"
            " publish a reference to the data (a key in a bucket or table) instead"
        )
    return TopicMessage(str(uuid.uuid4()), message, clock(), checked_subject, checked, hop_count, traceparent)


def _utf8_size(what: str, text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} is not valid Unicode text: a lone surrogate at character {exc.start}"
        ) from None


def _subject(subject: object) -> str | None:
    if subject is None:
        return None
    if not isinstance(subject, str):
        raise InvalidInputError(f"the subject must be a str or None, not {type(subject).__name__}")
    if not 1 <= len(subject) <= MAX_SUBJECT_CHARS:
        raise InvalidInputError(
            f"the subject must be 1 to {MAX_SUBJECT_CHARS} characters (SNS's limit), not {len(subject)}"
        )
    if not subject.isascii() or not subject.isprintable() or not subject[0].strip():
        raise InvalidInputError(
            f"the subject {subject[:40]!r} must be one line of printable ASCII starting with a letter, digit"
            " or punctuation mark, as SNS requires"
        )
    return subject


def _attributes(attributes: object) -> dict[str, str]:
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise InvalidInputError(f"attributes must be a mapping of names to strings, not {type(attributes).__name__}")
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidInputError(f"a message takes at most {MAX_ATTRIBUTES} attributes (as SNS), not {len(attributes)}")
    checked: dict[str, str] = {}
    for name, value in attributes.items():
        check_attribute_name(name)
        if not isinstance(value, str):
            raise InvalidInputError(
                f"attribute {name!r}: the value must be a str, not {type(value).__name__}; write numbers as text,"
                ' e.g. {"price": "12.5"}'
            )
        checked[name] = value
    return checked


def check_attribute_name(name: object) -> str:
    """An attribute name by SNS's rules (and not the platform's `triggerfish.` prefix)."""
    if not isinstance(name, str):
        raise InvalidInputError(f"attribute names must be str, not {type(name).__name__}")
    if (
        not 1 <= len(name) <= MAX_ATTRIBUTE_NAME_CHARS
        or not _ATTRIBUTE_NAME.fullmatch(name)
        or name.startswith(".")
        or name.endswith(".")
        or ".." in name
    ):
        raise InvalidInputError(
            f"invalid attribute name {name!r}: use 1 to {MAX_ATTRIBUTE_NAME_CHARS} letters, digits, '_', '-' and '.',"
            " not starting or ending with '.' and without '..'"
        )
    if name.lower().startswith(_RESERVED_ATTRIBUTE_PREFIXES):
        raise InvalidInputError(
            f"attribute name {name!r} starts with a reserved prefix (AWS., Amazon., {PLATFORM_ATTRIBUTE_PREFIX});"
            " choose another name"
        )
    return name


# --- what subscribers get --------------------------------------------------------------------


def notification(topic: str, message: TopicMessage) -> dict[str, Any]:
    """The JSON document SNS delivers to queues and HTTP endpoints (without raw message delivery).

    `Subject` and `MessageAttributes` appear only when the message has them,
    as in SNS. The signature fields are filled by the deliverer's signer
    (triggerfish.aws.sns_signing); webhooks also carry Triggerfish's HMAC
    signature in headers.
    """
    document: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message.message_id,
        "TopicArn": sns_topic_arn(topic),
    }
    if message.subject is not None:
        document["Subject"] = message.subject
    document.update(
        {
            "Message": message.message,
            "Timestamp": iso_millis(message.timestamp),
            "SignatureVersion": "1",
            "Signature": "",
            "SigningCertURL": "",
            "UnsubscribeURL": "",
        }
    )
    if message.attributes:
        document["MessageAttributes"] = {
            name: {"Type": "String", "Value": value} for name, value in sorted(message.attributes.items())
        }
    return document


# --- filters ---------------------------------------------------------------------------------


def filter_document(message: TopicMessage, scope: FilterScope) -> Mapping[str, Any] | None:
    """What a filter of `scope` is matched against; None when the message cannot match any (a body not JSON)."""
    if scope == "attributes":
        return message.attributes
    try:
        body = loads(message.message, where="message")
    except InvalidJSONError:
        return None
    return body if isinstance(body, dict) else None


def check_scope(scope: object) -> FilterScope:
    if scope == "attributes":
        return "attributes"
    if scope == "body":
        return "body"
    raise InvalidInputError(
        f"filter_scope must be 'attributes' (SNS's MessageAttributes, the default) or 'body' (MessageBody),"
        f" not {scope!r}"
    )


__all__ = [
    "FILTER_SCOPES",
    "MAX_ATTRIBUTES",
    "MAX_MESSAGE_BYTES",
    "FilterScope",
    "TopicMessage",
    "check_attribute_name",
    "check_scope",
    "check_topic",
    "filter_document",
    "new_message",
    "notification",
]
