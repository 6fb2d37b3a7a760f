"""The change records of a table's stream, and the DynamoDB Streams record a handler is given.

    stored = encode_change(Change("INSERT", keys, new, None, at=time.time(), key=store_key))
    record = dynamodb_record(decode_change(stored), offset=42, table="orders", view_type="NEW_AND_OLD_IMAGES")

A write appends one `Change` to the table's stream in the same transaction as the
item (`triggerfish.tables.table`), with the images the table's stream view type keeps.
A consumer turns it into the record Lambda gives a function for a DynamoDB stream:

    {"eventID": "...", "eventName": "INSERT" | "MODIFY" | "REMOVE", "eventVersion": "1.1",
     "eventSource": "aws:dynamodb", "awsRegion": "local",
     "dynamodb": {"ApproximateCreationDateTime": 1765036800.0, "Keys": {...}, "NewImage": {...},
                  "OldImage": {...}, "SequenceNumber": "000000000000000000042", "SizeBytes": 59,
                  "StreamViewType": "NEW_AND_OLD_IMAGES"},
     "eventSourceARN": "arn:aws:dynamodb:local:000000000000:table/orders/stream/..."}

The sequence number is the change's offset in the table's stream: it grows with every
change of the table and is never reused, so it orders the changes of one item. Any other
source of changes (PostgreSQL capture) builds the same record from a `Change`. A change written by a
handler keeps the handler's traceparent in the stored record (`tp`), never in the record above: the
write (`changes.routes`) or the mover carries it into the partition record's metadata, so the reacting
invocation continues the trace.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from triggerfish.errors import InvalidInputError
from triggerfish.identity import REGION, dynamodb_stream_arn
from triggerfish.streams.records import sequence_number
from triggerfish.tables.values import Item, item_size

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
#: The `ops` of `@app.on_change` each event name answers to.
OPS: dict[str, str] = {"INSERT": "insert", "MODIFY": "modify", "REMOVE": "remove"}


@dataclass(frozen=True, slots=True)
class Change:
    """One change of one item: its keys, the images its stream keeps, when, and what orders it."""

    event: EventName
    keys: Item
    new: Item | None
    old: Item | None
    #: When it was written (seconds since the epoch): `ApproximateCreationDateTime`, and what record age counts from.
    at: float
    #: The item's key as the store orders it: records with one key are handled in order.
    key: str
    view_type: str = "NEW_AND_OLD_IMAGES"
    #: The writing invocation's W3C traceparent (None: written from outside a handler). Kept in the stored
    #: record only: the function reacting to the change continues this trace; its record never shows it.
    traceparent: str | None = None


def change_of(
    old: Item | None, new: Item | None, keys: Item, *, at: float, key: str, view_type: str,
    traceparent: str | None = None,
) -> Change:  # fmt: skip
    """The change from `old` to `new` (None: no item), keeping the images `view_type` asks for."""
    event: EventName = "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY")
    keeps_new = view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
    keeps_old = view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES")
    new, old = new if keeps_new else None, old if keeps_old else None
    return Change(event, keys, new, old, at, key, view_type, traceparent)


def encode_change(change: Change) -> bytes:
    body: dict[str, Any] = {
        "e": change.event,
        "k": change.keys,
        "t": change.at,
        "key": change.key,
        "v": change.view_type,
    }
    if change.new is not None:
        body["n"] = change.new
    if change.old is not None:
        body["o"] = change.old
    if change.traceparent is not None:
        body["tp"] = change.traceparent
    return orjson.dumps(body)


def decode_change(data: bytes) -> Change:
    try:
        body = orjson.loads(data)
        trace = body.get("tp") if isinstance(body.get("tp"), str) else None
        return Change(
            body["e"], body["k"], body.get("n"), body.get("o"), float(body["t"]), body["key"], body["v"], trace
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"a change record no table wrote ({exc}); it is skipped") from None


def event_id(source_arn: str, offset: int) -> str:
    """A record's eventID: unique per stream and offset, the same each time the record is read."""
    return hashlib.sha256(f"{source_arn}#{offset}".encode()).hexdigest()[:32]


def dynamodb_record(change: Change, *, offset: int, source_arn: str) -> dict[str, Any]:
    """The record Lambda hands a function for one change (see the module docstring)."""
    dynamodb: dict[str, Any] = {"ApproximateCreationDateTime": round(change.at, 3), "Keys": change.keys}
    if change.new is not None:
        dynamodb["NewImage"] = change.new
    if change.old is not None:
        dynamodb["OldImage"] = change.old
    size = item_size(change.keys) + item_size(change.new or {}) + item_size(change.old or {})
    dynamodb.update(SequenceNumber=sequence_number(offset), SizeBytes=size, StreamViewType=change.view_type)
    return {
        "eventID": event_id(source_arn, offset),
        "eventName": change.event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": dynamodb,
        "eventSourceARN": source_arn,
    }


def table_stream_arn(table: str, created_at: float) -> str:
    """A table's stream ARN; its label is the table's creation time, as DynamoDB labels streams."""
    import datetime

    label = datetime.datetime.fromtimestamp(created_at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    return dynamodb_stream_arn(table, label=label)
