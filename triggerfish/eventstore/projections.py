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
from triggerfish.eventstore.records import category_of
from triggerfish.model import FunctionSpec, ProjectionTrigger
from triggerfish.names import EVENTSTORE_ALL_STREAM, EVENTSTORE_NAMESPACE, projection_namespace
from triggerfish.store import ABSENT, KVRecord, Store
from triggerfish.store.atomic import Delete, Op, Put

logger = logging.getLogger("triggerfish.eventstore")

#: Seconds a node keeps a projection after its last batch or renewal.
LEASE = 15.0
#: Seconds a failing projection waits before it tries its batch again.
ERROR_PAUSE = 1.0


class Invoker(Protocol):
    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Projection:
    name: str
    category: str
    batch_size: int

    def wants(self, stream: str) -> bool:
        return self.category == "*" or category_of(stream) == self.category


def declared(specs: Mapping[str, FunctionSpec]) -> dict[str, Projection]:
    """The projections among `specs`, by function name."""
    found: dict[str, Projection] = {}
    for spec in specs.values():
        for trigger in spec.triggers:
            if isinstance(trigger, ProjectionTrigger):
                found[spec.name] = Projection(spec.name, trigger.category, trigger.batch_size)
    return found


class Projections:
    """Runs an app's projections on this node (see the module docstring)."""

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
                # Wait for the next event (woken by appends in this process; polled for other nodes'), or renew.
                after = int(state.get("position", 0))
                await self.store.log.read(EVENTSTORE_ALL_STREAM, after=after, limit=1, wait=LEASE / 3)

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
            return 1 if await self._commit(name, record, {"position": 0}, []) else 0
        after = int(state.get("position", 0))
        records = await self.store.log.read(EVENTSTORE_ALL_STREAM, after=after, limit=projection.batch_size)
        if not records:
            if owner != self.node or until - now < LEASE / 2:
                await self._commit(name, record, {"position": after}, [])
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
            except HandlerError as exc:
                message = str(exc.error.get("errorMessage", exc))
                logger.warning("projection %s failed at position %d: %s", name, wanted[0]["position"], message)
                await self._commit(name, record, {"position": after, "error": message[:2000]}, [])
                return 0
            writes = _writes(name, result)
        last = records[-1].offset
        if not await self._commit(name, record, {"position": last}, writes):
            return 0
        return last - after

    async def _commit(self, name: str, record: KVRecord | None, state: dict[str, Any], writes: list[Op]) -> bool:
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

    async def _clear(self, name: str) -> None:
        namespace = projection_namespace(name)
        while records := await self.store.kv.scan(namespace, limit=500):
            await self.store.atomic([Delete(namespace, r.key) for r in records])

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
            rows.append(
                {
                    "name": name,
                    "category": projection.category,
                    "position": position,
                    "head": head,
                    "lag": head - position,
                    "rebuilding": bool(state.get("rebuilding")),
                    "node": state.get("owner"),
                    "error": state.get("error"),
                }
            )
        return rows


def _key(name: str) -> str:
    return f"projection/{name}"


def _writes(name: str, result: Any) -> list[Op]:
    """The store writes a projection's batch asked for (its invocation's result)."""
    namespace = projection_namespace(name)
    if not isinstance(result, dict) or not isinstance(result.get("writes"), list):
        raise InvalidInputError(f"projection {name!r} answered {type(result).__name__}, not its writes")
    ops: list[Op] = []
    for write in result["writes"]:
        if write.get("kind") != "kv":  # the one kind so far; tables join here
            raise InvalidInputError(f"projection {name!r}: unknown write kind {write.get('kind')!r}")
        if write["op"] == "put":
            ops.append(Put(namespace, str(write["key"]), str(write["value"]).encode()))
        else:
            ops.append(Delete(namespace, str(write["key"])))
    return ops
