"""SQS's queues over the platform's own, in the JSON protocol current botocore speaks (`AmazonSQS.<Operation>`).

A queue here is a queue of the app: one a function consumes (`@app.on_queue`), one sent to or
configured, a dead-letter queue one of them names, or one made with CreateQueue. The platform's
own queues (invocations, deliveries) are not shown. So `SendMessage` to a queue a function
consumes triggers that function, exactly as `context.send` does.

What SQS has and the store's queue config does not (DelaySeconds, ReceiveMessageWaitTimeSeconds,
MaximumMessageSize, ContentBasedDeduplication, a creation time, deletion) is kept per queue in
the app's `SQS_QUEUES_NAMESPACE`. The message operations are in sqs_send, dead-letter moves in
sqs_moves, the service's table in services. Differences from SQS are listed in docs/aws.md.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from triggerfish._json import dumps, loads
from triggerfish.aws.endpoint import AwsCall, Operation
from triggerfish.aws.protocol import (
    AwsError,
    optional_int,
    optional_list,
    optional_map,
    optional_text,
    required_text,
)
from triggerfish.errors import InvalidInputError
from triggerfish.identity import ACCOUNT_ID, sqs_queue_arn
from triggerfish.names import SQS_QUEUES_NAMESPACE, is_platform_queue
from triggerfish.store import QueueConfig

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

#: SQS's limits.
MAX_BATCH = 10
MAX_WAIT_SECONDS = 20
MAX_VISIBILITY_TIMEOUT = 12 * 3600
MAX_DELAY_SECONDS = 15 * 60
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
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


def sqs_error(code: str, message: str, query_code: str | None = None) -> AwsError:
    return AwsError(code, message, query_code=query_code)


def no_queue(name: str) -> AwsError:
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


async def queue_record(call: AwsCall, name: str) -> QueueRecord | None:
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
    return await app_queue_names(call.platform)


async def app_queue_names(platform: Platform) -> list[str]:
    """The app's queues as SQS shows them: what S3's notification configuration may name too."""
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


async def queue_from(call: AwsCall, params: dict[str, Any]) -> str:
    url = required_text(params, "QueueUrl")
    path = urlsplit(url).path if "://" in url else url
    name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    if not name or name not in await queue_names(call):
        raise no_queue(name or url)
    return name


def _url(call: AwsCall, name: str) -> str:
    return f"{call.base_url}/{ACCOUNT_ID}/{name}"


# --- queues ------------------------------------------------------------------------------------


async def create_queue(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = required_text(params, "QueueName")
    attributes = _attribute_map(params)
    fifo = attributes.get("FifoQueue", "false").lower() == "true"
    if not _QUEUE_NAME.fullmatch(name.removesuffix(".fifo")) or (name.endswith(".fifo") and not fifo):
        raise sqs_error(
            "InvalidParameterValue",
            f"Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length: {name!r}"
            + (" (a name ending .fifo needs the attribute FifoQueue=true)" if name.endswith(".fifo") else ""),
        )
    if fifo and not name.endswith(".fifo"):
        raise sqs_error("InvalidParameterValue", f"The name of a FIFO queue can only end with .fifo: {name!r}")
    record = await queue_record(call, name)
    exists = name in await queue_names(call)
    if exists:
        config = await call.platform.store.queues.config(name)
        current = await _attributes(call, name, config, record)
        differing = sorted(k for k, v in attributes.items() if current.get(k) != v and k not in _KEPT_ATTRIBUTES)
        if differing:
            raise sqs_error(
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
        raise no_queue(name)
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
    name = await queue_from(call, params)
    wanted = [str(n) for n in optional_list(params, "AttributeNames")]
    config = await call.platform.store.queues.config(name)
    every = await _attributes(call, name, config, await queue_record(call, name))
    if "All" in wanted:
        return {"Attributes": every}
    unknown = [n for n in wanted if n not in every and n not in _KEPT_ATTRIBUTES and n != "RedrivePolicy"]
    if unknown:
        raise sqs_error("InvalidAttributeName", f"Unknown Attribute {unknown[0]}.")
    chosen = {n: every[n] for n in wanted if n in every}
    return {"Attributes": chosen} if chosen else {}


async def set_queue_attributes(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await queue_from(call, params)
    attributes = _attribute_map(params)
    if "FifoQueue" in attributes:
        raise sqs_error("InvalidAttributeName", "FifoQueue is set when a queue is created, not changed after")
    queues = call.platform.store.queues
    now = time.time()
    record = await queue_record(call, name) or QueueRecord(created_at=now, modified_at=now)
    config, record = _apply(name, await queues.config(name), record, attributes, creating=False)
    await queues.configure(name, config)
    await _save(call, name, replace(record, modified_at=now))
    return {}


async def purge_queue(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    await call.platform.store.queues.purge(await queue_from(call, params))
    return {}


async def delete_queue(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name = await queue_from(call, params)
    consumers = sorted(function for function, queue in call.platform.queues.subscriptions() if queue == name)
    if consumers:
        raise sqs_error(
            "InvalidParameterValue",
            f"queue {name!r} is consumed by {', '.join(consumers)}, which the app declares: remove the"
            " @app.on_queue trigger and deploy instead",
        )
    await call.platform.store.queues.purge(name)
    now = time.time()
    record = await queue_record(call, name) or QueueRecord(created_at=now, modified_at=now)
    await _save(call, name, replace(record, deleted=True, modified_at=now))
    return {}


def _attribute_map(params: dict[str, Any]) -> dict[str, str]:
    given = optional_map(params, "Attributes")
    for key, value in given.items():
        if not isinstance(value, str):
            raise sqs_error("InvalidAttributeValue", f"Attribute {key} must be given as a string, not {value!r}")
    return dict(given)


def _number(attributes: dict[str, str], name: str, low: int, high: int) -> int | None:
    if name not in attributes:
        return None
    text = attributes[name]
    if not text.isdigit() or not low <= int(text) <= high:
        raise sqs_error(
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
        raise sqs_error("InvalidAttributeName", f"Unknown Attribute {unknown[0]}.")
    visibility = _number(attributes, "VisibilityTimeout", 0, MAX_VISIBILITY_TIMEOUT)
    if visibility == 0:
        raise sqs_error(
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
            raise sqs_error("InvalidAttributeValue", "ContentBasedDeduplication must be true or false")
        if content_dedup.lower() == "true" and not config.fifo:
            raise sqs_error("InvalidAttributeName", "ContentBasedDeduplication is an attribute of FIFO queues only")
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
        raise sqs_error("InvalidAttributeValue", str(exc)) from None
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
        raise sqs_error("InvalidAttributeValue", f"Invalid value for the parameter RedrivePolicy: {exc}") from None
    if not isinstance(policy, dict) or "deadLetterTargetArn" not in policy or "maxReceiveCount" not in policy:
        raise sqs_error(
            "InvalidAttributeValue",
            "Invalid value for the parameter RedrivePolicy: it needs deadLetterTargetArn and maxReceiveCount",
        )
    arn = str(policy["deadLetterTargetArn"])
    target = arn.rsplit(":", 1)[-1]
    count = policy["maxReceiveCount"]
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise sqs_error("InvalidAttributeValue", "Invalid value for maxReceiveCount: from 1 to 1000")
    if not arn.startswith("arn:") or target == name:
        raise sqs_error(
            "InvalidAttributeValue", f"Value {arn} for parameter RedrivePolicy is invalid: name another queue"
        )
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


#: The queue operations (messages: sqs_send.OPERATIONS; dead-letter moves: sqs_moves.OPERATIONS).
OPERATIONS = {
    "CreateQueue": Operation(create_queue, "configure"),
    "GetQueueUrl": Operation(get_queue_url, "read", also=("publish", "configure")),
    "ListQueues": Operation(list_queues, "read"),
    "GetQueueAttributes": Operation(get_queue_attributes, "read"),
    "SetQueueAttributes": Operation(set_queue_attributes, "configure"),
    "PurgeQueue": Operation(purge_queue, "configure"),
    "DeleteQueue": Operation(delete_queue, "configure"),
}
