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
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import orjson

from triggerfish.bus.publisher import Publisher
from triggerfish.names import STREAMS_NAMESPACE
from triggerfish.retry import RetryPolicy
from triggerfish.store import ABSENT, LogClaim, Store
from triggerfish.streams.partition_batches import PartitionBatches
from triggerfish.streams.subscription import DeadLetters, StreamInvoker, StreamSubscription, start_group

__all__ = ["StreamConsumers", "StreamInvoker", "StreamSubscription", "start_group"]

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
        #: Set by the AMQP source while it runs: where records given up on are dead-lettered.
        self.dead_letters: DeadLetters | None = None
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
                batches = PartitionBatches(self, sub, partition)
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
        self.batches = PartitionBatches(owner, sub, partition)
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
