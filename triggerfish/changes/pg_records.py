"""PostgreSQL row changes as DynamoDB Streams records: typed images, keys, sequence numbers.

    record = stream_record(change, Position(commit_lsn, 0), keys=("id",), view="NEW_IMAGE",
                           created=1765000000.0, source_arn=arn)

Pure: no I/O. A record has DynamoDB Streams' shape (`eventID`, `eventName`
INSERT/MODIFY/REMOVE, `eventVersion`, `eventSource`, `awsRegion`,
`dynamodb.{ApproximateCreationDateTime, Keys, NewImage, OldImage,
SequenceNumber, SizeBytes, StreamViewType}`, `eventSourceARN`), so code
written for DynamoDB Streams reads it unchanged. Columns become
AttributeValues by their PostgreSQL type (the table is in docs/pg-changes.md):

| PostgreSQL | AttributeValue |
|---|---|
| smallint, integer, bigint, numeric, real, double precision, oid | `N` (NaN, ±Infinity: `S`) |
| boolean | `BOOL` |
| bytea | `B` (base64, as DynamoDB's JSON carries binary) |
| json, jsonb | `M`/`L`/`S`/`N`/`BOOL`/`NULL`, the document typed as DynamoDB would store it |
| arrays (`integer[]`, `text[]`, ...) | `L` of the elements typed as above |
| NULL | `NULL: true` |
| everything else (text, varchar, uuid, dates and times as ISO text, enums, ...) | `S`, PostgreSQL's text form |

The sequence number is the transaction's commit LSN and the change's place
in it, in fixed-width digits, so text order is stream order (DynamoDB's
sequence numbers are digit strings too); what `batchItemFailures` names.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from triggerfish.changes.pg_decoding import Column, RowChange
from triggerfish.identity import REGION

ViewType = Literal["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"]
VIEW_TYPES: tuple[ViewType, ...] = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
#: The record's `eventSource`: not an AWS service, so named as the platform's other sources are (`triggerfish:mqtt`).
EVENT_SOURCE = "triggerfish:postgresql"
#: The record's `eventVersion` (DynamoDB Streams' current one).
EVENT_VERSION = "1.1"
EVENT_NAMES = {"INSERT": "INSERT", "UPDATE": "MODIFY", "DELETE": "REMOVE"}

_NUMBERS = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision", "oid"})
_NOT_NUMBERS = frozenset({"NaN", "Infinity", "-Infinity"})


class RecordError(ValueError):
    """A change that cannot become a record (its key columns were not logged)."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a change is in the stream: its transaction's commit LSN, and its place in the transaction."""

    commit_lsn: int
    index: int

    @property
    def sequence(self) -> str:
        """The record's SequenceNumber: 20 digits of LSN, 8 of index, so text order is stream order."""
        return f"{self.commit_lsn:020d}{self.index:08d}"


