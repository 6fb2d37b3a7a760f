"""SQS over the platform's own queues, in the JSON protocol current botocore speaks (`AmazonSQS.<Operation>`).

A queue here is a queue of the app: one a function consumes (`@app.on_queue`), one sent to or
configured, a dead-letter queue one of them names, or one made with CreateQueue. The platform's
own queues (invocations, deliveries) are not shown. So `SendMessage` to a queue a function
consumes triggers that function, exactly as `context.send` does.

What SQS has and the store's queue config does not (DelaySeconds, ReceiveMessageWaitTimeSeconds,
MaximumMessageSize, ContentBasedDeduplication, a creation time, deletion) is kept per queue in
the app's `SQS_QUEUES_NAMESPACE`. Differences from SQS are listed in docs/aws.md.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from triggerfish._json import dumps, loads
from triggerfish.aws.endpoint import AwsCall, Operation, Service
from triggerfish.aws.protocol import (
    AwsError,
    optional_int,
    optional_list,
    optional_map,
    optional_text,
    required_text,
)
from triggerfish.aws.sqs_messages import (
    TypedAttribute,
    check_attributes,
    md5_of_attributes,
    md5_of_body,
    stored_attributes,
    typed_attributes,
)
from triggerfish.errors import InvalidInputError
from triggerfish.identity import ACCOUNT_ID, sqs_queue_arn
from triggerfish.names import SQS_QUEUES_NAMESPACE, is_platform_queue
from triggerfish.store import Message, OutgoingMessage, QueueConfig

#: SQS's limits.
MAX_BATCH = 10
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_TIMEOUT = 12 * 3600
MAX_DELAY_SECONDS = 15 * 60
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_RECORD = "queue/"
# Kept and shown back, not enforced: the platform has no IAM policies, KMS or throughput modes.
_KEPT_ATTRIBUTES = frozenset(
    {
        "Policy",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "RedriveAllowPolicy",
    }
)
_SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "MessageDeduplicationId",
    "MessageGroupId",
)


def _error(code: str, message: str, query_code: str | None = None) -> AwsError:
    return AwsError(code, message, query_code=query_code)


def _no_queue(name: str) -> AwsError:
    return AwsError(
        "QueueDoesNotExist",
        f"The specified queue does not exist: {name!r} (CreateQueue makes it; ListQueues shows the app's queues)",
        query_code="AWS.SimpleQueueService.NonExistentQueue",
    )


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """What the endpoint keeps of a queue beyond the store's QueueConfig."""

    created_at: float
    modified_at: float
    delay: int = 0
    wait: int = 0
    max_size: int = DEFAULT_MAX_MESSAGE_BYTES
    content_dedup: bool = False
    deleted: bool = False
    kept: dict[str, str] = field(default_factory=dict)


async def _record(call: AwsCall, name: str) -> QueueRecord | None:
    found = await call.platform.store.kv.get(SQS_QUEUES_NAMESPACE, _RECORD + name)
    if found is None:
        return None
    data = loads(found.value, where=f"SQS record of queue {name!r}")
    return QueueRecord(**data)


async def _save(call: AwsCall, name: str, record: QueueRecord) -> None:
    fields = {
        "created_at": record.created_at,
        "modified_at": record.modified_at,
        "delay": record.delay,
        "wait": record.wait,
        "max_size": record.max_size,
        "content_dedup": record.content_dedup,
        "deleted": record.deleted,
        "kept": record.kept,
    }
    await call.platform.store.kv.put(SQS_QUEUES_NAMESPACE, _RECORD + name, dumps(fields))


async def queue_names(call: AwsCall) -> list[str]:
    """The app's queues as this endpoint shows them (see the module docstring)."""
    platform = call.platform
    names = set(await platform.store.queues.queues())
    names.update(queue for _, queue in platform.queues.subscriptions())
    for name in list(names):
        dead_letter = (await platform.store.queues.config(name)).dead_letter
        if dead_letter is not None:
            names.add(dead_letter)
    records = await platform.store.kv.scan(SQS_QUEUES_NAMESPACE, prefix=_RECORD, limit=100_000)
    for found in records:
        name = found.key[len(_RECORD) :]
        if loads(found.value, where="SQS queue record").get("deleted"):
            names.discard(name)
        else:
            names.add(name)
    return sorted(name for name in names if not is_platform_queue(name))


async def _queue(call: AwsCall, params: dict[str, Any]) -> str:
    url = required_text(params, "QueueUrl")
    path = urlsplit(url).path if "://" in url else url
    name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    if not name or name not in await queue_names(call):
        raise _no_queue(name or url)
    return name


