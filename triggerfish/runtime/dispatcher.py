"""The dispatcher: runs queued asynchronous invocations, at least once, within each function's concurrency.

For each function, one loop leases invocations from the store queue
`fn.<name>` in batches, never holding more than the function's
`concurrency`, and runs each through the Runner. The lease is the
function's timeout plus a margin, and is extended while an invocation
still runs, so a dispatcher that dies mid-invocation loses its leases and
another one (or itself, restarted) runs those invocations again.

After each attempt, in this order: the invocation record is written; a
retry (the same invocation with its attempt history, delayed by the
backoff) or a destination record is sent; and only then is the leased
message acknowledged. A crash between those steps repeats work (at least
once), never loses it.

Final failures go to `on_failure`, else `dead_letter`, else the platform
dead-letter queue `dlq.<name>`, so nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from triggerfish.bus.publisher import Publisher
from triggerfish.errors import InvocationError, ThrottledError
from triggerfish.events import tracecontext
from triggerfish.events.cloudevent import Event
from triggerfish.identity import function_arn
from triggerfish.loop_guard import Origin
from triggerfish.model import Destination, FunctionSettings
from triggerfish.names import function_dead_letter_queue, function_queue
from triggerfish.retry import Decision, FailureCondition, RetryPolicy, decide
from triggerfish.runtime import invocation_message
from triggerfish.runtime.inputs import KeptInput
from triggerfish.runtime.invocation_message import Invocation
from triggerfish.runtime.records import (
    BatchWriter,
    InvocationRecord,
    InvocationRecords,
    record_from_outcome,
    unrun_record,
)
from triggerfish.runtime.types import InvokeOutcome, InvokeRequest, Runner
from triggerfish.store import Message, Store
from triggerfish.store.atomic import Ack
from triggerfish.triggers.sns import new_message

logger = logging.getLogger("triggerfish.dispatcher")

#: How long a receive waits for new work before checking whether to stop.
RECEIVE_WAIT = 0.5
#: Deliveries of one message after which it is given up on: its dispatchers kept dying before settling it.
MAX_DELIVERIES = 50
#: Seconds before a throttled async invocation (all slots taken by sync calls) is tried again.
THROTTLED_RETRY_DELAY = 0.2


class Enqueue(Protocol):
    def __call__(
        self, function: str, event: Any, *, trigger: str, traceparent: str | None, hop_count: int
    ) -> Awaitable[str]: ...


class Dispatcher:
    """Leases and runs the async invocations of every function the runner knows. See the module docstring."""

    def __init__(
        self,
        runner: Runner,
        store: Store,
        records: InvocationRecords,
        *,
        enqueue: Enqueue,
        policy: RetryPolicy,
        clock: Callable[[], float],
        lease_margin: float,
        batch_size: int,
        app_name: str,
        publisher: Publisher | None = None,
    ) -> None:
        self.runner = runner
        self.store = store
        if publisher is not None:
            self.publisher = publisher
        self.records = records
        self.enqueue = enqueue
        self.policy = policy
        self.clock = clock
        self.lease_margin = lease_margin
        self.batch_size = batch_size
        self.app_name = app_name
        self._loops: list[asyncio.Task[None]] = []
        self._in_flight: dict[str, set[asyncio.Task[None]]] = {}
        self._stopping = False
        self._ackers: dict[str, BatchWriter[str, bool]] = {}
        #: Records and acknowledgements of the invocations settling now, of every function: one write for all.
        self._settler = BatchWriter(self._settle_batch)
        self._function_loops: list[_FunctionLoop] = []
        #: Reads what a handler would ask the platform for first, before its request is sent (function, request id,
        #: the event's JSON), handed to it as `context.prelude` (a workflow run's `begin`); set by the platform.
        self.prelude: Callable[[str, str, bytes], Awaitable[Any]] | None = None
        # Where the runner can queue an invocation behind a running one (the process runtime), each worker's
        # next invocation waits in it, and the worker starts it without a round trip through this process.
        run_behind = getattr(runner, "run_behind", None)
        self.pipelined = run_behind is not None
        #: Invocations the runner queues on a worker behind the one it runs, at most (0: none).
        self.queue_depth: int = getattr(runner, "queue_depth", 0) if self.pipelined else 0
        self._run_on: Callable[..., Awaitable[InvokeOutcome]] = run_behind or runner.run

    @functools.cached_property
    def publisher(self) -> Publisher:
        """Where destinations publish (the platform's publisher, given; else one of this dispatcher's own)."""
        return Publisher(self.store)

    @property
    def in_flight(self) -> int:
        """Invocations this dispatcher has started and not yet settled."""
        return sum(len(tasks) for tasks in self._in_flight.values())

    @property
    def running(self) -> bool:
        return bool(self._loops)

    async def start(self) -> None:
        if self._loops:
            return
        self._stopping = False
        for function in self.runner.functions():
            loop = _FunctionLoop(self, function, self.runner.settings(function))
            self._function_loops.append(loop)
            self._in_flight[function] = loop.in_flight
            self._loops.append(asyncio.create_task(loop.run(), name=f"triggerfish-dispatch:{function}"))

    async def stop(self, *, drain: bool = True) -> None:
        self._stopping = True
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []
        for loop in self._function_loops:
            await loop.release_buffered()
        self._function_loops = []
        running = [task for tasks in self._in_flight.values() for task in tasks]
        if not drain:
            # Their messages stay leased until the lease ends, then run again: nothing is lost.
            for task in running:
                task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # A task cancelled before its first step never ran the body that takes it out of its set.
        for tasks in self._in_flight.values():
            tasks.difference_update([task for task in tasks if task.done()])

    async def drain(self, *, delayed: bool = True) -> None:
        """Wait until every queued invocation ran; with `delayed` off, not for those whose delay (a retry's
        backoff) has not run out yet."""
        functions = self.runner.functions()
        while True:
            busy = any(self._in_flight.get(f) for f in functions)
            if not busy:
                stats = [await self.store.queues.stats(function_queue(f)) for f in functions]
                if not any(s.depth if delayed else s.visible + s.in_flight for s in stats):
                    return
                if not self._loops:
                    raise InvocationError(
                        "drain(): asynchronous invocations are queued but the dispatcher is not running; call start()"
                    )
            await asyncio.sleep(0.005)

    # --- one attempt -------------------------------------------------------------------------

    async def handle(
        self, message: Message, settings: FunctionSettings, lease: float, ran: Callable[[], None] = lambda: None
    ) -> None:
        """Run one leased invocation and settle it. `ran` is called once the handler no longer runs."""
        try:
            invocation = invocation_message.decode(message)
        except (ValueError, KeyError, TypeError) as exc:
            await self._poison(message, exc)
            return
        # Each attempt is a span of its own, a child of whoever caused the invocation.
        span, parent_span = tracecontext.span_of(invocation.traceparent)
        prelude = None
        if self.prelude is not None:
            prelude = await self.prelude(invocation.function, invocation.request_id, invocation.event)
        request = InvokeRequest(
            request_id=invocation.request_id,
            function=invocation.function,
            # The event's bytes as they were queued, embedded in the worker's request as they are: given as its
            # JSON too, so neither the worker's request frame nor the kept input writes the fragment out again.
            event=orjson.Fragment(invocation.event),
            event_json=invocation.event,
            attempt=invocation.attempt,
            trigger=invocation.trigger,
            traceparent=span,
            hop_count=invocation.hop_count,
            parent_span_id=parent_span,
            prelude=prelude,
        )
        age = self.clock() - invocation.enqueued_at
        unrun: tuple[FailureCondition, dict[str, Any]] | None = None
        if age > settings.max_event_age:
            unrun = (
                "EventAgeExceeded",
                _error(
                    "EventAgeExceeded",
                    f"the invocation waited {age:.0f} s, longer than max_event_age ({settings.max_event_age:g} s)",
                ),
            )
        elif message.receive_count > MAX_DELIVERIES:
            unrun = (
                "RetriesExhausted",
                _error(
                    "DeliveriesExhausted",
                    f"the invocation was delivered {message.receive_count} times without its outcome being recorded;"
                    " the dispatchers running it kept stopping (crashes?)",
                ),
            )
        if unrun is not None:
            condition, error = unrun
            await self.records.add(
                unrun_record(request, "expired", error, at=self.clock(), memory_mb=settings.memory_mb),
                self.records.kept_input(request, settings),
            )
            await self._fail(
                invocation, request, settings, condition, error, version=None, invoke_count=len(invocation.attempts)
            )
            await self._ack(message)
            return
        try:
            # Awaited here, not through a method of its own: each await level is a frame every resume of the
            # invocation (its turn on the worker, its result) passes through.
            outcome = await self._run_on(request, wait=1.0)
        except ThrottledError:
            outcome = None
        finally:
            ran()
        if outcome is None:
            # Sync calls hold every slot: not an attempt. Sent afresh rather than released, so
            # throttling does not count towards MAX_DELIVERIES.
            await self.store.queues.send(
                message.queue, message.body, attributes=message.attributes, delay=THROTTLED_RETRY_DELAY
            )
            await self._ack(message)
            return
        attempt = record_from_outcome(
            request, outcome, memory_mb=settings.memory_mb, event=invocation.event, consumed=invocation.consumed
        )
        kept = self.records.kept_input(request, settings)
        if outcome.ok and settings.on_success is None:
            # The common case: the record and then the acknowledgement, batched with the others settling now (one
            # batch of records and one ack_many per queue for all settling, of every function: `_settle_batch`).
            if not await self._settler.submit((message, attempt, kept)):
                logger.warning(
                    "invocation message %s of %s was acknowledged after its lease ended",
                    message.message_id,
                    message.queue,
                )
            return
        await self.records.add(attempt, kept)
        if outcome.ok:
            if settings.on_success is not None:
                record = self._destination_record(invocation, request, "Success", outcome.result, None, outcome.version)
                await self._deliver(settings.on_success, record, request, success=True)
            await self._ack(message)
            return
        error = outcome.error or _error("Error", "the invocation failed")
        invocation = invocation.retried(
            {
                "attempt": request.attempt,
                "started_at": outcome.started_at,
                "ended_at": outcome.ended_at,
                "error": _compact(error),
            }
        )
        decision: Decision = decide(
            self.policy,
            attempt=request.attempt,
            retries=settings.retries,
            retryable=outcome.retryable,
            requested_delay=outcome.retry_delay,
            age=self.clock() - invocation.enqueued_at,
            max_event_age=settings.max_event_age,
        )
        if decision.retry:
            retry = invocation_message.encode(invocation, delay=decision.delay)
            await self.store.queues.send_many(message.queue, [retry])
        else:
            await self._fail(
                invocation, request, settings, decision.condition or "RetriesExhausted", error, outcome.version
            )
        await self._ack(message)

    async def _fail(
        self,
        invocation: Invocation,
        request: InvokeRequest,
        settings: FunctionSettings,
        condition: FailureCondition,
        error: dict[str, Any],
        version: str | None,
        invoke_count: int | None = None,
    ) -> None:
        destination = settings.on_failure or settings.dead_letter
        target = destination or Destination("queue", function_dead_letter_queue(request.function))
        record = self._destination_record(invocation, request, condition, error, "Unhandled", version, invoke_count)
        await self._deliver(target, record, request, success=False)

    def _destination_record(
        self,
        invocation: Invocation,
        request: InvokeRequest,
        condition: str,
        payload: Any,
        function_error: str | None,
        version: str | None,
        invoke_count: int | None = None,
    ) -> dict[str, Any]:
        """Lambda's destination record, plus `attempts`: every failed attempt's times and error."""
        executed = version or "$LATEST"
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": executed}
        if function_error is not None:
            response["functionError"] = function_error
        return {
            "version": "1.0",
            "timestamp": _iso(self.clock()),
            "requestContext": {
                "requestId": request.request_id,
                "functionArn": function_arn(self.app_name, request.function, executed),
                "condition": condition,
                "approximateInvokeCount": request.attempt if invoke_count is None else invoke_count,
            },
            "requestPayload": invocation.payload(),
            "responseContext": response,
            "responsePayload": payload,
            "attempts": invocation.attempts,
        }

    async def _deliver(
        self, destination: Destination, record: dict[str, Any], request: InvokeRequest, *, success: bool
    ) -> None:
        data = orjson.dumps(record)
        if len(data) > self.store.queues.max_record_bytes // 2:
            # A result too large to deliver must not leave the invocation stuck: deliver a stub saying so.
            record = {
                **record,
                "responsePayload": {"truncated": True, "bytes": len(orjson.dumps(record["responsePayload"]))},
            }
            data = orjson.dumps(record)
        hops = request.hop_count + 1
        origin = Origin(request.function, request.request_id)
        if destination.kind == "queue":
            await self.store.queues.send(destination.name, data)
        elif destination.kind == "topic":
            # The record's JSON is the topic message; the topic's consumer fans it out to the subscriptions.
            message = new_message(data.decode("utf-8"), hop_count=hops, traceparent=request.traceparent, limit=None)
            if len(message.to_json()) > self.store.log.max_record_bytes:
                # Escaped into a string, a record can outgrow the log's limit (a topic destination feeding
                # its own function nests every record in the next): deliver a stub saying so.
                stub = {
                    **record,
                    **{
                        part: {"truncated": True, "bytes": len(orjson.dumps(record[part]))}
                        for part in ("requestPayload", "responsePayload")
                    },
                }
                message = new_message(
                    orjson.dumps(stub).decode("utf-8"), hop_count=hops, traceparent=request.traceparent, limit=None
                )
            await self.publisher.publish_message(destination.name, message, origin=origin)
        elif destination.kind == "bus":
            result = "Success" if success else "Failure"
            event = Event(
                id=f"{request.request_id}-{result.lower()}",
                source="lambda",
                type=f"Lambda Function Invocation Result - {result}",
                subject=request.function,
                time=record["timestamp"],
                datacontenttype="application/json",
                data=record,
                extensions={"hopcount": hops, **({"traceparent": request.traceparent} if request.traceparent else {})},
            )
            await self.publisher.publish(destination.name, [event], origin=origin)
        elif not self.publisher.guard.allows(hops):
            # A function whose destination leads back to itself would loop for ever: stop it as the publisher
            # stops a handler's own publish, and keep what was stopped.
            await self.publisher.guard.stop(
                op="destination", target=str(destination), hops=hops, payload=record, origin=origin
            )
        else:
            await self.enqueue(
                destination.name,
                record,
                trigger="destination",
                traceparent=request.traceparent,
                hop_count=hops,
            )

    async def _settle_batch(self, batch: list[tuple[Message, InvocationRecord, KeptInput | None]]) -> list[bool]:
        # One write for the records and the acknowledgements where the store can (where it cannot, they run in
        # this order): nothing leaves its queue before its record is durable. A fanned-out event's invocations
        # settle together, whichever functions ran them: one store call, not one per function's queue.
        records = [record for _, record, _ in batch]
        writes = self.records.writes(records, [kept for _, _, kept in batch if kept is not None])
        receipts: dict[str, list[str]] = {}
        for message, _, _ in batch:
            receipts.setdefault(message.queue, []).append(message.receipt)
        acks = [Ack(queue, queued) for queue, queued in receipts.items()]
        results = await self.store.atomic([*writes, *acks])
        self.records.stored(records)
        await self.records.trim_when_due()
        acked = {ack.queue: iter(result) for ack, result in zip(acks, results[len(writes) :], strict=True)}
        return [next(acked[message.queue]) for message, _, _ in batch]

    async def _ack(self, message: Message) -> None:
        acker = self._ackers.get(message.queue)
        if acker is None:
            acker = self._ackers[message.queue] = BatchWriter(
                functools.partial(self.store.queues.ack_many, message.queue)
            )
        if not await acker.submit(message.receipt):
            # The lease ended before the outcome was in: another dispatcher may run it again.
            logger.warning(
                "invocation message %s of %s was acknowledged after its lease ended", message.message_id, message.queue
            )

    async def _poison(self, message: Message, exc: Exception) -> None:
        """A message that is not an invocation: keep it in the dead-letter queue rather than loop on it."""
        dead_letters = function_dead_letter_queue(message.queue.removeprefix(function_queue("")))
        logger.error(
            "dropping a malformed invocation message %s from %s to %s: %s",
            message.message_id,
            message.queue,
            dead_letters,
            exc,
        )
        await self.store.queues.send(dead_letters, message.body, attributes=message.attributes)
        await self._ack(message)


class _FunctionLoop:
    """Leases one function's invocations ahead of need, and starts each as soon as a slot frees.

    Leasing a few more than the free slots (the prefetch buffer) lets a slot
    that frees start the next invocation at once, instead of waiting a
    store round trip for it: with a low `concurrency` and short handlers
    that wait, not the handler, would set the pace.
    """

    def __init__(self, dispatcher: Dispatcher, function: str, settings: FunctionSettings) -> None:
        self.dispatcher = dispatcher
        self.function = function
        self.settings = settings
        self.queue = function_queue(function)
        self.lease = settings.timeout + dispatcher.lease_margin
        self.in_flight: set[asyncio.Task[None]] = set()
        #: Invocations whose handler is still running, or queued on a worker behind one that is: at most
        #: `concurrency`, and `queue_depth` more per worker when the runner is pipelined (the runner bounds
        #: what runs at once). An invocation whose outcome is being recorded and acknowledged counts no more.
        self.running = 0
        self.limit = settings.concurrency * (1 + dispatcher.queue_depth)
        #: Leased, not yet started.
        self.buffer: collections.deque[Message] = collections.deque()
        self.prefetch = min(dispatcher.batch_size, max(2 * settings.concurrency, 32))
        #: Invocations leased at most, buffered, running or settling: backpressure when settling lags.
        self.max_leased = settings.concurrency + max(settings.concurrency, 64) + self.prefetch
        self._freed = asyncio.Event()
        # Its own loop's create_task, not asyncio.create_task: that one asks for the running loop, which on
        # Python 3.11 is a getpid system call, once per invocation here.
        self._loop = asyncio.get_running_loop()
        #: Leases held, by receipt: the message and when (monotonic) its lease runs out.
        self._leases: dict[str, tuple[Message, float]] = {}

    async def run(self) -> None:
        keeper = asyncio.create_task(self._keep_leases())
        try:
            await self._receive_loop()
        finally:
            keeper.cancel()

    async def release_buffered(self) -> None:
        """Hand back the leased invocations not yet started, so they run at once elsewhere."""
        queues = self.dispatcher.store.queues
        while self.buffer:
            message = self.buffer.popleft()
            self._leases.pop(message.receipt, None)
            with contextlib.suppress(Exception):
                await queues.release(message.queue, message.receipt)

    async def _keep_leases(self) -> None:
        """Extend the lease of every invocation (buffered or running) halfway through it.

        One task per function rather than a timer per invocation: the async
        path's throughput depends on not paying for a timer on every run.
        """
        queues = self.dispatcher.store.queues
        while True:
            await asyncio.sleep(self.lease / 4)
            soon = time.monotonic() + self.lease / 2
            for receipt, (message, ends) in list(self._leases.items()):
                if ends < soon and receipt in self._leases:
                    try:
                        if await queues.extend(message.queue, receipt, self.lease):
                            self._leases[receipt] = (message, time.monotonic() + self.lease)
                    except Exception:
                        logger.exception("extending the lease of %s failed", message.message_id)

    async def _receive_loop(self) -> None:
        queues = self.dispatcher.store.queues
        while True:
            self._start_ready()
            room = min(self.prefetch - len(self.buffer), self.max_leased - len(self.in_flight) - len(self.buffer))
            # Topping up a nearly full buffer a message or two at a time would cost a store write
            # (a commit) per message or two: wait until it is half empty, then lease in a batch.
            if room > 0 and (not self.buffer or 2 * room >= self.prefetch):
                try:
                    messages = await queues.receive(
                        self.queue,
                        max_messages=room,
                        visibility_timeout=self.lease,
                        wait=0.0 if self.buffer else RECEIVE_WAIT,
                    )
                except Exception:
                    logger.exception("receiving invocations of %s failed; trying again", self.function)
                    await asyncio.sleep(RECEIVE_WAIT)
                    continue
                ends = time.monotonic() + self.lease
                for message in messages:
                    self._leases[message.receipt] = (message, ends)
                self.buffer.extend(messages)
                if messages or not self.buffer:
                    continue
            # The buffer is full (or nothing more is queued): wait until a slot or room frees.
            self._freed.clear()
            self._start_ready()
            if self.buffer and self.running < self.limit:
                continue
            await self._freed.wait()

    def _start_ready(self) -> None:
        while self.buffer and self.running < self.limit:
            message = self.buffer.popleft()
            self.running += 1
            task = self._loop.create_task(self._handle(message))
            # Taken out of the set by its own last step (`_handle`), not by a done callback: a callback is one more
            # turn of the event loop per invocation.
            self.in_flight.add(task)

    async def _handle(self, message: Message) -> None:
        released = False

        def ran() -> None:
            nonlocal released
            if not released:
                released = True
                self.running -= 1
                self._start_ready()
                self._freed.set()

        try:
            await self.dispatcher.handle(message, self.settings, self.lease, ran)
        except Exception:
            # The message stays leased and comes back when the lease ends: retried, not lost.
            logger.exception("handling invocation message %s of %s failed", message.message_id, self.function)
        finally:
            self._leases.pop(message.receipt, None)
            ran()
            # This task, found by the loop it runs on (asking with the loop given is a lookup, not a system call).
            self.in_flight.discard(asyncio.current_task(self._loop))
            self._freed.set()


def _compact(error: dict[str, Any]) -> dict[str, Any]:
    """An error as kept in the attempt history: bounded, so retries cannot grow a message past the store's limit."""
    trace = error.get("stackTrace")
    return {
        "errorType": str(error.get("errorType", "Error"))[:200],
        "errorMessage": str(error.get("errorMessage", ""))[:2000],
        "stackTrace": [str(line)[:500] for line in trace[-20:]] if isinstance(trace, list) else [],
    }


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message, "stackTrace": []}


def _iso(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
