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
from starlette.routing import BaseRoute, Route

from triggerfish._json import dumps
from triggerfish.events import tracecontext
from triggerfish.events.shapes import PLATFORM_ATTRIBUTE_PREFIX
from triggerfish.names import TRACEPARENT_ATTRIBUTE
from triggerfish.server.control_io import (
    ApiError,
    endpoint,
    fields,
    json_body,
    json_response,
    listed,
    number,
    platform_of,
    query,
    query_int,
    string_map,
    text,
)
from triggerfish.server.platform import Platform
from triggerfish.store import Message, OutgoingMessage, QueueStats
from triggerfish.triggers.sns import MAX_MESSAGE_BYTES
from triggerfish.triggers.subscriptions import Subscription

#: SQS's limits: up to 10 messages per receive, a long poll of up to 20 seconds, a delay of up to 15 minutes.
MAX_RECEIVE = 10
MAX_WAIT = 20.0
MAX_DELAY = 15 * 60.0
#: Messages moved per round of a redrive, and the lease they are held under meanwhile.
REDRIVE_BATCH = 100
REDRIVE_LEASE = 60.0


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


@endpoint
async def list_queues(request: Request) -> Response:
    platform = platform_of(request)
    return json_response({"queues": [await _describe_queue(platform, name) for name in await _queues(platform)]})