def _url(call: AwsCall, name: str) -> str:
    return f"{call.base_url}/{ACCOUNT_ID}/{name}"


# --- queues ------------------------------------------------------------------------------------


async def create_queue(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = required_text(params, "QueueName")
    attributes = _attribute_map(params)
    fifo = attributes.get("FifoQueue", "false").lower() == "true"
    if not _QUEUE_NAME.fullmatch(name.removesuffix(".fifo")) or (name.endswith(".fifo") and not fifo):
        raise _error(
            "InvalidParameterValue",
            f"Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length: {name!r}"
            + (" (a name ending .fifo needs the attribute FifoQueue=true)" if name.endswith(".fifo") else ""),
        )
    if fifo and not name.endswith(".fifo"):
        raise _error("InvalidParameterValue", f"The name of a FIFO queue can only end with .fifo: {name!r}")
    record = await _record(call, name)
    exists = name in await queue_names(call)
    if exists:
        config = await call.platform.store.queues.config(name)
        current = await _attributes(call, name, config, record)
        differing = sorted(k for k, v in attributes.items() if current.get(k) != v and k not in _KEPT_ATTRIBUTES)
        if differing:
            raise _error(
                "QueueAlreadyExists",
                f"A queue already exists with the same name and a different value for attribute {differing[0]}",
                "QueueAlreadyExists",
            )
        return {"QueueUrl": _url(call, name)}
    now = time.time()
    base = QueueRecord(created_at=now, modified_at=now)
    config, record = _apply(name, QueueConfig(fifo=fifo), base, attributes, creating=True)
    await call.platform.store.queues.configure(name, config)
    await _save(call, name, record)
    return {"QueueUrl": _url(call, name)}


async def get_queue_url(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = required_text(params, "QueueName")
    if name not in await queue_names(call):
        raise _no_queue(name)
    return {"QueueUrl": _url(call, name)}


async def list_queues(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    prefix = optional_text(params, "QueueNamePrefix") or ""
    limit = optional_int(params, "MaxResults", 1, 1000)
    after = optional_text(params, "NextToken")
    names = [name for name in await queue_names(call) if name.startswith(prefix) and (after is None or name > after)]
    document: dict[str, Any] = {}
    shown = names if limit is None else names[:limit]
    if shown:
        document["QueueUrls"] = [_url(call, name) for name in shown]
    if limit is not None and len(names) > limit:
        document["NextToken"] = shown[-1]
    return document


async def get_queue_attributes(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _queue(call, params)
    wanted = [str(n) for n in optional_list(params, "AttributeNames")]
    config = await call.platform.store.queues.config(name)
    every = await _attributes(call, name, config, await _record(call, name))
    if "All" in wanted:
        return {"Attributes": every}
    unknown = [n for n in wanted if n not in every and n not in _KEPT_ATTRIBUTES and n != "RedrivePolicy"]
    if unknown:
        raise _error("InvalidAttributeName", f"Unknown Attribute {unknown[0]}.")
    chosen = {n: every[n] for n in wanted if n in every}
    return {"Attributes": chosen} if chosen else {}


async def set_queue_attributes(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _queue(call, params)
    attributes = _attribute_map(params)
    if "FifoQueue" in attributes:
        raise _error("InvalidAttributeName", "FifoQueue is set when a queue is created, not changed after")
    queues = call.platform.store.queues
    now = time.time()
    record = await _record(call, name) or QueueRecord(created_at=now, modified_at=now)
    config, record = _apply(name, await queues.config(name), record, attributes, creating=False)
    await queues.configure(name, config)
    await _save(call, name, replace(record, modified_at=now))
    return {}


async def purge_queue(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    await call.platform.store.queues.purge(await _queue(call, params))
    return {}


async def delete_queue(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _queue(call, params)
    consumers = sorted(function for function, queue in call.platform.queues.subscriptions() if queue == name)
    if consumers:
        raise _error(
            "InvalidParameterValue",
            f"queue {name!r} is consumed by {', '.join(consumers)}, which the app declares: remove the"
            " @app.on_queue trigger and deploy instead",
        )
    await call.platform.store.queues.purge(name)
    now = time.time()
    record = await _record(call, name) or QueueRecord(created_at=now, modified_at=now)
    await _save(call, name, replace(record, deleted=True, modified_at=now))
    return {}


def _attribute_map(params: dict[str, Any]) -> dict[str, str]:
    given = optional_map(params, "Attributes")
    for key, value in given.items():
        if not isinstance(value, str):
            raise _error("InvalidAttributeValue", f"Attribute {key} must be given as a string, not {value!r}")
    return dict(given)


def _number(attributes: dict[str, str], name: str, low: int, high: int) -> int | None:
    if name not in attributes:
        return None
    text = attributes[name]
    if not text.isdigit() or not low <= int(text) <= high:
        raise _error(
            "InvalidAttributeValue", f"Invalid value for the parameter {name}: {text!r} (from {low} to {high})"
        )
    return int(text)


def _apply(
    name: str, config: QueueConfig, record: QueueRecord, attributes: dict[str, str], *, creating: bool
) -> tuple[QueueConfig, QueueRecord]:
    known = {
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "ReceiveMessageWaitTimeSeconds",
        "MaximumMessageSize",
        "RedrivePolicy",
        "ContentBasedDeduplication",
        *_KEPT_ATTRIBUTES,
    }
    if creating:
        known.add("FifoQueue")
    unknown = sorted(set(attributes) - known)
    if unknown:
        raise _error("InvalidAttributeName", f"Unknown Attribute {unknown[0]}.")
    visibility = _number(attributes, "VisibilityTimeout", 0, MAX_VISIBILITY_TIMEOUT)
    if visibility == 0:
        raise _error(
            "InvalidAttributeValue",
            "Invalid value for the parameter VisibilityTimeout: Triggerfish queues lease for at least 1 second",
        )
    retention = _number(attributes, "MessageRetentionPeriod", 60, 14 * 24 * 3600)
    delay = _number(attributes, "DelaySeconds", 0, MAX_DELAY_SECONDS)
    wait = _number(attributes, "ReceiveMessageWaitTimeSeconds", 0, MAX_WAIT_SECONDS)
    size = _number(attributes, "MaximumMessageSize", 1024, MAX_MESSAGE_BYTES)
    content_dedup = attributes.get("ContentBasedDeduplication")
    if content_dedup is not None:
        if content_dedup.lower() not in ("true", "false"):
            raise _error("InvalidAttributeValue", "ContentBasedDeduplication must be true or false")
        if content_dedup.lower() == "true" and not config.fifo:
            raise _error("InvalidAttributeName", "ContentBasedDeduplication is an attribute of FIFO queues only")
    max_receives, dead_letter = config.max_receives, config.dead_letter
    if "RedrivePolicy" in attributes:
        max_receives, dead_letter = _redrive(name, attributes["RedrivePolicy"])
    try:
        config = QueueConfig(
            visibility_timeout=float(visibility) if visibility is not None else config.visibility_timeout,
            max_receives=max_receives,
            dead_letter=dead_letter,
            retention=float(retention) if retention is not None else config.retention,
            fifo=config.fifo,
            dedup_window=config.dedup_window,
        )
    except InvalidInputError as exc:
        raise _error("InvalidAttributeValue", str(exc)) from None
    record = replace(
        record,
        delay=record.delay if delay is None else delay,
        wait=record.wait if wait is None else wait,
        max_size=record.max_size if size is None else size,
        content_dedup=record.content_dedup if content_dedup is None else content_dedup.lower() == "true",
        deleted=False,
        kept={**record.kept, **{k: v for k, v in attributes.items() if k in _KEPT_ATTRIBUTES}},
    )
    return config, record


def _redrive(name: str, text: str) -> tuple[int | None, str | None]:
    if text == "":
        return None, None
    try:
        policy = loads(text.encode("utf-8"), where="RedrivePolicy")
    except InvalidInputError as exc:
        raise _error("InvalidAttributeValue", f"Invalid value for the parameter RedrivePolicy: {exc}") from None
    if not isinstance(policy, dict) or "deadLetterTargetArn" not in policy or "maxReceiveCount" not in policy:
        raise _error(
            "InvalidAttributeValue",
            "Invalid value for the parameter RedrivePolicy: it needs deadLetterTargetArn and maxReceiveCount",
        )
    arn = str(policy["deadLetterTargetArn"])
    target = arn.rsplit(":", 1)[-1]
    count = policy["maxReceiveCount"]
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise _error("InvalidAttributeValue", "Invalid value for maxReceiveCount: from 1 to 1000")
    if not arn.startswith("arn:") or target == name:
        raise _error("InvalidAttributeValue", f"Value {arn} for parameter RedrivePolicy is invalid: name another queue")
    return count, target


async def _attributes(call: AwsCall, name: str, config: QueueConfig, record: QueueRecord | None) -> dict[str, str]:
    stats = await call.platform.store.queues.stats(name)
    now = time.time()
    record = record or QueueRecord(created_at=now, modified_at=now)
    attributes = {
        "QueueArn": sqs_queue_arn(name),
        "ApproximateNumberOfMessages": str(stats.visible),
        "ApproximateNumberOfMessagesNotVisible": str(stats.in_flight),
        "ApproximateNumberOfMessagesDelayed": str(stats.delayed),
        "CreatedTimestamp": str(int(record.created_at)),
        "LastModifiedTimestamp": str(int(record.modified_at)),
        "VisibilityTimeout": str(int(config.visibility_timeout)),
        "MaximumMessageSize": str(record.max_size),
        "MessageRetentionPeriod": str(int(config.retention)),
        "DelaySeconds": str(record.delay),
        "ReceiveMessageWaitTimeSeconds": str(record.wait),
        **record.kept,
    }
    if config.dead_letter is not None:
        attributes["RedrivePolicy"] = dumps(
            {"deadLetterTargetArn": sqs_queue_arn(config.dead_letter), "maxReceiveCount": config.max_receives}
        ).decode("utf-8")
    if config.fifo:
        attributes["FifoQueue"] = "true"
        attributes["ContentBasedDeduplication"] = "true" if record.content_dedup else "false"
    return attributes


# --- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    message: OutgoingMessage
    body: bytes
    attributes: dict[str, TypedAttribute]


async def _settings(call: AwsCall, name: str) -> tuple[QueueConfig, QueueRecord]:
    now = time.time()
    config = await call.platform.store.queues.config(name)
    return config, await _record(call, name) or QueueRecord(created_at=now, modified_at=now)


def _prepare(entry: dict[str, Any], config: QueueConfig, record: QueueRecord) -> _Prepared:
    text = required_text(entry, "MessageBody")
    if not text:
        raise _error("MissingParameter", "The request must contain the parameter MessageBody.")
    body = text.encode("utf-8")
    try:
        attributes = check_attributes(entry.get("MessageAttributes"))
    except InvalidInputError as exc:
        raise _error("InvalidParameterValue", str(exc)) from None
    size = len(body) + sum(len(n) + len(a.data_type) + len(a.value) for n, a in attributes.items())
    if size > record.max_size:
        raise _error(
            "InvalidParameterValue",
            f"One or more parameters are invalid. Reason: Message must be shorter than {record.max_size} bytes.",
        )
    delay = optional_int(entry, "DelaySeconds", 0, MAX_DELAY_SECONDS)
    group = optional_text(entry, "MessageGroupId")
    dedup = optional_text(entry, "MessageDeduplicationId")
    if config.fifo:
        if group is None:
            raise _error("MissingParameter", "The request must contain the parameter MessageGroupId.")
        if delay:
            raise _error(
                "InvalidParameterValue",
                "Value for parameter DelaySeconds is invalid. Reason: FIFO queues set delays per queue only.",
            )
        if dedup is None:
            if not record.content_dedup:
                raise _error(
                    "InvalidParameterValue",
                    "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId"
                    " provided explicitly",
                )
            dedup = hashlib.sha256(body).hexdigest()
    elif group is not None or dedup is not None:
        raise _error(
            "InvalidParameterValue",
            "MessageGroupId and MessageDeduplicationId are parameters of FIFO queues only",
        )
    chosen = record.delay if delay is None or config.fifo else delay
    message = OutgoingMessage(body, float(chosen), dedup, group, stored_attributes(attributes))
    return _Prepared(message, body, attributes)


def _sent(prepared: _Prepared, message_id: str) -> dict[str, Any]:
    document: dict[str, Any] = {"MessageId": message_id, "MD5OfMessageBody": md5_of_body(prepared.body)}
    if prepared.attributes:
        document["MD5OfMessageAttributes"] = md5_of_attributes(prepared.attributes)
    return document


async def send_message(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _queue(call, params)
    config, record = await _settings(call, name)
    prepared = _prepare(params, config, record)
    result = (await call.platform.store.queues.send_many(name, [prepared.message]))[0]
    return _sent(prepared, result.message_id)


def _entries(params: dict[str, Any]) -> list[dict[str, Any]]:
    entries = optional_list(params, "Entries")
    if not entries:
        raise _error(
            "EmptyBatchRequest",
            "The batch request doesn't contain any entries.",
            "AWS.SimpleQueueService.EmptyBatchRequest",
        )
    if len(entries) > MAX_BATCH:
        raise _error(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        )
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise _error("InvalidParameterValue", "each entry of Entries must be a map")
        entry_id = entry.get("Id")
        if not isinstance(entry_id, str) or not _BATCH_ID.fullmatch(entry_id):
            raise _error(
                "InvalidBatchEntryId",
                f"A batch entry id can only contain alphanumeric characters, hyphens and underscores: {entry_id!r}",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
            )
        if entry_id in seen:
            raise _error(
                "BatchEntryIdsNotDistinct",
                f"Id {entry_id} repeated.",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            )
        seen.add(entry_id)
    return entries


def _failed(entry_id: str, error: AwsError) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": error.sender, "Code": error.code, "Message": error.message}


async def send_message_batch(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _queue(call, params)
    entries = _entries(params)
    config, record = await _settings(call, name)
    ready: list[tuple[str, _Prepared]] = []
    failed = []
    for entry in entries:
        try:
            ready.append((entry["Id"], _prepare(entry, config, record)))
        except AwsError as error:
            failed.append(_failed(entry["Id"], error))
    if sum(len(prepared.body) for _, prepared in ready) > MAX_MESSAGE_BYTES:
        raise _error(
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
    name = await _queue(call, params)
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
        raise _error(
            "ReceiptHandleIsInvalid",
            f"The input receipt handle {receipt!r} is not a valid receipt handle.",
            "ReceiptHandleIsInvalid",
        ) from None


async def delete_message(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _queue(call, params)
    await _ack(call, name, required_text(params, "ReceiptHandle"))
    return {}


async def delete_message_batch(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _queue(call, params)
    successful, failed = [], []
    for entry in _entries(params):
        try:
            await _ack(call, name, required_text(entry, "ReceiptHandle"))
            successful.append({"Id": entry["Id"]})
        except AwsError as error:
            failed.append(_failed(entry["Id"], error))
    return {"Successful": successful, "Failed": failed}


async def _change(call: AwsCall, name: str, entry: dict[str, Any]) -> None:
    receipt = required_text(entry, "ReceiptHandle")
    timeout = optional_int(entry, "VisibilityTimeout", 0, MAX_VISIBILITY_TIMEOUT)
    if timeout is None:
        raise _error("MissingParameter", "The request must contain the parameter VisibilityTimeout.")
    queues = call.platform.store.queues
    try:
        changed = (
            await queues.release(name, receipt) if timeout == 0 else await queues.extend(name, receipt, float(timeout))
        )
    except InvalidInputError:
        raise _error(
            "ReceiptHandleIsInvalid", f"The input receipt handle {receipt!r} is not a valid receipt handle."
        ) from None
    if not changed:
        raise _error(
            "MessageNotInflight",
            "Message does not exist or is not available for visibility timeout change: its lease ended",
            "AWS.SimpleQueueService.MessageNotInflight",
        )


async def change_message_visibility(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    await _change(call, await _queue(call, params), params)
    return {}


async def change_message_visibility_batch(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await _queue(call, params)
    successful, failed = [], []
    for entry in _entries(params):
        try:
            await _change(call, name, entry)
            successful.append({"Id": entry["Id"]})
        except AwsError as error:
            failed.append(_failed(entry["Id"], error))
    return {"Successful": successful, "Failed": failed}


SERVICE = Service(
    name="sqs",
    target_prefix="AmazonSQS",
    protocol="json1.0",
    query_compatible=True,
    operations={
        "CreateQueue": Operation(create_queue, "configure"),
        "GetQueueUrl": Operation(get_queue_url, "read", also=("publish", "configure")),
        "ListQueues": Operation(list_queues, "read"),
        "GetQueueAttributes": Operation(get_queue_attributes, "read"),
        "SetQueueAttributes": Operation(set_queue_attributes, "configure"),
        "PurgeQueue": Operation(purge_queue, "configure"),
        "DeleteQueue": Operation(delete_queue, "configure"),
        "SendMessage": Operation(send_message, "publish"),
        "SendMessageBatch": Operation(send_message_batch, "publish"),
        "ReceiveMessage": Operation(receive_message, "configure"),
        "DeleteMessage": Operation(delete_message, "configure"),
        "DeleteMessageBatch": Operation(delete_message_batch, "configure"),
        "ChangeMessageVisibility": Operation(change_message_visibility, "configure"),
        "ChangeMessageVisibilityBatch": Operation(change_message_visibility_batch, "configure"),
    },
)
