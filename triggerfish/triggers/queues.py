"""`@app.on_queue` as a live consumer: SQS-shaped batches, partial failures, dead letters, FIFO groups.

    triggers = QueueTriggers(store, invoker, specs, queue_settings=config.queue_settings(stage))
    await triggers.start()            # configure the queues, start one poller per subscription
    await triggers.update(new_specs)  # hot reload: changed subscriptions restart, nothing is lost
    await triggers.stop()             # batches already handed over finish; the rest stays queued

Each (function, queue) subscription has a poller that long-polls the store,
gathers up to `batch_size` messages for up to `batch_window` seconds (AWS
Lambda's batching), and invokes the function synchronously with SQS records,
up to the function's `concurrency` batches at once. `deliver_batch` settles a
batch (the one place that logic lives; `triggerfish.testing` calls it too):
success acknowledges it, `batchItemFailures` releases only those messages,
an error releases all of them after a backoff. The store moves a message to
the dead-letter queue on the receive after its queue's `max_receives`, and
keeps one message of a FIFO group leased at a time, which is what keeps order
per group. Leases are the queue's visibility timeout, extended while a batch
is gathered or runs, so a consumer that dies gives its messages back one
visibility timeout later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from triggerfish.errors import DeclarationError, InvalidInputError, InvocationError
from triggerfish.events.shapes import partial_batch_failures, sqs_record
from triggerfish.model import FunctionSpec, QueueTrigger
from triggerfish.names import FUNCTION_QUEUE_PREFIX, HOPCOUNT_ATTRIBUTE, TRACEPARENT_ATTRIBUTE, queue_dead_letter_queue
from triggerfish.retry import RetryPolicy
from triggerfish.store import Message, Queues, Store
from triggerfish.triggers.queue_config import DEFAULT_MAX_RECEIVES, queue_configs

__all__ = ["BatchOutcome", "QueueInvoker", "QueueTriggers", "deliver_batch"]

logger = logging.getLogger("triggerfish.queues")

#: How long one receive waits for messages before the poller checks whether it should stop.
RECEIVE_WAIT = 0.5
#: Gathering stops at this many bytes of bodies: Lambda's limit for a synchronous invocation's event.
MAX_BATCH_BYTES = 6 * 1024 * 1024
#: The wait before a failed batch's messages come back: about 1 s after the first receive, doubling up to 60 s.
DEFAULT_RETRY_POLICY = RetryPolicy(base=1.0, multiplier=2.0, ceiling=60.0)


class QueueInvoker(Protocol):
    """What the consumer invokes through: `triggerfish.runtime.invoke.Invoker.invoke`'s signature."""

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
    ) -> Any: ...


# --- one batch -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """How a batch was settled: the message ids acknowledged and released, and why all failed if they did."""

    acked: tuple[str, ...]
    failed: tuple[str, ...]
    error: str | None = None


async def deliver_batch(
    queues: Queues,
    invoker: QueueInvoker,
    function: str,
    batch: Sequence[Message],
    *,
    wait: float,
    retry_delay: Callable[[Message], float] = lambda message: 0.0,
) -> BatchOutcome:
    """Invoke `function` on a leased batch (SQS records) and settle every message of it.

    The messages carry the trace and hop count of the function that sent them;
    the invocation continues both. A handler result with `batchItemFailures`
    fails only those; an invocation error (raised, timed out, throttled after
    `wait` seconds for a slot) fails all. Failed messages are released, visible
    again after `retry_delay(message)` seconds; the rest are acknowledged. A
    message whose body is not UTF-8 text cannot be an SQS record: it fails
    without being shown to the handler, until the queue dead-letters it.
    """
    if not batch:
        return BatchOutcome((), ())
    records: list[dict[str, Any]] = []
    readable: list[Message] = []
    failed: set[str] = set()
    error: str | None = None
    for message in batch:
        try:
            records.append(sqs_record(message))
        except InvalidInputError as exc:
            logger.error("%s; it goes to the dead-letter queue after its queue's max receives", exc)
            failed.add(message.message_id)
        else:
            readable.append(message)
    ids = [m.message_id for m in readable]
    if readable:
        hops = max((_int(m.attributes.get(HOPCOUNT_ATTRIBUTE)) for m in readable), default=0)
        # The first message's trace goes on; the others' are span links (OpenTelemetry's batch processing).
        traceparents = [m.attributes[TRACEPARENT_ATTRIBUTE] for m in readable if TRACEPARENT_ATTRIBUTE in m.attributes]
        traceparent = traceparents[0] if traceparents else None
        links = list(dict.fromkeys(traceparents[1:]))
        try:
            result = await invoker.invoke(
                function,
                {"Records": records},
                wait=wait,
                trigger="queue",
                traceparent=traceparent,
                hop_count=hops,
                links=links,
            )
        except InvocationError as exc:
            failed.update(ids)
            error = str(exc)
        else:
            failed.update(partial_batch_failures(result, ids))
    queue = batch[0].queue
    acked = [m for m in batch if m.message_id not in failed]
    for message, done in zip(acked, await queues.ack_many(queue, [m.receipt for m in acked]), strict=True):
        if not done:
            logger.warning("message %s of %s was acknowledged after its lease ended", message.message_id, queue)
    released = [m for m in batch if m.message_id in failed]
    delays: dict[int, float] = {}  # one (jittered) delay per receive count, so a batch comes back in its order
    for message in released:
        delay = delays.setdefault(message.receive_count, retry_delay(message))
        if not await queues.release(queue, message.receipt, delay=delay):
            logger.warning(
                "message %s of %s failed after its lease ended; it is visible already", message.message_id, queue
            )
    return BatchOutcome(tuple(m.message_id for m in acked), tuple(m.message_id for m in released), error)


