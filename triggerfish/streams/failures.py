"""Records a stream consumer gave up on, sent to the function's `on_failure` destination.

The record is Lambda's on-failure record for stream sources (`requestContext`
with the condition and invoke count, `responseContext`, `version`,
`timestamp`, and a batch-info object naming the partition and the first and
last sequence numbers), as Kinesis sends it, under `<SOURCE>BatchInfo`
(`MQTTBatchInfo`). Lambda sends only that metadata, since the records stay
readable in the Kinesis stream for a day; a source's partition stream is
trimmed once consumed, so the records given up on travel in the record too,
under `records`. Without an `on_failure` destination they are discarded, as
on Lambda, and a warning is logged.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from triggerfish.bus.publisher import Publisher
from triggerfish.events.cloudevent import Event
from triggerfish.identity import function_arn
from triggerfish.model import Destination
from triggerfish.store import Store
from triggerfish.streams.batches import GivenUp
from triggerfish.streams.records import partition_id
from triggerfish.triggers.sns import new_message

logger = logging.getLogger("triggerfish.streams")


class AsyncInvoker(Protocol):
    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class BatchContext:
    """Where a batch came from, for its failure record."""

    app: str
    function: str
    #: "MQTT": the batch-info key is `MQTTBatchInfo`.
    source_label: str
    source_arn: str
    partition: int


def failure_record(gone: GivenUp, context: BatchContext, *, now: float) -> dict[str, Any]:
    """Lambda's on-failure record for a stream batch (see the module docstring); pure."""
    first, last = gone.items[0], gone.items[-1]
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if gone.condition == "RetryAttemptsExhausted":
        response["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn(context.app, context.function),
            "condition": gone.condition,
            "approximateInvokeCount": gone.invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": _iso(now),
        f"{context.source_label}BatchInfo": {
            "shardId": partition_id(context.partition),
            "startSequenceNumber": first.sequence,
            "endSequenceNumber": last.sequence,
            "approximateArrivalOfFirstRecord": _iso(first.arrived),
            "approximateArrivalOfLastRecord": _iso(last.arrived),
            "batchSize": len(gone.items),
            "streamArn": context.source_arn,
        },
        "errorMessage": gone.error,
        "records": [dict(item.record) for item in gone.items],
    }


async def send_failure(
    destination: Destination | None,
    record: dict[str, Any],
    *,
    store: Store,
    publisher: Publisher,
    invoker: AsyncInvoker,
) -> None:
    """Deliver a failure record durably to `destination` (a queue, topic, bus or function); None discards it."""
    info = next(value for key, value in record.items() if key.endswith("BatchInfo"))
    if destination is None:
        logger.warning(
            "%d records of %s (%s to %s) were given up on (%s) and discarded: the function has no on_failure"
            " destination",
            info["batchSize"],
            info["shardId"],
            info["startSequenceNumber"],
            info["endSequenceNumber"],
            record["requestContext"]["condition"],
        )
        return
    if destination.kind == "queue":
        await store.queues.send(destination.name, orjson.dumps(record))
    elif destination.kind == "topic":
        await publisher.publish_message(destination.name, new_message(orjson.dumps(record).decode(), limit=None))
    elif destination.kind == "bus":
        event = Event(
            id=record["requestContext"]["requestId"],
            source="lambda",
            type="Stream Batch Failure",
            subject=info["shardId"],
            time=record["timestamp"],
            datacontenttype="application/json",
            data=record,
        )
        await publisher.publish(destination.name, [event])
    else:
        await invoker.invoke_async(destination.name, record, trigger="destination")


def _iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
