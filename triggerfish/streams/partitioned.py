"""The platform's own partitioned streams (`@app.on_stream`): records put, stored in order per partition key.

    streams = PartitionedStreams(store)
    streams.configure(specs)                       # which streams the app reads, by which field, in how many parts
    await streams.put("readings", [({"device": "d1", "t": 21.5}, None)])   # [{"partition": ..., "sequenceNumber": ...}]

What `context.streams.put`, `POST /-/api/v1/partitioned-streams/<name>/records`
and `triggerfish stream put` append to: a stream is `parallelization`
log streams (`names.partitioned_stream`); a record goes to the partition
its key hashes to (the record's `partition_key` field, or a key given with
it), so records with one key stay in order. Every function reading the
stream has its own consumer group there, hence its own checkpoint and
starting position, as functions reading one Kinesis stream do. A stream
is known by the functions that read it: a put to a stream no function
reads is refused (its partition count would be unknown).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from triggerfish.errors import InvalidInputError
from triggerfish.model import FunctionSpec
from triggerfish.names import partitioned_stream
from triggerfish.store import Store
from triggerfish.streams.records import SourceRecord, encode_record, partition_id, partition_of, sequence_number

#: Most records one put takes (Kinesis's PutRecords takes 500).
MAX_PUT_RECORDS = 500
#: Longest partition key (Kinesis's is 256 characters).
MAX_KEY_CHARS = 256


class PartitionedStreams:
    """Puts records into the app's built-in streams. See the module docstring."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._streams: dict[str, tuple[str, int]] = {}

    def configure(self, specs: Mapping[str, FunctionSpec]) -> None:
        from triggerfish.streams.triggers import partitioned_streams

        self._streams = partitioned_streams(specs)

    def declared(self) -> dict[str, tuple[str, int]]:
        """Each stream the app reads: its partition-key field and partition count."""
        return dict(self._streams)

    async def put(
        self, stream: str, records: Sequence[tuple[Any, str | None]], *, traceparent: str | None = None
    ) -> list[dict[str, Any]]:
        """Append `(data, key)` records in order; where each went (partition and sequence number). `traceparent`
        (the putting invocation's) is kept with each record: the invocation reading it continues that trace.

        `data` is any JSON value (bytes are stored as they are); `key` None takes the stream's partition-key
        field from `data`. InvalidInputError (nothing stored) for an unknown stream or a record without a key.
        """
        if stream not in self._streams:
            known = ", ".join(sorted(self._streams)) or "none"
            raise InvalidInputError(
                f"no function reads stream {stream!r}, so it has no partitions to put into; declare"
                f' @app.on_stream({stream!r}, partition_key="...") (streams read now: {known})'
            )
        if not isinstance(records, Sequence) or not 1 <= len(records) <= MAX_PUT_RECORDS:
            raise InvalidInputError(f"a put takes 1 to {MAX_PUT_RECORDS} records, not {len(records)}")
        field, partitions = self._streams[stream]
        now = self.clock()
        by_partition: dict[int, list[bytes]] = {}
        placed: list[tuple[int, int]] = []
        for index, (data, key) in enumerate(records):
            key = _key(data, key, field, index)
            payload = bytes(data) if isinstance(data, bytes | bytearray) else _json(data, index)
            partition = partition_of(key, partitions)
            items = by_partition.setdefault(partition, [])
            placed.append((partition, len(items)))
            items.append(encode_record(SourceRecord(key=key, arrived=now, payload=payload, traceparent=traceparent)))
        stored = {
            partition: await self.store.log.append_many(partitioned_stream(stream, partition), items)
            for partition, items in by_partition.items()
        }
        return [
            {"partition": partition_id(partition), "sequenceNumber": sequence_number(stored[partition][n].offset)}
            for partition, n in placed
        ]


def _key(data: Any, key: str | None, field: str, index: int) -> str:
    if key is None:
        value = data.get(field) if isinstance(data, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidInputError(
                f"record {index}: no partition key: it has no string or number field {field!r} (the stream's"
                " partition_key); give the key with the record"
            )
        key = str(value)
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
        raise InvalidInputError(f"record {index}: the partition key must be 1 to {MAX_KEY_CHARS} characters")
    return key


def _json(data: Any, index: int) -> bytes:
    try:
        return orjson.dumps(data)
    except TypeError as exc:
        raise InvalidInputError(f"record {index} is not JSON: {exc}") from None