def _int(text: str | None) -> int:
    return int(text) if text is not None and text.isdigit() else 0


# --- the consumer ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Subscription:
    """What a poller runs on; a poller restarts on update() only if this changed."""

    function: str
    queue: str
    batch_size: int
    batch_window: float
    timeout: float
    concurrency: int
    lease: float = 0.0


def _subscriptions(specs: Mapping[str, FunctionSpec]) -> list[_Subscription]:
    found: dict[tuple[str, str], _Subscription] = {}
    for spec in specs.values():
        for trigger in spec.triggers:
            if not isinstance(trigger, QueueTrigger):
                continue
            if trigger.queue.startswith(FUNCTION_QUEUE_PREFIX):
                raise DeclarationError(
                    f"function {spec.name!r}: @app.on_queue({trigger.queue!r}): queues named fn.* hold the"
                    " platform's asynchronous invocations; choose a name that does not start with 'fn.'"
                )
            if (spec.name, trigger.queue) in found:
                raise DeclarationError(
                    f"function {spec.name!r}: @app.on_queue({trigger.queue!r}) is declared twice; keep one"
                )
            found[(spec.name, trigger.queue)] = _Subscription(
                spec.name,
                trigger.queue,
                trigger.batch_size,
                trigger.batch_window,
                spec.settings.timeout,
                spec.settings.concurrency,
            )
    return list(found.values())


