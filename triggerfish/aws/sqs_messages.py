"""SQS message attributes on the platform's queues: checked as SQS checks them, stored, read back, digested.

The store keeps a message's attributes as text to text. An SQS attribute also has a data type
(`String`, `Number`, `Binary`, each with an optional `.label`), so a message carries the types
that are not plain `String` in one platform attribute (`SQS_TYPES_ATTRIBUTE`, JSON), and binary
values as base64 text. `typed_attributes` reads both back, for the endpoint's ReceiveMessage and
the records of a queue-triggered function alike.

The MD5 digests are SQS's own, so a client that verifies them (the AWS SDKs do) accepts ours:
for each attribute in name order, the name, the data type and the value, each prefixed with its
length as a 4-byte big-endian integer, with a transport byte (1 text, 2 binary) before the value.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from triggerfish._json import dumps, loads
from triggerfish.errors import InvalidInputError
from triggerfish.names import SQS_SEQUENCE_ATTRIBUTE, SQS_TYPES_ATTRIBUTE

#: SQS's limits on a message's attributes.
MAX_ATTRIBUTES = 10
MAX_NAME_CHARS = 256
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_TYPE = re.compile(r"(String|Number|Binary)(\.[A-Za-z0-9_.-]{1,250})?")
_RESERVED_NAME_PREFIXES = ("aws.", "amazon.", "triggerfish.")


@dataclass(frozen=True, slots=True)
class TypedAttribute:
    data_type: str
    #: Text for String and Number types, bytes for Binary.
    value: str | bytes

    @property
    def binary(self) -> bool:
        return self.data_type.startswith("Binary")

    def as_aws(self) -> dict[str, Any]:
        """The attribute as SQS's JSON protocol writes it (`BinaryValue` as base64, as JSON carries blobs)."""
        if isinstance(self.value, bytes):
            return {"DataType": self.data_type, "BinaryValue": base64.b64encode(self.value).decode("ascii")}
        return {"DataType": self.data_type, "StringValue": self.value}

    def as_lambda(self) -> dict[str, Any]:
        """The attribute as an SQS record for Lambda writes it."""
        record: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": self.data_type}
        if isinstance(self.value, bytes):
            record["binaryValue"] = base64.b64encode(self.value).decode("ascii")
        else:
            record["stringValue"] = self.value
        return record


def check_attributes(given: object, where: str = "MessageAttributes") -> dict[str, TypedAttribute]:
    """SQS `MessageAttributes` as the JSON protocol sends them, checked; raises InvalidInputError naming the fault."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise InvalidInputError(f"{where} must be a map of attribute names to values")
    if len(given) > MAX_ATTRIBUTES:
        raise InvalidInputError(f"{where} has {len(given)} attributes; a message takes at most {MAX_ATTRIBUTES}")
    checked: dict[str, TypedAttribute] = {}
    for name, value in given.items():
        place = f"{where}.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME_CHARS or ".." in name:
            raise InvalidInputError(
                f"{place}: an attribute name is 1 to {MAX_NAME_CHARS} letters, digits, _ - or . (no '..')"
            )
        if name.startswith(".") or name.endswith(".") or name.lower().startswith(_RESERVED_NAME_PREFIXES):
            raise InvalidInputError(f"{place}: names may not start or end with '.', nor start with AWS., Amazon.")
        if not isinstance(value, dict):
            raise InvalidInputError(f"{place} must be a map with DataType and StringValue or BinaryValue")
        data_type = value.get("DataType")
        if not isinstance(data_type, str) or not _TYPE.fullmatch(data_type):
            raise InvalidInputError(f"{place}.DataType must be String, Number or Binary (optionally .label)")
        if data_type.startswith("Binary"):
            raw = value.get("BinaryValue")
            if not isinstance(raw, str) or not raw:
                raise InvalidInputError(f"{place}: a Binary attribute needs a BinaryValue (base64)")
            try:
                checked[name] = TypedAttribute(data_type, base64.b64decode(raw, validate=True))
            except binascii.Error:
                raise InvalidInputError(f"{place}.BinaryValue is not base64") from None
            continue
        text = value.get("StringValue")
        if not isinstance(text, str) or not text:
            raise InvalidInputError(f"{place}: a {data_type} attribute needs a non-empty StringValue")
        if data_type.startswith("Number") and not _is_number(text):
            raise InvalidInputError(f"{place}.StringValue {text!r} is not a number")
        checked[name] = TypedAttribute(data_type, text)
    return checked


def stored_attributes(attributes: Mapping[str, TypedAttribute]) -> dict[str, str]:
    """The store's text attributes for `attributes`: binary as base64, the non-String types in one attribute."""
    stored: dict[str, str] = {}
    types: dict[str, str] = {}
    for name, attribute in attributes.items():
        if isinstance(attribute.value, bytes):
            stored[name] = base64.b64encode(attribute.value).decode("ascii")
        else:
            stored[name] = attribute.value
        if attribute.data_type != "String":
            types[name] = attribute.data_type
    if types:
        stored[SQS_TYPES_ATTRIBUTE] = dumps(types).decode("utf-8")
    return stored


def typed_attributes(stored: Mapping[str, str], *, reserved_prefix: str = "triggerfish.") -> dict[str, TypedAttribute]:
    """A stored message's user attributes with their types (String unless the types attribute says otherwise)."""
    types: dict[str, Any] = {}
    raw = stored.get(SQS_TYPES_ATTRIBUTE)
    if raw is not None:
        try:
            decoded = loads(raw.encode("utf-8"), where="message attribute types")
            types = decoded if isinstance(decoded, dict) else {}
        except InvalidInputError:
            types = {}
    typed: dict[str, TypedAttribute] = {}
    for name, value in stored.items():
        if name.startswith(reserved_prefix):
            continue
        data_type = types.get(name, "String")
        if not isinstance(data_type, str):
            data_type = "String"
        if data_type.startswith("Binary"):
            try:
                typed[name] = TypedAttribute(data_type, base64.b64decode(value, validate=True))
                continue
            except binascii.Error:
                data_type = "String"
        typed[name] = TypedAttribute(data_type, value)
    return typed


def md5_of_attributes(attributes: Mapping[str, TypedAttribute]) -> str:
    """SQS's MD5 of message attributes (see the module docstring)."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attribute = attributes[name]
        digest.update(_prefixed(name.encode("utf-8")) + _prefixed(attribute.data_type.encode("utf-8")))
        if isinstance(attribute.value, bytes):
            digest.update(b"\x02" + _prefixed(attribute.value))
        else:
            digest.update(b"\x01" + _prefixed(attribute.value.encode("utf-8")))
    return digest.hexdigest()


def md5_of_body(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def _prefixed(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text


def sequence_number(moment: float, salt: str) -> str:
    """A FIFO message's SequenceNumber: 20 digits, growing with the time it was sent (microseconds), as SQS's
    grow within a group; the last 4 digits come from `salt` (an id), so messages of one microsecond differ."""
    return f"{int(moment * 1_000_000):016d}{zlib.crc32(salt.encode('utf-8')) % 10_000:04d}"


def message_sequence(attributes: Mapping[str, str], sent_at: float, message_id: str) -> str:
    """The SequenceNumber of a stored FIFO message: the one SendMessage answered, else one from when it was sent."""
    return attributes.get(SQS_SEQUENCE_ATTRIBUTE) or sequence_number(sent_at, message_id)