def parse_lsn(text: str) -> int:
    """`16/B374D848` (PostgreSQL's pg_lsn text) as the 64-bit number it is."""
    high, sep, low = text.partition("/")
    if not sep:
        raise ValueError(f"not an LSN: {text!r} (expected two hexadecimal halves, as 16/B374D848)")
    return (int(high, 16) << 32) | int(low, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def commit_time(stamp: str | None, fallback: float) -> float:
    """Seconds since the epoch of a commit time as test_decoding prints it (`2026-12-06 19:09:11.3+00`)."""
    if stamp is None:
        return fallback
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return fallback


def stream_record(
    change: RowChange,
    position: Position,
    *,
    keys: Sequence[str],
    view: ViewType,
    created: float,
    source_arn: str,
) -> dict[str, Any]:
    """The DynamoDB Streams record of one row change (INSERT, UPDATE or DELETE); RecordError without its key."""
    if change.op not in EVENT_NAMES:
        raise RecordError(f"a {change.op} has no row to make a record of")
    old = image(change.old) if change.old is not None else None
    new = image(change.new, fill=old) if change.new is not None else None
    # The key: the row as it is now, or as it was for a delete (its replica identity holds the key).
    source = new if change.op != "DELETE" else old
    try:
        key_image = {name: (source or {})[name] for name in keys}
    except KeyError as exc:
        raise RecordError(
            f"a {change.op} on {change.schema}.{change.table} without its key column {exc.args[0]!r}: the table's "
            "REPLICA IDENTITY logs no key (set it to DEFAULT or FULL)"
        ) from None
    body: dict[str, Any] = {"ApproximateCreationDateTime": round(created, 3), "Keys": key_image}
    if view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and new is not None:
        body["NewImage"] = new
    if view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and old is not None and change.op != "INSERT":
        body["OldImage"] = old
    body["SequenceNumber"] = position.sequence
    body["SizeBytes"] = len(orjson.dumps([body["Keys"], body.get("NewImage"), body.get("OldImage")]))
    body["StreamViewType"] = view
    return {
        "eventID": hashlib.sha256(f"{source_arn}\0{position.sequence}".encode()).hexdigest()[:32],
        "eventName": EVENT_NAMES[change.op],
        "eventVersion": EVENT_VERSION,
        "eventSource": EVENT_SOURCE,
        "awsRegion": REGION,
        "dynamodb": body,
        "eventSourceARN": source_arn,
    }


def image(columns: Sequence[Column], *, fill: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A row's columns as AttributeValues. A TOASTed value the change did not log is taken from `fill` (the
    old row, under REPLICA IDENTITY FULL) or left out: PostgreSQL did not write it to the WAL."""
    out: dict[str, Any] = {}
    for column in columns:
        if column.unchanged:
            if fill is not None and column.name in fill:
                out[column.name] = fill[column.name]
            continue
        out[column.name] = attribute(column.type, column.value)
    return out


def attribute(type_name: str, value: str | None) -> dict[str, Any]:
    """One value, as PostgreSQL printed it, typed as a DynamoDB AttributeValue (the module's table)."""
    if value is None:
        return {"NULL": True}
    if type_name.endswith("[]"):
        try:
            elements = parse_array(value)
        except ValueError:
            return {"S": value}
        return _list(type_name[:-2], elements)
    if type_name in _NUMBERS:
        return {"S": value} if value in _NOT_NUMBERS else {"N": value}
    if type_name == "boolean":
        return {"BOOL": value in ("true", "t")}
    if type_name == "bytea":
        return {"B": base64.b64encode(_bytea(value)).decode("ascii")}
    if type_name in ("json", "jsonb"):
        try:
            return document(orjson.loads(value))
        except orjson.JSONDecodeError:
            return {"S": value}
    return {"S": value}


def document(value: Any) -> dict[str, Any]:
    """A JSON value typed as DynamoDB stores documents: objects `M`, arrays `L`, numbers `N` (as text)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [document(item) for item in value]}
    return {"M": {str(key): document(item) for key, item in value.items()}}


def parse_array(text: str) -> list[Any]:
    """A PostgreSQL array literal (`{1,2}`, `{"a b",NULL}`, `{{1,2},{3,4}}`) as nested lists of str or None."""
    if not text.startswith("{"):
        raise ValueError(f"not an array literal: {text[:40]!r}")  # `[0:1]={...}` bounds are not handled
    items, end = _array(text, 0)
    if end != len(text):
        raise ValueError(f"text after the array's end: {text[end : end + 20]!r}")
    return items


def _array(text: str, at: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    at += 1  # past {
    if text.startswith("}", at):
        return items, at + 1
    while True:
        if text.startswith("{", at):
            inner, at = _array(text, at)
            items.append(inner)
        elif text.startswith('"', at):
            out: list[str] = []
            at += 1
            while text[at] != '"':
                if text[at] == "\\":
                    at += 1
                out.append(text[at])
                at += 1
            items.append("".join(out))
            at += 1
        else:
            end = at
            while text[end] not in ",}":
                end += 1
            bare = text[at:end]
            items.append(None if bare == "NULL" else bare)
            at = end
        if text.startswith(",", at):
            at += 1
            continue
        if text.startswith("}", at):
            return items, at + 1
        raise ValueError(f"an array literal broken at character {at}")


def _list(element_type: str, elements: list[Any]) -> dict[str, Any]:
    return {
        "L": [
            _list(element_type, item) if isinstance(item, list) else attribute(element_type, item) for item in elements
        ]
    }


def _bytea(value: str) -> bytes:
    if value.startswith("\\x"):
        return bytes.fromhex(value[2:])
    return value.encode("latin-1")  # bytea_output = escape: rare; kept as the text's bytes
