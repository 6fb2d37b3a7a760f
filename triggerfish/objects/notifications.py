"""The writes an object change makes for its notifications, for the store transaction that records the change.

    objects = ObjectStore(store, root, notify=PlatformNotifications(platform))

For each `@app.on_object` trigger of the serving version that matches the change, an asynchronous
invocation of its function (queued as `invoke_async` queues one, so Lambda's retries, the
function's dead-letter queue and its destinations apply), whose event is S3's notification
`{"Records": [...]}`; and one event on the `default` bus with EventBridge's S3 shape (`source:
aws.s3`, `detail-type: Object Created` / `Object Deleted`), so rules can match uploads; and, for each
destination of the bucket's notification configuration (PutBucketNotificationConfiguration, see
bucket_notifications.py) that matches, the same `{"Records": [...]}` document as the body of a message
sent to the queue, or published to the topic (an append to its log, fanned out as any publish is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from triggerfish.events.cloudevent import Event
from triggerfish.model import ObjectTrigger
from triggerfish.names import bus_stream, topic_stream
from triggerfish.objects.events import Change, bucket_arn, bus_event_fields, s3_record, trigger_matches
from triggerfish.store.atomic import Append, Op, Send
from triggerfish.store.base import OutgoingMessage
from triggerfish.triggers.sns import new_message

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

#: The bus object events are published to.
OBJECT_EVENTS_BUS = "default"
#: The `trigger` invocation records of object notifications carry.
TRIGGER = "object"
#: The subject of the SNS messages S3 publishes.
TOPIC_SUBJECT = "Amazon S3 Notification"


class PlatformNotifications:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def __call__(self, change: Change) -> list[Op]:
        ops: list[Op] = []
        platform = self.platform
        for spec in platform.specs.values():
            for index, trigger in enumerate(spec.triggers):
                if isinstance(trigger, ObjectTrigger) and trigger_matches(trigger, change):
                    record = s3_record(change, f"{spec.name}-{index}")
                    queue, message, _ = platform.message(
                        spec.name, {"Records": [record]}, trigger=TRIGGER, traceparent=change.traceparent
                    )
                    ops.append(Send(queue, [message]))
        configured = await platform.objects.index.notifications(change.bucket)
        for destination in configured.matching(change):
            body = orjson.dumps({"Records": [s3_record(change, destination.id)]})
            if destination.kind == "queue":
                ops.append(Send(destination.name, [OutgoingMessage(body)]))
            else:
                published = new_message(body.decode(), subject=TOPIC_SUBJECT)
                ops.append(Append(topic_stream(destination.name), [published.to_json()]))
        source, detail_type, detail = bus_event_fields(change)
        event = Event.create(
            detail_type,
            source,
            detail,
            subject=f"{change.bucket}/{change.key}",
            resources=orjson.dumps([bucket_arn(change.bucket)]).decode(),
        )
        if change.traceparent is not None:  # the rules' functions continue the uploader's trace
            event = event.with_extensions(traceparent=change.traceparent)
        ops.append(Append(bus_stream(OBJECT_EVENTS_BUS), platform.publisher.encode([event])))
        return ops


def declared_buckets(platform: Platform, configured: list[str]) -> list[str]:
    """The buckets that exist at start: `[buckets.NAME]` of triggerfish.toml, and those `@app.on_object` names."""
    names = list(configured)
    for spec in platform.specs.values():
        names += [t.bucket for t in spec.triggers if isinstance(t, ObjectTrigger)]
    return sorted(set(names))


async def declare_buckets(platform: Platform, settings: dict[str, dict[str, Any]]) -> None:
    """Make the declared buckets (`[buckets.NAME]` and `@app.on_object`'s), and give those whose table has
    `notifications` that configuration, replacing what PutBucketNotificationConfiguration put: triggerfish.toml
    is the source of truth for a bucket that declares it (one that does not keeps what the API put)."""
    objects = platform.objects
    await objects.ensure_buckets(declared_buckets(platform, list(settings)))
    for name, table in settings.items():
        config = table.get("notifications")
        if config is not None and await objects.index.notifications(name) != config:
            await objects.index.commit([objects.index.notifications_op(name, config)])
