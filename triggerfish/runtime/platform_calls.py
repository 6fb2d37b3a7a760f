"""What a handler asks of the platform from inside its worker, carried out on the store.

A handler's `context.publish`, `context.send` and key-value calls arrive
here as `PlatformCall`s (from a worker process, or from a thread of the
in-process runner). `StorePlatform` answers them:

- `publish`: the CloudEvent is checked as an `Event` (a bad one fails the
  handler's call, so nothing unreadable is acknowledged) and appended through
  the platform's one `Publisher` to the bus's log;
- `send`: the message goes to the store queue of that name;
- `kv_get` / `kv_put` / `kv_delete`: versioned records with compare-and-set and expiry
  (what `@idempotent` is built on). The platform's own namespaces are out of reach.

Every event and message a function emits carries a hop count one higher than
the invocation that emitted it; the loop guard (`triggerfish.loop_guard`)
stops one past the limit, and the call then answers
`{"stopped": "RecursiveInvocationDetected"}` rather than failing, as Lambda does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any, Protocol, TypeVar, get_args

import orjson

from triggerfish.bus.publisher import Publisher
from triggerfish.errors import InvalidEventError, InvalidInputError
from triggerfish.events import tracecontext
from triggerfish.events.cloudevent import Event
from triggerfish.loop_guard import MAX_HOPS, Origin
from triggerfish.names import (
    HOPCOUNT_ATTRIBUTE,
    RESERVED_NAMESPACE_PREFIXES,
    TRACEPARENT_ATTRIBUTE,
    TRACES_NAMESPACE,
    is_reserved_namespace,
)
from triggerfish.observe.spans import MAX_HANDLER_SPANS, Span, SpanListener, handler_span, producer_span, span_key
from triggerfish.runtime.records import DEFAULT_RETENTION
from triggerfish.runtime.types import PlatformCall, PlatformOp
from triggerfish.store import ABSENT, KVRecord, Store

T = TypeVar("T")
logger = logging.getLogger("triggerfish.runtime")


class WorkflowCalls(Protocol):
    """Answers a workflow run's `workflow` calls (triggerfish.workflows.service.Workflows)."""

    async def call(self, call: PlatformCall, args: dict[str, Any]) -> Any: ...


class EventCalls(Protocol):
    """Answers handlers' `events` calls (triggerfish.eventstore.service.EventStoreService)."""

    async def call(self, call: PlatformCall, args: dict[str, Any]) -> Any: ...


