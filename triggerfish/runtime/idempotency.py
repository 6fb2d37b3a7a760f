"""`@idempotent`: a handler's effect happens once per key, however often its event is delivered.

    @app.on_event({"detail-type": ["order.placed"]})
    @triggerfish.idempotent(key="$.data.order_id", window=24 * 3600)
    def charge(event, context):
        return payments.charge(event["data"]["order_id"])

Delivery is at least once, so a handler can see the same event twice. The
decorator claims the key before the handler runs, with a compare-and-set
put in the store (namespace `idempotency`, key `<function>:<key>`) that
only succeeds if no record exists:

- claimed: the handler runs. On success its result is stored for `window`
  seconds; on failure the claim is deleted so that a retry can run.
- a finished record exists: the handler does not run; the stored result is returned.
- another invocation holds the claim: `Retry` is raised (the async path tries
  again later). The claim expires with the invocation's timeout, so a claim
  left by a worker that died does not block the key for ever.
- this invocation's own earlier attempt holds the claim: that attempt is
  gone (a handler that returns or raises settles its claim; only a worker
  that crashed or was stopped at its timeout leaves one, and the invocation
  runs again only after its lease ran out), so this attempt takes the claim
  over and runs. Waiting for the claim to expire instead would spend the
  retries on `Retry` and, with a lease margin shorter than the claim's,
  end a crashed invocation in the dead-letter queue without ever running it.

The calls go through `context.call_platform`, because handlers run in
worker processes and the store is in the parent.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import orjson

from triggerfish.errors import DeclarationError, NonRetryable, Retry
from triggerfish.names import IDEMPOTENCY_NAMESPACE
from triggerfish.runtime.handler import takes_context

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds a claim outlives the invocation's deadline: time for the result to be written.
CLAIM_MARGIN = 5.0
#: Seconds before a duplicate that found the key in progress is tried again (as `Retry(delay=...)`).
IN_PROGRESS_RETRY_DELAY = 1.0
_ABSENT = 0
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_MAX_KEY = 512
# The wrapper needs the context whatever the handler takes; without this, inspect.signature would
# follow __wrapped__ to a one-argument handler and the runtime would call the wrapper without it.
_SIGNATURE = inspect.Signature(
    [
        inspect.Parameter("event", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    ]
)


def idempotent(key: str | Callable[[Any], Any], *, window: float = 3600.0) -> Callable[[F], F]:
    """Make a handler run at most once per key within `window` seconds (see the module docstring).

    `key` says where the key is in the event: a JSON path (`"$.data.order_id"`,
    `"$.Records[0].messageId"`), a plain field path (`"order_id"`,
    `"detail.id"`), a template with paths in braces (`"{customer}-{order_id}"`),
    or a callable taking the event and returning the key. An event without
    the key fails the invocation with NonRetryable (another attempt cannot
    help). Works on sync and async handlers taking `(event, context)` or `(event)`.
    """
    extract = _extractor(key)
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0 < window <= 365 * 24 * 3600:
        raise DeclarationError(f"@idempotent: window must be from more than 0 to 365 days in seconds, not {window!r}")

    def decorate(handler: F) -> F:
        if not callable(handler):
            raise DeclarationError(f"@idempotent decorates a handler function, not {handler!r}")
        with_context = takes_context(handler)
        if inspect.iscoroutinefunction(handler):

            @functools.wraps(handler)
            async def run_async(event: Any, context: Any) -> Any:
                guard = _Guard(context, extract(event), float(window))
                done, result = guard.claim()
                if done:
                    return result
                try:
                    result = await (handler(event, context) if with_context else handler(event))
                except BaseException:
                    guard.release()
                    raise
                guard.finish(result)
                return result

            run_async.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
            return cast(F, run_async)

        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            guard = _Guard(context, extract(event), float(window))
            done, result = guard.claim()
            if done:
                return result
            try:
                result = handler(event, context) if with_context else handler(event)
            except BaseException:
                guard.release()
                raise
            guard.finish(result)
            return result

        run.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
        return cast(F, run)

    return decorate


class _Guard:
    """One invocation's claim on one key."""

    def __init__(self, context: Any, key: str, window: float) -> None:
        self.context = context
        # The name the app declares (stored keys must not change with the Lambda name `<app>-<function>`).
        self.key = f"{getattr(context, 'function', context.function_name)}:{key}"
        self.window = window
        self.version: int | None = None

    def claim(self) -> tuple[bool, Any]:
        """(True, result) when the key is already done; (False, None) when this invocation now holds it."""
        remaining = max(self.context.get_remaining_time_in_millis() / 1000.0, 0.0)
        claim = {"state": "in_progress", "request_id": self.context.aws_request_id, "at": time.time()}
        for _ in range(3):  # a record can expire between the failed put and the get: try again
            answer = self._call(
                "kv_put", value=orjson.dumps(claim).decode(), ttl=remaining + CLAIM_MARGIN, if_version=_ABSENT
            )
            if answer is not None:
                self.version = int(answer["version"])
                return False, None
            existing = self._call("kv_get")
            if existing is None:
                continue
            record = orjson.loads(existing["value"])
            if record.get("state") == "done":
                return True, record.get("result")
            if record.get("request_id") == self.context.aws_request_id:
                # Left by this invocation's own attempt that died (see the module docstring): take it over.
                answer = self._call(
                    "kv_put",
                    value=orjson.dumps(claim).decode(),
                    ttl=remaining + CLAIM_MARGIN,
                    if_version=int(existing["version"]),
                )
                if answer is None:
                    continue  # it changed meanwhile (it expired, or another attempt took it): look again
                self.version = int(answer["version"])
                return False, None
            raise Retry(
                f"another invocation ({record.get('request_id')}) is running with idempotency key {self.key!r}",
                delay=IN_PROGRESS_RETRY_DELAY,
            )
        raise Retry(f"idempotency key {self.key!r} is contended", delay=1.0)

    def finish(self, result: Any) -> None:
        try:
            value = orjson.dumps({"state": "done", "result": result}).decode()
        except TypeError:
            # The runtime reports the unmarshallable result; free the key so a fixed handler can run.
            self.release()
            return
        self._call("kv_put", value=value, ttl=self.window, if_version=self.version)

    def release(self) -> None:
        self._call("kv_delete", if_version=self.version)

    def _call(self, op: str, **args: Any) -> Any:
        return self.context.call_platform(op, {"namespace": IDEMPOTENCY_NAMESPACE, "key": self.key, **args})


