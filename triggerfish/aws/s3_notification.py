"""S3's bucket notification configuration: `PUT /BUCKET?notification` and `GET /BUCKET?notification`.

    s3.put_bucket_notification_configuration(Bucket="uploads", NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": "arn:aws:sqs:local:000000000000:uploads-seen",
                                 "Events": ["s3:ObjectCreated:*"]}]})

The queues and topics named must be the app's (as ListQueues and ListTopics show them), unless the
request carries `x-amz-skip-destination-validation: true`; a FIFO queue is refused, as S3 refuses one.
The configuration and one `s3:TestEvent` message to each queue it names are written in one store
transaction. From then on every matching change sends its record with the change's own commit
(objects/notifications.py).
"""

from __future__ import annotations

import time

import orjson

from triggerfish.aws.s3_request import Reply, S3Request, read_all, xml_reply
from triggerfish.objects.bucket_notifications import (
    NotificationConfiguration,
    configuration_document,
    parse_configuration,
    s3_test_event,
)
from triggerfish.objects.events import iso_time
from triggerfish.objects.model import ObjectError
from triggerfish.store.atomic import Op, Send
from triggerfish.store.base import OutgoingMessage


async def get_notification(r: S3Request) -> Reply:
    await r.objects.require_bucket(r.bucket)
    return xml_reply(configuration_document(await r.objects.index.notifications(r.bucket)))


async def put_notification(r: S3Request) -> Reply:
    await r.objects.require_bucket(r.bucket)
    config = parse_configuration(await read_all(r))
    if r.headers.get("x-amz-skip-destination-validation", "").lower() != "true":
        await _validate(r, config)
    ops: list[Op] = [r.objects.index.notifications_op(r.bucket, config)]
    body = orjson.dumps(s3_test_event(r.bucket, iso_time(time.time()), r.rid))
    for queue in dict.fromkeys(d.name for d in config.destinations if d.kind == "queue"):
        ops.append(Send(queue, [OutgoingMessage(body)]))
    await r.objects.index.commit(ops)
    return Reply(200, [])


async def _validate(r: S3Request, config: NotificationConfiguration) -> None:
    # Imported here: the SQS and SNS services import the endpoint, which imports S3's.
    from triggerfish.aws.sns import app_topic_names
    from triggerfish.aws.sqs import app_queue_names

    platform = r.platform
    queues = set(await app_queue_names(platform)) if any(d.kind == "queue" for d in config.destinations) else set()
    topics = set(await app_topic_names(platform)) if any(d.kind == "topic" for d in config.destinations) else set()
    for d in config.destinations:
        known = queues if d.kind == "queue" else topics
        if d.name not in known:
            make = "CreateQueue" if d.kind == "queue" else "CreateTopic"
            raise ObjectError(
                "InvalidArgument",
                f"Unable to validate the following destination configurations: {d.arn} (configuration {d.id!r}):"
                f" the app has no {d.kind} {d.name!r} ({make} makes it)",
            )
        if d.kind == "queue" and (await platform.store.queues.config(d.name)).fifo:
            raise ObjectError(
                "InvalidArgument",
                f"Unable to validate the following destination configurations: {d.arn}: FIFO queues are not"
                " supported as S3 notification destinations",
            )
