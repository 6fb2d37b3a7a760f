"""The event shapes AWS Lambda hands to handlers, built from Triggerfish's own records.

A Lambda handler written for SQS, SNS, an EventBridge schedule, S3 or a
DynamoDB stream reads a documented JSON shape; these pure functions build
exactly that shape so such handlers run unchanged. They do no I/O: the
callers (queue triggers, schedulers, `triggerfish.testing`) fetch the
records and pass them in.

ARNs name region `REGION` ("local") and account `ACCOUNT_ID`
("000000000000"), the same constants the EventBridge envelope uses.
SNS's signature fields are empty here; the platform's topics fill them
(triggerfish.aws.sns_signing) when they deliver, signed by the app's key.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus

from triggerfish.aws.sqs_messages import TypedAttribute, md5_of_attributes, message_sequence, typed_attributes
from triggerfish.errors import InvalidInputError
from triggerfish.identity import (
    ACCOUNT_ID,
    REGION,
    dynamodb_stream_arn,
    events_rule_arn,
    s3_bucket_arn,
    sns_topic_arn,
    sqs_queue_arn,
)
from triggerfish.store.base import Message

__all__ = [
    "ACCOUNT_ID",
    "PLATFORM_ATTRIBUTE_PREFIX",
    "REGION",
    "S3_EVENT_NAMES",
    "SnsMessage",
    "dynamodb_record",
    "dynamodb_stream_arn",
    "events_rule_arn",
    "iso_millis",
    "iso_seconds",
    "md5_of_message_attributes",
    "partial_batch_failures",
    "s3_record",
    "scheduled_event",
    "sns_records",
    "sns_topic_arn",
    "sqs_queue_arn",
    "sqs_record",
    "sqs_records",
    "to_attribute_map",
    "to_attribute_value",
]

#: Message attributes the platform itself sets (trace context, hop count) start with this;
#: they steer delivery and are not shown to handlers as message attributes.
PLATFORM_ATTRIBUTE_PREFIX = "triggerfish."


# --- SQS -------------------------------------------------------------------------------------


def sqs_records(
    messages: Iterable[Message],
    *,
    queue_arn: str | None = None,
    region: str = REGION,
    sender_id: str = ACCOUNT_ID,
) -> dict[str, Any]:
    """The event a Lambda function triggered by an SQS queue receives for a batch of messages.

    `queue_arn` defaults to the ARN of each message's own queue. Message bodies
    must be UTF-8 text, as SQS bodies are; a body that is not raises
    InvalidInputError naming the message, so the caller can dead-letter it.

        >>> event = sqs_records(batch)
        >>> event["Records"][0]["body"]
    """
    return {"Records": [sqs_record(m, queue_arn=queue_arn, region=region, sender_id=sender_id) for m in messages]}


def sqs_record(
    message: Message, *, queue_arn: str | None = None, region: str = REGION, sender_id: str = ACCOUNT_ID
) -> dict[str, Any]:
    """One element of `Records` for an SQS-triggered function."""
    try:
        body = message.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"message {message.message_id} on queue {message.queue!r}: the body is not UTF-8 text"
            f" (byte {exc.start}); an SQS-shaped event carries text, so send text or base64-encode binary bodies"
        ) from None
    attributes: dict[str, str] = {
        "ApproximateReceiveCount": str(message.receive_count),
        "SentTimestamp": str(_millis(message.sent_at)),
        "SenderId": sender_id,
        "ApproximateFirstReceiveTimestamp": str(_millis(message.first_received_at)),
    }
    if message.group is not None:
        attributes["SequenceNumber"] = message_sequence(message.attributes, message.sent_at, message.message_id)
        attributes["MessageGroupId"] = message.group
    if message.dedup_id is not None:
        attributes["MessageDeduplicationId"] = message.dedup_id
    # Typed as the AWS endpoint sent them (Number, Binary); anything else is a String, as before.
    user_attributes = typed_attributes(message.attributes, reserved_prefix=PLATFORM_ATTRIBUTE_PREFIX)
    record: dict[str, Any] = {
        "messageId": message.message_id,
        "receiptHandle": message.receipt,
        "body": body,
        "attributes": attributes,
        "messageAttributes": {name: attribute.as_lambda() for name, attribute in sorted(user_attributes.items())},
        "md5OfBody": hashlib.md5(message.body, usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn or sqs_queue_arn(message.queue, region=region),
        "awsRegion": region,
    }
    if user_attributes:
        record["md5OfMessageAttributes"] = md5_of_attributes(user_attributes)
    return record


def md5_of_message_attributes(attributes: Mapping[str, str]) -> str:
    """SQS's digest of string message attributes, so clients that verify it accept ours (see
    triggerfish.aws.sqs_messages for typed ones)."""
    return md5_of_attributes({name: TypedAttribute("String", value) for name, value in attributes.items()})


def partial_batch_failures(result: Any, batch_ids: Sequence[str]) -> list[str]:
    """The message ids a handler reported as failed in its SQS batch response.

    Lambda's contract: return `{"batchItemFailures": [{"itemIdentifier": id}, ...]}`
    to fail only those messages; any other return value means the whole batch
    succeeded. An identifier that is empty or not in the batch makes Lambda
    treat the whole batch as failed, so it does here too.
    """
    if not isinstance(result, Mapping) or "batchItemFailures" not in result:
        return []
    failures = result["batchItemFailures"]
    if failures is None:
        return []
    if not isinstance(failures, list):
        return list(batch_ids)
    known = set(batch_ids)
    failed: list[str] = []
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(ident, str) or ident not in known:
            return list(batch_ids)
        if ident not in failed:
            failed.append(ident)
    return failed


# --- SNS -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnsMessage:
    """A message published to a topic, as a topic subscription delivers it."""

    message_id: str
    message: str
    timestamp: float
    subject: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


def sns_records(
    topic: str, messages: Iterable[SnsMessage], *, subscription_id: str = "local", region: str = REGION
) -> dict[str, Any]:
    """The event a Lambda function subscribed to an SNS topic receives (one record per message)."""
    topic_arn = sns_topic_arn(topic, region=region)
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic_arn}:{subscription_id}",
                "EventSource": "aws:sns",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": m.message_id,
                    "TopicArn": topic_arn,
                    "Subject": m.subject,
                    "Message": m.message,
                    "Timestamp": iso_millis(m.timestamp),
                    "SignatureVersion": "1",
                    "Signature": "",
                    "SigningCertUrl": "",
                    "UnsubscribeUrl": "",
                    "MessageAttributes": {
                        name: {"Type": "String", "Value": value} for name, value in sorted(m.attributes.items())
                    },
                },
            }
            for m in messages
        ]
    }


# --- EventBridge schedules -------------------------------------------------------------------


def scheduled_event(
    schedule_name: str, time: float | datetime.datetime, *, event_id: str | None = None, region: str = REGION
) -> dict[str, Any]:
    """The EventBridge "Scheduled Event" a scheduled Lambda function receives.

    `time` is when the schedule fired (epoch seconds or an aware datetime);
    `resources` names the schedule's rule.
    """
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": iso_seconds(time),
        "region": region,
        "resources": [events_rule_arn(schedule_name, region=region)],
        "detail": {},
    }


# --- S3 object notifications -----------------------------------------------------------------

S3_EVENT_NAMES = frozenset(
    {
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
        "ObjectRemoved:Delete",
        "ObjectRemoved:DeleteMarkerCreated",
    }
)


def s3_record(
    bucket: str,
    key: str,
    *,
    event_name: str,
    time: float | datetime.datetime,
    size: int | None = None,
    etag: str | None = None,
    sequencer: str = "0",
    version_id: str | None = None,
    configuration_id: str = "triggerfish",
    region: str = REGION,
) -> dict[str, Any]:
    """One S3 event notification record (wrap a list of them as `{"Records": [...]}`).

    The key is URL-encoded as S3 encodes it (a space becomes `+`), so
    handlers that `unquote_plus` it get the original back. Removal events
    carry no size or ETag.
    """
    if event_name not in S3_EVENT_NAMES:
        raise InvalidInputError(f"unknown S3 event name {event_name!r}; use one of {', '.join(sorted(S3_EVENT_NAMES))}")
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": sequencer}
    if event_name.startswith("ObjectCreated:"):
        if size is None or etag is None:
            raise InvalidInputError(f"an {event_name} record needs the object's size and etag")
        obj["size"] = size
        obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": iso_millis(time),
        "eventName": event_name,
        "userIdentity": {"principalId": ACCOUNT_ID},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": sequencer, "x-amz-id-2": sequencer},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": ACCOUNT_ID}, "arn": s3_bucket_arn(bucket)},
            "object": obj,
        },
    }


# --- DynamoDB Streams ------------------------------------------------------------------------

ChangeOp = Literal["insert", "modify", "remove"]
StreamViewType = Literal["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"]


def dynamodb_record(
    table: str,
    op: ChangeOp,
    *,
    keys: Mapping[str, Any],
    new_image: Mapping[str, Any] | None = None,
    old_image: Mapping[str, Any] | None = None,
    sequence_number: int,
    time: float,
    view_type: StreamViewType = "NEW_AND_OLD_IMAGES",
    event_id: str | None = None,
    region: str = REGION,
) -> dict[str, Any]:
    """One DynamoDB Streams record (wrap a list of them as `{"Records": [...]}`).

    `keys` and the images are plain JSON-like values; they are written in
    DynamoDB's typed form (`{"S": ...}`, `{"N": "..."}`, ...). Which images
    appear follows `view_type`, as in DynamoDB.
    """
    if op not in ("insert", "modify", "remove"):
        raise InvalidInputError(f"unknown change operation {op!r}; use 'insert', 'modify' or 'remove'")
    change: dict[str, Any] = {
        "ApproximateCreationDateTime": int(time),
        "Keys": to_attribute_map(keys, where="keys"),
    }
    if view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and new_image is not None and op != "remove":
        change["NewImage"] = to_attribute_map(new_image, where="new_image")
    if view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") and old_image is not None and op != "insert":
        change["OldImage"] = to_attribute_map(old_image, where="old_image")
    change["SequenceNumber"] = str(sequence_number)
    # AWS reports the stream record's size; the compact JSON of the change is a faithful stand-in.
    change["SizeBytes"] = len(json.dumps(change, separators=(",", ":")).encode("utf-8"))
    change["StreamViewType"] = view_type
    return {
        "eventID": event_id or uuid.uuid4().hex,
        "eventName": op.upper(),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": change,
        "eventSourceARN": dynamodb_stream_arn(table, region=region),
    }


def to_attribute_map(item: Mapping[str, Any], *, where: str = "item") -> dict[str, Any]:
    """A plain mapping in DynamoDB's typed attribute form."""
    if not isinstance(item, Mapping):
        raise InvalidInputError(f"{where} must be a mapping of attribute names to values, not {type(item).__name__}")
    return {str(name): to_attribute_value(value, where=f"{where}.{name}") for name, value in item.items()}


