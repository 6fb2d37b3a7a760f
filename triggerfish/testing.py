"""Unit-test a Triggerfish app in this process, on the in-memory store.

    from triggerfish.testing import TestPlatform

    async def test_order_flow():
        async with TestPlatform(app) as platform:
            assert await platform.invoke("quote", {"items": 2}) == {"total": 20}
            await platform.publish("order.placed", {"id": 1})
            await platform.drain()
            assert "ship" in [r.function for r in await platform.invocations(status="succeeded")]

The platform behaves as the real one does, because it is the real one: the
same `Platform` that `triggerfish dev` runs (its invoker, retries, dead
letters, destinations, invocation records, event bus with rules and every
kind of target, SQS-shaped queue batches, SNS-style topic fan-out, the
durable scheduler, and MQTT and AMQP streams fed by `mqtt_publish()` and
`amqp_publish()` in place of a broker). Three things differ:

- where handlers run: threads of this process (`triggerfish.runtime.inprocess`),
  not worker processes;
- the store: memory, fresh per platform (`store_url` picks another);
- time: the platform's clock starts at `start` and moves only when the test
  moves it (`advance()`) or when `drain()` waits for delayed work (a retry's
  backoff, a delayed message) to come due, so a test needs no sleeps and
  sees exactly what the platform would do when that time has passed.

The triggers do not run in the background: `drain()` moves them until nothing
is left to do. `SyncTestPlatform` offers the same for tests that are not async.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from triggerfish.app import App
from triggerfish.errors import InvalidInputError, InvocationError
from triggerfish.events.cloudevent import Event
from triggerfish.model import FunctionSpec, QueueTrigger, check_secret_name
from triggerfish.names import bus_stream, function_dead_letter_queue, queue_dead_letter_queue
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.inprocess import InProcessRunner
from triggerfish.runtime.invoke import Invoker
from triggerfish.runtime.records import InvocationRecord
from triggerfish.runtime.types import LoadedRunner, PlatformHandler
from triggerfish.secrets.keyring import Keyring, SecretsKey
from triggerfish.secrets.store import SecretStore, check_secret_value
from triggerfish.server.platform import Platform
from triggerfish.server.versions import VersionSource
from triggerfish.store import Message, QueueConfig, Store, open_store
from triggerfish.triggers.queue_config import DEFAULT_MAX_RECEIVES
from triggerfish.triggers.schedules import declared_schedules
from triggerfish.triggers.topics import Topics

if TYPE_CHECKING:
    import httpx

__all__ = ["SyncTestPlatform", "TestPlatform"]

T = TypeVar("T")

#: Rounds of routing, invoking and delivering `drain()` runs before it gives up on a loop that never ends.
MAX_DRAIN_ROUNDS = 1000
#: How far `drain()` moves the clock to run delayed work: the longest delay a queue message can have.
MAX_DRAIN_WAIT = datetime.timedelta(minutes=15)
#: Receives after which a failing queue message moves to `<queue>.dlq`, unless the queue is configured.
DEFAULT_QUEUE_MAX_RECEIVES = DEFAULT_MAX_RECEIVES
#: Seconds close() waits for the dispatcher to stop before cancelling it again.
STOP_PATIENCE = 1.0
_SOURCE = "triggerfish.testing"

logger = logging.getLogger("triggerfish.testing")


class _Clock:
    """The test platform's time, read by every part of it: it moves only when told to."""

    def __init__(self, start: datetime.datetime) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now.timestamp()


