"""The control API's queue, topic and schedule endpoints (the rest is in control.py).

A queue is known when it is in the store (it was configured or sent to),
when a function consumes it, or when a known queue names it as its
dead-letter queue; anything else is 404, so a typo never creates a queue.

Redrive moves the messages of a queue's dead-letter queue back to it. The
store contract has no move primitive, so it is receive, send, acknowledge,
a batch at a time: a crash in the middle leaves a batch in both queues (at
least once, never lost), and the messages come back with a receive count of
zero, as SQS's redrive does.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from triggerfish._json import dumps
from triggerfish.events import tracecontext
from triggerfish.events.shapes import PLATFORM_ATTRIBUTE_PREFIX
from triggerfish.names import TRACEPARENT_ATTRIBUTE
from triggerfish.server.control_io import ApiError, json_response, listed, platform_of
from triggerfish.server.operations import Answer, Body, Operation, inputs, path, query
from triggerfish.server.platform import Platform
from triggerfish.server.progress import BOARD, Report, operation_of
from triggerfish.server.schema import AnyValue, Array, Boolean, Enum, Integer, Named, Nullable, Number, Object, Text
from triggerfish.store import Message, OutgoingMessage, QueueStats
from triggerfish.triggers.sns import MAX_MESSAGE_BYTES
from triggerfish.triggers.subscriptions import KINDS as SUBSCRIPTION_KINDS
from triggerfish.triggers.subscriptions import Subscription

#: SQS's limits: up to 10 messages per receive, a long poll of up to 20 seconds, a delay of up to 15 minutes.
MAX_RECEIVE = 10
MAX_WAIT = 20.0
MAX_DELAY = 15 * 60.0
#: Messages moved per round of a redrive, and the lease they are held under meanwhile.
REDRIVE_BATCH = 100
REDRIVE_LEASE = 60.0
#: The most messages one redrive moves.
MAX_REDRIVE = 2**31


# --- queues ----------------------------------------------------------------------------------


async def _queues(platform: Platform) -> list[str]:
    names = set(await platform.store.queues.queues())
    names.update(queue for _, queue in platform.queues.subscriptions())
    for name in list(names):
        dead_letter = (await platform.store.queues.config(name)).dead_letter
        if dead_letter is not None:
            names.add(dead_letter)
    return sorted(names)


async def _known_queue(platform: Platform, name: str) -> str:
    known = await _queues(platform)
    if name not in known:
        raise ApiError(404, "QueueNotFound", f"no queue named {name!r}; the queues are: {listed(known)}")
    return name


def _stats(stats: QueueStats) -> dict[str, Any]:
    return {
        "visible": stats.visible,
        "delayed": stats.delayed,
        "in_flight": stats.in_flight,
        "depth": stats.depth,
        "oldest_age": stats.oldest_age,
    }


async def _describe_queue(platform: Platform, name: str) -> dict[str, Any]:
    queues = platform.store.queues
    config = await queues.config(name)
    dead_letter = None
    if config.dead_letter is not None:
        dead_letter = {"name": config.dead_letter, **_stats(await queues.stats(config.dead_letter))}
    return {
        "name": name,
        "config": dataclasses.asdict(config),
        "stats": _stats(await queues.stats(name)),
        "consumers": sorted(function for function, queue in platform.queues.subscriptions() if queue == name),
        "dead_letter": dead_letter,
    }


async def list_queues(request: Request) -> Response:
    platform = platform_of(request)
    return json_response({"queues": [await _describe_queue(platform, name) for name in await _queues(platform)]})


async def get_queue(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_queue(platform, inputs(request).path["name"])
    return json_response(await _describe_queue(platform, name))


async def send_message(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    name = await _known_queue(platform, given.path["name"])
    document = given.body
    value = document["body"]
    # A string is sent as it is; any other JSON value as its JSON text.
    body = value.encode("utf-8") if isinstance(value, str) else dumps(value)
    limit = platform.store.queues.max_record_bytes
    if len(body) > limit:
        raise ApiError(
            413, "MessageTooLarge", f"the message body is {len(body)} bytes; queue messages take at most {limit} bytes"
        )
    attributes = dict(document.get("attributes") or {})
    reserved = sorted(a for a in attributes if a.startswith(PLATFORM_ATTRIBUTE_PREFIX))
    if reserved:
        raise ApiError(
            400,
            "InvalidInput",
            f"body: attribute {reserved[0]!r}: names starting with 'triggerfish.' are the platform's",
        )
    parent = request.headers.get("traceparent")
    if parent is not None and tracecontext.is_valid(parent):
        attributes[TRACEPARENT_ATTRIBUTE] = parent
    config = await platform.store.queues.config(name)
    group = document.get("group")
    if config.fifo and group is None:
        raise ApiError(400, "InvalidInput", f"queue {name!r} is FIFO: every message needs a group")
    sent = await platform.store.queues.send(
        name,
        body,
        delay=document.get("delay") or 0.0,
        dedup_id=document.get("dedup_id"),
        group=group,
        attributes=attributes,
    )
    return json_response({"message_id": sent.message_id, "duplicate": sent.duplicate})


def _message_json(message: Message) -> dict[str, Any]:
    try:
        body: dict[str, Any] = {"body": message.body.decode("utf-8")}
    except UnicodeDecodeError:
        body = {"body_base64": base64.b64encode(message.body).decode("ascii")}
    return {
        "message_id": message.message_id,
        "receipt": message.receipt,
        **body,
        "attributes": dict(message.attributes),
        "group": message.group,
        "dedup_id": message.dedup_id,
        "receive_count": message.receive_count,
        "sent_at": message.sent_at,
        "first_received_at": message.first_received_at,
        "lease_expires_at": message.lease_expires_at,
    }


async def receive_messages(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    name = await _known_queue(platform, given.path["name"])
    document = given.body or {}
    messages = await platform.store.queues.receive(
        name,
        max_messages=document.get("max") or 1,
        visibility_timeout=document.get("visibility_timeout"),
        wait=document.get("wait") or 0.0,
    )
    return json_response({"messages": [_message_json(m) for m in messages]})


async def ack_messages(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    name = await _known_queue(platform, given.path["name"])
    done = await platform.store.queues.ack_many(name, given.body["receipts"])
    return json_response({"acked": done})


async def purge_queue(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_queue(platform, inputs(request).path["name"])
    return json_response({"queue": name, "purged": await platform.store.queues.purge(name)})


async def redrive(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    name = await _known_queue(platform, given.path["name"])
    document = given.body or {}
    config = await platform.store.queues.config(name)
    source = document.get("dead_letter") or config.dead_letter
    if source is None:
        raise ApiError(
            400,
            "NoDeadLetterQueue",
            f"queue {name!r} has no dead-letter queue; name the queue to move from in the body's dead_letter",
        )
    await _known_queue(platform, source)
    if source == name:
        raise ApiError(400, "InvalidInput", f"body: dead_letter names {name!r} itself; name its dead-letter queue")
    limit = document.get("max") or MAX_REDRIVE
    operation = operation_of(request)
    report = BOARD.reporter(operation, "messages")
    try:
        moved = await move_messages(platform, source, name, limit=limit, fifo=config.fifo, progress=report)
    finally:
        BOARD.finish(operation)
    return json_response({"queue": name, "dead_letter": source, "moved": moved})


async def move_messages(
    platform: Platform, source: str, destination: str, *, limit: int, fifo: bool, progress: Report | None = None
) -> int:
    """Move up to `limit` visible messages from `source` to `destination`, a batch at a time; how many moved.

    `progress` is told after each batch how many moved of the most there are to move (the smaller of `limit`
    and the messages visible in `source` when it began; one that arrives meanwhile may move too).

    Each batch is sent before it is acknowledged, so a failure in between
    leaves copies rather than losing messages. Deduplication ids are dropped:
    a message sent again with its id inside the window would be taken for a
    duplicate and vanish. Messages without a group cannot enter a FIFO queue
    and stay where they are.
    """
    queues = platform.store.queues
    moved = 0
    skipped: list[Message] = []
    total = min(limit, (await queues.stats(source)).visible) if progress is not None else None
    if progress is not None:
        progress(0, total, "redrive")
    try:
        while moved < limit:
            batch = await queues.receive(
                source, max_messages=min(REDRIVE_BATCH, limit - moved), visibility_timeout=REDRIVE_LEASE
            )
            if not batch:
                break
            movable = [m for m in batch if m.group is not None or not fifo]
            # Held leased until the end, so the next receive brings new messages rather than these again.
            skipped += [m for m in batch if m.group is None and fifo]
            await queues.send_many(
                destination, [OutgoingMessage(m.body, group=m.group, attributes=dict(m.attributes)) for m in movable]
            )
            await queues.ack_many(source, [m.receipt for m in movable])
            moved += len(movable)
            if progress is not None:
                progress(moved, max(moved, total or 0), "redrive")
    finally:
        for message in skipped:
            await queues.release(source, message.receipt)
    return moved


# --- topics --------------------------------------------------------------------------------


async def _known_topic(platform: Platform, name: str) -> str:
    known = await platform.topics.names()
    if name not in known:
        raise ApiError(404, "TopicNotFound", f"no topic named {name!r}; the topics are: {listed(known)}")
    return name


def _subscription_json(subscription: Subscription) -> dict[str, Any]:
    document = subscription.to_dict()
    # A webhook's secret is write-only: say that it is set, never what it is.
    document["signed"] = document.pop("secret") is not None
    return {**document, "arn": subscription.arn, "source": subscription.source}


async def list_topics(request: Request) -> Response:
    platform = platform_of(request)
    found = []
    for name in await platform.topics.names():
        found.append({"name": name, "subscriptions": len(await platform.topics.subscriptions(name))})
    return json_response({"topics": found})


async def publish_message(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    name = await _known_topic(platform, given.path["name"])
    document = given.body
    value = document["message"]
    # A string is published as it is; any other JSON value as its JSON text.
    message = value if isinstance(value, str) else dumps(value).decode("utf-8")
    size = len(message.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        raise ApiError(
            413,
            "MessageTooLarge",
            f"the message is {size} bytes; a topic message takes at most {MAX_MESSAGE_BYTES} bytes (256 KiB, as SNS)",
        )
    parent = request.headers.get("traceparent")
    message_id = await platform.topics.publish(
        name,
        message,
        subject=document.get("subject"),
        attributes=document.get("attributes") or {},
        traceparent=parent if parent is not None and tracecontext.is_valid(parent) else None,
    )
    return json_response({"topic": name, "message_id": message_id}, 202)


async def list_subscriptions(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_topic(platform, inputs(request).path["name"])
    subscriptions = await platform.topics.subscriptions(name)
    return json_response({"topic": name, "subscriptions": [_subscription_json(s) for s in subscriptions]})


async def subscribe(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    name = given.path["name"]
    document = given.body
    before = {s.arn for s in await platform.topics.subscriptions(name)}
    kind, endpoint_name = document["kind"], document["endpoint"]
    if kind == "function" and endpoint_name not in platform.current.specs:
        raise ApiError(
            400,
            "UnknownFunction",
            f"endpoint names no function {endpoint_name!r}; the app declares: {listed(platform.current.specs)}",
        )
    subscription = await platform.topics.subscribe(
        name,
        kind,
        endpoint_name,
        filter=document.get("filter"),
        filter_scope=document.get("filter_scope", "attributes"),
        raw=document.get("raw", False),
        secret=document.get("secret"),
        dead_letter=document.get("dead_letter"),
        retry=document.get("retry"),
    )
    await platform.changed("subscriptions")
    return json_response(_subscription_json(subscription), 200 if subscription.arn in before else 201)


async def unsubscribe(request: Request) -> Response:
    platform = platform_of(request)
    given = inputs(request)
    name = await _known_topic(platform, given.path["name"])
    subscription_id = given.path["id"]
    subscriptions = await platform.topics.subscriptions(name)
    found = next((s for s in subscriptions if s.id == subscription_id), None)
    if found is None:
        raise ApiError(
            404,
            "SubscriptionNotFound",
            f"topic {name!r} has no subscription {subscription_id!r}; its subscriptions are:"
            f" {listed(s.id for s in subscriptions)}",
        )
    if found.source == "app":
        raise ApiError(
            409,
            "SubscriptionFromApp",
            f"subscription {subscription_id!r} comes from the app's @app.on_topic; it changes only with the code",
        )
    await platform.topics.unsubscribe(found)
    await platform.changed("subscriptions")
    return Response(status_code=204)


# --- schedules -------------------------------------------------------------------------------

#: How many coming fire times GET /schedules lists per schedule unless `?count=` says otherwise.
NEXT_FIRES = 5
MAX_NEXT_FIRES = 100


def _iso(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


async def _schedules(platform: Platform, count: int) -> list[dict[str, Any]]:
    scheduler = platform.scheduler
    declared = {s.name: s for s in scheduler.schedules}
    found = []
    for status in await scheduler.next_fires():
        coming: list[datetime.datetime] = []
        moment = status.next_fire
        while moment is not None and len(coming) < count:
            coming.append(moment)
            moment = declared[status.name].schedule.next_after(moment)
        found.append(
            {
                "name": status.name,
                "function": status.function,
                "expression": status.expression,
                "tz": status.tz,
                "paused": status.paused,
                "next_fires": [_iso(m) for m in coming],
                "last_fired": _iso(status.last_fired),
                "first_seen": _iso(status.first_seen),
            }
        )
    return found


async def list_schedules(request: Request) -> Response:
    count = inputs(request).query.get("count", NEXT_FIRES)
    return json_response({"schedules": await _schedules(platform_of(request), count)})


async def _steer(request: Request, paused: bool) -> Response:
    platform = platform_of(request)
    name = inputs(request).path["name"]
    names = [s.name for s in platform.scheduler.schedules]
    if name not in names:
        raise ApiError(404, "ScheduleNotFound", f"no schedule named {name!r}; the schedules are: {listed(names)}")
    await (platform.scheduler.pause(name) if paused else platform.scheduler.resume(name))
    [status] = [s for s in await _schedules(platform, NEXT_FIRES) if s["name"] == name]
    return json_response(status)


async def pause_schedule(request: Request) -> Response:
    return await _steer(request, True)


async def resume_schedule(request: Request) -> Response:
    return await _steer(request, False)


# --- the table -------------------------------------------------------------------------------

_QUEUE = path("name", "The queue's name")
_TOPIC = path("name", "The topic's name")
_SCHEDULE = path("name", "The schedule's name")
_STRINGS = Object({}, additional=Text())
_RETRY = Object(
    {
        "max_event_age": Number(minimum=0),
        "max_attempts": Integer(minimum=0),
        "backoff": Object({"base": Number(), "multiplier": Number(), "ceiling": Number(), "jitter": Number()}),
    },
    "The delivery retry policy (default: 24 hours, 185 attempts)",
)

SEND_INPUT = Named(
    "SendInput",
    Object(
        {
            "body": AnyValue("the message, a string (or any JSON value, sent as its JSON text)"),
            "delay": Number("Seconds before it can be received", minimum=0, maximum=MAX_DELAY),
            "group": Text("The message group (required on FIFO queues)", min_length=1),
            "dedup_id": Text("Sent again with this id within the dedup window, it is not stored twice", min_length=1),
            "attributes": _STRINGS,
        },
        required=("body",),
    ),
)
RECEIVE_INPUT = Named(
    "ReceiveInput",
    Object(
        {
            "max": Integer("At most this many messages (default 1)", minimum=1, maximum=MAX_RECEIVE),
            "visibility_timeout": Number(
                "Seconds the messages stay hidden (default: the queue's)", minimum=1, maximum=12 * 3600
            ),
            "wait": Number("Long poll: seconds to wait for a message (default 0)", minimum=0, maximum=MAX_WAIT),
        }
    ),
)
ACK_INPUT = Named(
    "AckInput",
    Object(
        {"receipts": Array(Text(min_length=1), "The receipts of received messages", min_items=1, max_items=1000)},
        required=("receipts",),
    ),
)
REDRIVE_INPUT = Named(
    "RedriveInput",
    Object(
        {
            "dead_letter": Text("Move from this queue (default: the configured one)", min_length=1),
            "max": Integer("At most this many messages (default: all)", minimum=1, maximum=MAX_REDRIVE),
        }
    ),
)
PUBLISH_INPUT = Named(
    "PublishInput",
    Object(
        {
            "message": AnyValue("a string (or any JSON value, published as its JSON text)"),
            "subject": Text(),
            "attributes": _STRINGS,
        },
        required=("message",),
    ),
)
SUBSCRIBE_INPUT = Named(
    "SubscribeInput",
    Object(
        {
            "kind": Enum(SUBSCRIPTION_KINDS),
            "endpoint": Text("The function, the queue, or the webhook's URL", min_length=1),
            "filter": Object({}, "An EventBridge pattern, as SNS filter policies", additional=AnyValue()),
            "filter_scope": Enum(("attributes", "body")),
            "raw": Boolean("Queues and webhooks: the message itself, not SNS's JSON"),
            "secret": Nullable(Text("Webhooks: the signing secret (write-only)", min_length=1)),
            "dead_letter": Nullable(Text("The queue that gets what could not be delivered", min_length=1)),
            "retry": _RETRY,
        },
        required=("kind", "endpoint"),
    ),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/queues", list_queues, "Every queue, with its stats", {200: Answer("", "QueueList")}, "read"),
    Operation(
        "POST",
        "/queues/{name:path}/messages",
        send_message,
        "Send a message",
        {200: Answer("Stored", "SendResult")},
        "publish",
        params=(_QUEUE,),
        body=Body(SEND_INPUT),
        errors=(404,),
    ),
    Operation(
        "DELETE",
        "/queues/{name:path}/messages",
        purge_queue,
        "Purge: delete every message",
        {200: Answer("", "Purged")},
        "configure",
        params=(_QUEUE,),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/queues/{name:path}/receive",
        receive_messages,
        "Receive (lease) messages",
        {200: Answer("", "Received")},
        "configure",
        params=(_QUEUE,),
        body=Body(RECEIVE_INPUT, required=False),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/queues/{name:path}/ack",
        ack_messages,
        "Acknowledge (delete) received messages by receipt",
        {200: Answer("One boolean per receipt: false when its lease had ended", "AckResult")},
        "configure",
        params=(_QUEUE,),
        body=Body(ACK_INPUT),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/queues/{name:path}/redrive",
        redrive,
        "Move the messages of the queue's dead-letter queue back to it",
        {200: Answer("", "Redriven")},
        "configure",
        params=(_QUEUE,),
        body=Body(REDRIVE_INPUT, required=False),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/queues/{name:path}",
        get_queue,
        "A queue: configuration, stats, consumers, dead-letter queue",
        {200: Answer("", "Queue")},
        "read",
        params=(_QUEUE,),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/topics",
        list_topics,
        "Every topic, with how many subscriptions it has",
        {200: Answer("", "TopicList")},
        "read",
    ),
    Operation(
        "POST",
        "/topics/{name:path}/messages",
        publish_message,
        "Publish a message to a topic",
        {202: Answer("Stored; fanned out to every subscription", "Published")},
        "publish",
        params=(_TOPIC,),
        body=Body(PUBLISH_INPUT),
        errors=(404,),
    ),
    Operation(
        "DELETE",
        "/topics/{name:path}/subscriptions/{id}",
        unsubscribe,
        "Remove a run-time subscription",
        {204: Answer("Removed")},
        "configure",
        params=(
            _TOPIC,
            path("id", "The subscription's id", Text(min_length=1, pattern="[^/]+", hint="an id without '/'")),
        ),
        errors=(404, 409),
    ),
    Operation(
        "GET",
        "/topics/{name:path}/subscriptions",
        list_subscriptions,
        "A topic's subscriptions",
        {200: Answer("", "Subscriptions")},
        "read",
        params=(_TOPIC,),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/topics/{name:path}/subscriptions",
        subscribe,
        "Subscribe a function, queue or webhook (kept in the store); the same again changes nothing",
        {200: Answer("Already subscribed", "Subscription"), 201: Answer("Added", "Subscription")},
        "configure",
        params=(_TOPIC,),
        body=Body(SUBSCRIBE_INPUT),
    ),
    Operation(
        "GET",
        "/schedules",
        list_schedules,
        "Every schedule, with its next fire times",
        {200: Answer("", "ScheduleList")},
        "read",
        params=(query("count", "Fire times per schedule (default 5)", Integer(minimum=1, maximum=MAX_NEXT_FIRES)),),
    ),
    Operation(
        "POST",
        "/schedules/{name}/pause",
        pause_schedule,
        "Pause a schedule (on every server, across restarts)",
        {200: Answer("", "Schedule")},
        "configure",
        params=(_SCHEDULE,),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/schedules/{name}/resume",
        resume_schedule,
        "Resume a schedule from now: the times it was paused do not fire",
        {200: Answer("", "Schedule")},
        "configure",
        params=(_SCHEDULE,),
        errors=(404,),
    ),
)