def to_attribute_value(value: Any, *, where: str = "value") -> dict[str, Any]:
    """One value in DynamoDB's typed form.

    str -> S, int/float -> N, bytes -> B, bool -> BOOL, None -> NULL, mapping -> M,
    list/tuple -> L, and sets of strings, numbers or bytes -> SS, NS, BS.
    """
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": _number(value, where)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"B": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"M": to_attribute_map(value, where=where)}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attribute_value(v, where=f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        return _set_value(value, where)
    raise InvalidInputError(f"{where}: DynamoDB has no type for {type(value).__name__} values")


def _set_value(values: set[Any] | frozenset[Any], where: str) -> dict[str, Any]:
    if not values:
        raise InvalidInputError(f"{where}: DynamoDB sets cannot be empty")
    if all(isinstance(v, str) for v in values):
        return {"SS": sorted(values)}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return {"NS": [_number(v, where) for v in sorted(values)]}
    if all(isinstance(v, bytes) for v in values):
        return {"BS": [base64.b64encode(v).decode("ascii") for v in sorted(values)]}
    raise InvalidInputError(f"{where}: a DynamoDB set holds only strings, only numbers or only bytes")


def _number(value: float, where: str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"{where}: DynamoDB numbers must be finite, not {value!r}")
    return str(value)


# --- time formats ----------------------------------------------------------------------------


def iso_seconds(moment: float | datetime.datetime) -> str:
    """`2015-10-08T16:53:06Z`: EventBridge's time format."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_millis(moment: float | datetime.datetime) -> str:
    """`2019-01-02T12:45:07.000Z`: the time format of SNS and S3 records."""
    utc = _utc(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _utc(moment: float | datetime.datetime) -> datetime.datetime:
    if isinstance(moment, datetime.datetime):
        if moment.tzinfo is None:
            raise InvalidInputError(f"time {moment.isoformat()} has no time zone; pass an aware datetime")
        return moment.astimezone(datetime.UTC)
    return datetime.datetime.fromtimestamp(moment, datetime.UTC)


def _millis(seconds: float) -> int:
    return int(seconds * 1000)
