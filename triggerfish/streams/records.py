"""Source records: how a broker's message is stored in a partition stream, and the Lambda record it becomes.

    data = encode_record(SourceRecord(key="home/1/t", arrived=time.time(), payload=b"21.5",
                                      meta={"topic": "home/1/t", "qos": 1, "retain": False}))
    record = lambda_record(decode_record(log_record.data), log_record, source="mqtt", ...)

Pure: no I/O. A stored record is a small JSON object (orjson) holding the
partition key, the arrival time, the payload (base64, since MQTT payloads
are bytes) and the source's own metadata. The record a handler sees is
shaped as Lambda's Kinesis records are (`eventSource`, `eventID`,
`eventSourceARN`, and a body holding `partitionKey`, `sequenceNumber`,
`data` in base64 and `approximateArrivalTimestamp`), under a key named for
the source (`mqtt`), because AWS gives Lambda no batch shape for MQTT: an
AWS IoT rule invokes a function once per message with the SQL's output,
which has no sequence number to report a partial failure with. The
Kinesis shape carries exactly what stream semantics need: a sequence
number per record (what `batchItemFailures` names), and the key that orders it.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError
from triggerfish.identity import REGION
from triggerfish.store import LogRecord

#: Partitions a source's records are spread over at most (Lambda's ParallelizationFactor goes to 10).
MAX_PARALLELIZATION = 10


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One message as a source stores it, before any function has seen it."""

    #: What orders it: records with one key are handled in the order they were stored (the MQTT topic).
    key: str
    #: When the platform received it (seconds since the epoch): what `max_record_age` counts from.
    arrived: float
    payload: bytes
    #: The source's own fields (MQTT: topic, qos, retain, properties), JSON-able.
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: The W3C traceparent of the invocation that wrote it (`context.streams.put`, a table write), kept for the
    #: platform only: the invocation reading it continues that trace, and the Lambda record never shows it.
    traceparent: str | None = None


def partition_of(key: str, partitions: int) -> int:
    """The partition `key` always goes to: CRC-32 of its UTF-8 bytes, modulo the partition count."""
    if partitions == 1:
        return 0
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


def encode_record(record: SourceRecord) -> bytes:
    """The bytes stored in the partition stream."""
    body: dict[str, Any] = {
        "key": record.key,
        "at": record.arrived,
        "data": base64.b64encode(record.payload).decode("ascii"),
        "meta": dict(record.meta),
    }
    if record.traceparent is not None:
        body["tp"] = record.traceparent
    return orjson.dumps(body)


def decode_record(data: bytes) -> SourceRecord:
    """A stored record back; InvalidInputError for bytes no source wrote (so the consumer can set them aside)."""
    try:
        body = orjson.loads(data)
        return SourceRecord(
            key=str(body["key"]),
            arrived=float(body["at"]),
            payload=base64.b64decode(body["data"], validate=True),
            meta=dict(body.get("meta") or {}),
            traceparent=body["tp"] if isinstance(body.get("tp"), str) else None,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"a source record that no source wrote ({exc}); it is skipped") from None


def sequence_number(offset: int) -> str:
    """A record's sequence number: its offset in the partition, zero-padded so text order is offset order."""
    return f"{offset:021d}"


def offset_of(sequence: str) -> int:
    return int(sequence)


def partition_id(partition: int) -> str:
    """A partition's name in records and failure destinations, as Kinesis names shards."""
    return f"partition-{partition:03d}"


def lambda_record(
    record: SourceRecord, stored: LogRecord, *, source: str, partition: int, source_arn: str
) -> dict[str, Any]:
    """The record a handler sees (Kinesis's shape, the body under `source`'s name; see the module docstring)."""
    sequence = sequence_number(stored.offset)
    body: dict[str, Any] = {
        "partitionKey": record.key,
        "sequenceNumber": sequence,
        "data": base64.b64encode(record.payload).decode("ascii"),
        "approximateArrivalTimestamp": record.arrived,
        **record.meta,
    }
    return {
        "eventSource": f"triggerfish:{source}",
        "eventVersion": "1.0",
        "eventID": f"{partition_id(partition)}:{sequence}",
        "eventName": f"triggerfish:{source}:record",
        "awsRegion": REGION,
        "eventSourceARN": source_arn,
        source: body,
    }
