"""A projection in per-stream order (`@app.projection(..., order="stream")`): each stream applied in its own order,
with its own checkpoint, several streams at once; a failing event holds up its own stream only.

The projection still follows the global log, with a cursor (`projection/<name>`, the same record and lease as a
projection in global order) that says how far it has *taken* events, and each stream keeps how far it has
*applied* them (`projection/<name>/stream/<stream>`: the stream's version). One batch is:

1. read the global log after the cursor (at most `batch_size` x `max_concurrency` positions, up to 1,000) and
   group the events by stream;
2. apply each stream's events, up to `max_concurrency` streams at once, `batch_size` events per invocation of
   the projection's function; commit its writes with the stream's new version in one `Store.atomic` write, the
   stream's record under compare-and-set (so an event is applied once, whichever node or attempt got there
   first), the view's records it read under compare-and-set too (two streams that change one record do not
   lose either's change: the loser applies its events again on what the winner wrote);
3. once every stream of the batch is applied, or marked behind, move the cursor past the batch.

A stream whose batch fails is marked behind (`projection/<name>/behind/<stream>`, with the error), in the same
write that keeps its version. The cursor goes on without it; its later events stay in its own log, and every
`ERROR_PAUSE` seconds the stream is tried again from its version, reading its own log, until it has caught up
(the mark goes in the write of the batch that catches up). A stream read again from its own log gives events
without a global position (`event.position` is None): key on (stream, version).

A crash anywhere leaves the cursor where it was and each stream's version with the writes that go with it: the
batch is read again and every stream skips what it has applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from triggerfish.errors import AtomicConflictError, HandlerError, InvalidInputError
from triggerfish.names import EVENTSTORE_ALL_STREAM, EVENTSTORE_NAMESPACE, event_stream, projection_namespace
from triggerfish.store import ABSENT, KVRecord, Store
from triggerfish.store.atomic import Delete, Op, Put
from triggerfish.tables.errors import TableError

if TYPE_CHECKING:
    from triggerfish.eventstore.projections import Projection, Projections

logger = logging.getLogger("triggerfish.eventstore")

#: How often a stream's batch is applied again when a record it read changed under it, before the batch waits.
_CONFLICT_TRIES = 8
#: Behind marks read per page.
_PAGE = 1000
#: Most positions of the global log one batch reads.
MAX_WINDOW = 1000


def stream_key(name: str, stream: str) -> str:
    return f"projection/{name}/stream/{stream}"


def behind_key(name: str, stream: str) -> str:
    return f"projection/{name}/behind/{stream}"


def own_prefix(name: str) -> str:
    """Every record of projection `name` but its cursor: its streams' versions and behind marks."""
    return f"projection/{name}/"


async def behind(projections: Projections, name: str) -> dict[str, dict[str, Any]]:
    """The streams marked behind: their marks (`version` applied, `error`, `retry_at`), by stream."""
    prefix = f"projection/{name}/behind/"
    found: dict[str, dict[str, Any]] = {}
    start = ""
    while True:
        records = await projections.store.kv.scan(EVENTSTORE_NAMESPACE, prefix=prefix, start=start, limit=_PAGE)
        for r in records:
            found[r.key[len(prefix) :]] = orjson.loads(r.value)
        if len(records) < _PAGE:
            return found
        start = records[-1].key + "\x01"


async def step(
    projections: Projections,
    name: str,
    projection: Projection,
    record: KVRecord | None,
    state: dict[str, Any],
) -> int:
    """One batch of a projection in per-stream order (see the module docstring); the positions the cursor moved
    past plus the events applied to streams that were behind (0: nothing was done)."""
    after = int(state.get("position", 0))
    window = min(MAX_WINDOW, projection.batch_size * projection.max_concurrency)
    records = await projections.store.log.read(EVENTSTORE_ALL_STREAM, after=after, limit=window)
    marks = await behind(projections, name)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        document = orjson.loads(r.data)
        stream = document["stream"]
        if projection.wants(stream) and stream not in marks:  # a stream behind reads its own log
            document["position"] = r.offset
            groups.setdefault(stream, []).append(document)
    now = projections.clock()
    due = [stream for stream, mark in marks.items() if float(mark.get("retry_at", 0.0)) <= now]
    limit = asyncio.Semaphore(projection.max_concurrency)

    async def one(stream: str, events: list[dict[str, Any]] | None) -> tuple[int, bool]:
        async with limit:
            if events is None:
                applied, settled, _ = await _apply(projections, name, projection, stream, None, behind=True)
                return applied, settled
            total = 0
            for start in range(0, len(events), projection.batch_size):
                chunk = events[start : start + projection.batch_size]
                applied, settled, held = await _apply(projections, name, projection, stream, chunk, behind=False)
                total += applied
                if not settled or held:
                    return total, settled  # the rest waits: in this batch again, or behind its failure
            return total, True

    outcomes = await asyncio.gather(
        *(one(stream, events) for stream, events in groups.items()), *(one(stream, None) for stream in due)
    )
    caught_up = sum(applied for (applied, _), stream in zip(outcomes[len(groups) :], due, strict=True))
    if not records:
        owner, until = state.get("owner"), float(state.get("until", 0.0))
        if owner != projections.node or until - now < projections.lease / 2:
            await projections.commit(name, record, {"position": after}, [])
        return caught_up
    if not all(settled for _, settled in outcomes):
        # A stream lost a race for its own record (another node applied it): read the batch again.
        return caught_up
    last = records[-1].offset
    if not await projections.commit(name, record, {"position": last}, []):
        return caught_up
    return caught_up + last - after


