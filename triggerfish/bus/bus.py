"""The event bus: durable publish, and the consumer that turns each bus's log into deliveries.

A bus is the log stream `bus.<name>` (what `context.publish` appends to as
well). `EventBus.publish()` appends and returns the ids only once the append
is durable.

Each bus has one consumer at a time, across every server on the store: it
holds a leased lock in the key-value records (`triggerfish.bus`,
`lock/<bus>`, renewed while it runs, taken over by another server when it
lapses). The consumer reads the log from its checkpoint (`checkpoint/<bus>`),
matches each event against the bus's rules, makes one delivery per matched
target durable (a function target's asynchronous invocation is queued at
once; other targets get a message on `deliver.<bus>`, see delivery.py), and
only then moves the checkpoint, by compare-and-set
so that a consumer that lost its lock cannot move it. A crash anywhere
re-reads from the old checkpoint: every event is delivered at least once.

    bus = EventBus(store, Rules(store, app.functions), invoker=invoker)
    await bus.start()
    ids = await bus.publish("default", [Event.create("OrderPlaced", "shop")])
    ...
    await bus.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import httpx
import orjson

from triggerfish.bus.delivery import LEASE, Deliverer, Delivery
from triggerfish.bus.rules import Rules
from triggerfish.bus.targets import AsyncInvoker, Targets
from triggerfish.errors import InvalidEventError, InvalidInputError
from triggerfish.events.cloudevent import Event
from triggerfish.runtime.platform_calls import bus_stream
from triggerfish.store import ABSENT, KVRecord, LogRecord, Store
from triggerfish.store.base import check_name

logger = logging.getLogger("triggerfish.bus")

#: Key-value namespace of the bus's own records: locks and checkpoints.
BUS_NAMESPACE = "triggerfish.bus"
#: Most events one publish call takes (EventBridge's PutEvents takes 10; a batch of the HTTP binding more).
MAX_PUBLISH_BATCH = 1000


class EventBus:
    """Publishes events durably and routes them to rule targets, at least once.

    `lock_ttl` is how long a consumer's lock lasts without renewal: another
    server takes over a bus that long after its consumer died. `lease` is how
    long a delivery in progress is hidden from other workers; a delivery
    whose worker died comes back after it. Running in the background, the
    bus reads the run-time rules again every `rules_refresh` seconds, so a
    rule another server added takes effect here too.
    """

    def __init__(
        self,
        store: Store,
        rules: Rules,
        *,
        invoker: AsyncInvoker | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        lock_ttl: float = 10.0,
        batch_size: int = 256,
        lease: float = LEASE,
        rules_refresh: float = 5.0,
    ) -> None:
        self.store = store
        self.rules = rules
        self.clock = clock
        self.lock_ttl = lock_ttl
        self.batch_size = batch_size
        self.rules_refresh = rules_refresh
        self.owner = uuid.uuid4().hex
        self.targets = Targets(store, invoker=invoker, publish=self.publish, http=http)
        self.deliverer = Deliverer(store, self.targets, clock=clock, lease=lease)
        self._locks: dict[str, tuple[KVRecord, float]] = {}
        self._checkpoints: dict[str, KVRecord | None] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- publishing ------------------------------------------------------------------------------

    async def publish(self, bus: str, events: Sequence[Event]) -> list[str]:
        """Append `events` to `bus` (all or none) and return their ids once they are durable.

        Raises InvalidInputError for a bad bus name or batch, InvalidEventError
        for an event that is not an Event; nothing is stored then.
        """
        check_name("bus", bus)
        if isinstance(events, (Event, str, bytes)) or not isinstance(events, Sequence):
            raise InvalidInputError("publish takes a list of events")
        if len(events) > MAX_PUBLISH_BATCH:
            raise InvalidInputError(f"publish takes at most {MAX_PUBLISH_BATCH} events at once, not {len(events)}")
        bodies = []
        for index, event in enumerate(events):
            if not isinstance(event, Event):
                raise InvalidEventError(f"events[{index}]", f"must be an Event, not {type(event).__name__}")
            bodies.append(event.to_json())
        await self.store.log.append_many(bus_stream(bus), bodies)
        return [event.id for event in events]

    # --- consuming ---------------------------------------------------------------------------

    async def buses(self) -> list[str]:
        """Every bus with rules or with events in the log."""
        logged = [s.removeprefix("bus.") for s in await self.store.log.streams() if s.startswith("bus.")]
        return sorted({*self.rules.buses(), *logged})

    async def acquire(self, bus: str) -> bool:
        """Take or renew this server's lock on consuming `bus`; False when another server holds it.

        A lock taken less than a third of `lock_ttl` ago is not written again:
        renewing on every pump would cost a durable write per batch.
        """
        key = f"lock/{bus}"
        held = self._locks.get(bus)
        if held is not None:
            record, renewed_at = held
            if time.monotonic() - renewed_at < self.lock_ttl / 3:
                return True
            renewed = await self.store.kv.put(
                BUS_NAMESPACE, key, self.owner.encode(), ttl=self.lock_ttl, if_version=record.version
            )
            if renewed is not None:
                self._locks[bus] = (renewed, time.monotonic())
                return True
            self._lose(bus)
        taken = await self.store.kv.put(BUS_NAMESPACE, key, self.owner.encode(), ttl=self.lock_ttl, if_version=ABSENT)
        if taken is None:
            return False
        self._locks[bus] = (taken, time.monotonic())
        return True

    def _lose(self, bus: str) -> None:
        self._locks.pop(bus, None)
        self._checkpoints.pop(bus, None)

    async def checkpoint(self, bus: str) -> int:
        """The offset of the last event of `bus` whose deliveries are all queued."""
        record = await self.store.kv.get(BUS_NAMESPACE, f"checkpoint/{bus}")
        return 0 if record is None else int(record.value)

    async def pump(self, bus: str, *, wait: float = 0.0) -> int:
        """Consume what is new on `bus` once: queue its deliveries, then move the checkpoint.

        Returns how many events were consumed (0 also when another server holds the bus).
        """
        if not await self.acquire(bus):
            return 0
        key = f"checkpoint/{bus}"
        if bus in self._checkpoints:
            current = self._checkpoints[bus]  # ours while we hold the lock; the compare-and-set below checks it
        else:
            current = self._checkpoints[bus] = await self.store.kv.get(BUS_NAMESPACE, key)
        after = 0 if current is None else int(current.value)
        records = await self.store.log.read(bus_stream(bus), after=after, limit=self.batch_size, wait=wait)
        if not records:
            return 0
        await self._hand_over(self._deliveries(bus, records))
        moved = await self.store.kv.put(
            BUS_NAMESPACE,
            key,
            str(records[-1].offset).encode(),
            if_version=ABSENT if current is None else current.version,
        )
        if moved is None:
            # Another consumer moved it: our lock lapsed. Its deliveries and ours overlap; at least once holds.
            self._lose(bus)
            logger.warning("bus %r: the checkpoint moved under this consumer; giving the bus up", bus)
        else:
            self._checkpoints[bus] = moved
        return len(records)

    async def _hand_over(self, deliveries: list[Delivery]) -> None:
        """Make every delivery durable: function targets invoked at once, the rest (and failures) queued."""
        direct = [d for d in deliveries if d.target.kind == "function" and self.targets.invoker is not None]
        queued = [d for d in deliveries if d.target.kind != "function" or self.targets.invoker is None]
        # Queuing an asynchronous invocation is itself durable, and the invocation has its own retries,
        # as EventBridge hands events to Lambda: the detour through `deliver.<bus>` would only add latency.
        invoked = await asyncio.gather(*(self._invoke(d) for d in direct))
        queued += [delivery for delivery, ok in zip(direct, invoked, strict=True) if not ok]
        await self.deliverer.enqueue(queued)

    async def _invoke(self, delivery: Delivery) -> bool:
        try:
            await self.targets.deliver(
                delivery.target, delivery.event, bus=delivery.bus, rule_id=delivery.rule_id, ingested=delivery.ingested
            )
        except Exception as exc:
            # The delivery queue retries it under the target's policy, or dead-letters it.
            logger.info("bus %r: invoking %r failed, queued for retry: %s", delivery.bus, delivery.target.name, exc)
            return False
        return True

    def _deliveries(self, bus: str, records: list[LogRecord]) -> list[Delivery]:
        now = self.clock()
        deliveries = []
        for record in records:
            try:
                document = orjson.loads(record.data)
                event = Event.from_dict(document)
            except ValueError as exc:
                logger.error("bus %r: skipped unreadable record at offset %d: %s", bus, record.offset, exc)
                continue
            for rule in self.rules.matching(bus, document):
                for target in rule.targets:
                    deliveries.append(Delivery(bus, rule.id, target, event, queued_at=now, ingested=record.time))
        return deliveries

    async def drain(self, *, rounds: int = 100) -> None:
        """Consume every bus and deliver everything due now, until nothing is left (for tests and scripts).

        Deliveries waiting for a retry's backoff are not waited for.
        """
        for _ in range(rounds):
            progressed = 0
            for bus in await self.buses():
                while await self.pump(bus):
                    progressed += 1
                while await self.deliverer.run_once(bus):
                    progressed += 1
            if not progressed:
                return

    # --- running -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Run a consumer and a delivery worker for every bus, in the background, until `stop()`."""
        await self.rules.load()
        self._stop.clear()
        self._tasks.append(asyncio.create_task(self._supervise()))

    async def stop(self) -> None:
        """Stop the background work, release the locks, close the HTTP client."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for bus, (held, _) in list(self._locks.items()):
            with contextlib.suppress(Exception):
                await self.store.kv.delete(BUS_NAMESPACE, f"lock/{bus}", if_version=held.version)
        self._locks.clear()
        self._checkpoints.clear()
        await self.targets.close()

    async def _supervise(self) -> None:
        running: dict[str, list[asyncio.Task[None]]] = {}
        loaded = time.monotonic()
        try:
            while not self._stop.is_set():
                if time.monotonic() - loaded >= self.rules_refresh:
                    loaded = time.monotonic()
                    try:
                        await self.rules.load()
                    except Exception:
                        logger.exception("could not read the bus rules again; keeping the ones loaded")
                for bus in await self.buses():
                    if bus not in running:
                        running[bus] = [
                            asyncio.create_task(self._consume(bus)),
                            asyncio.create_task(self.deliverer.run(bus, self._stop)),
                        ]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, self.rules_refresh)):
                        await self._stop.wait()
        finally:
            tasks = [task for group in running.values() for task in group]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self, bus: str) -> None:
        while not self._stop.is_set():
            try:
                if await self.acquire(bus):
                    await self.pump(bus, wait=min(1.0, self.lock_ttl / 3))
                else:
                    await asyncio.sleep(self.lock_ttl / 3)
            except Exception:
                logger.exception("bus %r: the consumer failed; trying again in 1 s", bus)
                await asyncio.sleep(1.0)
