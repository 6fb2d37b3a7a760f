"""What an object change tells: S3's notification record, the bus event, and which triggers it fires.

Pure: no I/O. The record is S3's event message structure, version 2.1:

    {"Records": [s3_record("ObjectCreated:Put", meta, request)]}

and the bus event is the one EventBridge gets from S3 (`source: aws.s3`, `detail-type: Object Created`),
so rules written for AWS match uploads here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from triggerfish.identity import ACCOUNT_ID, REGION
from triggerfish.model import ObjectTrigger

#: The S3 event names a change can have, and the trigger kinds (`created`/`deleted`) they belong to.
CREATED = ("ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload")
REMOVED = ("ObjectRemoved:Delete",)
#: The owner every bucket and request is attributed to (one account per platform, as identity.py says).
OWNER = "triggerfish"


@dataclass(frozen=True, slots=True)
class Change:
    """One change of one object, as its notification tells it."""

    event_name: str
    bucket: str
    key: str
    size: int
    etag: str
    sequencer: str
    time: float
    request_id: str
    source_ip: str
    principal: str
    #: The trace the change was made in, if any: its notifications continue it.
    traceparent: str | None = None


def trigger_matches(trigger: ObjectTrigger, change: Change) -> bool:
    """Whether `trigger` fires for `change`: its bucket, its event kinds, its key prefix and suffix."""
    if trigger.bucket != change.bucket:
        return False
    if not change.key.startswith(trigger.prefix) or not change.key.endswith(trigger.suffix):
        return False
    return any(_event_matches(wanted, change.event_name) for wanted in trigger.events)


def _event_matches(wanted: str, event_name: str) -> bool:
    if wanted == "created":
        return event_name.startswith("ObjectCreated:")
    if wanted == "deleted":
        return event_name.startswith("ObjectRemoved:")
    # S3's own names: `s3:ObjectCreated:*`, `s3:ObjectCreated:Put`, ...
    name = wanted.removeprefix("s3:")
    if name.endswith(":*"):
        return event_name.startswith(name[:-1])
    return name == event_name


def encode_key(key: str) -> str:
    """The object key as S3 writes it in a notification: URL-encoded, spaces as `+` (unquote_plus reverses it)."""
    return quote_plus(key, safe="/")


def iso_time(moment: float) -> str:
    """S3's timestamp form: `2026-12-06T19:07:41.123Z`."""
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def s3_record(change: Change, configuration_id: str) -> dict[str, Any]:
    """One entry of a notification's `Records`, with every field S3 sends."""
    obj: dict[str, Any] = {"key": encode_key(change.key), "sequencer": change.sequencer}
    if change.event_name.startswith("ObjectCreated:"):
        obj = {"key": obj["key"], "size": change.size, "eTag": change.etag, "sequencer": change.sequencer}
    obj["versionId"] = ""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": iso_time(change.time),
        "eventName": change.event_name,
        "userIdentity": {"principalId": change.principal},
        "requestParameters": {"sourceIPAddress": change.source_ip},
        "responseElements": {"x-amz-request-id": change.request_id, "x-amz-id-2": change.request_id},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": change.bucket,
                "ownerIdentity": {"principalId": OWNER},
                "arn": bucket_arn(change.bucket),
            },
            "object": obj,
        },
    }


def bus_event_fields(change: Change) -> tuple[str, str, dict[str, Any]]:
    """The bus event's source, detail-type and detail, as S3 sends them to EventBridge."""
    created = change.event_name.startswith("ObjectCreated:")
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": change.bucket},
        "object": {"key": change.key, "sequencer": change.sequencer},
        "request-id": change.request_id,
        "requester": ACCOUNT_ID,
        "source-ip-address": change.source_ip,
        "reason": _REASONS[change.event_name],
    }
    if created:
        detail["object"].update({"size": change.size, "etag": change.etag})
    else:
        detail["deletion-type"] = "Permanently Deleted"
    return "aws.s3", "Object Created" if created else "Object Deleted", detail


_REASONS = {
    "ObjectCreated:Put": "PutObject",
    "ObjectCreated:Post": "PostObject",
    "ObjectCreated:Copy": "CopyObject",
    "ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
    "ObjectRemoved:Delete": "DeleteObject",
}


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"
