"""SQS's message operations over the app's queues: SendMessage(Batch), ReceiveMessage, DeleteMessage(Batch),
ChangeMessageVisibility(Batch). The queues themselves, and what a queue is here, are in triggerfish.aws.sqs.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from triggerfish.aws.endpoint import AwsCall, Operation
from triggerfish.aws.protocol import AwsError, optional_int, optional_list, optional_text, required_text
from triggerfish.aws.sqs import (
    MAX_BATCH,
    MAX_DELAY_SECONDS,
    MAX_MESSAGE_BYTES,
    MAX_VISIBILITY_TIMEOUT,
    MAX_WAIT_SECONDS,
    QueueRecord,
    queue_from,
    queue_record,
    sqs_error,
)
from triggerfish.aws.sqs_messages import (
    TypedAttribute,
    check_attributes,
    md5_of_attributes,
    md5_of_body,
    message_sequence,
    sequence_number,
    stored_attributes,
    typed_attributes,
)
from triggerfish.errors import InvalidInputError
from triggerfish.identity import ACCOUNT_ID
from triggerfish.names import SQS_SEQUENCE_ATTRIBUTE
from triggerfish.store import Message, OutgoingMessage, QueueConfig

_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


# --- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    message: OutgoingMessage
    body: bytes
    attributes: dict[str, TypedAttribute]
    #: A FIFO message's SequenceNumber.
    sequence: str | None = None


async def _settings(call: AwsCall, name: str) -> tuple[QueueConfig, QueueRecord]:
    now = time.time()
    config = await call.platform.store.queues.config(name)
    return config, await queue_record(call, name) or QueueRecord(created_at=now, modified_at=now)


def _prepare(entry: dict[str, Any], config: QueueConfig, record: QueueRecord) -> _Prepared:
    text = required_text(entry, "MessageBody")
    if not text:
        raise sqs_error("MissingParameter", "The request must contain the parameter MessageBody.")
    body = text.encode("utf-8")
    try:
        attributes = check_attributes(entry.get("MessageAttributes"))
    except InvalidInputError as exc:
        raise sqs_error("InvalidParameterValue", str(exc)) from None
    size = len(body) + sum(len(n) + len(a.data_type) + len(a.value) for n, a in attributes.items())
    if size > record.max_size:
        raise sqs_error(
            "InvalidParameterValue",
            f"One or more parameters are invalid. Reason: Message must be shorter than {record.max_size} bytes.",
        )
    delay = optional_int(entry, "DelaySeconds", 0, MAX_DELAY_SECONDS)
    group = optional_text(entry, "MessageGroupId")
    dedup = optional_text(entry, "MessageDeduplicationId")
    if config.fifo:
        if group is None:
            raise sqs_error("MissingParameter", "The request must contain the parameter MessageGroupId.")
        if delay:
            raise sqs_error(
                "InvalidParameterValue",
                "Value for parameter DelaySeconds is invalid. Reason: FIFO queues set delays per queue only.",
            )
        if dedup is None:
            if not record.content_dedup:
                raise sqs_error(
                    "InvalidParameterValue",
                    "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId"
                    " provided explicitly",
                )
            dedup = hashlib.sha256(body).hexdigest()
    elif group is not None or dedup is not None:
        raise sqs_error(
            "InvalidParameterValue",
            "MessageGroupId and MessageDeduplicationId are parameters of FIFO queues only",
        )
    chosen = record.delay if delay is None or config.fifo else delay
    stored = stored_attributes(attributes)
    sequence = None
    if config.fifo:
        # Chosen now so SendMessage can answer it; the records and ReceiveMessage read it back.
        sequence = sequence_number(time.time(), uuid.uuid4().hex)
        stored[SQS_SEQUENCE_ATTRIBUTE] = sequence
    message = OutgoingMessage(body, float(chosen), dedup, group, stored)
    return _Prepared(message, body, attributes, sequence)


def _sent(prepared: _Prepared, message_id: str) -> dict[str, Any]:
    document: dict[str, Any] = {"MessageId": message_id, "MD5OfMessageBody": md5_of_body(prepared.body)}
    if prepared.attributes:
        document["MD5OfMessageAttributes"] = md5_of_attributes(prepared.attributes)
    if prepared.sequence is not None:
        document["SequenceNumber"] = prepared.sequence
    return document


async def send_message(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await queue_from(call, params)
    config, record = await _settings(call, name)
    prepared = _prepare(params, config, record)
    result = (await call.platform.store.queues.send_many(name, [prepared.message]))[0]
    return _sent(prepared, result.message_id)


def batch_entries(params: dict[str, Any]) -> list[dict[str, Any]]:
    entries = optional_list(params, "Entries")
    if not entries:
        raise sqs_error(
            "EmptyBatchRequest",
            "The batch request doesn't contain any entries.",
            "AWS.SimpleQueueService.EmptyBatchRequest",
        )
    if len(entries) > MAX_BATCH:
        raise sqs_error(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        )
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise sqs_error("InvalidParameterValue", "each entry of Entries must be a map")
        entry_id = entry.get("Id")
        if not isinstance(entry_id, str) or not _BATCH_ID.fullmatch(entry_id):
            raise sqs_error(
                "InvalidBatchEntryId",
                f"A batch entry id can only contain alphanumeric characters, hyphens and underscores: {entry_id!r}",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
            )
        if entry_id in seen:
            raise sqs_error(
                "BatchEntryIdsNotDistinct",
                f"Id {entry_id} repeated.",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            )
        seen.add(entry_id)
    return entries


def failed_entry(entry_id: str, error: AwsError) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": error.sender, "Code": error.code, "Message": error.message}


async def send_message_batch(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await queue_from(call, params)
    entries = batch_entries(params)
    config, record = await _settings(call, name)
    ready: list[tuple[str, _Prepared]] = []
    failed = []
    for entry in entries:
        try:
            ready.append((entry["Id"], _prepare(entry, config, record)))
        except AwsError as error:
            failed.append(failed_entry(entry["Id"], error))
    if sum(len(prepared.body) for _, prepared in ready) > MAX_MESSAGE_BYTES:
        raise sqs_error(
            "BatchRequestTooLong",
            f"Batch requests cannot be longer than {MAX_MESSAGE_BYTES} bytes.",
            "AWS.SimpleQueueService.BatchRequestTooLong",
        )
    results = await call.platform.store.queues.send_many(name, [prepared.message for _, prepared in ready])
    successful = [
        {"Id": entry_id, **_sent(prepared, result.message_id)}
        for (entry_id, prepared), result in zip(ready, results, strict=True)
    ]
    return {"Successful": successful, "Failed": failed}


async def receive_message(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await queue_from(call, params)
    count = optional_int(params, "MaxNumberOfMessages", 1, MAX_BATCH) or 1
    visibility = optional_int(params, "VisibilityTimeout", 0, MAX_VISIBILITY_TIMEOUT)
    wait = optional_int(params, "WaitTimeSeconds", 0, MAX_WAIT_SECONDS)
    system = {
        str(n) for n in optional_list(params, "AttributeNames") + optional_list(params, "MessageSystemAttributeNames")
    }
    wanted = [str(n) for n in optional_list(params, "MessageAttributeNames")]
    _, record = await _settings(call, name)
    queues = call.platform.store.queues
    messages = await queues.receive(
        name,
        max_messages=count,
        visibility_timeout=None if not visibility else float(visibility),
        wait=float(record.wait if wait is None else wait),
    )
    if visibility == 0:
        # SQS's VisibilityTimeout=0 leaves the messages visible at once; the store leases for a time, so release.
        for message in messages:
            await queues.release(name, message.receipt)
    if not messages:
        return {}
    return {"Messages": [_received(m, system, wanted) for m in messages]}


def _received(message: Message, system: set[str], wanted: list[str]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "MessageId": message.message_id,
        "ReceiptHandle": message.receipt,
        "MD5OfBody": md5_of_body(message.body),
        "Body": message.body.decode("utf-8", "replace"),
    }
    every = {
        "SenderId": ACCOUNT_ID,
        "SentTimestamp": str(int(message.sent_at * 1000)),
        "ApproximateReceiveCount": str(message.receive_count),
        "ApproximateFirstReceiveTimestamp": str(int(message.first_received_at * 1000)),
    }
    if message.dedup_id is not None:
        every["MessageDeduplicationId"] = message.dedup_id
    if message.group is not None:
        every["MessageGroupId"] = message.group
        every["SequenceNumber"] = message_sequence(message.attributes, message.sent_at, message.message_id)
    chosen = every if "All" in system else {k: v for k, v in every.items() if k in system}
    if chosen:
        document["Attributes"] = chosen
    attributes = typed_attributes(message.attributes)
    if attributes:
        document["MD5OfMessageAttributes"] = md5_of_attributes(attributes)
        shown = {n: a.as_aws() for n, a in attributes.items() if _wanted(n, wanted)}
        if shown:
            document["MessageAttributes"] = shown
    return document


def _wanted(name: str, wanted: list[str]) -> bool:
    for pattern in wanted:
        if pattern in ("All", ".*") or pattern == name:
            return True
        if pattern.endswith(".*") and name.startswith(pattern[:-1]):
            return True
    return False


async def _ack(call: AwsCall, name: str, receipt: str) -> None:
    try:
        # A stale receipt (its lease ended) deletes nothing and still succeeds, as SQS answers it.
        await call.platform.store.queues.ack(name, receipt)
    except InvalidInputError:
        raise sqs_error(
            "ReceiptHandleIsInvalid",
            f"The input receipt handle {receipt!r} is not a valid receipt handle.",
            "ReceiptHandleIsInvalid",
        ) from None


async def delete_message(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await queue_from(call, params)
    await _ack(call, name, required_text(params, "ReceiptHandle"))
    return {}


async def delete_message_batch(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await queue_from(call, params)
    successful, failed = [], []
    for entry in batch_entries(params):
        try:
            await _ack(call, name, required_text(entry, "ReceiptHandle"))
            successful.append({"Id": entry["Id"]})
        except AwsError as error:
            failed.append(failed_entry(entry["Id"], error))
    return {"Successful": successful, "Failed": failed}


async def _change(call: AwsCall, name: str, entry: dict[str, Any]) -> None:
    receipt = required_text(entry, "ReceiptHandle")
    timeout = optional_int(entry, "VisibilityTimeout", 0, MAX_VISIBILITY_TIMEOUT)
    if timeout is None:
        raise sqs_error("MissingParameter", "The request must contain the parameter VisibilityTimeout.")
    queues = call.platform.store.queues
    try:
        changed = (
            await queues.release(name, receipt) if timeout == 0 else await queues.extend(name, receipt, float(timeout))
        )
    except InvalidInputError:
        raise sqs_error(
            "ReceiptHandleIsInvalid", f"The input receipt handle {receipt!r} is not a valid receipt handle."
        ) from None
    if not changed:
        raise sqs_error(
            "MessageNotInflight",
            "Message does not exist or is not available for visibility timeout change: its lease ended",
            "AWS.SimpleQueueService.MessageNotInflight",
        )


async def change_message_visibility(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    await _change(call, await queue_from(call, params), params)
    return {}


async def change_message_visibility_batch(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await queue_from(call, params)
    successful, failed = [], []
    for entry in batch_entries(params):
        try:
            await _change(call, name, entry)
            successful.append({"Id": entry["Id"]})
        except AwsError as error:
            failed.append(failed_entry(entry["Id"], error))
    return {"Successful": successful, "Failed": failed}


OPERATIONS = {
    "SendMessage": Operation(send_message, "publish"),
    "SendMessageBatch": Operation(send_message_batch, "publish"),
    "ReceiveMessage": Operation(receive_message, "configure"),
    "DeleteMessage": Operation(delete_message, "configure"),
    "DeleteMessageBatch": Operation(delete_message_batch, "configure"),
    "ChangeMessageVisibility": Operation(change_message_visibility, "configure"),
    "ChangeMessageVisibilityBatch": Operation(change_message_visibility_batch, "configure"),
}