@endpoint
async def get_queue(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_queue(platform, request.path_params["name"])
    return json_response(await _describe_queue(platform, name))


@endpoint
async def send_message(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_queue(platform, request.path_params["name"])
    document = fields(await json_body(request), ("body", "delay", "group", "dedup_id", "attributes"))
    if "body" not in document:
        raise ApiError(400, "InvalidInput", "body: body is required: the message, a string (or any JSON value)")
    value = document["body"]
    # A string is sent as it is; any other JSON value as its JSON text.
    body = value.encode("utf-8") if isinstance(value, str) else dumps(value)
    limit = platform.store.queues.max_record_bytes
    if len(body) > limit:
        raise ApiError(
            413, "MessageTooLarge", f"the message body is {len(body)} bytes; queue messages take at most {limit} bytes"
        )
    attributes = string_map(document, "attributes")
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
    group = text(document, "group")
    if config.fifo and group is None:
        raise ApiError(400, "InvalidInput", f"queue {name!r} is FIFO: every message needs a group")
    sent = await platform.store.queues.send(
        name,
        body,
        delay=number(document, "delay", low=0, high=MAX_DELAY, default=0.0),
        dedup_id=text(document, "dedup_id"),
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


@endpoint
async def receive_messages(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_queue(platform, request.path_params["name"])
    document = fields(await json_body(request, required=False), ("max", "visibility_timeout", "wait"))
    messages = await platform.store.queues.receive(
        name,
        max_messages=number(document, "max", low=1, high=MAX_RECEIVE, default=1, whole=True),
        visibility_timeout=number(document, "visibility_timeout", low=1, high=12 * 3600),
        wait=number(document, "wait", low=0, high=MAX_WAIT, default=0.0),
    )
    return json_response({"messages": [_message_json(m) for m in messages]})


@endpoint
async def ack_messages(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_queue(platform, request.path_params["name"])
    document = fields(await json_body(request), ("receipts",))
    receipts = document.get("receipts")
    if not isinstance(receipts, list) or not receipts or not all(isinstance(r, str) for r in receipts):
        raise ApiError(400, "InvalidInput", "body: receipts must be a non-empty array of receipt strings")
    done = await platform.store.queues.ack_many(name, receipts)
    return json_response({"acked": done})


@endpoint
async def purge_queue(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_queue(platform, request.path_params["name"])
    return json_response({"queue": name, "purged": await platform.store.queues.purge(name)})


@endpoint
async def redrive(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_queue(platform, request.path_params["name"])
    document = fields(await json_body(request, required=False), ("dead_letter", "max"))
    config = await platform.store.queues.config(name)
    source = text(document, "dead_letter") or config.dead_letter
    if source is None:
        raise ApiError(
            400,
            "NoDeadLetterQueue",
            f"queue {name!r} has no dead-letter queue; name the queue to move from in the body's dead_letter",
        )
    await _known_queue(platform, source)
    if source == name:
        raise ApiError(400, "InvalidInput", f"body: dead_letter names {name!r} itself; name its dead-letter queue")
    limit = number(document, "max", low=1, high=2**31, default=2**31, whole=True)
    moved = await move_messages(platform, source, name, limit=limit, fifo=config.fifo)
    return json_response({"queue": name, "dead_letter": source, "moved": moved})


async def move_messages(platform: Platform, source: str, destination: str, *, limit: int, fifo: bool) -> int:
    """Move up to `limit` visible messages from `source` to `destination`, a batch at a time; how many moved.

    Each batch is sent before it is acknowledged, so a failure in between
    leaves copies rather than losing messages. Deduplication ids are dropped:
    a message sent again with its id inside the window would be taken for a
    duplicate and vanish. Messages without a group cannot enter a FIFO queue
    and stay where they are.
    """
    queues = platform.store.queues
    moved = 0
    skipped: list[Message] = []
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


@endpoint
async def list_topics(request: Request) -> Response:
    platform = platform_of(request)
    found = []
    for name in await platform.topics.names():
        found.append({"name": name, "subscriptions": len(await platform.topics.subscriptions(name))})
    return json_response({"topics": found})


@endpoint
async def publish_message(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_topic(platform, request.path_params["name"])
    document = fields(await json_body(request), ("message", "subject", "attributes"))
    if "message" not in document:
        raise ApiError(400, "InvalidInput", "body: message is required: a string (or any JSON value)")
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
        subject=text(document, "subject"),
        attributes=string_map(document, "attributes"),
        traceparent=parent if parent is not None and tracecontext.is_valid(parent) else None,
    )
    return json_response({"topic": name, "message_id": message_id}, 202)


@endpoint
async def list_subscriptions(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_topic(platform, request.path_params["name"])
    subscriptions = await platform.topics.subscriptions(name)
    return json_response({"topic": name, "subscriptions": [_subscription_json(s) for s in subscriptions]})


_SUBSCRIBE_FIELDS = ("kind", "endpoint", "filter", "filter_scope", "raw", "secret", "dead_letter", "retry")


@endpoint
async def subscribe(request: Request) -> Response:
    platform = platform_of(request)
    name = request.path_params["name"]
    document = fields(await json_body(request), _SUBSCRIBE_FIELDS)
    for required in ("kind", "endpoint"):
        if required not in document:
            raise ApiError(400, "InvalidInput", f"body: {required} is required")
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


@endpoint
async def unsubscribe(request: Request) -> Response:
    platform = platform_of(request)
    name = await _known_topic(platform, request.path_params["name"])
    subscription_id = request.path_params["id"]
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


@endpoint
async def list_schedules(request: Request) -> Response:
    params = query(request, ("count",))
    count = query_int(params, "count", low=1, high=MAX_NEXT_FIRES, default=NEXT_FIRES)
    return json_response({"schedules": await _schedules(platform_of(request), count)})


async def _steer(request: Request, paused: bool) -> Response:
    platform = platform_of(request)
    name = request.path_params["name"]
    names = [s.name for s in platform.scheduler.schedules]
    if name not in names:
        raise ApiError(404, "ScheduleNotFound", f"no schedule named {name!r}; the schedules are: {listed(names)}")
    await (platform.scheduler.pause(name) if paused else platform.scheduler.resume(name))
    [status] = [s for s in await _schedules(platform, NEXT_FIRES) if s["name"] == name]
    return json_response(status)


@endpoint
async def pause_schedule(request: Request) -> Response:
    return await _steer(request, True)


@endpoint
async def resume_schedule(request: Request) -> Response:
    return await _steer(request, False)


def routes() -> list[BaseRoute]:
    """The queue, topic and schedule routes (control_routes() adds them to the rest)."""
    return [
        Route("/queues", list_queues, methods=["GET"]),
        Route("/queues/{name:path}/messages", send_message, methods=["POST"]),
        Route("/queues/{name:path}/messages", purge_queue, methods=["DELETE"]),
        Route("/queues/{name:path}/receive", receive_messages, methods=["POST"]),
        Route("/queues/{name:path}/ack", ack_messages, methods=["POST"]),
        Route("/queues/{name:path}/redrive", redrive, methods=["POST"]),
        Route("/queues/{name:path}", get_queue, methods=["GET"]),
        Route("/topics", list_topics, methods=["GET"]),
        Route("/topics/{name:path}/messages", publish_message, methods=["POST"]),
        Route("/topics/{name:path}/subscriptions/{id}", unsubscribe, methods=["DELETE"]),
        Route("/topics/{name:path}/subscriptions", list_subscriptions, methods=["GET"]),
        Route("/topics/{name:path}/subscriptions", subscribe, methods=["POST"]),
        Route("/schedules", list_schedules, methods=["GET"]),
        Route("/schedules/{name}/pause", pause_schedule, methods=["POST"]),
        Route("/schedules/{name}/resume", resume_schedule, methods=["POST"]),
    ]
