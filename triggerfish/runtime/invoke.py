"""Invoking functions: synchronously (the caller waits for the result) or asynchronously (queued durably).

    invoker = Invoker(runner, store)
    await invoker.start()                                 # run the dispatcher for async work
    total = await invoker.invoke("quote", {"items": 2})   # sync: the result, or HandlerError
    request_id = await invoker.invoke_async("ship", {"order": 7})  # async: queued, then run
    await invoker.stop()

Sync invocations run at once through the Runner; at the concurrency limit
the caller waits up to `wait` seconds, then gets ThrottledError. Async
invocations are written to the function's store queue `fn.<name>` and
acknowledged once durable; the dispatcher (`triggerfish.runtime.dispatcher`)
runs them with retries, destinations and dead letters. Both paths write an
invocation record for every attempt (`invoker.records`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from triggerfish import _random
from triggerfish.bus.publisher import Publisher
from triggerfish.errors import (
    DeclarationError,
    FunctionNotFoundError,
    HandlerError,
    InvalidInputError,
    ThrottledError,
)
from triggerfish.events import tracecontext
from triggerfish.model import Destination, FunctionSettings
from triggerfish.names import THROTTLED_ERROR, function_queue
from triggerfish.retry import RetryPolicy
from triggerfish.runtime import invocation_message
from triggerfish.runtime.dispatcher import Dispatcher
from triggerfish.runtime.invocation_message import Invocation, RawJSON, encode_event
from triggerfish.runtime.records import (
    DEFAULT_RETENTION,
    BatchWriter,
    InvocationRecords,
    RecordListener,
    record_from_outcome,
    unrun_record,
)
from triggerfish.runtime.types import InvokeRequest, Runner
from triggerfish.store import OutgoingMessage, SendResult, Store

#: Seconds a leased async invocation may overrun its function's timeout before another dispatcher takes it.
DEFAULT_LEASE_MARGIN = 30.0
_MAX_HOPS_ARG = 10_000
#: The longest `invoke_async(delay=...)`: the store's longest message delay.
MAX_DELAY = 15 * 60.0
#: Span links one invocation keeps at most (a batch of up to 10,000 stream records links the first 128).
MAX_LINKS = 128
#: The most invocations one `invoke_async_many` queues (one write): SQS's SendMessageBatch takes 10, the
#: control API's batch endpoint takes what one request body of 256 KiB holds.
MAX_BATCH = 1000


class Invoker:
    """The sync and async invocation paths of one app, over a Runner and a Store.

    `retry_policy` sets the backoff between attempts of failed async
    invocations; `record_retention` how long invocation records are kept
    (seconds, 7 days by default); `lease_margin` how long past its timeout
    an async invocation may run before it counts as lost and runs again;
    `app_name` goes into the function ARNs of destination records;
    `record_listeners` are told of every invocation record once it is stored; `keep_inputs` whether a
    function that does not set `keep_inputs` has its invocations' inputs kept with their records.

    Raises DeclarationError when a function's destination names a function
    the runner does not know.
    """

    def __init__(
        self,
        runner: Runner,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        retry_policy: RetryPolicy | None = None,
        record_retention: float = DEFAULT_RETENTION,
        lease_margin: float = DEFAULT_LEASE_MARGIN,
        batch_size: int = 64,
        app_name: str = "app",
        publisher: Publisher | None = None,
        record_listeners: list[RecordListener] | None = None,
        keep_inputs: bool = False,
    ) -> None:
        if isinstance(lease_margin, bool) or not isinstance(lease_margin, int | float) or not 0 < lease_margin <= 3600:
            raise InvalidInputError(f"lease_margin must be from more than 0 to 3600 seconds, not {lease_margin!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 1000:
            raise InvalidInputError(f"batch_size must be a whole number from 1 to 1000, not {batch_size!r}")
        self.runner = runner
        self.store = store
        self.clock = clock
        self.records = InvocationRecords(
            store, retention=record_retention, clock=clock, listeners=record_listeners, keep_inputs=keep_inputs
        )
        self._senders: dict[str, BatchWriter[OutgoingMessage, SendResult]] = {}
        check_destinations(runner)
        self.dispatcher = Dispatcher(
            runner,
            store,
            self.records,
            enqueue=self._enqueue,
            policy=retry_policy or RetryPolicy(),
            clock=clock,
            lease_margin=float(lease_margin),
            batch_size=batch_size,
            app_name=app_name,
            publisher=publisher,
        )

    # --- the sync path -----------------------------------------------------------------------

    async def invoke(
        self,
        function: str,
        event: Any = None,
        *,
        wait: float = 1.0,
        trigger: str = "direct",
        traceparent: str | None = None,
        hop_count: int = 0,
        request_id: str | None = None,
        links: Sequence[str] = (),
    ) -> Any:
        """Run `function` on `event` now and return its result.

        Raises FunctionNotFoundError (naming the declared functions),
        ThrottledError when no concurrency slot frees up within `wait`
        seconds, and HandlerError (with Lambda's error document in
        `.error`) when the handler fails, times out or its worker dies.
        `links` are the traceparents of a batch's other messages (span links; invalid ones are left out).
        """
        settings = self._settings(function)
        _check_wait(wait)
        span, parent_span = tracecontext.span_of(traceparent)
        request = InvokeRequest(
            request_id=request_id or new_request_id(),
            function=function,
            event=event,
            trigger=_check_trigger(trigger),
            traceparent=span,
            hop_count=_check_hops(hop_count),
            parent_span_id=parent_span,
            links=tuple(link for link in links[:MAX_LINKS] if tracecontext.is_valid(link)) if links else (),
        )
        try:
            outcome = await self.runner.run(request, wait=wait)
        except ThrottledError as exc:
            error = {"errorType": THROTTLED_ERROR, "errorMessage": str(exc), "stackTrace": []}
            await self.records.add(
                unrun_record(request, "throttled", error, at=self.clock(), memory_mb=settings.memory_mb),
                self.records.kept_input(request, settings),
            )
            raise
        # Off the request path: the caller has its answer one commit sooner; reads of the records wait for it.
        self.records.add_soon(
            record_from_outcome(request, outcome, memory_mb=settings.memory_mb),
            self.records.kept_input(request, settings),
        )
        if not outcome.ok:
            raise HandlerError(outcome.error or {"errorType": "Error", "errorMessage": "", "stackTrace": []})
        return outcome.result

    # --- the async path ----------------------------------------------------------------------

    async def invoke_async(
        self,
        function: str,
        event: Any = None,
        *,
        trigger: str = "async",
        traceparent: str | None = None,
        hop_count: int = 0,
        request_id: str | None = None,
        delay: float = 0.0,
        dedup_id: str | None = None,
    ) -> str:
        """Queue an invocation of `function` durably and return its request id.

        The invocation runs when the dispatcher gets to it (after `delay`
        seconds at the earliest). A `dedup_id` seen on the function's queue
        within its dedup window (5 minutes by default) queues nothing again:
        a sender that retries after a crash cannot invoke twice. Raises
        FunctionNotFoundError, and InvalidInputError when the event is not
        JSON; nothing is stored then.
        """
        return await self._enqueue(
            function,
            event,
            trigger=trigger,
            traceparent=traceparent,
            hop_count=hop_count,
            request_id=request_id,
            delay=delay,
            dedup_id=dedup_id,
        )

    async def invoke_async_many(
        self,
        function: str,
        events: Sequence[Any],
        *,
        trigger: str = "async",
        traceparent: str | None = None,
        max_event_bytes: int | None = None,
    ) -> list[str]:
        """Queue one invocation of `function` per event, all in one durable write; their request ids, in order.

        All or nothing: every event is checked first (InvalidInputError names the first bad one by its index,
        FunctionNotFoundError an unknown function) and nothing is stored unless all are; once this returns, every
        invocation is durably queued. At most MAX_BATCH events; `max_event_bytes` bounds each event's JSON
        (the control API: Lambda's 256 KiB of an `Event` invocation).
        """
        if not isinstance(events, list | tuple) or not 1 <= len(events) <= MAX_BATCH:
            count = len(events) if isinstance(events, list | tuple) else type(events).__name__
            raise InvalidInputError(f"invoke_async_many takes a list of 1 to {MAX_BATCH} events, not {count}")
        self._settings(function)
        # What `message` makes of each event, with what the batch's invocations share (the envelope's trigger,
        # trace, hop count and time queued: one write) laid out once rather than an `Invocation` per event.
        first = invocation_message.FirstAttempts(_check_trigger(trigger), traceparent, 0, self.clock())
        limit = self.store.queues.max_record_bytes
        messages: list[OutgoingMessage] = []
        request_ids = new_request_ids(len(events))
        for index, event in enumerate(events):
            try:
                message = first.message(request_ids[index], function, _encoded(function, event))
            except InvalidInputError as exc:
                raise InvalidInputError(f"event {index}: {exc}") from None
            # Checked here, not by the store: one bad message would fail the whole batch.
            weight = invocation_message.size(message)
            if weight > limit:
                raise InvalidInputError(f"event {index}: {_over_limit(function, weight, limit)}")
            if max_event_bytes is not None and len(message.body) > max_event_bytes:
                raise InvalidInputError(
                    f"event {index}: its JSON is {len(message.body)} bytes, over the limit of {max_event_bytes} bytes"
                    " of one asynchronous invocation; pass a reference to large data instead"
                )
            messages.append(message)
        await self.store.queues.send_many(function_queue(function), messages)
        return request_ids

    async def _enqueue(
        self,
        function: str,
        event: Any,
        *,
        trigger: str,
        traceparent: str | None,
        hop_count: int,
        request_id: str | None = None,
        delay: float = 0.0,
        dedup_id: str | None = None,
    ) -> str:
        queue, message, request_id = self.message(
            function,
            event,
            trigger=trigger,
            traceparent=traceparent,
            hop_count=hop_count,
            request_id=request_id,
            delay=delay,
            dedup_id=dedup_id,
        )
        sender = self._senders.get(queue)
        if sender is None:
            sender = self._senders[queue] = BatchWriter(functools.partial(self.store.queues.send_many, queue))
        # Concurrent calls share one durable write; each still returns only once its message is stored.
        await sender.submit(message)
        return request_id

    def message(
        self,
        function: str,
        event: Any,
        *,
        trigger: str,
        traceparent: str | None = None,
        hop_count: int = 0,
        request_id: str | None = None,
        delay: float = 0.0,
        dedup_id: str | None = None,
        consumed: dict[str, str] | None = None,
    ) -> tuple[str, OutgoingMessage, str]:
        """The queue, message and request id of an asynchronous invocation, checked as `invoke_async` checks
        them, but not sent: for a caller that sends it together with other writes (`Store.atomic`).

        `event` may be `RawJSON(bytes)`: an event already in its JSON form (a record of a bus's log), queued
        as those bytes without being decoded and encoded again. `consumed` is what the invocation consumes as
        its span's attributes (records.event_consumed), kept in its envelope so that its record need not parse
        the event for them.
        """
        self._settings(function)
        data = _encoded(function, event)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY:
            raise InvalidInputError(f"invoke_async: delay must be from 0 to {MAX_DELAY:g} seconds, not {delay!r}")
        if dedup_id is not None and (
            not isinstance(dedup_id, str) or not 0 < len(dedup_id) <= 128 or not dedup_id.isprintable()
        ):
            raise InvalidInputError(
                f"invoke_async: dedup_id must be 1 to 128 printable characters, as on SQS, not {dedup_id!r}"
            )
        request_id = request_id or new_request_id()
        invocation = Invocation(
            request_id,
            function,
            data,
            _check_trigger(trigger),
            self.clock(),
            traceparent=traceparent,
            hop_count=_check_hops(hop_count),
            consumed=consumed,
        )
        message = invocation_message.encode(invocation, delay=delay, dedup_id=dedup_id)
        # Checked here, not by the store: one bad message would fail the whole shared batch.
        checked = self._within_limit(function, message, self.store.queues.max_record_bytes)
        if isinstance(checked, InvalidInputError):
            raise checked
        queue, message = checked
        return queue, message, request_id

    def messages(
        self,
        functions: Sequence[str],
        event: RawJSON,
        *,
        trigger: str,
        traceparent: str | None = None,
        hop_count: int = 0,
        consumed: dict[str, str] | None = None,
    ) -> list[tuple[str, OutgoingMessage] | InvalidInputError | LookupError]:
        """`message` for one event (its stored JSON) and each of `functions`, in their order: the queue and
        message of each, or what `message` raises for that function (an unknown one, a message over the
        store's limit). What they share (the trigger, the hop count) is checked once and raises for all. The
        same checks and the same bytes as `message` for each, with the envelope laid out once: the bus's
        fan-out of one event to several functions."""
        known = set(self.runner.functions())
        trigger = _check_trigger(trigger)
        hop_count = _check_hops(hop_count)
        data = encode_event(event)
        results: list[tuple[str, OutgoingMessage] | InvalidInputError | LookupError | None] = []
        wanted: list[tuple[str, str]] = []
        for function in functions:
            if function in known:
                wanted.append((new_request_id(), function))
                results.append(None)  # built below, with the others
            else:
                results.append(_unknown(function, known))
        built = iter(
            invocation_message.encode_each(
                data,
                wanted,
                trigger=trigger,
                traceparent=traceparent,
                hop_count=hop_count,
                enqueued_at=self.clock(),
                consumed=consumed,
            )
        )
        limit = self.store.queues.max_record_bytes
        return [
            self._within_limit(function, next(built), limit) if result is None else result
            for function, result in zip(functions, results, strict=True)
        ]

    @staticmethod
    def _within_limit(
        function: str, message: OutgoingMessage, limit: int
    ) -> tuple[str, OutgoingMessage] | InvalidInputError:
        """The queue and message, or the error when the message is over the store's `limit`."""
        weight = invocation_message.size(message)
        if weight > limit:
            return _over_limit(function, weight, limit)
        return function_queue(function), message

    # --- running the dispatcher --------------------------------------------------------------

    async def start(self) -> None:
        """Start the dispatcher: queued async invocations begin to run."""
        await self.dispatcher.start()

    async def stop(self, *, drain: bool = True) -> None:
        """Stop the dispatcher; with `drain`, first wait for the invocations in flight to finish.

        Invocations still queued stay queued (durably) for the next start.
        """
        await self.dispatcher.stop(drain=drain)
        await self.records.settled()

    async def drain(self, *, delayed: bool = True) -> None:
        """Wait until no async invocation is queued, delayed for a retry (unless `delayed` is off), or running.

        For tests. Bound it with `asyncio.timeout(...)`; raises InvocationError when work is queued but the
        dispatcher is not running.
        """
        await self.dispatcher.drain(delayed=delayed)

    def _settings(self, function: str) -> FunctionSettings:
        if not isinstance(function, str) or function not in self.runner.functions():
            raise _unknown(function, self.runner.functions())
        return self.runner.settings(function)


def new_request_id() -> str:
    """A time-ordered (version 7) UUID: the time in milliseconds, then random bits, from a pool (_random.py).

    Time-ordered so that the records, kept inputs and spans keyed by it append at the end of the store's
    key-value index instead of each landing on a page of its own (`_random.time_ordered` says why). Formatted
    directly rather than through `uuid.UUID` (half the time, on every async invocation)."""
    text = _random.uuid7_hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_request_ids(count: int) -> list[str]:
    """`count` request ids as `new_request_id` makes them, drawn at once for a batch (`_random.uuid7_texts`)."""
    return _random.uuid7_texts(count)


def check_destinations(runner: Runner) -> None:
    """Every `function:` destination must name a declared function; raises DeclarationError naming both."""
    names = set(runner.functions())
    for name in names:
        settings = runner.settings(name)
        for setting in ("on_success", "on_failure", "dead_letter"):
            destination: Destination | None = getattr(settings, setting)
            if destination is not None and destination.kind == "function" and destination.name not in names:
                known = ", ".join(sorted(names))
                raise DeclarationError(
                    f"function {name!r}: {setting}={destination} names no declared function; declare it or"
                    f" use one of: {known}"
                )


def _unknown(function: object, known: Iterable[str]) -> FunctionNotFoundError:
    """What invoking `function`, which the app does not declare, raises."""
    names = ", ".join(sorted(known)) or "none"
    return FunctionNotFoundError(f"no function named {function!r}; the app declares: {names}")


def _over_limit(function: str, weight: int, limit: int) -> InvalidInputError:
    """What queueing an invocation of `weight` bytes (event and envelope) over the store's `limit` raises."""
    return InvalidInputError(
        f"invoke_async({function!r}): the invocation is {weight} bytes, over the store's limit of {limit}"
        " bytes; pass a reference to large data instead"
    )


def _encoded(function: str, event: Any) -> bytes:
    """The event's JSON (`encode_event`), or InvalidInputError saying it is not a JSON value."""
    try:
        return encode_event(event)
    except TypeError as exc:
        raise InvalidInputError(
            f"invoke_async({function!r}): the event must be a JSON value (dict, list, str, number, bool, None): {exc}"
        ) from None


def _check_trigger(trigger: object) -> str:
    if not isinstance(trigger, str) or not trigger or len(trigger) > 64:
        raise InvalidInputError(f"trigger must be a short non-empty string such as 'direct', not {trigger!r}")
    return trigger


def _check_hops(hop_count: object) -> int:
    if isinstance(hop_count, bool) or not isinstance(hop_count, int) or not 0 <= hop_count <= _MAX_HOPS_ARG:
        raise InvalidInputError(f"hop_count must be a whole number from 0, not {hop_count!r}")
    return hop_count


def _check_wait(wait: object) -> None:
    if isinstance(wait, bool) or not isinstance(wait, int | float) or wait != wait or not 0 <= wait <= 900:
        raise InvalidInputError(f"wait must be from 0 to 900 seconds, not {wait!r}")