async def _apply(
    projections: Projections,
    name: str,
    projection: Projection,
    stream: str,
    events: list[dict[str, Any]] | None,
    *,
    behind: bool,
) -> tuple[int, bool, bool]:
    """Apply `stream`'s events after its version: `events` (from the global log), or (None, or when they do not
    follow its version) the next ones in its own log. (Events applied, whether the stream is settled: applied,
    or marked behind; whether it is held behind a failure, or still has events in its own log to catch up.)"""
    store = projections.store
    key = stream_key(name, stream)
    for _ in range(_CONFLICT_TRIES):
        checkpoint = await store.kv.get(EVENTSTORE_NAMESPACE, key)
        applied = 0 if checkpoint is None else int(orjson.loads(checkpoint.value)["version"])
        expect = ABSENT if checkpoint is None else checkpoint.version
        todo = [] if events is None else [e for e in events if int(e["version"]) > applied]
        at_head = True
        if events is None or (todo and int(todo[0]["version"]) != applied + 1):
            logged = await store.log.read(event_stream(stream), after=applied, limit=projection.batch_size)
            todo = [orjson.loads(r.data) for r in logged]
            at_head = len(logged) < projection.batch_size
        if not todo:
            if behind and at_head:  # caught up since it was marked (another node, or nothing left)
                await _write(
                    store, [_version(key, applied, expect), Delete(EVENTSTORE_NAMESPACE, behind_key(name, stream))]
                )
            return 0, True, False
        invocation = {"projection": name, "namespace": projection_namespace(name), "stream": stream, "events": todo}
        try:
            result = await projections.invoker.invoke(name, invocation, trigger="projection")
            writes = await projections.writes_of(projection, result, guarded=True)
        except (HandlerError, InvalidInputError, TableError) as exc:
            message = (str(exc.error.get("errorMessage", exc)) if isinstance(exc, HandlerError) else str(exc))[:2000]
            logger.warning("projection %s failed at %s version %s: %s", name, stream, todo[0]["version"], message)
            mark = {
                "version": applied,
                "failed": int(todo[0]["version"]),
                "error": message,
                "retry_at": projections.clock() + projections.error_pause,
            }
            held = [
                _version(key, applied, expect),
                Put(EVENTSTORE_NAMESPACE, behind_key(name, stream), orjson.dumps(mark)),
            ]
            return 0, await _write(store, held) is not None, True
        if writes is None:
            continue  # a table's item the batch read changed under it (another stream's batch): apply it again
        ops: list[Op] = [_version(key, int(todo[-1]["version"]), expect), *writes]
        if behind and at_head:
            ops.append(Delete(EVENTSTORE_NAMESPACE, behind_key(name, stream)))
        elif behind or not at_head:
            # Still behind (its own log has more): the next batch takes the next events at once.
            mark = {"version": int(todo[-1]["version"]), "error": None, "retry_at": 0.0}
            ops.append(Put(EVENTSTORE_NAMESPACE, behind_key(name, stream), orjson.dumps(mark)))
        written = await _write(store, ops)
        if written is None:
            return 0, False, False  # another node or attempt applied these events first
        if written:
            return len(todo), True, behind or not at_head
        # A record the batch read changed under it (another stream's batch): apply the events again.
    return 0, False, False


def _version(key: str, version: int, expect: int) -> Put:
    return Put(EVENTSTORE_NAMESPACE, key, orjson.dumps({"version": version}), if_version=expect)


async def _write(store: Store, ops: Sequence[Op]) -> bool | None:
    """True: written; None: the stream's version moved (its record, ops[0]); False: a record it read moved."""
    try:
        await store.atomic(ops)
    except AtomicConflictError as exc:
        return None if exc.index == 0 else False
    return True


async def clear(projections: Projections, name: str) -> None:
    """Delete the streams' versions and behind marks of projection `name` (a rebuild's start)."""
    await _delete_all(projections, EVENTSTORE_NAMESPACE, own_prefix(name))


async def _delete_all(projections: Projections, namespace: str, prefix: str) -> None:
    while records := await projections.store.kv.scan(namespace, prefix=prefix, limit=500):
        await projections.store.atomic(_deletes(namespace, (r.key for r in records)))


def _deletes(namespace: str, keys: Iterable[str]) -> list[Op]:
    return [Delete(namespace, key) for key in keys]