def _extractor(key: str | Callable[[Any], Any]) -> Callable[[Any], str]:
    if callable(key):
        return lambda event: _check_key(key(event), "the key function")
    if not isinstance(key, str) or not key.strip():
        raise DeclarationError(
            f"@idempotent(key=...) takes a JSON path like '$.data.order_id', a template like "
            f"'{{customer}}-{{order_id}}', or a function of the event; not {key!r}"
        )
    if "{" in key:
        fields = _PLACEHOLDER.findall(key)
        if not fields:
            raise DeclarationError(f"@idempotent: the key template {key!r} has no {{path}} placeholder")
        paths = {name: _parse_path(name) for name in fields}

        def render(event: Any) -> str:
            return _PLACEHOLDER.sub(lambda m: str(_lookup(event, paths[m.group(1)], m.group(1))), key)

        return lambda event: _check_key(render(event), key)
    path = _parse_path(key)
    return lambda event: _check_key(_lookup(event, path, key), key)


def _parse_path(text: str) -> list[str | int]:
    body = text.strip().removeprefix("$").removeprefix(".")
    parts: list[str | int] = []
    position = 0
    while position < len(body):
        if body[position] == ".":
            position += 1
            continue
        match = _PATH_PART.match(body, position)
        if match is None:
            raise DeclarationError(f"@idempotent: cannot read the path {text!r} at {body[position:]!r}")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not parts:
        raise DeclarationError(f"@idempotent: the path {text!r} names no field")
    return parts


def _lookup(event: Any, path: list[str | int], text: str) -> Any:
    value = event
    for part in path:
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        in_object = isinstance(part, str) and isinstance(value, dict) and part in value
        if in_list or in_object:
            value = value[part]
        else:
            raise NonRetryable(f"@idempotent: the event has no {text!r}, so it has no idempotency key")
    if value is None or isinstance(value, dict | list):
        raise NonRetryable(f"@idempotent: {text!r} in the event is {value!r}, not a string or number to key on")
    return value


def _check_key(value: Any, where: str) -> str:
    if value is None or isinstance(value, dict | list) or value == "":
        raise NonRetryable(f"@idempotent: {where} gave {value!r}, not a key; return a non-empty string")
    text = str(value)
    if len(text) > _MAX_KEY:
        raise NonRetryable(f"@idempotent: the key from {where} is {len(text)} characters, over {_MAX_KEY}")
    return text