class StreamPuts(Protocol):
    """Answers `stream_put` and `mqtt_publish` calls (the platform's built-in streams and MQTT broker)."""

    async def put(self, stream: str, records: Any, *, traceparent: str | None = None) -> list[dict[str, Any]]: ...

    async def publish_mqtt(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None: ...


class StorePlatform:
    """Carries out handlers' platform calls on a store (a `PlatformHandler`).

        runner = InProcessRunner(app.functions, platform=StorePlatform(store))

    `max_hops` sets the loop guard's limit; `publisher` is the platform's
    (default: a new one on `store`). Each publish and send is a producer span
    in the trace index (kept `trace_retention` seconds), and `span_listeners`
    are told of it. Bad arguments raise InvalidInputError
    (or InvalidEventError), which reaches the handler as the exception of
    its `context` call.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_hops: int = MAX_HOPS,
        publisher: Publisher | None = None,
        workflows: WorkflowCalls | None = None,
        events: EventCalls | None = None,
        objects: WorkflowCalls | None = None,
        span_listeners: list[SpanListener] | None = None,
        trace_retention: float = DEFAULT_RETENTION,
        streams: StreamPuts | None = None,
    ) -> None:
        self.store = store
        #: Answers `stream_put` (context.streams.put) for the app's built-in streams (None: it has none).
        self.streams = streams
        #: Answers the `workflow` calls of durable workflows' runs (None: this platform runs none).
        self.workflows = workflows
        #: Answers the `events` calls of `context.events` (None: this platform has no event store).
        self.events = events
        #: Answers `context.objects` calls on the app's object store (triggerfish.objects.calls; None: no store).
        self.objects = objects
        self.publisher = publisher or Publisher(store, max_hops=max_hops)
        self.guard = self.publisher.guard
        #: Told of each producer span (a handler's publish or send) once it is stored (OTLP export).
        self.span_listeners: list[SpanListener] = [] if span_listeners is None else span_listeners
        self.trace_retention = trace_retention
        self._tables: Any = None

    async def __call__(self, call: PlatformCall) -> Any:
        args = call.args
        if not isinstance(args, dict):
            raise InvalidInputError(f"platform call {call.op!r}: the arguments must be an object, not {args!r}")
        if call.op == "publish":
            return await self._publish(call, args)
        if call.op == "send":
            return await self._send(call, args)
        if call.op == "kv_get":
            record = await self.store.kv.get(_namespace(args), _key(args))
            return None if record is None else _record(record)
        if call.op == "kv_put":
            return await self._kv_put(args)
        if call.op == "kv_delete":
            return await self.store.kv.delete(_namespace(args), _key(args), if_version=_version(args))
        if call.op == "table":
            return await self._table(call, args)
        if call.op == "workflow" and self.workflows is not None:
            return await self.workflows.call(call, args)
        if call.op == "events" and self.events is not None:
            return await self.events.call(call, args)
        if call.op == "objects" and self.objects is not None:
            return await self.objects.call(call, args)
        if call.op == "stream_put":
            return await self._stream_put(call, args)
        if call.op == "mqtt_publish":
            return await self._mqtt_publish(args)
        if call.op == "spans":
            return await self._handler_spans(call, args)
        raise InvalidInputError(f"unknown platform operation {call.op!r}; use {', '.join(get_args(PlatformOp))}")

    async def _mqtt_publish(self, args: dict[str, Any]) -> Any:
        topic = _string(args, "topic", "mqtt_publish")
        payload = _bytes(args, "payload", "mqtt_publish") or b""
        qos, retain = args.get("qos", 1), args.get("retain", False)
        if qos not in (0, 1) or isinstance(qos, bool) or not isinstance(retain, bool):
            raise InvalidInputError(f"mqtt_publish: qos is 0 or 1 and retain True or False, not {qos!r}, {retain!r}")
        levels = topic.split("/")
        if "+" in levels or "#" in levels or "\x00" in topic or topic.startswith("$"):
            raise InvalidInputError(f"context.mqtt.publish: {topic!r} is not a topic name a message can go to")
        if self.streams is None:
            raise InvalidInputError("context.mqtt.publish: this platform has no MQTT broker")
        await self.streams.publish_mqtt(topic, payload, qos=qos, retain=retain)
        return {"published": True}

    async def _stream_put(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        stream = _string(args, "stream", "stream_put")
        records = args.get("records")
        if not isinstance(records, list) or not all(isinstance(r, dict) and "data" in r for r in records):
            raise InvalidInputError("stream_put: records must be a list of {'data': ..., 'key': ...} objects")
        if self.streams is None:
            raise InvalidInputError(f"context.streams.put({stream!r}): this platform runs no built-in streams")
        # The records carry the caller's trace: the functions reading them continue it.
        pairs = [(r["data"], r.get("key")) for r in records]
        placed = await self.streams.put(stream, pairs, traceparent=call.traceparent)
        return {"records": placed}

    async def _publish(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        bus = _string(args, "bus", "publish")
        document = args.get("event")
        if not isinstance(document, dict):
            raise InvalidEventError(
                "event", f"publish takes the CloudEvent as an object, not {type(document).__name__}"
            )
        hops = _hops(document.get("hopcount"), call)
        # Built as an Event here, so an event the bus could not read back fails the handler's call now.
        event = Event.from_dict({**document, "hopcount": hops})
        publishing = self.publisher.publish(bus, [event], origin=Origin(call.function, call.request_id))
        [published] = await self._traced(call, "publish", bus, event.traceparent, publishing, event=document)
        if published.stopped:
            return {"id": published.id, "stopped": "RecursiveInvocationDetected"}
        return {"id": published.id, "offset": published.offset}

    async def _send(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        queue = _string(args, "queue", "send")
        body = _bytes(args, "body", "send")
        if body is None:
            raise InvalidInputError("send: give the message as 'body' (text) or 'body_base64'")
        hops = _hops(args.get("hop_count"), call)
        if not self.guard.allows(hops):
            payload = {"body": body.decode("utf-8", "replace")}
            await self.guard.stop(
                op="send", target=queue, hops=hops, payload=payload, origin=Origin(call.function, call.request_id)
            )
            return {"message_id": "", "stopped": "RecursiveInvocationDetected"}
        attributes = args.get("attributes")
        attributes = {} if attributes is None else attributes
        if not isinstance(attributes, dict):
            raise InvalidInputError(f"send: attributes must be an object of strings, not {attributes!r}")
        attributes = {**attributes, HOPCOUNT_ATTRIBUTE: str(hops)}
        traceparent = args.get("traceparent") or call.traceparent
        if isinstance(traceparent, str):
            attributes[TRACEPARENT_ATTRIBUTE] = traceparent
        sending = self.store.queues.send(
            queue,
            body,
            delay=args.get("delay") or 0.0,
            dedup_id=args.get("dedup_id"),
            group=args.get("group"),
            attributes=attributes,
        )
        result = await self._traced(call, "send", queue, attributes.get(TRACEPARENT_ATTRIBUTE), sending)
        return {"message_id": result.message_id, "duplicate": result.duplicate}

    async def _traced(
        self,
        call: PlatformCall,
        operation: str,
        destination: str,
        traceparent: str | None,
        work: Awaitable[T],
        *,
        event: dict[str, Any] | None = None,
    ) -> T:
        """Do `work` (a publish or a send) and store its producer span beside it, in the same commit where the store
        can; a failed one's span is stored again as an error."""
        if traceparent is None or call.traceparent is None or not tracecontext.is_valid(traceparent):
            return await work
        began = time.time()
        span = producer_span(
            traceparent,
            call.traceparent,
            operation=operation,
            destination=destination,
            start=began,
            end=began,
            ok=True,
            function=call.function,
            request_id=call.request_id,
            event=event,
        )
        try:
            result, _ = await asyncio.gather(work, self._store_span(span))
        except BaseException:
            await self._store_span(replace(span, end=time.time(), status="error"))
            raise
        span = replace(span, end=time.time())
        for listener in self.span_listeners:
            try:
                listener(span)
            except Exception:
                logger.exception("a span listener failed on %s", span.span_id)
        return result

    async def _handler_spans(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        """Keep the spans a handler started with the OpenTelemetry API (observe/handler_spans.py), each checked to
        belong to the calling invocation's trace, and tell the span listeners (OTLP export)."""
        if call.traceparent is None or not tracecontext.is_valid(call.traceparent):
            return {"kept": 0}
        documents = args.get("spans")
        if not isinstance(documents, list) or len(documents) > MAX_HANDLER_SPANS:
            raise InvalidInputError(f"spans: give a list of at most {MAX_HANDLER_SPANS} spans")
        trace_id = call.traceparent.split("-")[1]
        spans = [handler_span(document, trace_id, call.function, call.request_id) for document in documents]
        await asyncio.gather(*(self._store_span(span) for span in spans))
        for span in spans:
            for listener in self.span_listeners:
                try:
                    listener(span)
                except Exception:
                    logger.exception("a span listener failed on %s", span.span_id)
        return {"kept": len(spans)}

    async def _store_span(self, span: Span) -> None:
        # Never the handler's failure: the publish or send it asked for may have been stored.
        try:
            await self.store.kv.put(TRACES_NAMESPACE, span_key(span), orjson.dumps(span), ttl=self.trace_retention)
        except Exception:
            logger.exception("the span of %s %s could not be stored", span.name, span.span_id)

    async def _table(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        # Imported on use: only apps that use tables need the table engine.
        from triggerfish.tables.calls import table_call
        from triggerfish.tables.table import Tables

        if self._tables is None or self._tables.store is not self.store:
            self._tables = Tables(self.store)
        began = time.time()
        # The write's change records carry the caller's trace: the functions reacting to them continue it.
        answer = await table_call(self._tables, args, hop_count=call.hop_count, traceparent=call.traceparent)
        if "result" in answer and call.traceparent is not None:
            # The events published with the write (its outbox) are publishes as `context.publish`'s are: spans.
            await self._outbox_spans(call, args.get("outbox") or [], began)
        return answer

    async def _outbox_spans(self, call: PlatformCall, outbox: list[dict[str, Any]], began: float) -> None:
        ended = time.time()
        for entry in outbox:
            event = entry["event"]
            traceparent = event.get("traceparent")
            if not tracecontext.is_valid(traceparent):
                continue
            span = producer_span(
                traceparent,
                call.traceparent,
                operation="publish",
                destination=entry["bus"],
                start=began,
                end=ended,
                ok=True,
                function=call.function,
                request_id=call.request_id,
                event=event,
            )
            await self._store_span(span)
            for listener in self.span_listeners:
                try:
                    listener(span)
                except Exception:
                    logger.exception("a span listener failed on %s", span.span_id)

    async def _kv_put(self, args: dict[str, Any]) -> Any:
        value = _bytes(args, "value", "kv_put")
        if value is None:
            raise InvalidInputError("kv_put: give the value as 'value' (text) or 'value_base64'")
        record = await self.store.kv.put(
            _namespace(args), _key(args), value, ttl=args.get("ttl"), if_version=_version(args)
        )
        return None if record is None else _record(record)


def _hops(value: object, call: PlatformCall) -> int:
    if value is None:
        return call.hop_count + 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidEventError("hopcount", f"must be a whole number from 0, not {value!r}")
    # A handler cannot lower its own hop count to escape the guard.
    return max(value, call.hop_count + 1)


def _string(args: dict[str, Any], name: str, op: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{op}: {name!r} must be a non-empty string, not {value!r}")
    return value


def _bytes(args: dict[str, Any], name: str, op: str) -> bytes | None:
    text = args.get(name)
    if text is not None:
        if not isinstance(text, str):
            raise InvalidInputError(f"{op}: {name!r} must be text; send bytes as {name}_base64")
        return text.encode("utf-8")
    encoded = args.get(f"{name}_base64")
    if encoded is None:
        return None
    if not isinstance(encoded, str):
        raise InvalidInputError(f"{op}: {name}_base64 must be base64 text, not {type(encoded).__name__}")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{op}: {name}_base64 is not valid base64") from None


def _namespace(args: dict[str, Any]) -> str:
    namespace = _string(args, "namespace", "kv")
    if is_reserved_namespace(namespace):
        raise InvalidInputError(
            f"kv: namespace {namespace!r} belongs to the platform; choose a name that does not start with "
            + ", ".join(RESERVED_NAMESPACE_PREFIXES)
        )
    return namespace


def _key(args: dict[str, Any]) -> str:
    return _string(args, "key", "kv")


def _version(args: dict[str, Any]) -> int | None:
    version = args.get("if_version")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInputError(f"kv: if_version must be a version number or {ABSENT} (absent), not {version!r}")
    return version


def _record(record: KVRecord) -> dict[str, Any]:
    answer: dict[str, Any] = {"version": record.version, "expires_at": record.expires_at}
    try:
        answer["value"] = record.value.decode("utf-8")
    except UnicodeDecodeError:
        answer["value_base64"] = base64.b64encode(record.value).decode("ascii")
    return answer
