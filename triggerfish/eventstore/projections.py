"""The platform's side of projections: each one fed its events in global order, its writes committed with its
checkpoint.

A projection's checkpoint is a record `projection/<name>` in the event store's
namespace: the global position it has applied up to, the node that runs it and
until when (a lease, so one node at a time runs a projection and another takes
over when it stops renewing), and its last error. One batch is:

1. read the global log after the checkpoint (at most `batch_size` positions);
2. invoke the projection's function with the batch's events of its category;
3. commit its writes and the new checkpoint in one `Store.atomic` write, the
   checkpoint under compare-and-set.

A crash anywhere before the commit leaves the old checkpoint and none of the
writes, so the batch is applied again from the same place: exactly once. The
compare-and-set refuses a commit by a node that lost its lease, or one racing a
rebuild. A rebuild sets the checkpoint to 0 marked `rebuilding`; whichever node
runs the projection next deletes its records, then starts again from the first
event (done there, not by the caller, so a crash half way only repeats it).

A projection declared with `order="stream"` keeps the same record as its cursor
and lease, and applies each stream in its own order with a checkpoint of its
own: stream_projections.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from triggerfish.errors import AtomicConflictError, HandlerError, InvalidInputError
from triggerfish.eventstore import stream_projections
from triggerfish.eventstore.records import category_of
from triggerfish.model import FunctionSpec, ProjectionTrigger
from triggerfish.names import EVENTSTORE_ALL_STREAM, EVENTSTORE_NAMESPACE, projection_namespace
from triggerfish.store import ABSENT, KVRecord, Store
from triggerfish.store.atomic import Delete, Op, Put
from triggerfish.tables.errors import TableError, TableNotFoundError
from triggerfish.tables.table import UNREAD, StagedWrite, Tables

logger = logging.getLogger("triggerfish.eventstore")

#: Seconds a node keeps a projection after its last batch or renewal.
LEASE = 15.0
#: Seconds a failing projection waits before it tries its batch again.
ERROR_PAUSE = 1.0
#: Streams behind a projection in per-stream order that its status lists.
STATUS_STREAMS = 20


class Invoker(Protocol):
    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Projection:
    name: str
    category: str
    batch_size: int
    #: "global": one checkpoint, every event in global order; "stream": each stream in its own order, with its
    #: own checkpoint, `max_concurrency` streams at once (stream_projections.py).
    order: str = "global"
    max_concurrency: int = 1
    #: The platform tables it writes besides its key-value records.
    tables: tuple[str, ...] = ()

    def wants(self, stream: str) -> bool:
        return self.category == "*" or category_of(stream) == self.category


def declared(specs: Mapping[str, FunctionSpec]) -> dict[str, Projection]:
    """The projections among `specs`, by function name."""
    found: dict[str, Projection] = {}
    for spec in specs.values():
        for trigger in spec.triggers:
            if isinstance(trigger, ProjectionTrigger):
                found[spec.name] = Projection(
                    spec.name,
                    trigger.category,
                    trigger.batch_size,
                    trigger.order,
                    trigger.max_concurrency,
                    trigger.tables,
                )
    return found


class Projections:
    """Runs an app's projections on this node (see the module docstring)."""

    #: Seconds a node keeps a projection after its last batch or renewal.
    lease = LEASE
    #: Seconds a failing batch (or stream, in per-stream order) waits before it is tried again.
    error_pause = ERROR_PAUSE

    def __init__(
        self,
        store: Store,
        invoker: Invoker,
        specs: Mapping[str, FunctionSpec],
        *,
        node: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.invoker = invoker
        self.node = node
        self.clock = clock
        self.projections = declared(specs)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.tables = Tables(store, clock=clock)

    def configure(self, specs: Mapping[str, FunctionSpec]) -> None:
        """A new version's projections (loops of ones no longer declared stop)."""
        self.projections = declared(specs)
        for name in list(self._tasks):
            if name not in self.projections:
                self._tasks.pop(name).cancel()
        if self._tasks or self._started:
            self._start_missing()

    _started = False

    async def start(self) -> None:
        self._started = True
        self._start_missing()

    def _start_missing(self) -> None:
        for name in self.projections:
            if name not in self._tasks or self._tasks[name].done():
                self._tasks[name] = asyncio.create_task(self._run(name), name=f"projection {name}")

    async def stop(self) -> None:
        self._started = False
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def run_due(self) -> int:
        """Bring every projection up to the newest event here and now; the events applied (for `drain()`)."""
        done = 0
        for name in list(self.projections):
            while (count := await self.step(name)) > 0:
                done += count
        return done

    async def _run(self, name: str) -> None:
        while True:
            try:
                moved = await self.step(name)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("projection %s failed a batch; trying again", name)
                moved = 0
                await asyncio.sleep(ERROR_PAUSE)
            if moved == 0:
                _, state = await self._checkpoint(name)
                if state.get("owner") not in (None, self.node) and float(state.get("until", 0.0)) > self.clock():
                    await asyncio.sleep(LEASE / 3)  # another node runs it: look again before its lease can lapse
                    continue
                if state.get("error"):
                    await asyncio.sleep(ERROR_PAUSE)  # its batch failed: try it again in a moment
                    continue
                # Wait for the next event (woken by appends in this process; polled for other nodes'), or renew;
                # a stream behind is tried again sooner.
                wait = LEASE / 3
                if self.projections[name].order == "stream" and await stream_projections.behind(self, name):
                    wait = ERROR_PAUSE
                after = int(state.get("position", 0))
                await self.store.log.read(EVENTSTORE_ALL_STREAM, after=after, limit=1, wait=wait)

    async def step(self, name: str) -> int:
        """One batch of projection `name`; the positions it moved past (0: nothing to do, or not ours now; a
        rebuild's clearing counts 1)."""
        projection = self.projections[name]
        record, state = await self._checkpoint(name)
        now = self.clock()
        owner, until = state.get("owner"), float(state.get("until", 0.0))
        if owner not in (None, self.node) and until > now:
            return 0
        if state.get("rebuilding"):
            await self._clear(name)
            return 1 if await self.commit(name, record, {"position": 0}, []) else 0
        if projection.order == "stream":
            return await stream_projections.step(self, name, projection, record, state)
        after = int(state.get("position", 0))
        records = await self.store.log.read(EVENTSTORE_ALL_STREAM, after=after, limit=projection.batch_size)
        if not records:
            if owner != self.node or until - now < LEASE / 2:
                await self.commit(name, record, {"position": after}, [])
            return 0
        wanted = []
        for r in records:
            document = orjson.loads(r.data)
            if projection.wants(document["stream"]):
                document["position"] = r.offset
                wanted.append(document)
        writes: list[Op] = []
        if wanted:
            event = {"projection": name, "namespace": projection_namespace(name), "events": wanted}
            try:
                result = await self.invoker.invoke(name, event, trigger="projection")
                writes = await self.writes_of(projection, result) or []
            except (HandlerError, InvalidInputError, TableError) as exc:
                message = str(exc.error.get("errorMessage", exc)) if isinstance(exc, HandlerError) else str(exc)
                logger.warning("projection %s failed at position %d: %s", name, wanted[0]["position"], message)
                await self.commit(name, record, {"position": after, "error": message[:2000]}, [])
                return 0
        last = records[-1].offset
        if not await self.commit(name, record, {"position": last}, writes):
            return 0
        return last - after

    async def commit(self, name: str, record: KVRecord | None, state: dict[str, Any], writes: list[Op]) -> bool:
        """Write projection `name`'s checkpoint (renewing this node's lease) with `writes`, over `record`; False when
        the checkpoint moved (another node took it, or a rebuild began)."""
        state = {**state, "owner": self.node, "until": self.clock() + LEASE}
        checkpoint = Put(
            EVENTSTORE_NAMESPACE,
            _key(name),
            orjson.dumps(state),
            if_version=ABSENT if record is None else record.version,
        )
        try:
            await self.store.atomic([checkpoint, *writes])
        except AtomicConflictError as exc:
            if exc.index != 0:
                raise
            return False  # another node took it, or a rebuild began: read the checkpoint again
        return True

    async def writes_of(self, projection: Projection, result: Any, *, guarded: bool = False) -> list[Op] | None:
        """The store writes a projection's batch asked for (its invocation's result): its key-value records'
        (`writes_of`) and its tables' (with their change records). None when `guarded` and a table's item is no
        longer as the batch read it. Raises InvalidInputError (a table it does not declare), TableError."""
        ops = writes_of(projection.name, result, guarded=guarded)
        staged: list[StagedWrite] = []
        for write in result["writes"]:
            if write.get("kind") != "table":
                continue
            table = str(write.get("table"))
            if table not in projection.tables:
                raise InvalidInputError(
                    f"projection {projection.name!r} writes table {table!r}, which it does not declare:"
                    f" @app.projection(..., tables=[{table!r}])"
                )
            expected = write["read"] if guarded and "read" in write else UNREAD
            staged.append(StagedWrite(table, item=write.get("item"), key=write.get("key"), expected=expected))
        if not staged:
            return ops
        table_ops = await self.tables.staged_ops(staged)
        return None if table_ops is None else [*ops, *table_ops]

    async def _clear(self, name: str) -> None:
        namespace = projection_namespace(name)
        while records := await self.store.kv.scan(namespace, limit=500):
            await self.store.atomic([Delete(namespace, r.key) for r in records])
        for table in self.projections[name].tables:
            with contextlib.suppress(TableNotFoundError):
                await self.tables.clear(table)
        await stream_projections.clear(self, name)  # the streams' versions and marks (per-stream order)

    async def _checkpoint(self, name: str) -> tuple[KVRecord | None, dict[str, Any]]:
        record = await self.store.kv.get(EVENTSTORE_NAMESPACE, _key(name))
        return record, ({} if record is None else orjson.loads(record.value))

    async def rebuild(self, name: str) -> None:
        """Start projection `name` again from position 0 (its records are deleted first, by whoever runs it)."""
        if name not in self.projections:
            raise InvalidInputError(f"no projection named {name!r}; the app declares {sorted(self.projections)}")
        while True:
            record, _ = await self._checkpoint(name)
            state = orjson.dumps({"position": 0, "rebuilding": True})
            done = await self.store.kv.put(
                EVENTSTORE_NAMESPACE, _key(name), state, if_version=ABSENT if record is None else record.version
            )
            if done is not None:
                return

    async def status(self) -> list[dict[str, Any]]:
        """Each projection: its category, position, the newest position, how far behind, who runs it, its error."""
        head = await self.store.log.last_offset(EVENTSTORE_ALL_STREAM)
        rows = []
        for name, projection in self.projections.items():
            _, state = await self._checkpoint(name)
            position = int(state.get("position", 0))
            row = {
                "name": name,
                "category": projection.category,
                "order": projection.order,
                "position": position,
                "head": head,
                "lag": head - position,
                "rebuilding": bool(state.get("rebuilding")),
                "node": state.get("owner"),
                "error": state.get("error"),
            }
            if projection.order == "stream":
                marks = await stream_projections.behind(self, name)
                # The streams held up (by an error) or still catching up, each with its version applied.
                row["behind"] = {
                    stream: {"version": mark.get("version"), "failed": mark.get("failed"), "error": mark.get("error")}
                    for stream, mark in sorted(marks.items())[:STATUS_STREAMS]
                }
                row["streams_behind"] = len(marks)
                if row["error"] is None:
                    row["error"] = next((m["error"] for _, m in sorted(marks.items()) if m.get("error")), None)
            rows.append(row)
        return rows


def _key(name: str) -> str:
    return f"projection/{name}"


def writes_of(name: str, result: Any, *, guarded: bool = False) -> list[Op]:
    """The store writes a projection's batch asked for (its invocation's result). `guarded`: a write of a record
    the batch read holds only if the record is still as it was read (several streams apply at once), and the
    writes are in key order (so two commits on PostgreSQL lock the records they share in one order)."""
    namespace = projection_namespace(name)
    if not isinstance(result, dict) or not isinstance(result.get("writes"), list):
        raise InvalidInputError(f"projection {name!r} answered {type(result).__name__}, not its writes")
    writes = result["writes"]
    if guarded:
        writes = sorted(writes, key=lambda write: str(write.get("key")))
    ops: list[Op] = []
    for write in writes:
        if write.get("kind") == "table":
            continue  # Projections.writes_of makes those
        if write.get("kind") != "kv":
            raise InvalidInputError(f"projection {name!r}: unknown write kind {write.get('kind')!r}")
        key = str(write["key"])
        read = write.get("read_version") if guarded else None
        if write["op"] == "put":
            ops.append(Put(namespace, key, str(write["value"]).encode(), if_version=read))
        elif read == ABSENT:
            continue  # it was not there when read: deleting it is nothing, as of that read
        else:
            ops.append(Delete(namespace, key, if_version=read))
    return ops
