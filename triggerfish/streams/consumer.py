"""Stream consumers: each partition of a source read in order, one batch at a time, checkpointed after success.

    consumers = StreamConsumers(store, platform, publisher, app="home", node="host-1")
    await consumers.update([subscription, ...])   # start, restart or stop partition readers
    await consumers.stop()                        # batches running finish; the rest stays stored

A source (`triggerfish.sources.mqtt`) appends every message to the partition
stream its key hashes to (`source.<kind>.<function>.<n>`). Here one task per
partition reads it through the log's consumer groups: it claims up to
`batch_size` records, tops the batch up with further claims until
`batch_window` closes, runs it (`streams.batches.run_batch`: retries, bisect,
partial failures, record age, failure destination) and commits the claims in
order, which moves the partition's checkpoint. Nothing newer runs before a
batch is settled, so records with one key are handled in order, and a
failing batch holds up only its own partition.

One node at a time reads a partition: ownership is a leased key-value record
(`triggerfish.streams`) renewed while the node works. A node that takes a
partition seeks the group to its checkpoint, which drops claims a dead
owner left, so reading starts again right after the last committed record
(at least once: a batch the dead owner ran but did not commit runs again).
A node restarted under the same node name takes its partitions back at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from triggerfish.bus.publisher import Publisher
from triggerfish.errors import InvalidInputError, InvocationError
from triggerfish.events.cloudevent import Event
from triggerfish.events.patterns import compile_pattern
from triggerfish.model import Destination
from triggerfish.names import SOURCE_GROUP, STREAMS_NAMESPACE, source_stream
from triggerfish.retry import RetryPolicy
from triggerfish.store import ABSENT, LogClaim, Store
from triggerfish.streams.batches import Attempt, BatchOptions, GivenUp, Invoke, Item, run_batch
from triggerfish.streams.failures import BatchContext, failure_record, send_failure
from triggerfish.streams.iot_rules import compile_rule
from triggerfish.streams.records import decode_record, lambda_record, offset_of, partition_id
from triggerfish.streams.windows import WindowState, returned_state, split_by_window, window_event

logger = logging.getLogger("triggerfish.streams")

#: Seconds a claimed range stays leased between renewals (renewed every third of it while a batch runs).
CLAIM_LEASE = 30.0
#: Seconds a node's hold on a partition outlives its last renewal.
OWNERSHIP_TTL = 15.0
#: How long one claim waits for a record before the reader checks whether it should stop.
CLAIM_WAIT = 0.5
#: Waits between retries of a failing batch: 1 s, doubling up to a minute (jittered).
DEFAULT_RETRY_POLICY = RetryPolicy(base=1.0, multiplier=2.0, ceiling=60.0)


class _Stopped(Exception):
    """A stop came while a failed batch waited for its retry: the batch is left for the next reader."""


class StreamInvoker(Protocol):
    """What a consumer invokes through: the platform (the version serving now)."""

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any: ...

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class StreamSubscription:
    """A function reading a source's partition streams; a reader restarts on `update` only if this changed."""

    function: str
    #: The source's kind: names its streams (`source.mqtt...`) and the records' body key (`mqtt`).
    source: str
    #: The source's ARN in every record (`eventSourceARN`).
    source_arn: str
    partitions: int = 1
    batch_size: int = 100
    batch_window: float = 0.0
    options: BatchOptions = field(default_factory=BatchOptions)
    #: The function's timeout: how long one invocation may take before it counts as failed.
    timeout: float = 3.0
    on_failure: Destination | None = None
    #: Event patterns (JSON text) a record must match one of to reach the function; () lets every record through.
    filters: tuple[str, ...] = ()
    #: The log streams read, `<log_name>.<n>`, when not the function's own source streams (the built-in stream).
    log_name: str | None = None
    #: The consumer group that holds this function's checkpoint in those streams.
    group: str = SOURCE_GROUP
    #: Where a new group starts in a stream that others write (`log_name`): TRIM_HORIZON, LATEST, AT_TIMESTAMP.
    starting_position: str = "TRIM_HORIZON"
    starting_timestamp: float | None = None
    #: Tumbling window in seconds (0: none; `streams.windows`).
    window: float = 0.0
    #: The bus records are published to as CloudEvents instead of invoking the function (None: invoke it).
    to_bus: str | None = None
    #: An IoT rule's SQL, applied to each record before the function sees it (`streams.iot_rules`).
    rule: str | None = None

    def stream(self, partition: int) -> str:
        if self.log_name is not None:
            return f"{self.log_name}.{partition}"
        return source_stream(self.source, self.function, partition)

    def owner_key(self, partition: int) -> str:
        """The key-value key of the partition's ownership and window state: one per stream and group."""
        stream = self.stream(partition)
        return stream if self.group == SOURCE_GROUP else f"{stream}@{self.group}"


