"""What a handler asks of the platform from inside its worker, carried out on the store.

A handler's `context.publish`, `context.send` and key-value calls arrive
here as `PlatformCall`s (from a worker process, or from a thread of the
in-process runner). `StorePlatform` answers them:

- `publish`: the CloudEvent is appended, durably, to the bus's log stream `bus.<name>`;
- `send`: the message goes to the store queue of that name;
- `kv_get` / `kv_put` / `kv_delete`: versioned records with compare-and-set and expiry
  (what `@idempotent` is built on). The platform's own namespaces are out of reach.

The loop guard: every event and message a function emits carries a hop count
one higher than the invocation that emitted it. One that would go past
`MAX_HOPS` (16, as Lambda's recursive-loop detection) is stopped: it is not
published or sent, a warning names the function, request id and hop count,
and the stopped payload is kept in the log stream `platform.loop-stopped`
so nothing vanishes. The handler is not failed (as with Lambda, the call
returns normally, answering `{"stopped": "RecursiveInvocationDetected"}`),
because failing it would only retry the handler and loop again.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import orjson

from triggerfish.errors import InvalidEventError, InvalidInputError
from triggerfish.runtime.types import PlatformCall
from triggerfish.store import ABSENT, KVRecord, Store

#: Longest chain of functions triggering functions: an emission at a higher hop count is stopped.
MAX_HOPS = 16
#: The log stream that keeps what the loop guard stopped.
LOOP_STOPPED_STREAM = "platform.loop-stopped"
#: Queue-message attributes carrying the trace and the hop count to the consumer.
TRACEPARENT_ATTRIBUTE = "triggerfish.traceparent"
HOPCOUNT_ATTRIBUTE = "triggerfish.hopcount"
#: Key-value namespaces handlers may not touch: the platform's own records.
RESERVED_NAMESPACES = ("invocations", "triggerfish", "platform")

logger = logging.getLogger("triggerfish.loopguard")


def bus_stream(bus: str) -> str:
    """The log stream that holds a bus's events."""
    return f"bus.{bus}"


class StorePlatform:
    """Carries out handlers' platform calls on a store (a `PlatformHandler`).

        runner = InProcessRunner(app.functions, platform=StorePlatform(store))

    `max_hops` sets the loop guard's limit. Bad arguments raise
    InvalidInputError (or InvalidEventError), which reaches the handler as
    the exception of its `context` call.
    """

    def __init__(self, store: Store, *, max_hops: int = MAX_HOPS) -> None:
        if isinstance(max_hops, bool) or not isinstance(max_hops, int) or max_hops < 1:
            raise InvalidInputError(f"max_hops must be a whole number of at least 1, not {max_hops!r}")
        self.store = store
        self.max_hops = max_hops

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
        raise InvalidInputError(f"unknown platform operation {call.op!r}; use publish, send, kv_get, kv_put, kv_delete")

    async def _publish(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        bus = _string(args, "bus", "publish")
        event = args.get("event")
        if not isinstance(event, dict):
            raise InvalidEventError("event", f"publish takes the CloudEvent as an object, not {type(event).__name__}")
        for attribute in ("id", "source", "type"):
            if not isinstance(event.get(attribute), str) or not event[attribute]:
                raise InvalidEventError(attribute, "is required and must be a non-empty string")
        if event.get("specversion") != "1.0":
            raise InvalidEventError("specversion", f"must be '1.0', not {event.get('specversion')!r}")
        hops = _hops(event.get("hopcount"), call)
        if hops > self.max_hops:
            await self._stop(call, hops, "publish", bus, event)
            return {"id": event["id"], "stopped": "RecursiveInvocationDetected"}
        event = {**event, "hopcount": hops}
        try:
            data = orjson.dumps(event)
        except TypeError as exc:
            raise InvalidEventError("data", f"is not JSON-serialisable: {exc}") from None
        record = await self.store.log.append(bus_stream(bus), data)
        return {"id": event["id"], "offset": record.offset}

    async def _send(self, call: PlatformCall, args: dict[str, Any]) -> Any:
        queue = _string(args, "queue", "send")
        body = _bytes(args, "body", "send")
        if body is None:
            raise InvalidInputError("send: give the message as 'body' (text) or 'body_base64'")
        hops = _hops(args.get("hop_count"), call)
        if hops > self.max_hops:
            await self._stop(call, hops, "send", queue, {"body": body.decode("utf-8", "replace")})
            return {"message_id": "", "stopped": "RecursiveInvocationDetected"}
        attributes = args.get("attributes")
        attributes = {} if attributes is None else attributes
        if not isinstance(attributes, dict):
            raise InvalidInputError(f"send: attributes must be an object of strings, not {attributes!r}")
        attributes = {**attributes, HOPCOUNT_ATTRIBUTE: str(hops)}
        traceparent = args.get("traceparent") or call.traceparent
        if isinstance(traceparent, str):
            attributes[TRACEPARENT_ATTRIBUTE] = traceparent
        result = await self.store.queues.send(
            queue,
            body,
            delay=args.get("delay") or 0.0,
            dedup_id=args.get("dedup_id"),
            group=args.get("group"),
            attributes=attributes,
        )
        return {"message_id": result.message_id, "duplicate": result.duplicate}

    async def _kv_put(self, args: dict[str, Any]) -> Any:
        value = _bytes(args, "value", "kv_put")
        if value is None:
            raise InvalidInputError("kv_put: give the value as 'value' (text) or 'value_base64'")
        record = await self.store.kv.put(
            _namespace(args), _key(args), value, ttl=args.get("ttl"), if_version=_version(args)
        )
        return None if record is None else _record(record)

    async def _stop(self, call: PlatformCall, hops: int, op: str, target: str, payload: dict[str, Any]) -> None:
        logger.warning(
            "loop guard: stopped a %s to %r from function %r (request %s) at hop count %d, over the limit of %d;"
            " look for functions that trigger each other",
            op,
            target,
            call.function,
            call.request_id,
            hops,
            self.max_hops,
        )
        stopped = {
            "op": op,
            "target": target,
            "function": call.function,
            "request_id": call.request_id,
            "hop_count": hops,
            "payload": payload,
        }
        await self.store.log.append(LOOP_STOPPED_STREAM, orjson.dumps(stopped, default=str))


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
    if namespace.split(".", 1)[0].lower() in RESERVED_NAMESPACES:
        raise InvalidInputError(
            f"kv: namespace {namespace!r} belongs to the platform; choose a name that does not start with "
            + ", ".join(RESERVED_NAMESPACES)
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