class QueueTriggers:
    """The background consumer of every `@app.on_queue` subscription of one app. See the module docstring.

    `invoker` is the app's `Invoker` or anything with its `invoke` (the
    server passes a proxy to the current version). `queue_settings` are the
    `[queues.NAME]` tables of triggerfish.toml (`ProjectConfig.queue_settings()`),
    applied to the store at start; a subscribed queue without a table gets
    `max_receives` 3 and `<queue>.dlq` unless the store already has a
    dead-letter queue for it. `retry_policy` sets how long a failed message
    stays hidden before its next receive (by receive count). Raises
    DeclarationError for a bad table or subscription, before anything runs.
    """

    def __init__(
        self,
        store: Store,
        invoker: QueueInvoker,
        specs: Mapping[str, FunctionSpec],
        *,
        queue_settings: Mapping[str, Mapping[str, Any]] | None = None,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        receive_wait: float = RECEIVE_WAIT,
    ) -> None:
        if isinstance(receive_wait, bool) or not isinstance(receive_wait, int | float) or not 0 < receive_wait <= 20:
            raise InvalidInputError(f"receive_wait must be from more than 0 to 20 seconds, not {receive_wait!r}")
        self.store = store
        self.invoker = invoker
        self.retry_policy = retry_policy
        self.receive_wait = float(receive_wait)
        self._settings = {name: dict(table) for name, table in (queue_settings or {}).items()}
        self._wanted = _subscriptions(specs)
        self._configs = queue_configs(self._settings, [s.queue for s in self._wanted])
        self._pollers: dict[tuple[str, str], _Poller] = {}
        #: Pollers that stopped receiving and still finish their batches.
        self._retiring: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.running = False

    def subscriptions(self) -> list[tuple[str, str]]:
        """The (function, queue) pairs being consumed."""
        return sorted(self._pollers)

    async def start(self) -> None:
        """Configure the queues and start a poller per subscription."""
        async with self._lock:
            if not self.running:
                await self._apply()
                self.running = True

    async def update(
        self, specs: Mapping[str, FunctionSpec], queue_settings: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        """Switch to a new app version's subscriptions (and queue tables; None keeps the current ones).

        Checked first: a DeclarationError leaves everything as it was. Pollers
        whose subscription is unchanged keep running; the others stop
        receiving before their replacements start (once this returns, only the
        new subscriptions receive) and finish their batches in the background.
        """
        settings = self._settings if queue_settings is None else {n: dict(t) for n, t in queue_settings.items()}
        wanted = _subscriptions(specs)
        configs = queue_configs(settings, [s.queue for s in wanted])
        async with self._lock:
            self._settings, self._wanted, self._configs = settings, wanted, configs
            if self.running:
                await self._apply()

    async def stop(self) -> None:
        """Stop receiving; batches already handed to a function finish. Every other message stays queued."""
        async with self._lock:
            self.running = False
            await self._retire(list(self._pollers.values()))
            self._pollers = {}
            while self._retiring:
                await asyncio.gather(*self._retiring, return_exceptions=True)

    async def deliver_due(self) -> int:
        """Receive and run one batch per subscription, here and now, with no pollers; how many messages ran.

        What `triggerfish.testing`'s drain() calls instead of running the pollers in the background: the same
        configuration, batch handling, partial failures and retry delays. Use it on a stopped QueueTriggers.
        """
        async with self._lock:
            if self.running:
                raise InvalidInputError("deliver_due() runs batches of a stopped QueueTriggers; this one is running")
            subs = await self._configure()
        delivered = 0
        for sub in subs.values():
            batch = await self.store.queues.receive(
                sub.queue, max_messages=sub.batch_size, visibility_timeout=sub.lease
            )
            if batch:
                delivered += len(batch)
                await deliver_batch(
                    self.store.queues,
                    self.invoker,
                    sub.function,
                    batch,
                    wait=min(sub.timeout + 1.0, 900.0),
                    retry_delay=lambda message: self.retry_policy.backoff(max(message.receive_count, 1)),
                )
        return delivered

    async def _configure(self) -> dict[tuple[str, str], _Subscription]:
        """Give the queues their tables (and subscribed queues a dead-letter queue); the subscriptions to run."""
        queues = self.store.queues
        for name, config in self._configs.items():
            if await queues.config(name) != config:
                await queues.configure(name, config)
        subs: dict[tuple[str, str], _Subscription] = {}
        for sub in self._wanted:
            current = await queues.config(sub.queue)
            if sub.queue not in self._configs and current.dead_letter is None:
                current = replace(
                    current, max_receives=DEFAULT_MAX_RECEIVES, dead_letter=queue_dead_letter_queue(sub.queue)
                )
                await queues.configure(sub.queue, current)
            subs[(sub.function, sub.queue)] = replace(sub, lease=current.visibility_timeout)
        return subs

    async def _apply(self) -> None:
        subs = await self._configure()
        changed = [poller for key, poller in self._pollers.items() if subs.get(key) != poller.sub]
        await self._retire(changed)
        for poller in changed:
            del self._pollers[(poller.sub.function, poller.sub.queue)]
        slots = {poller.sub.function: poller.slots for poller in self._pollers.values()}
        for key, sub in subs.items():
            if key not in self._pollers:
                self._pollers[key] = _Poller(self, sub, slots.setdefault(sub.function, _Slots(sub.concurrency)))

    async def _retire(self, pollers: list[_Poller]) -> None:
        for poller in pollers:
            poller.stop()
        await asyncio.gather(*(poller.receiving for poller in pollers), return_exceptions=True)
        for poller in pollers:
            task = asyncio.ensure_future(poller.finished())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)


