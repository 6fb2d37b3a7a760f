"""Unit-test a Triggerfish app in this process, on the in-memory store.

    from triggerfish.testing import TestPlatform

    async def test_order_flow():
        async with TestPlatform(app) as platform:
            assert await platform.invoke("quote", {"items": 2}) == {"total": 20}
            await platform.publish("order.placed", {"id": 1})
            await platform.drain()
            assert "ship" in [r.function for r in await platform.invocations(status="succeeded")]

The platform behaves as the real one does, because it is the real one: the
same invoker, retries, dead letters, destinations, invocation records,
routing of events by the app's patterns, SQS-shaped queue batches and
SNS-style topic fan-out. What differs is where handlers run (threads of
this process, see
`triggerfish.runtime.inprocess`), the store (memory, fresh per platform),
and time: retries wait no backoff, and `drain()` runs everything that is
due until nothing is left, so a test needs no sleeps. `SyncTestPlatform`
offers the same for tests that are not async.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from triggerfish.app import App
from triggerfish.bus.router import Router
from triggerfish.errors import InvalidInputError, InvocationError
from triggerfish.events.cloudevent import Event
from triggerfish.events.shapes import scheduled_event
from triggerfish.model import FunctionSpec, QueueTrigger
from triggerfish.names import bus_stream, function_dead_letter_queue, queue_dead_letter_queue
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.runtime.records import InvocationRecord
from triggerfish.runtime.types import PlatformCall
from triggerfish.store import Message, QueueConfig, Store, open_store
from triggerfish.triggers.queue_config import DEFAULT_MAX_RECEIVES
from triggerfish.triggers.queues import deliver_batch
from triggerfish.triggers.schedules import DeclaredSchedule, declared_schedules, occurrence_id
from triggerfish.triggers.topics import Topics

if TYPE_CHECKING:
    import httpx

__all__ = ["SyncTestPlatform", "TestPlatform"]

T = TypeVar("T")

#: Rounds of routing, invoking and delivering `drain()` runs before it gives up on a loop that never ends.
MAX_DRAIN_ROUNDS = 1000
#: Receives after which a failing queue message moves to `<queue>.dlq`, unless the queue is configured.
DEFAULT_QUEUE_MAX_RECEIVES = DEFAULT_MAX_RECEIVES
#: Seconds close() waits for the dispatcher to stop before cancelling it again.
STOP_PATIENCE = 1.0
_SOURCE = "triggerfish.testing"

logger = logging.getLogger("triggerfish.testing")


class TestPlatform:
    """An app running in-process on a fresh memory store, for unit tests.

    Use it as an async context manager. `retry_delay` is the backoff
    between attempts of a failed asynchronous invocation (0 by default, so
    retries happen within one `drain()`); `queue_max_receives` sends a
    queue message that keeps failing to `<queue>.dlq` after that many
    receives, for queues the test has not configured itself.
    `max_drain_rounds` bounds how long `drain()` follows work that causes
    more work before it gives up. `start` sets
    the clock that schedules fire by (see `advance()`); `store_url` picks
    another store, e.g. a SQLite file.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        app: App | Mapping[str, FunctionSpec],
        *,
        retry_delay: float = 0.0,
        queue_max_receives: int = DEFAULT_QUEUE_MAX_RECEIVES,
        store_url: str = "memory://",
        start: datetime.datetime | None = None,
        max_drain_rounds: int = MAX_DRAIN_ROUNDS,
    ) -> None:
        self.specs: dict[str, FunctionSpec] = dict(app.functions if isinstance(app, App) else app)
        self.app_name = app.name if isinstance(app, App) else "app"
        self.router = Router(self.specs)
        # Built here so that bad values fail at once, not at `async with`.
        self._policy = RetryPolicy(base=retry_delay, ceiling=retry_delay)
        QueueConfig(max_receives=queue_max_receives, dead_letter="probe")
        if isinstance(max_drain_rounds, bool) or not isinstance(max_drain_rounds, int) or max_drain_rounds < 1:
            raise InvalidInputError(f"max_drain_rounds must be a whole number of at least 1, not {max_drain_rounds!r}")
        self._queue_max_receives = queue_max_receives
        self._max_drain_rounds = max_drain_rounds
        self._store_url = store_url
        self._store: Store | None = None
        self._invoker: Invoker | None = None
        self._topics: Topics | None = None
        self._platform: StorePlatform | None = None
        self._cursors: dict[str, int] = {}
        self._subscribers: dict[str, list[tuple[FunctionSpec, QueueTrigger]]] = {}
        # Named, and their occurrences identified, as the server's Scheduler does it.
        self._schedules: list[DeclaredSchedule] = declared_schedules(self.specs)
        for spec in self.specs.values():
            for trigger in spec.triggers:
                if isinstance(trigger, QueueTrigger):
                    self._subscribers.setdefault(trigger.queue, []).append((spec, trigger))
        #: The schedules' clock: starts at `start` (default: now) and moves only with `advance()`.
        self.now = start or datetime.datetime.now(datetime.UTC)
        if self.now.tzinfo is None:
            raise InvalidInputError("TestPlatform(start=...) needs an aware datetime, e.g. with tzinfo=datetime.UTC")

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> TestPlatform:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the store and start the dispatcher (done by `async with`)."""
        if self._store is not None:
            return
        store = await open_store(self._store_url)
        try:
            platform = StorePlatform(store)
            runner = InProcessRunner(self.specs, platform=platform, app_name=self.app_name)
            invoker = Invoker(runner, store, retry_policy=self._policy, app_name=self.app_name)
            for queue in self._subscribers:
                config = await store.queues.config(queue)
                if config.dead_letter is None:
                    redrive = QueueConfig(
                        max_receives=self._queue_max_receives, dead_letter=queue_dead_letter_queue(queue)
                    )
                    await store.queues.configure(queue, redrive)
            await invoker.start()
        except BaseException:
            await store.close()
            raise
        self._store, self._platform, self._invoker = store, platform, invoker
        # The platform's own fan-out, pumped by drain() instead of running in the background.
        self._topics = Topics(store, self.specs, invoker=invoker)

    async def close(self) -> None:
        """Stop the dispatcher and drop the store; pending work is abandoned, as a test ends."""
        if self._invoker is not None:
            stopping = asyncio.ensure_future(self._invoker.stop(drain=False))
            while not (await asyncio.wait({stopping}, timeout=STOP_PATIENCE))[0]:
                # On Python 3.11 a cancellation that races a wake-up inside asyncio.wait_for can be lost,
                # leaving a dispatcher loop running; cancelling again reaches it through the stop.
                logger.warning("the dispatcher did not stop within %g s; cancelling it again", STOP_PATIENCE)
                stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
        if self._topics is not None:
            await self._topics.stop()
            self._topics = None
        if self._store is not None:
            await self._store.close()
        self._store = self._invoker = self._platform = None

    @property
    def store(self) -> Store:
        """The platform's store, for assertions the helpers below do not cover."""
        if self._store is None:
            raise InvocationError("the test platform is not running: use `async with TestPlatform(app) as platform:`")
        return self._store

    @property
    def invoker(self) -> Invoker:
        if self._invoker is None:
            raise InvocationError("the test platform is not running: use `async with TestPlatform(app) as platform:`")
        return self._invoker

    @property
    def topics(self) -> Topics:
        """The platform's topics: `subscribe()` queues and webhooks to them, list `subscriptions()`."""
        if self._topics is None:
            raise InvocationError("the test platform is not running: use `async with TestPlatform(app) as platform:`")
        return self._topics

    # --- causing work ------------------------------------------------------------------------

    async def invoke(self, function: str, event: Any = None, *, wait: float = 1.0) -> Any:
        """Invoke synchronously and return the result; raises HandlerError as the real platform does."""
        return await self.invoker.invoke(function, event, wait=wait)

    async def invoke_async(self, function: str, event: Any = None) -> str:
        """Queue an asynchronous invocation; it runs on `drain()`. Returns its request id."""
        return await self.invoker.invoke_async(function, event)

    async def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """Send an HTTP request to the app's `http` routes and return the response.

        The request goes through the server's gateway in this process (no
        socket), so the handler gets the API Gateway event the server would
        give it, and its result becomes the response the server would send.
        `options` are httpx's: `json=`, `content=`, `headers=`, `params=`.
        `await platform.request("POST", "/orders", json={"items": 2})`.
        """
        import httpx

        from triggerfish.gateway import Gateway, RouteTable
        from triggerfish.gateway.route_auth import route_authorizer

        # As under `triggerfish dev`: there are no keys, so `api_key` routes are open; signatures are checked.
        authorize = route_authorizer(self.specs, keys_lookup=None)
        gateway = Gateway(RouteTable.from_specs(self.specs), self.invoker.invoke, authorize=authorize)
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, path, **options)

    async def publish(
        self,
        event: Event | Mapping[str, Any] | str,
        data: Any = None,
        *,
        bus: str = "default",
        source: str = _SOURCE,
        **attributes: Any,
    ) -> str:
        """Publish an event and route it to the functions whose patterns match. Returns the event id.

        Pass an Event, a CloudEvent as a dict, or a type and its data:
        `await platform.publish("order.placed", {"id": 1})`.
        """
        if isinstance(event, Event):
            built = event
        elif isinstance(event, Mapping):
            built = Event.from_json(dict(event))
        elif isinstance(event, str):
            built = Event.create(type=event, source=source, data=data, **attributes)
        else:
            raise InvalidInputError(
                f"publish() takes an Event, a CloudEvent dict or an event type string, not {type(event).__name__}"
            )
        call = PlatformCall(
            op="publish", args={"bus": bus, "event": built.to_dict()}, function="test", request_id="test"
        )
        await self._platform_call(call)
        await self._route(bus)
        return built.id

    async def send(
        self,
        queue: str,
        body: Any,
        *,
        delay: float = 0.0,
        group: str | None = None,
        dedup_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Send a message to a queue; `on_queue` functions get it on `drain()`. Returns the message id.

        A str body is sent as is, bytes must be UTF-8 text (SQS bodies are
        text), anything else is sent as its JSON text.
        """
        result = await self.store.queues.send(
            queue, _body(body), delay=delay, group=group, dedup_id=dedup_id, attributes=attributes
        )
        return result.message_id

    async def publish_topic(
        self,
        topic: str,
        message: str,
        subject: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Publish a message to a topic; its subscriptions get it on `drain()`. Returns the SNS message id.

        `on_topic` functions receive SNS-shaped records; the message, subject
        and attributes are checked as SNS checks them (InvalidInputError).
        """
        return await self.topics.publish(topic, message, subject=subject, attributes=attributes)

    async def drain(self) -> None:
        """Run all the work that is due, and the work it causes, until none is left.

        That is: route published events (the test's and the functions'),
        run queued asynchronous invocations with their retries and
        destinations, deliver queue messages to `on_queue` functions, and
        fan topic messages out to their subscriptions (`on_topic` functions).
        Raises InvocationError if the work never settles (a loop the hop
        limit does not stop), naming how many rounds ran.
        """
        for _ in range(self._max_drain_rounds):
            # Settled when a round that starts with no async work left routes and delivers nothing.
            await self.invoker.drain()
            progressed = False
            for bus in self.router.buses():
                progressed = await self._route(bus) or progressed
            for queue in self._subscribers:
                progressed = await self._deliver(queue) or progressed
            progressed = bool(await self.topics.deliver_due()) or progressed
            if not progressed:
                return
        raise InvocationError(
            f"drain() did not settle after {self._max_drain_rounds} rounds: functions keep causing new work;"
            " look for an event or message loop"
        )

    async def advance(self, seconds: float) -> list[str]:
        """Move the schedules' clock forward and run every scheduled invocation that falls due.

        Each `schedule` trigger fires once per occurrence in the window, with
        the EventBridge "Scheduled Event" Lambda delivers, in time order, and
        the work each occurrence causes is drained before the next one fires.
        Returns the request ids in firing order. Only schedules use this
        clock; everything else runs in real time.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < 1e10:
            raise InvalidInputError(f"advance() takes a number of seconds from 0, not {seconds!r}")
        start, end = self.now, self.now + datetime.timedelta(seconds=seconds)
        due: list[tuple[datetime.datetime, DeclaredSchedule]] = []
        for declared in self._schedules:
            moment = declared.schedule.next_after(start)
            while moment is not None and moment <= end:
                due.append((moment, declared))
                moment = declared.schedule.next_after(moment)
        due.sort(key=lambda item: item[0])
        fired: list[str] = []
        for index, (moment, declared) in enumerate(due):
            request_id = occurrence_id(declared, moment)
            event = scheduled_event(declared.name, moment, event_id=request_id)
            fired.append(
                await self.invoker.invoke_async(declared.function, event, trigger="schedule", request_id=request_id)
            )
            # Time passes between occurrences: what one causes settles before the next fires.
            if index + 1 == len(due) or due[index + 1][0] != moment:
                self.now = moment
                await self.drain()
        self.now = end
        await self.drain()
        return fired

    # --- looking at what happened ------------------------------------------------------------

    async def invocations(self, function: str | None = None, status: str | None = None) -> list[InvocationRecord]:
        """Invocation records (one per attempt), oldest first, optionally of one function and/or status.

        `status` is one of succeeded, failed, timed_out, throttled, expired.
        """
        records = await self.invoker.records.query(function=function, status=status, limit=1_000_000)
        return sorted(records, key=lambda r: (r.started_at, r.attempt))

    async def published(self, bus: str = "default") -> list[Event]:
        """Every event published on `bus`, by the test or by functions, in order."""
        return [Event.from_json(r.data) for r in await self._read_bus(bus, after=0)]

    async def dead_letters(self, function: str) -> list[dict[str, Any]]:
        """The failure records of `function`'s asynchronous invocations that ran out of attempts.

        Read from the queue its failures go to: its `on_failure` or
        `dead_letter` queue if it names one, else the platform's `dlq.<function>`.
        Each is Lambda's destination record (`requestContext`, `requestPayload`,
        `responsePayload` with the error, ...).
        """
        settings = self.invoker.runner.settings(function) if function in self.specs else None
        destination = settings and (settings.on_failure or settings.dead_letter)
        queue = (
            destination.name if destination and destination.kind == "queue" else function_dead_letter_queue(function)
        )
        return [orjson.loads(m.body) for m in await self._peek(queue)]

    async def queue_messages(self, queue: str) -> list[Message]:
        """The messages waiting on `queue` (peeking counts as a receive, as on SQS)."""
        return await self._peek(queue)

    # --- internals ---------------------------------------------------------------------------

    async def _platform_call(self, call: PlatformCall) -> Any:
        if self._platform is None:
            raise InvocationError("the test platform is not running: use `async with TestPlatform(app) as platform:`")
        return await self._platform(call)

    async def _read_bus(self, bus: str, *, after: int) -> list[Any]:
        records: list[Any] = []
        while True:
            batch = await self.store.log.read(bus_stream(bus), after=after, limit=1000)
            if not batch:
                return records
            records.extend(batch)
            after = batch[-1].offset

    async def _route(self, bus: str) -> bool:
        """Invoke the targets of events appended to `bus` since it was last routed."""
        records = await self._read_bus(bus, after=self._cursors.get(bus, 0))
        for record in records:
            self._cursors[bus] = record.offset  # a record that cannot be routed is reported once, not forever
            try:
                event = Event.from_json(record.data)
            except InvalidInputError as exc:
                raise InvalidInputError(
                    f"bus {bus!r}, offset {record.offset}: the record is not a CloudEvent and was not routed: {exc}"
                ) from exc
            for target in self.router.targets(bus, event):
                await self.invoker.invoke_async(
                    target.function,
                    target.payload(event),
                    trigger="event",
                    traceparent=event.traceparent,
                    hop_count=event.hopcount or 0,
                )
        return bool(records)

    async def _deliver(self, queue: str) -> bool:
        """Hand each `on_queue` function one batch per round, SQS-style, with partial batch failures."""
        delivered = False
        for spec, trigger in self._subscribers[queue]:
            lease = spec.settings.timeout + 30.0
            batch = await self.store.queues.receive(queue, max_messages=trigger.batch_size, visibility_timeout=lease)
            if not batch:
                continue
            delivered = True
            # The live consumer's batch handling; failed messages come back at once (drain() has no backoff).
            wait = min(spec.settings.timeout + 1.0, 900.0)  # async invocations may hold every slot
            await deliver_batch(self.store.queues, self.invoker, spec.name, batch, wait=wait)
        return delivered

    async def _peek(self, queue: str) -> list[Message]:
        messages = await self.store.queues.receive(queue, max_messages=10_000, visibility_timeout=60.0)
        for message in messages:
            await self.store.queues.release(queue, message.receipt)
        return messages


class SyncTestPlatform:
    """TestPlatform for tests that are not async: the same methods, each blocking until done.

        def test_quote():
            with SyncTestPlatform(app) as platform:
                assert platform.invoke("quote", {"items": 2}) == {"total": 20}

    The platform runs on an event loop in a background thread; each call
    hands its work to that loop and waits. Takes TestPlatform's options.
    """

    __test__ = False

    def __init__(self, app: App | Mapping[str, FunctionSpec], **options: Any) -> None:
        self.platform = TestPlatform(app, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SyncTestPlatform:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="triggerfish-test-platform", daemon=True)
        self._thread.start()
        self._loop = loop
        try:
            self._call(self.platform.start())
        except BaseException:
            self._shut_down()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._call(self.platform.close())
        finally:
            self._shut_down()

    def invoke(self, function: str, event: Any = None, *, wait: float = 1.0) -> Any:
        return self._call(self.platform.invoke(function, event, wait=wait))

    def invoke_async(self, function: str, event: Any = None) -> str:
        return self._call(self.platform.invoke_async(function, event))

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        return self._call(self.platform.request(method, path, **options))

    def publish(self, event: Event | Mapping[str, Any] | str, data: Any = None, **options: Any) -> str:
        return self._call(self.platform.publish(event, data, **options))

    def send(self, queue: str, body: Any, **options: Any) -> str:
        return self._call(self.platform.send(queue, body, **options))

    def publish_topic(
        self, topic: str, message: str, subject: str | None = None, attributes: Mapping[str, str] | None = None
    ) -> str:
        return self._call(self.platform.publish_topic(topic, message, subject, attributes))

    def drain(self) -> None:
        self._call(self.platform.drain())

    def advance(self, seconds: float) -> list[str]:
        return self._call(self.platform.advance(seconds))

    def invocations(self, function: str | None = None, status: str | None = None) -> list[InvocationRecord]:
        return self._call(self.platform.invocations(function, status))

    def published(self, bus: str = "default") -> list[Event]:
        return self._call(self.platform.published(bus))

    def dead_letters(self, function: str) -> list[dict[str, Any]]:
        return self._call(self.platform.dead_letters(function))

    def queue_messages(self, queue: str) -> list[Message]:
        return self._call(self.platform.queue_messages(queue))

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            work.close()
            raise InvocationError("the test platform is not running: use `with SyncTestPlatform(app) as platform:`")
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _shut_down(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()


def _body(body: Any) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("a queue message body must be UTF-8 text; base64-encode binary data") from None
        return bytes(body)
    try:
        return orjson.dumps(body)
    except TypeError as exc:
        raise InvalidInputError(f"a queue message body must be text or a JSON value: {exc}") from None