class TestPlatform:
    """An app running in-process on a fresh memory store, for unit tests.

    Use it as an async context manager. `retry_delay` is the backoff
    between attempts of a failed asynchronous invocation or queue batch (0
    by default, so retries happen at once; with a delay, `drain()` moves the
    clock on to them); `queue_max_receives` sends a queue message that keeps
    failing to `<queue>.dlq` after that many receives, for queues the test
    has not configured itself. `max_drain_rounds` bounds how long `drain()`
    follows work that causes more work before it gives up. `start` sets the
    platform's clock (see `advance()`); `store_url` picks another store, e.g.
    a SQLite file. `secrets` are the app's secrets by name, sealed and read as
    a server does: a function sees those it declares in `context.secrets`
    (handlers run in this process, so not in `os.environ`); `set_secret()` and
    `remove_secret()` change them while the platform runs.
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
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.specs: dict[str, FunctionSpec] = dict(app.functions if isinstance(app, App) else app)
        self.app_name = app.name if isinstance(app, App) else "app"
        try:
            self._secrets = {check_secret_name(k): check_secret_value(v) for k, v in (secrets or {}).items()}
        except ValueError as exc:
            raise InvalidInputError(f"TestPlatform(secrets=...): {exc}") from None
        self._secret_store: SecretStore | None = None
        # Built here so that bad values fail at once, not at `async with`.
        self._policy = RetryPolicy(base=retry_delay, ceiling=retry_delay)
        QueueConfig(max_receives=queue_max_receives, dead_letter="probe")
        if isinstance(max_drain_rounds, bool) or not isinstance(max_drain_rounds, int) or max_drain_rounds < 1:
            raise InvalidInputError(f"max_drain_rounds must be a whole number of at least 1, not {max_drain_rounds!r}")
        self._queue_max_receives = queue_max_receives
        self._max_drain_rounds = max_drain_rounds
        self._store_url = store_url
        self._store: Store | None = None
        self._platform: Platform | None = None
        self._schedules = declared_schedules(self.specs)  # a bad expression fails here, as the scheduler would
        start = start or datetime.datetime.now(datetime.UTC)
        if start.tzinfo is None:
            raise InvalidInputError("TestPlatform(start=...) needs an aware datetime, e.g. with tzinfo=datetime.UTC")
        self._clock = _Clock(start)
        self._redis_ids = 0

    @property
    def now(self) -> datetime.datetime:
        """The platform's clock: where `start` put it, moved by `advance()` and by `drain()`."""
        return self._clock.now

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> TestPlatform:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the store and start the platform (done by `async with`)."""
        if self._platform is not None:
            return
        store = await open_store(self._store_url)
        for part in (store.log, store.queues, store.kv):
            part.clock = self._clock
        try:
            for queue in sorted(
                {t.queue for s in self.specs.values() for t in s.triggers if isinstance(t, QueueTrigger)}
            ):
                if (await store.queues.config(queue)).dead_letter is None:
                    redrive = QueueConfig(
                        max_receives=self._queue_max_receives, dead_letter=queue_dead_letter_queue(queue)
                    )
                    await store.queues.configure(queue, redrive)
            # Sealed and opened as a server does, under a key made for this platform alone.
            self._secret_store = SecretStore(store.kv, Keyring((SecretsKey.generate(),), "a key made for this test"))
            for name, value in self._secrets.items():
                await self._secret_store.set(self.app_name, name, value)
            platform = Platform(
                None,
                store=store,
                loader=self._load,
                clock=self._clock,
                retry_policy=self._policy,
                secrets=self._secret_store,
                secrets_app=self.app_name,
            )
            await platform.start(VersionSource(None, 1), background=False, queue_retry_policy=self._policy)
        except BaseException:
            await store.close()
            raise
        self._store, self._platform = store, platform
        # No broker in a test: what functions publish over MQTT is kept, and reaches the app's own on_mqtt functions.
        platform.sources.mqtt_loopback = True
        # The schedules start counting from now, as a scheduler that first sees them does.
        await platform.scheduler.run_due(self.now)

    async def _load(self, source: VersionSource, platform: PlatformHandler) -> LoadedRunner:
        version = str(source.number)
        return InProcessRunner(
            self.specs, platform=platform, app_name=self.app_name, version=version, secrets=self._secret_values
        )

    async def _secret_values(self, app: str, names: tuple[str, ...]) -> Mapping[str, str]:
        assert self._secret_store is not None
        return await self._secret_store.values(app, names)

    async def set_secret(self, name: str, value: str) -> None:
        """Set (or change) the app's secret `name`, as `triggerfish secrets set` does: the next invocation sees it."""
        assert self._secret_store is not None, "start the platform first"
        await self._secret_store.set(self.app_name, name, value)

    async def remove_secret(self, name: str) -> None:
        """Remove the app's secret `name`: a function declaring it then fails with `Runtime.SecretNotSet`."""
        assert self._secret_store is not None, "start the platform first"
        await self._secret_store.remove(self.app_name, name)

    async def close(self) -> None:
        """Stop the platform and drop the store; pending work is abandoned, as a test ends."""
        platform, store = self._platform, self._store
        self._platform = self._store = None
        if platform is not None:
            stopping = asyncio.ensure_future(platform.stop(drain=False))
            while not (await asyncio.wait({stopping}, timeout=STOP_PATIENCE))[0]:
                # On Python 3.11 a cancellation that races a wake-up inside asyncio.wait_for can be lost,
                # leaving a dispatcher loop running; cancelling again reaches it through the stop.
                logger.warning("the platform did not stop within %g s; cancelling it again", STOP_PATIENCE)
                stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping
        if store is not None:
            await store.close()

    @property
    def platform(self) -> Platform:
        """The running `Platform` (the one `triggerfish dev` runs), for what the helpers below do not cover."""
        if self._platform is None:
            raise InvocationError("the test platform is not running: use `async with TestPlatform(app) as platform:`")
        return self._platform

    @property
    def store(self) -> Store:
        """The platform's store, for assertions the helpers below do not cover."""
        return self.platform.store

    @property
    def invoker(self) -> Invoker:
        return self.platform.current.invoker

    async def create_table(
        self,
        name: str,
        partition_key: str,
        sort_key: str | None = None,
        *,
        stream_view_type: str = "NEW_AND_OLD_IMAGES",
    ) -> None:
        """Make a table, as `[tables.NAME]` of triggerfish.toml would: keys "name" (a string) or "name:N" (a number).

        await platform.create_table("orders", "id")
        """
        from triggerfish.tables.schema import TableSchema
        from triggerfish.tables.table import Tables

        table = {"partition_key": partition_key, "sort_key": sort_key, "stream_view_type": stream_view_type}
        await Tables(self.store).create(TableSchema.from_config(name, table))

    @property
    def topics(self) -> Topics:
        """The platform's topics: `subscribe()` queues and webhooks to them, list `subscriptions()`."""
        return self.platform.topics

    # --- causing work ------------------------------------------------------------------------

    async def invoke(self, function: str, event: Any = None, *, wait: float = 1.0) -> Any:
        """Invoke synchronously and return the result; raises HandlerError as the real platform does."""
        return await self.platform.invoke(function, event, wait=wait)

    async def invoke_async(self, function: str, event: Any = None) -> str:
        """Queue an asynchronous invocation; it runs on `drain()`. Returns its request id."""
        return await self.platform.invoke_async(function, event)

    async def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """Send an HTTP request to the app's `http` routes and return the response.

        The request goes through the platform's gateway in this process (no
        socket), so the handler gets the API Gateway event the server would
        give it, and its result becomes the response the server would send.
        `options` are httpx's: `json=`, `content=`, `headers=`, `params=`.
        `await platform.request("POST", "/orders", json={"items": 2})`.
        """
        import httpx

        transport = httpx.ASGITransport(app=self.platform.current.gateway)
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
        """Publish an event on `bus` and route it to the rules that match. Returns the event id.

        Pass an Event, a CloudEvent as a dict, or a type and its data:
        `await platform.publish("order.placed", {"id": 1})`. The targets run on `drain()`.
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
        await self.platform.publish(bus, [built])
        while await self.platform.bus.pump(bus):
            pass
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
        text), anything else is sent as its JSON text. A delayed message
        comes due when the clock has moved that far (`drain()` moves it).
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

    async def mqtt_publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Deliver an MQTT message as the broker would: `on_mqtt` functions whose filter matches `topic` get it on
        `drain()`, in batches, in order per topic, with their stream settings. Returns how many subscriptions
        matched. A str payload is sent as its UTF-8 bytes; handlers read it base64-encoded in `data`.
        """
        from triggerfish.sources.mqtt_config import check_topic_filter

        try:
            check_topic_filter(topic)
        except ValueError as exc:
            raise InvalidInputError(f"mqtt_publish(): {exc}") from None
        if "+" in topic.split("/") or "#" in topic.split("/"):
            raise InvalidInputError(f"mqtt_publish(): {topic!r} is a filter; a message is published to a topic name")
        if not isinstance(payload, str | bytes):
            raise InvalidInputError(f"mqtt_publish() takes a str or bytes payload, not {type(payload).__name__}")
        data = payload.encode() if isinstance(payload, str) else payload
        return await self.platform.sources.inject(topic, data, arrived=self._clock(), qos=qos, retain=retain)

    async def amqp_publish(self, queue: str, body: str | bytes, *, routing_key: str = "") -> int:
        """Deliver an AMQP message to `queue` as the broker would: `on_amqp` functions consuming it get it on
        `drain()` (`routing_key` is its partition key). Returns how many subscriptions took it.
        """
        if not isinstance(body, str | bytes):
            raise InvalidInputError(f"amqp_publish() takes a str or bytes body, not {type(body).__name__}")
        if not isinstance(routing_key, str):
            raise InvalidInputError(f"amqp_publish() takes a str routing_key, not {routing_key!r}")
        data = body.encode() if isinstance(body, str) else body
        return await self.platform.sources.inject_amqp(queue, data, arrived=self._clock(), routing_key=routing_key)

    def amqp_dead_lettered(self, exchange: str) -> list[bytes]:
        """The bodies of AMQP messages given up on and dead-lettered to `exchange`
        (`@app.on_amqp(dead_letter_exchange=)`), in order."""
        lettered = self.platform.sources.amqp_dead_lettered
        return [base64.b64decode(record["amqp"]["data"]) for name, record, _ in lettered if name == exchange]

    async def nats_publish(self, subject: str, data: str | bytes) -> int:
        """Deliver a JetStream message on `subject` as the server would: matching `on_nats` functions get it on
        `drain()`, in order per subject. Returns how many subscriptions matched."""
        from triggerfish.streams.declare import check_nats_subject

        try:
            check_nats_subject(subject)
        except ValueError as exc:
            raise InvalidInputError(f"nats_publish(): {exc}") from None
        if "*" in subject.split(".") or subject.endswith(".>") or subject == ">":
            raise InvalidInputError(f"nats_publish(): {subject!r} is a filter; a message is published to a subject")
        if not isinstance(data, str | bytes):
            raise InvalidInputError(f"nats_publish() takes str or bytes data, not {type(data).__name__}")
        payload = data.encode() if isinstance(data, str) else data
        return await self.platform.sources.inject_nats(subject, payload, arrived=self._clock())

    async def redis_xadd(self, stream: str, fields: Mapping[str, str]) -> int:
        """Add an entry to a Redis stream as XADD would: its `on_redis_stream` functions get it on `drain()`
        (the fields as a JSON object, or the single field `data` as it is). Returns how many functions read it."""
        if not isinstance(fields, Mapping) or not fields or not all(isinstance(v, str) for v in fields.values()):
            raise InvalidInputError("redis_xadd() takes a non-empty mapping of field names to strings")
        self._redis_ids += 1
        payload = fields["data"].encode() if list(fields) == ["data"] else orjson.dumps(dict(fields))
        entry = f"{int(self._clock() * 1000)}-{self._redis_ids}"
        return await self.platform.sources.inject_redis(stream, payload, arrived=self._clock(), entry_id=entry)

    def mqtt_messages(self, topic_filter: str = "#") -> list[tuple[str, bytes]]:
        """What functions published with `context.mqtt.publish` to topics matching `topic_filter`, in order."""
        from triggerfish.sources.mqtt_config import topic_matches

        published = self.platform.sources.mqtt_published
        return [(topic, payload) for topic, payload, _, _ in published if topic_matches(topic_filter, topic)]

    async def stream_put(self, stream: str, data: Any, *, key: str | None = None) -> dict[str, Any]:
        """Put a record into a built-in stream, as `context.streams.put` does: `on_stream` functions get it on
        `drain()`, in batches, in order per partition key. Returns its partition and sequence number.
        """
        [placed] = await self.platform.sources.partitioned.put(stream, [(data, key)])
        return placed

    async def drain(self) -> None:
        """Run all the work that is due, and the work it causes, until none is left.

        That is: route published events (the test's and the functions') to
        their rules' targets, run queued asynchronous invocations with their
        retries and destinations, deliver queue messages to `on_queue`
        functions, and fan topic messages out to their subscriptions. Work
        that is delayed (a retry's backoff, a delayed message) is waited for
        by moving the clock to it, up to 15 minutes on; schedules that fall due
        on the way fire. Raises InvocationError if the work never settles (a
        loop the hop limit does not stop), naming how many rounds ran.
        """
        horizon = self.now + MAX_DRAIN_WAIT
        await self._settle()
        while (delayed := await self._next_delayed()) is not None and delayed <= horizon:
            await self._pass_time(delayed)

    async def advance(self, seconds: float) -> list[str]:
        """Move the clock forward and run everything that falls due on the way, in time order.

        Each `schedule` trigger fires once per occurrence in the window, with
        the EventBridge "Scheduled Event" Lambda delivers, and delayed work
        runs when its time comes; what each moment causes is drained before
        the clock moves on. Returns the request ids of the scheduled
        invocations, in firing order.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < 1e10:
            raise InvalidInputError(f"advance() takes a number of seconds from 0, not {seconds!r}")
        end = self.now + datetime.timedelta(seconds=seconds)
        await self._settle()
        fired = await self._pass_time(end)
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
        events: list[Event] = []
        after = 0
        while batch := await self.store.log.read(bus_stream(bus), after=after, limit=1000):
            events.extend(Event.from_json(record.data) for record in batch)
            after = batch[-1].offset
        return events

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

    async def _settle(self) -> None:
        """Run what is due now, and what it causes, until nothing more is (the clock stands still)."""
        platform = self.platform
        for _ in range(self._max_drain_rounds):
            await self.invoker.drain(delayed=False)
            if not await platform.run_due():
                return
        raise InvocationError(
            f"drain() did not settle after {self._max_drain_rounds} rounds: functions keep causing new work;"
            " look for an event or message loop"
        )

    async def _pass_time(self, end: datetime.datetime) -> list[str]:
        """Move the clock to `end`, stopping at each delayed message and schedule occurrence on the way."""
        fired: list[str] = []
        while True:
            moments = [self._next_occurrence(), await self._next_delayed()]
            due = [moment for moment in moments if moment is not None and moment <= end]
            if not due:
                break
            self._clock.now = max(self.now, min(due))
            fired += await self.platform.scheduler.run_due(self.now)
            await self._settle()
        self._clock.now = max(self.now, end)
        await self._settle()
        return fired

    def _next_occurrence(self) -> datetime.datetime | None:
        upcoming = [moment for s in self._schedules if (moment := s.schedule.next_after(self.now)) is not None]
        return min(upcoming, default=None)

    async def _next_delayed(self) -> datetime.datetime | None:
        """When the next delayed message of any queue comes due, if one is delayed."""
        queues = self.store.queues
        times = [
            stats.next_visible_at
            for queue in await queues.queues()
            if (stats := await queues.stats(queue)).next_visible_at is not None
        ]
        if not times:
            return None
        moment = datetime.datetime.fromtimestamp(min(times), datetime.UTC)
        # A datetime keeps microseconds: never stop a hair short of the moment the message is visible.
        return moment if moment.timestamp() >= min(times) else moment + datetime.timedelta(microseconds=1)

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

    def create_table(self, name: str, partition_key: str, sort_key: str | None = None, **options: Any) -> None:
        self._call(self.platform.create_table(name, partition_key, sort_key, **options))

    def invoke_async(self, function: str, event: Any = None) -> str:
        return self._call(self.platform.invoke_async(function, event))

    def set_secret(self, name: str, value: str) -> None:
        self._call(self.platform.set_secret(name, value))

    def remove_secret(self, name: str) -> None:
        self._call(self.platform.remove_secret(name))

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

    def amqp_publish(self, queue: str, body: str | bytes, **options: Any) -> int:
        return self._call(self.platform.amqp_publish(queue, body, **options))

    def mqtt_publish(self, topic: str, payload: str | bytes, **options: Any) -> int:
        return self._call(self.platform.mqtt_publish(topic, payload, **options))

    def stream_put(self, stream: str, data: Any, *, key: str | None = None) -> dict[str, Any]:
        return self._call(self.platform.stream_put(stream, data, key=key))

    def mqtt_messages(self, topic_filter: str = "#") -> list[tuple[str, bytes]]:
        return self.platform.mqtt_messages(topic_filter)

    def nats_publish(self, subject: str, data: str | bytes) -> int:
        return self._call(self.platform.nats_publish(subject, data))

    def redis_xadd(self, stream: str, fields: Mapping[str, str]) -> int:
        return self._call(self.platform.redis_xadd(stream, fields))

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
