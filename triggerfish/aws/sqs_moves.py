"""SQS's dead-letter redrive: StartMessageMoveTask and ListMessageMoveTasks over the platform's move.

A task moves the visible messages of a dead-letter queue to its destination (by default the one
queue that names it as its dead-letter queue) a batch at a time, as `triggerfish queues redrive`
does (server.control_triggers.move_messages: sent before acknowledged, so a crash leaves copies,
never losses). It runs in the background of the node that was asked; its state is a record of the
app's `SQS_MOVES_NAMESPACE`, so any node lists it. A node that stops mid-move leaves its task
RUNNING with what it had moved; start another.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from triggerfish._json import dumps, loads
from triggerfish.aws.endpoint import AwsCall, Operation
from triggerfish.aws.protocol import AwsError, optional_int, optional_text, required_text
from triggerfish.aws.sqs import queue_names
from triggerfish.identity import sqs_queue_arn
from triggerfish.names import SQS_MOVES_NAMESPACE
from triggerfish.server.control_triggers import move_messages

log = logging.getLogger("triggerfish.aws")

_RECORD = "move/"
# The tasks running on this node: kept so the event loop does not drop them.
_RUNNING: set[asyncio.Task[None]] = set()


def _queue_of(arn: str, field: str) -> str:
    if not arn.startswith("arn:") or arn.count(":") < 5:
        raise AwsError("InvalidParameterValue", f"{field} {arn!r} is not a queue ARN")
    return arn.rsplit(":", 1)[-1]


async def start_message_move_task(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    source_arn = required_text(params, "SourceArn")
    source = _queue_of(source_arn, "SourceArn")
    names = await queue_names(call)
    if source not in names:
        raise AwsError(
            "ResourceNotFoundException",
            f"The resource that you specified for the SourceArn parameter doesn't exist: {source_arn}",
        )
    queues = call.platform.store.queues
    origins = [name for name in names if (await queues.config(name)).dead_letter == source]
    if not origins:
        raise AwsError("InvalidParameterValue", f"Source queue {source!r} must be configured as a Dead Letter Queue.")
    destination_arn = optional_text(params, "DestinationArn")
    if destination_arn is None:
        if len(origins) > 1:
            raise AwsError(
                "InvalidParameterValue",
                f"{source!r} is the dead-letter queue of {', '.join(sorted(origins))}: name one as DestinationArn",
            )
        destination = origins[0]
    else:
        destination = _queue_of(destination_arn, "DestinationArn")
        if destination not in names or destination == source:
            raise AwsError(
                "InvalidParameterValue", f"DestinationArn {destination_arn!r} names no other queue of the app"
            )
    handle = str(uuid.uuid4())
    record = {
        "TaskHandle": handle,
        "Status": "RUNNING",
        "SourceArn": sqs_queue_arn(source),
        "DestinationArn": sqs_queue_arn(destination),
        "ApproximateNumberOfMessagesMoved": 0,
        "ApproximateNumberOfMessagesToMove": (await queues.stats(source)).visible,
        "StartedTimestamp": int(time.time() * 1000),
    }
    kv = call.platform.store.kv
    await kv.put(SQS_MOVES_NAMESPACE, f"{_RECORD}{source}/{handle}", dumps(record))
    fifo = (await queues.config(destination)).fifo
    task = asyncio.create_task(_move(call, source, destination, record, fifo), name=f"sqs-move-{handle}")
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return {"TaskHandle": handle}


async def _move(call: AwsCall, source: str, destination: str, record: dict[str, Any], fifo: bool) -> None:
    kv = call.platform.store.kv
    key = f"{_RECORD}{source}/{record['TaskHandle']}"
    try:
        moved = await move_messages(call.platform, source, destination, limit=2**31, fifo=fifo)
        record = {**record, "Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": moved}
    except Exception as exc:  # the task's record says it failed; the messages not moved stay where they were
        log.warning("moving messages from %r to %r failed: %s", source, destination, exc)
        record = {**record, "Status": "FAILED", "FailureReason": str(exc)}
    await kv.put(SQS_MOVES_NAMESPACE, key, dumps(record))


async def list_message_move_tasks(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    source = _queue_of(required_text(params, "SourceArn"), "SourceArn")
    limit = optional_int(params, "MaxResults", 1, 10) or 1
    found = await call.platform.store.kv.scan(SQS_MOVES_NAMESPACE, prefix=f"{_RECORD}{source}/", limit=100_000)
    tasks = sorted((loads(r.value, where="SQS move task") for r in found), key=lambda t: -t["StartedTimestamp"])
    return {"Results": tasks[:limit]}


OPERATIONS = {
    "StartMessageMoveTask": Operation(start_message_move_task, "configure"),
    "ListMessageMoveTasks": Operation(list_message_move_tasks, "read", also=("configure",)),
}
