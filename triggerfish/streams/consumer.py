"""Stream consumers: each partition of a source read in order, one batch at a time, checkpointed after success.

    consumers = StreamConsumers(store, platform, publisher, app="home", node="host-1")
    await consumers.update([subscription, ...])   # start, restart or stop partition readers
    await consumers.stop()                        # batches running finish; the rest stays stored

A source (`triggerfish.sources.mqtt`) appends every message to the partition
stream its key hashes to (`source.<kind>.<function>.<n>`). Here one task per
partition reads it: it reads up to `batch_size` records after the last batch,
tops the batch up with further reads until `batch_window` closes, runs it
(`streams.batches.run_batch`: retries, bisect, partial failures, record age,
failure destination) and then moves the partition's checkpoint (its consumer
group's position) past it with `log.advance`. Nothing newer runs before a
batch is settled, so records with one key are handled in order, and a
failing batch holds up only its own partition. The reader takes no claims:
the node owns the partition (below), so nobody else reads it, and a batch
costs the one durable write of its checkpoint, with no lease written (and
waited for) before the function runs.

One node at a time reads a partition: ownership is a leased key-value record
(`triggerfish.streams`) renewed while the node works. A node that takes a
partition seeks the group to its checkpoint, which drops claims anyone left
(`deliver_due` claims), so reading starts again right after the last committed
record (at least once: a batch the dead owner ran but did not commit runs
again). The checkpoint moves only from where this reader last left it: if
anyone else moved it meanwhile, the move fails and the reader reads again
from the checkpoint.
A node restarted under the same node name takes its partitions back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
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
#: How long one read waits for a record before the reader checks whether it should stop.
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
        #: The last offset handed to a batch: the checkpoint, plus the batches run since whose move is on its way.
        self._cursor = 0
        #: The move of the checkpoint past the last batch, on its way (durable: an fsync on SQLite). The next
        #: batch runs meanwhile (the last one was handled: order holds), and moves the checkpoint after it.
        self._advancing: asyncio.Task[bool] | None = None
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
        # Claims left behind would stop the checkpoint moving over them: start again at the checkpoint.
        await self._advanced()
        self._cursor = await log.position(self.stream, self.group)
        await log.seek(self.stream, self.group, self._cursor)
        logger.info("%s: reading from offset %d", self.stream, self._cursor + 1)
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
        await self._advanced()  # the checkpoint is where this node left it before another node may take over
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
        """Read again from right after the checkpoint (keeps the order), dropping any claims left there."""
        log = self.owner.store.log
        try:
            await self._advanced()
            self._cursor = await log.position(self.stream, self.group)
            await log.seek(self.stream, self.group, self._cursor)
        except Exception:
            logger.exception("%s: going back to the checkpoint failed; leaving the partition", self.stream)
            await self._give_up()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for: on 3.11 it can lose a cancellation
                await self._stopping.wait()

    async def _gather(self) -> list[LogClaim]:
        """One batch: the records after the last batch's, topped up until `batch_size` records or the window closes.

        Read, not claimed: this node alone reads the partition while it owns it. One read on the store's
        reader (WAL lets it run while the writer commits) is all that stands between a record and its batch.
        """
        log, sub = self.owner.store.log, self.sub
        if self._advancing is not None and self._advancing.done() and not await self._advanced():
            self._cursor = await log.position(self.stream, self.group)  # it moved elsewhere: read from there
        records = await log.read(self.stream, after=self._cursor, limit=sub.batch_size, wait=CLAIM_WAIT)
        if not records:
            return []
        deadline = time.monotonic() + sub.batch_window
        while len(records) < sub.batch_size and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = min(remaining, CLAIM_WAIT)
            limit = sub.batch_size - len(records)
            records.extend(await log.read(self.stream, after=records[-1].offset, limit=limit, wait=wait))
        # The range from the checkpoint on: offsets retention trimmed are passed over with the batch.
        return [LogClaim(self.stream, self.group, self._cursor + 1, records[-1].offset, "", records, math.inf)]

    async def _settle(self, claims: list[LogClaim]) -> None:
        keeper = asyncio.create_task(self._keep())
        try:
            await self.batches.run(claims, self._wait_retry)
        except _Stopped:
            return  # not committed: the next reader (this node after a restart, or another) runs the batch again
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        # The checkpoint moves while the next batch is read and run; the moves follow one another in order.
        self._advancing = asyncio.create_task(self._advance(self._advancing, claims[0].first - 1, claims[-1].last))
        self._cursor = claims[-1].last

    async def _advance(self, previous: asyncio.Task[bool] | None, expected: int, last: int) -> bool:
        if previous is not None and not await previous:
            return False  # the move before failed: so does this one (the reader reads again from the checkpoint)
        if await self.owner.store.log.advance(self.stream, self.group, expected=expected, offset=last):
            return True
        logger.warning(
            "%s: the checkpoint moved elsewhere while offsets %d-%d ran; reading again from the checkpoint",
            self.stream, expected + 1, last,
        )  # fmt: skip
        return False

    async def _advanced(self) -> bool:
        """Wait for the checkpoint's move on its way, if any; whether every move so far succeeded."""
        advancing, self._advancing = self._advancing, None
        if advancing is None:
            return True
        try:
            return await advancing
        except Exception:
            logger.exception("%s: moving the checkpoint failed; reading again from it", self.stream)
            return False

    async def _wait_retry(self, seconds: float) -> None:
        await self._pause(seconds)
        if self._stopping.is_set():
            raise _Stopped

    async def _keep(self) -> None:
        """While a batch runs (retries can take long): renew this node's ownership of the partition."""
        while True:
            await asyncio.sleep(self.owner.ownership_ttl / 3)
            try:
                if not await self._renew():
                    logger.warning("%s: lost this partition while a batch ran; it may run again elsewhere", self.stream)
            except Exception:
                logger.exception("%s: renewing the ownership of the partition failed", self.stream)