async def start_group(log: Any, sub: StreamSubscription, stream: str) -> None:
    """Place a group that never read `stream` at its starting position (a no-op for a source's own streams).

    TRIM_HORIZON starts at the oldest record kept, LATEST after the newest, AT_TIMESTAMP before the first
    record stored at or after the timestamp.
    """
    if sub.log_name is None or sub.group in await log.groups(stream):
        return
    if sub.starting_position == "LATEST":
        offset = await log.last_offset(stream)
    elif sub.starting_position == "AT_TIMESTAMP" and sub.starting_timestamp is not None:
        first = await log.read(stream, since=sub.starting_timestamp, limit=1)
        offset = first[0].offset - 1 if first else await log.last_offset(stream)
    else:
        offset = 0
    await log.seek(stream, sub.group, offset)


class StreamConsumers:
    """Every partition reader of one app on this node. See the module docstring.

    `node` names this node across restarts (a restarted node takes its partitions back at once);
    `retry_policy` is the wait between retries of a failing batch.
    """

    def __init__(
        self,
        store: Store,
        invoker: StreamInvoker,
        publisher: Publisher,
        *,
        app: str,
        node: str,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        claim_lease: float = CLAIM_LEASE,
        ownership_ttl: float = OWNERSHIP_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.invoker = invoker
        self.publisher = publisher
        self.app = app
        self.node = node
        #: This process's incarnation of the node: ownership records name both.
        self.incarnation = uuid.uuid4().hex
        self.retry_policy = retry_policy
        self.claim_lease = claim_lease
        self.ownership_ttl = ownership_ttl
        #: What records' ages are measured against (`max_record_age`).
        self.clock = clock
        self._readers: dict[tuple[str, str, int], _PartitionReader] = {}
        self._lock = asyncio.Lock()

    def readers(self) -> list[tuple[str, int]]:
        """The (stream, partition) pairs this node is ready to read."""
        return sorted((reader.stream, reader.partition) for reader in self._readers.values())

    def owned(self) -> list[str]:
        """The partition streams this node reads now (it holds their ownership)."""
        return sorted(reader.stream for reader in self._readers.values() if reader.owning)

    async def update(self, subscriptions: Sequence[StreamSubscription]) -> None:
        """Run exactly these subscriptions: unchanged readers keep running, changed ones restart, others stop."""
        wanted = {
            (sub.source, sub.function, partition): sub for sub in subscriptions for partition in range(sub.partitions)
        }
        async with self._lock:
            stale = [key for key, reader in self._readers.items() if wanted.get(key) != reader.sub]
            await asyncio.gather(*(self._readers.pop(key).stop() for key in stale))
            for key, sub in wanted.items():
                if key not in self._readers:
                    self._readers[key] = _PartitionReader(self, sub, key[2])

    async def stop(self) -> None:
        """Stop reading; running batches finish and commit; ownership is given up for another node."""
        await self.update([])

    async def deliver_due(self, subscriptions: Sequence[StreamSubscription]) -> int:
        """Run one batch per partition here and now, retries without waiting; how many records ran.

        What `triggerfish.testing`'s drain() calls instead of running readers in the background: the same
        records, batches, retries, partial failures and destinations, with no ownership to take.
        """
        done = 0
        for sub in subscriptions:
            for partition in range(sub.partitions):
                stream = sub.stream(partition)
                await start_group(self.store.log, sub, stream)
                batches = _Batches(self, sub, partition)
                claim = await self.store.log.claim(stream, sub.group, limit=sub.batch_size, lease=self.claim_lease)
                if claim is None:
                    await batches.close_due()
                    continue
                await batches.run([claim], _no_wait)
                await self.store.log.commit(claim)
                done += len(claim.records)
        return done


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


class _PartitionReader:
    """Reads one partition stream in order, one batch at a time, while this node owns it."""

    def __init__(self, owner: StreamConsumers, sub: StreamSubscription, partition: int) -> None:
        self.owner = owner
        self.sub = sub
        self.partition = partition
        self.stream = sub.stream(partition)
        self.key = sub.owner_key(partition)
        self.group = sub.group
        self.batches = _Batches(owner, sub, partition)
        self.owning = False
        self._version: int | None = None
        #: When (monotonic) ownership was last taken or renewed: renewed a third of its TTL later, not per batch.
        self._renewed = 0.0
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"triggerfish-stream:{self.stream}")

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(self._task, return_exceptions=True)

    # --- ownership ----------------------------------------------------------------------------

    async def _take(self) -> bool:
        """Own the partition, if no other node does; on taking it, resume from its checkpoint."""
        kv, key = self.owner.store.kv, self.key
        me = {"node": self.owner.node, "incarnation": self.owner.incarnation}
        current = await kv.get(STREAMS_NAMESPACE, key)
        if current is not None:
            holder = orjson.loads(current.value)
            if holder.get("node") != self.owner.node:
                return False
            if holder.get("incarnation") == self.owner.incarnation:
                self._version = current.version
                return True
        expected = ABSENT if current is None else current.version
        taken = await kv.put(
            STREAMS_NAMESPACE, key, orjson.dumps(me), ttl=self.owner.ownership_ttl, if_version=expected
        )
        if taken is None:
            return False
        self._version, self._renewed = taken.version, time.monotonic()
        log = self.owner.store.log
        await start_group(log, self.sub, self.stream)
        # Claims a dead owner left would make the next claim skip past them: start again at the checkpoint.
        await log.seek(self.stream, self.group, await log.position(self.stream, self.group))
        logger.info("%s: reading from offset %d", self.stream, await log.position(self.stream, self.group) + 1)
        return True

    async def _renew(self) -> bool:
        me = {"node": self.owner.node, "incarnation": self.owner.incarnation}
        renewed = await self.owner.store.kv.put(
            STREAMS_NAMESPACE, self.key, orjson.dumps(me), ttl=self.owner.ownership_ttl, if_version=self._version
        )
        if renewed is None:
            return False
        self._version, self._renewed = renewed.version, time.monotonic()
        return True

    async def _give_up(self) -> None:
        if self.owning and self._version is not None:
            with contextlib.suppress(Exception):
                await self.owner.store.kv.delete(STREAMS_NAMESPACE, self.key, if_version=self._version)
        self.owning = False

    # --- reading ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    if not self.owning:
                        self.owning = await self._take()
                        if not self.owning:
                            await self._pause(self.owner.ownership_ttl / 3)
                            continue
                    elif time.monotonic() - self._renewed > self.owner.ownership_ttl / 3 and not await self._renew():
                        logger.warning("%s: another node took this partition; leaving it", self.stream)
                        self.owning = False
                        continue
                    claims = await self._gather()
                    if claims:
                        await self._settle(claims)
                    else:
                        await self.batches.close_due()
                except Exception:
                    logger.exception("%s: reading failed; trying again from the checkpoint", self.stream)
                    await self._pause(1.0)
                    await self._rewind()
        finally:
            await self._give_up()

    async def _rewind(self) -> None:
        """Drop this reader's claims, so the next claim starts right after the checkpoint (keeps the order)."""
        log = self.owner.store.log
        try:
            await log.seek(self.stream, self.group, await log.position(self.stream, self.group))
        except Exception:
            logger.exception("%s: going back to the checkpoint failed; leaving the partition", self.stream)
            await self._give_up()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _gather(self) -> list[LogClaim]:
        """One batch's claims: the first claim, topped up until `batch_size` records or the window closes."""
        log, sub, lease = self.owner.store.log, self.sub, self.owner.claim_lease
        first = await log.claim(self.stream, self.group, limit=sub.batch_size, lease=lease, wait=CLAIM_WAIT)
        if first is None:
            return []
        claims, count = [first], len(first.records)
        deadline = time.monotonic() + sub.batch_window
        while count < sub.batch_size and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = await log.claim(
                self.stream, self.group, limit=sub.batch_size - count, lease=lease, wait=min(remaining, CLAIM_WAIT)
            )
            if more is not None:
                claims.append(more)
                count += len(more.records)
        return claims

    async def _settle(self, claims: list[LogClaim]) -> None:
        keeper = asyncio.create_task(self._keep(claims))
        log = self.owner.store.log
        try:
            await self.batches.run(claims, self._wait_retry)
        except _Stopped:
            # Not committed: the next reader (this node after a restart, or another) runs the batch again.
            for claim in claims:
                with contextlib.suppress(Exception):
                    await log.release_claim(claim)
            return
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        for claim in claims:  # in order: the checkpoint moves over each in turn
            if not await self.owner.store.log.commit(claim):
                logger.warning(
                    "%s: offsets %d-%d were re-claimed before their commit", self.stream, claim.first, claim.last
                )

    async def _wait_retry(self, seconds: float) -> None:
        await self._pause(seconds)
        if self._stopping.is_set():
            raise _Stopped

    async def _keep(self, claims: list[LogClaim]) -> None:
        """While a batch runs (retries can take long): renew its claims and this node's ownership."""
        log, lease = self.owner.store.log, self.owner.claim_lease
        while True:
            await asyncio.sleep(min(lease, self.owner.ownership_ttl) / 3)
            try:
                for index, claim in enumerate(claims):
                    extended = await log.extend_claim(claim, lease)
                    if extended is not None:
                        claims[index] = extended
                if not await self._renew():
                    logger.warning("%s: lost this partition while a batch ran; it may run again elsewhere", self.stream)
            except Exception:
                logger.exception("%s: renewing the batch's leases failed", self.stream)