class _Slots:
    """A function's `concurrency`, shared by its pollers; a wait for a slot ends early when the poller stops."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._changed = asyncio.Event()

    async def take(self, poller: _Poller) -> bool:
        while self.free <= 0 and not poller.stopping:
            self._changed.clear()
            await self._changed.wait()
        if poller.stopping:
            return False
        self.free -= 1
        return True

    def give(self) -> None:
        self.free += 1
        self.poke()

    def poke(self) -> None:
        self._changed.set()


class _Poller:
    """Receives one subscription's batches and runs them, holding their leases until they are settled."""

    def __init__(self, owner: QueueTriggers, sub: _Subscription, slots: _Slots) -> None:
        self.owner = owner
        self.sub = sub
        self.slots = slots
        self.stopping = False
        #: Leased messages by receipt, with when (monotonic) the lease ends.
        self.held: dict[str, tuple[Message, float]] = {}
        self.batches: set[asyncio.Task[None]] = set()
        self.keeper = asyncio.create_task(self._keep_leases())
        self.receiving = asyncio.create_task(self._run(), name=f"triggerfish-queue:{sub.queue}:{sub.function}")

    def stop(self) -> None:
        self.stopping = True
        self.slots.poke()

    async def finished(self) -> None:
        await self.receiving
        while self.batches:
            await asyncio.gather(*self.batches, return_exceptions=True)
        self.keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.keeper

    async def _run(self) -> None:
        # A slot first: messages leased before one is free would only wait, their leases ticking.
        while await self.slots.take(self):
            try:
                batch = await self._gather()
            except Exception:
                logger.exception("receiving from %s for %s failed; trying again", self.sub.queue, self.sub.function)
                batch = []
                await asyncio.sleep(self.owner.receive_wait)
            if not batch:
                self.slots.give()
                continue
            task = asyncio.create_task(self._settle(batch))
            self.batches.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.batches.discard(task)
        self.slots.give()

    async def _gather(self) -> list[Message]:
        """One batch: what the first receive brings, topped up until full, too large or the window closes.

        A stop closes the window early: what is gathered is handed over, since handing it back would
        count a receive against the queue's `max_receives` for nothing.
        """
        sub = self.sub
        batch = await self._receive(sub.batch_size, self.owner.receive_wait)
        deadline = time.monotonic() + sub.batch_window
        size = sum(len(m.body) for m in batch)
        while batch and len(batch) < sub.batch_size and size < MAX_BATCH_BYTES and not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = await self._receive(sub.batch_size - len(batch), min(remaining, self.owner.receive_wait))
            batch.extend(more)
            size += sum(len(m.body) for m in more)
        return batch

    async def _receive(self, count: int, wait: float) -> list[Message]:
        messages = await self.owner.store.queues.receive(
            self.sub.queue, max_messages=count, visibility_timeout=self.sub.lease, wait=wait
        )
        ends = time.monotonic() + self.sub.lease
        for message in messages:
            self.held[message.receipt] = (message, ends)
        return messages

    async def _settle(self, batch: list[Message]) -> None:
        owner, sub = self.owner, self.sub
        try:
            outcome = await deliver_batch(
                owner.store.queues,
                owner.invoker,
                sub.function,
                batch,
                wait=min(sub.timeout + 1.0, 900.0),  # asynchronous invocations may hold every slot for a while
                retry_delay=lambda message: owner.retry_policy.backoff(max(message.receive_count, 1)),
            )
            if outcome.error is not None:
                logger.warning("%s on %s: a batch of %d failed: %s", sub.function, sub.queue, len(batch), outcome.error)
        except Exception:
            # Left leased: the messages come back when their leases end.
            logger.exception("settling a batch of %s on %s failed", sub.function, sub.queue)
        finally:
            for message in batch:
                self.held.pop(message.receipt, None)

    async def _keep_leases(self) -> None:
        """Extend leases that would end before their batch is settled (a long window, a slow handler)."""
        queues, lease = self.owner.store.queues, self.sub.lease
        while True:
            await asyncio.sleep(lease / 3)
            soon = time.monotonic() + lease / 2
            for receipt, (message, ends) in list(self.held.items()):
                if ends >= soon or receipt not in self.held:
                    continue
                try:
                    extended = await queues.extend(message.queue, receipt, lease)
                    if extended and receipt in self.held:  # not settled while the extension was written
                        self.held[receipt] = (message, time.monotonic() + lease)
                except Exception:
                    logger.exception("extending the lease of message %s failed", message.message_id)
