"""Parallelism across keys for PostgreSQL change capture: the slot's records moved into the function's partitions.

    mover = SlotMover(capture, invoker, store, publisher, app="shop", node="host-1", retry_policy=policy)
    mover.start()            # reads the slot, moves its records, runs the partitions in the background
    await mover.stop()

A replication slot is one cursor: it moves only to a commit, and everything
before that commit is then gone from it. With `parallelization` N > 1, a slow
key cannot be allowed to hold that cursor (and the WAL behind it) for every
other key, so the slot is not read by the handler: a mover (this `SlotReader`)
peeks the slot as usual, turns the table's rows into the same DynamoDB
Streams records, and appends each to one of N partition streams of the
platform's store by the hash of its primary key, in ONE store transaction
with a checkpoint (the position of the last record moved, a compare-and-set
key-value record). Only then does it advance the slot. The stream engine
(`triggerfish.streams.consumer`) runs each partition on its own, as for
platform tables: batches, `batchItemFailures`, bisection, retries, record age,
the failure destination, a partition checkpoint that moves only after success.

A crash between the store's commit and the slot's advance leaves records in
the slot that were already moved: the next mover loads the checkpoint and
skips every record at or before it, so each change reaches the partitions
exactly once, and the handlers see it at least once. One row's changes land in
one partition in commit order, so they are handled in order; a failing or
stalled row holds up its own partition, never the others nor the slot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from triggerfish.changes.consumer import append_changes
from triggerfish.changes.pg_capture import SlotReader
from triggerfish.changes.pg_records import Position, parse_lsn
from triggerfish.errors import AtomicConflictError
from triggerfish.names import CHANGE_CHECKPOINTS_NAMESPACE, SOURCE_GROUP, pg_capture_checkpoint, source_stream
from triggerfish.store import ABSENT
from triggerfish.store.atomic import Put
from triggerfish.streams.consumer import StreamConsumers, StreamSubscription

logger = logging.getLogger("triggerfish.changes")

#: The partition streams' source name: `source.postgresql.<function>.<n>`.
STREAM_SOURCE = "postgresql"
#: The key of a record's body the stream engine reads (`dynamodb.SequenceNumber` is what `batchItemFailures`
#: names); it also makes a failure destination's record say `DDBStreamBatchInfo`, as the direct reader's does.
RECORD_BODY = "dynamodb"


def partition_key(record: dict[str, Any]) -> str:
    """What a record's partition is chosen by: its primary key's values, as JSON."""
    return orjson.dumps(record["dynamodb"]["Keys"]).decode()


def encode_position(position: Position) -> bytes:
    return orjson.dumps({"lsn": position.commit_lsn, "index": position.index})


def decode_position(data: bytes) -> Position:
    body = orjson.loads(data)
    return Position(int(body["lsn"]), int(body["index"]))


class SlotMover(SlotReader):
    """Reads one capture's slot into its partitions, and runs them; see the module docstring."""

    def __init__(self, *args: Any, node: str, **options: Any) -> None:
        super().__init__(*args, **options)
        self.consumers = StreamConsumers(
            self.store,
            self.invoker,
            self.publisher,
            app=self.app,
            node=node,
            retry_policy=self.retry_policy,
            clock=self.clock,
        )
        self._checkpoint_key = pg_capture_checkpoint(self.capture.slot)
        self._running = False

    def subscription(self) -> StreamSubscription:
        """The partitions' consumption: the capture's batching and failure settings (its filters are applied
        before records are moved, so they are not stored)."""
        capture = self.capture
        return StreamSubscription(
            function=capture.function,
            source=RECORD_BODY,
            source_arn=self.source_arn,
            partitions=capture.partitions,
            batch_size=capture.batch_size,
            batch_window=capture.batch_window,
            options=capture.options,
            timeout=capture.timeout,
            on_failure=capture.on_failure,
            log_name=source_stream(STREAM_SOURCE, capture.function, 0).removesuffix(".0"),
            records="payload",
        )

    def streams(self) -> list[str]:
        sub = self.subscription()
        return [sub.stream(partition) for partition in range(sub.partitions)]

    async def connect(self, *, fresh: bool = False) -> Any:
        """As the reader's, and where moving resumes: right after the last record the checkpoint says moved."""
        conn = await super().connect(fresh=fresh)
        try:
            if fresh:
                await self.store.kv.delete(CHANGE_CHECKPOINTS_NAMESPACE, self._checkpoint_key)
            await self._load_checkpoint(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _load_checkpoint(self, conn: Any) -> None:
        stored = await self.store.kv.get(CHANGE_CHECKPOINTS_NAMESPACE, self._checkpoint_key)
        if stored is None:
            return
        position = decode_position(stored.value)
        row = await (await conn.execute("SELECT pg_current_wal_lsn()::text")).fetchone()
        if position.commit_lsn > parse_lsn(row[0]):
            # Past the server's own end of WAL: the checkpoint of a slot on another server (the URL changed).
            logger.warning(
                "%s: the capture checkpoint is ahead of the database's WAL (another server?); starting at the slot",
                self.capture.function,
            )
            return
        if self._done is None or position > self._done:
            self._done = position

    async def measure(self, conn: Any) -> None:
        """The slot's lag (what is not moved yet) and the partitions' backlog (moved, not yet handled)."""
        await super().measure(conn)
        log, backlog = self.store.log, 0
        for stream in self.streams():
            backlog += max(0, await log.last_offset(stream) - await log.position(stream, SOURCE_GROUP))
        self.state.backlog = backlog

    async def start_partitions(self) -> None:
        """Run the partitions in the background (after `connect`: the records' source ARN names the database)."""
        await self.consumers.update([self.subscription()])
        self._running = True

    async def stop(self) -> None:
        await super().stop()
        await self.consumers.stop()

    async def connected(self) -> None:
        # The partitions run from the first connection on, and keep running while the slot is unreachable or
        # another node reads it: what was moved is the platform's to handle, by whichever node owns a partition.
        if not self._running:
            await self.start_partitions()

    async def step(self, conn: Any, *, sleep: Callable[[float], Awaitable[None]] | None = None) -> int:
        """Peek, move what is new into the partitions with the checkpoint, advance the slot; how many records."""
        pending, last_commit = await self._peek(conn)
        if pending:
            keyed = [(partition_key(p.record), p.created, p.record) for p in pending if p.record is not None]
            if keyed and not await self._move(keyed, pending[-1].position):
                return 0  # another mover moved them first (see `_move`): peek again after its checkpoint
            self._done = pending[-1].position
            self.state.records += len(keyed)
            self.state.batches += 1 if keyed else 0
        # A peek returns whole transactions, so everything up to its last commit is now moved.
        if last_commit is not None and last_commit > self._advanced:
            await self._advance(conn, last_commit)
        return len(pending)

    async def _move(self, keyed: list[tuple[str, float, dict[str, Any]]], last: Position) -> bool:
        """Append the records to their partitions in one transaction with the checkpoint; False on a conflict."""
        kv = self.store.kv
        current = await kv.get(CHANGE_CHECKPOINTS_NAMESPACE, self._checkpoint_key)
        checkpoint = Put(
            CHANGE_CHECKPOINTS_NAMESPACE,
            self._checkpoint_key,
            encode_position(last),
            if_version=ABSENT if current is None else current.version,
        )
        try:
            await self.store.atomic([*append_changes(self.subscription(), keyed), checkpoint])
        except AtomicConflictError:
            # Only a mover of a process that lost the slot's lock a moment ago writes here: take its checkpoint.
            stored = await kv.get(CHANGE_CHECKPOINTS_NAMESPACE, self._checkpoint_key)
            if stored is not None:
                self._done = max(decode_position(stored.value), self._done or decode_position(stored.value))
            return False
        return True

    async def run_due(self, conn: Any) -> int:
        """Move what is new and run one batch per partition, here and now (`triggerfish.testing`)."""
        moved = await self.step(conn)
        return moved + await self.consumers.deliver_due([self.subscription()])

    async def trim(self, *, max_age: float) -> int:
        """Drop records older than `max_age` that the partitions' consumers handled; how many went."""
        from triggerfish.bus.archive import trim_consumed

        log, removed = self.store.log, 0
        for stream in self.streams():
            removed += await trim_consumed(log, stream, await log.position(stream, SOURCE_GROUP), max_age=max_age)
        return removed
