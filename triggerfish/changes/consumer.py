"""`@app.on_change` consumers: a table's change stream, moved into each function's partitions and run in batches.

    changes = ChangeTriggers(store, platform, publisher, app="shop", node="host-1")
    await changes.update(specs)      # start, restart or stop the consumers the functions declare
    await changes.stop()

Two steps per function, so a crash at any point resumes from a checkpoint:

1. Usually the write itself hands the change over, in its own transaction
   (`changes.routes`: `configure` tells this process's writes which functions read
   which table), when the mover below has nothing of the table left to copy. Else
   a mover reads the changes of the table's stream (`table.<name>`) after its
   checkpoint (a key-value record `on-change.<function>`), turns each into the
   DynamoDB Streams record (`changes.records.dynamodb_record`), drops the `ops` the
   function does not take, and appends each record to the partition its item key
   hashes to (`source.dynamodb.<function>.<n>`), with the writer's traceparent in the stored
   record (not in the Lambda record), in ONE transaction with the
   checkpoint's compare-and-set: every change reaches the partitions exactly once,
   and two movers (two nodes) cannot both move a change. A read takes no lease, so
   the move costs one commit, not two (a consumer group's claim is a write).
2. The stream engine (`triggerfish.streams.consumer`) reads each partition in order:
   batches, `batchItemFailures`, bisection, retries, record age, the failure
   destination, a checkpoint that moves only after success, one node per partition.

So changes of one item are handled in the order they were committed, and a failing or
stalled item holds up only its own partition. `starting_position="LATEST"` starts a new
mover at the stream's end; "TRIM_HORIZON" at its beginning. Any other source of changes
(PostgreSQL capture) can feed step 2 the same way: append `dynamodb_record`s to the
function's partitions with `append_changes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import orjson

from triggerfish.bus.archive import trim_consumed
from triggerfish.bus.publisher import Publisher
from triggerfish.changes.records import OPS, decode_change, dynamodb_record, table_stream_arn
from triggerfish.changes.routes import Route, change_routes
from triggerfish.errors import AtomicConflictError, InvalidInputError
from triggerfish.model import ChangeTrigger, FunctionSpec
from triggerfish.names import CHANGE_CHECKPOINTS_NAMESPACE as CHECKPOINTS_NAMESPACE
from triggerfish.names import SOURCE_GROUP, change_group, table_stream
from triggerfish.retry import RetryPolicy
from triggerfish.store import ABSENT, LogRecord, Store
from triggerfish.store.atomic import Append, Op, Put
from triggerfish.streams.batches import BatchOptions, filter_texts
from triggerfish.streams.consumer import DEFAULT_RETRY_POLICY, StreamConsumers, StreamInvoker, StreamSubscription
from triggerfish.streams.records import SourceRecord, encode_record, partition_of
from triggerfish.tables.errors import TableNotFoundError
from triggerfish.tables.table import Tables

logger = logging.getLogger("triggerfish.changes")

#: The stream source name of change records: names the partition streams and the records' body key.
SOURCE = "dynamodb"
#: Changes one move takes from the table's stream at most.
MOVE_BATCH = 1000
#: How long a mover waits for a change before checking whether it should stop.
MOVE_WAIT = 0.5
#: How long changes are kept once every consumer handled them: a day, as DynamoDB keeps a stream's records.
STREAM_RETENTION = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ChangeSubscription:
    """One function's consumption of one table's changes."""

    function: str
    trigger: ChangeTrigger
    stream: StreamSubscription


def change_triggers(specs: Mapping[str, FunctionSpec]) -> list[tuple[FunctionSpec, ChangeTrigger]]:
    """The functions' `@app.on_change` triggers on platform tables (PostgreSQL capture is another consumer's)."""
    return [
        (spec, trigger) for spec in specs.values() for trigger in spec.triggers if isinstance(trigger, ChangeTrigger)
    ]


def subscription(spec: FunctionSpec, trigger: ChangeTrigger, source_arn: str) -> StreamSubscription:
    return StreamSubscription(
        function=spec.name,
        source=SOURCE,
        source_arn=source_arn,
        partitions=trigger.stream_settings.parallelization,
        batch_size=trigger.stream_settings.batch_size,
        batch_window=trigger.stream_settings.batch_window,
        options=BatchOptions.of(trigger.stream_settings),
        timeout=spec.settings.timeout,
        on_failure=spec.settings.on_failure,
        filters=filter_texts(trigger.stream_settings),
        records="payload",
    )


def append_changes(
    sub: StreamSubscription,
    keyed: Sequence[tuple[str, float, dict[str, object]]],
    traces: Sequence[str | None] = (),
) -> list[Op]:
    """The appends putting Lambda records (key, time, record) into `sub`'s partitions, in order per partition;
    `traces[i]`, when given, is the traceparent of the write that made record i (kept in the stored record,
    where the stream engine finds it, and never in the record the handler is given)."""
    by_partition: dict[int, list[bytes]] = {}
    for index, (key, at, record) in enumerate(keyed):
        trace = traces[index] if index < len(traces) else None
        stored = SourceRecord(key, at, orjson.dumps(record), traceparent=trace)
        by_partition.setdefault(partition_of(key, sub.partitions), []).append(encode_record(stored))
    return [Append(sub.stream(partition), bodies) for partition, bodies in sorted(by_partition.items())]


class ChangeTriggers:
    """Every `@app.on_change` consumer of one app on this node. See the module docstring."""

    def __init__(
        self,
        store: Store,
        invoker: StreamInvoker,
        publisher: Publisher,
        *,
        app: str,
        node: str,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.tables = Tables(store, clock=clock)
        self.consumers = StreamConsumers(
            store, invoker, publisher, app=app, node=node, retry_policy=retry_policy, clock=clock
        )
        self._subs: list[ChangeSubscription] = []
        self._movers: dict[str, tuple[ChangeSubscription, asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()

    async def configure(self, specs: Mapping[str, FunctionSpec]) -> list[ChangeSubscription]:
        """Know `specs`' subscriptions (and start each new one at its starting position) without running them."""
        subs = []
        for spec, trigger in change_triggers(specs):
            subs.append(ChangeSubscription(spec.name, trigger, subscription(spec, trigger, await self._arn(trigger))))
            await self._start_position(spec.name, trigger)
        self._subs = subs
        # From now on this process's writes hand their changes to these functions in their own transaction,
        # whenever the mover has nothing of the table left to copy (`changes.routes`).
        routes = [Route(sub.function, sub.trigger.table, sub.trigger.ops, sub.stream) for sub in subs]
        change_routes(self.store).set(self, routes)
        return subs

    async def update(self, specs: Mapping[str, FunctionSpec]) -> None:
        """Run exactly the consumers `specs` declare: unchanged ones keep running, changed ones restart."""
        subs = await self.configure(specs)
        await self.consumers.update([sub.stream for sub in subs])
        wanted = {sub.function: sub for sub in subs}
        for function in list(self._movers):
            current, task = self._movers[function]
            if wanted.get(function) != current:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                del self._movers[function]
        self._stopping.clear()
        for function, sub in wanted.items():
            if function not in self._movers:
                task = asyncio.create_task(self._move_forever(sub), name=f"triggerfish-changes:{function}")
                self._movers[function] = (sub, task)

    async def stop(self) -> None:
        change_routes(self.store).set(self, [])
        self._stopping.set()
        for _, task in self._movers.values():
            task.cancel()
        await asyncio.gather(*(task for _, task in self._movers.values()), return_exceptions=True)
        self._movers.clear()
        await self.consumers.stop()

    async def deliver_due(self) -> int:
        """Move what is new and run one batch per partition, here and now (`triggerfish.testing`)."""
        moved = 0
        for sub in self._subs:
            while count := await self.move(sub):
                moved += count
        return moved + await self.consumers.deliver_due([sub.stream for sub in self._subs])

    async def trim(self, *, max_age: float = STREAM_RETENTION) -> int:
        """Drop changes older than `max_age` (a day, as DynamoDB keeps a stream) that every consumer has handled:
        from each table's stream and each function's partitions. Returns how many records went."""
        log, removed = self.store.log, 0
        for sub in self._subs:
            for partition in range(sub.stream.partitions):
                stream = sub.stream.stream(partition)
                removed += await trim_consumed(log, stream, await log.position(stream, SOURCE_GROUP), max_age=max_age)
        for table in await self.tables.names():
            stream = table_stream(table)
            readers = [sub.function for sub in self._subs if sub.trigger.table == table]
            positions = [await self._checkpoint(function) for function in readers]
            checkpoint = min(positions) if positions else await log.last_offset(stream)
            removed += await trim_consumed(log, stream, checkpoint, max_age=max_age)
        return removed

    def status(self) -> dict[str, object]:
        return {"partitions": self.consumers.owned(), "movers": sorted(self._movers)}

    # --- moving changes into partitions -----------------------------------------------------------

    async def move(self, sub: ChangeSubscription, *, wait: float = 0.0) -> int:
        """Move the next changes of the table into the function's partitions, with the checkpoint; how many."""
        key = change_group(sub.function)
        record = await self.store.kv.get(CHECKPOINTS_NAMESPACE, key)
        if record is None:
            return 0  # not started: `configure` sets the starting position first
        position = int(record.value)
        stored = await self.store.log.read(table_stream(sub.trigger.table), after=position, limit=MOVE_BATCH, wait=wait)
        if not stored:
            return 0
        checkpoint = Put(CHECKPOINTS_NAMESPACE, key, str(stored[-1].offset).encode(), if_version=record.version)
        try:
            # The checkpoint first: a write handing changes over itself (`changes.routes`) takes it before the
            # partitions too, so on PostgreSQL the two never wait for each other's locks in a cycle.
            await self.store.atomic([checkpoint, *self._appends(sub, stored)])
        except AtomicConflictError:
            return 0  # another mover moved them first: read again from its checkpoint
        return len(stored)

    def _appends(self, sub: ChangeSubscription, records: list[LogRecord]) -> list[Op]:
        keyed: list[tuple[str, float, dict[str, object]]] = []
        traces: list[str | None] = []
        for stored in records:
            try:
                change = decode_change(stored.data)
            except InvalidInputError as exc:
                logger.error("%s offset %d: %s", table_stream(sub.trigger.table), stored.offset, exc)
                continue
            if OPS[change.event] not in sub.trigger.ops:
                continue
            record = dynamodb_record(change, offset=stored.offset, source_arn=sub.stream.source_arn)
            keyed.append((change.key, change.at, record))
            traces.append(change.traceparent)
        return append_changes(sub.stream, keyed, traces)

    async def _move_forever(self, sub: ChangeSubscription) -> None:
        while not self._stopping.is_set():
            try:
                await self.move(sub, wait=MOVE_WAIT)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A store failure: nothing was moved (the move is one transaction); read again from the checkpoint.
                logger.exception("moving the changes of %s to %s failed; trying again", sub.trigger.table, sub.function)
                await asyncio.sleep(1.0)

    async def _start_position(self, function: str, trigger: ChangeTrigger) -> None:
        """A new consumer with LATEST starts at the stream's end; TRIM_HORIZON at its start."""
        key = change_group(function)
        if await self.store.kv.get(CHECKPOINTS_NAMESPACE, key) is not None:
            return
        start = await self.store.log.last_offset(table_stream(trigger.table))
        start = start if trigger.stream_settings.starting_position == "LATEST" else 0
        await self.store.kv.put(CHECKPOINTS_NAMESPACE, key, str(start).encode(), if_version=ABSENT)

    async def _checkpoint(self, function: str) -> int:
        record = await self.store.kv.get(CHECKPOINTS_NAMESPACE, change_group(function))
        return 0 if record is None else int(record.value)

    async def _arn(self, trigger: ChangeTrigger) -> str:
        try:
            schema = await self.tables.schema(trigger.table)
        except TableNotFoundError:
            return table_stream_arn(trigger.table, 0.0)
        return table_stream_arn(trigger.table, schema.created_at)