class _Batches:
    """Runs one partition's batches: records as Lambda shapes them, rules and filters, windows, invocations
    (or the bus, with `to_bus`), failure destinations."""

    def __init__(self, owner: StreamConsumers, sub: StreamSubscription, partition: int) -> None:
        self.owner = owner
        self.sub = sub
        self.partition = partition
        self.filters = [compile_pattern(text) for text in sub.filters]
        self.rule = None if sub.rule is None else compile_rule(sub.rule)
        self.window_key = f"window:{sub.owner_key(partition)}"

    def wanted(self, body: Mapping[str, Any], payload: bytes) -> bool:
        """Whether a record passes the filters: matched against its body, `data` decoded from JSON (Lambda's
        filter criteria; a payload that is not JSON has no `data` to match, so a filter naming it fails)."""
        if not self.filters:
            return True
        view = {key: value for key, value in body.items() if key != "data"}
        with contextlib.suppress(orjson.JSONDecodeError):
            view["data"] = orjson.loads(payload)
        return any(pattern.matches(view) for pattern in self.filters)

    async def run(self, claims: list[LogClaim], sleep: Callable[[float], Awaitable[None]]) -> None:
        """Run the claims' records until each is handled or given up on (the caller commits the claims)."""
        items = self.items(claims)
        if not items:
            return
        if self.sub.window:
            await self._run_windows(items, sleep)
            return
        await self._run(items, self.invoke, sleep)

    async def _run(self, items: Sequence[Item], invoke: Invoke, sleep: Callable[[float], Awaitable[None]]) -> None:
        await run_batch(
            items,
            invoke,
            self.sub.options,
            fail=self.fail,
            backoff=self.owner.retry_policy.backoff,
            sleep=sleep,
            clock=self.owner.clock,
        )

    def items(self, claims: list[LogClaim]) -> list[Item]:
        items: list[Item] = []
        for claim in claims:
            for stored in claim.records:
                try:
                    record = decode_record(stored.data)
                except InvalidInputError as exc:
                    logger.error("%s offset %d: %s", self.sub.stream(self.partition), stored.offset, exc)
                    continue
                if self.rule is not None:
                    try:
                        selected = self.rule.apply(record.key, orjson.loads(record.payload))
                    except orjson.JSONDecodeError:
                        selected = None  # a rule reads JSON payloads: others have no fields to select
                    if selected is None:
                        continue  # dropped by the rule: never shown, and the checkpoint moves past it
                    record = replace(record, payload=orjson.dumps(selected))
                event = lambda_record(
                    record, stored, source=self.sub.source, partition=self.partition, source_arn=self.sub.source_arn
                )
                if not self.wanted(event[self.sub.source], record.payload):
                    continue  # filtered out: never shown, and the checkpoint moves past it
                items.append(Item(event[self.sub.source]["sequenceNumber"], record.arrived, event))
        return items

    async def invoke(self, batch: Sequence[Item]) -> Attempt:
        if self.sub.to_bus is not None:
            return await self._to_bus(batch)
        return await self._invoke({"Records": [dict(item.record) for item in batch]})

    async def _invoke(self, event: dict[str, Any]) -> Attempt:
        sub = self.sub
        try:
            result = await self.owner.invoker.invoke(
                sub.function, event, wait=min(sub.timeout + 1.0, 900.0), trigger=sub.source
            )
        except InvocationError as exc:
            logger.warning("%s: a batch of %d failed: %s", sub.stream(self.partition), len(event["Records"]), exc)
            return Attempt(False, error=str(exc))
        except Exception as exc:  # the platform's own failure: the batch did not run, so it is tried again
            logger.exception("%s: invoking %s failed", sub.stream(self.partition), sub.function)
            return Attempt(False, error=f"{type(exc).__name__}: {exc}")
        return Attempt(True, result)

    async def _to_bus(self, batch: Sequence[Item]) -> Attempt:
        """Publish the records as CloudEvents (ids from stream and offset, so a batch sent twice dedupes)."""
        assert self.sub.to_bus is not None
        events = [record_event(item.record, self.sub.source, self.sub.owner_key(self.partition)) for item in batch]
        try:
            await self.owner.publisher.publish(self.sub.to_bus, events)
        except Exception as exc:
            logger.exception("%s: publishing to bus %s failed", self.sub.stream(self.partition), self.sub.to_bus)
            return Attempt(False, error=f"{type(exc).__name__}: {exc}")
        return Attempt(True)

    # --- tumbling windows ---------------------------------------------------------------------

    async def _window(self) -> WindowState | None:
        stored = await self.owner.store.kv.get(STREAMS_NAMESPACE, self.window_key)
        return None if stored is None else WindowState.decode(stored.value)

    async def _run_windows(self, items: list[Item], sleep: Callable[[float], Awaitable[None]]) -> None:
        size = self.sub.window
        current = await self._window()
        if current is not None:
            # Records the state already holds (a batch run again after a crash) are not folded in twice.
            items = [item for item in items if offset_of(item.sequence) > current.through]
        for start, part in split_by_window(items, size):
            if current is not None and current.start != start:
                await self._final(current)
                current = None
            holder = [current.state if current is not None else {}]

            async def invoke(batch: Sequence[Item], start: float = start, holder: list[Any] = holder) -> Attempt:
                event = window_event(
                    [item.record for item in batch], start=start, size=size, state=holder[0], final=False,
                    shard=partition_id(self.partition), arn=self.sub.source_arn,
                )  # fmt: skip
                attempt = await self._invoke(event)
                if attempt.ok:
                    holder[0] = returned_state(attempt.result, holder[0])
                return attempt

            await self._run(part, invoke, sleep)
            current = WindowState(start, holder[0], offset_of(part[-1].sequence))
            # Written before the checkpoint moves: the state and the batch are checkpointed together.
            await self.owner.store.kv.put(STREAMS_NAMESPACE, self.window_key, current.encode())

    async def close_due(self) -> None:
        """Tell the function a window closed (`isFinalInvokeForWindow`) once its end has passed."""
        if not self.sub.window:
            return
        current = await self._window()
        if current is not None and current.start + self.sub.window <= self.owner.clock():
            await self._final(current)

    async def _final(self, current: WindowState) -> None:
        event = window_event(
            [], start=current.start, size=self.sub.window, state=current.state, final=True,
            shard=partition_id(self.partition), arn=self.sub.source_arn,
        )  # fmt: skip
        attempt = await self._invoke(event)
        if not attempt.ok:
            # Kept: the final invocation is tried again on the next pass (at least once, as on Lambda).
            raise InvocationError(f"the final invocation of a window failed: {attempt.error}")
        await self.owner.store.kv.delete(STREAMS_NAMESPACE, self.window_key)

    async def fail(self, gone: GivenUp) -> None:
        sub = self.sub
        label = "Kinesis" if sub.source == "kinesis" else sub.source.upper()
        context = BatchContext(self.owner.app, sub.function, label, sub.source_arn, self.partition)
        await send_failure(
            sub.on_failure,
            failure_record(gone, context, now=self.owner.clock()),
            store=self.owner.store,
            publisher=self.owner.publisher,
            invoker=self.owner.invoker,
        )


def record_event(record: Mapping[str, Any], source: str, stream: str) -> Event:
    """A stream record as a CloudEvent for a bus: the payload as `data` (JSON when it is), the key as `subject`."""
    body = record[source]
    payload = base64.b64decode(body["data"])
    try:
        data: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        data = {"base64": body["data"]}
    return Event(
        id=f"{stream}:{body['sequenceNumber']}",
        source=str(record["eventSourceARN"]),
        type=f"{source}.record",
        subject=str(body["partitionKey"]) or None,
        time=_iso(float(body["approximateArrivalTimestamp"])),
        datacontenttype="application/json",
        data=data,
        extensions={"sequence": str(body["sequenceNumber"])},
    )


def _iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
