"""Changes handed straight from a table write to the `@app.on_change` functions' partitions: no mover hop.

    routes = change_routes(store)                 # one per store object: every `Tables` over it shares it
    routes.set(consumer, [Route(...), ...])       # the change consumers say which functions read which table
    ops += routes.forwards("orders", changes)     # a write adds one `Forward` per function to its transaction

A change reaches a function's partitions in one of two ways, and exactly one of them
for each change. The mover (`changes.consumer`) copies the table's stream after its
checkpoint, in a transaction of its own. Or the write's own transaction does it, with a
`Forward` op: if the function's checkpoint stands right before the write's change (the
mover has copied everything earlier), the store appends the function's records and moves
the checkpoint in that same transaction; if not, the mover copies the change later. The
store decides inside the transaction, so a change is never copied twice or skipped, and
the changes of one item keep their order. The saving is a whole durable commit (an fsync
on SQLite) and a wake-up between the write and the function's partition reader.

A write only knows of the functions this process's change consumer registered; writes from
elsewhere (another node, a store that cannot decide inside a transaction) go the mover's way.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from triggerfish.changes.records import OPS, Change, dynamodb_record
from triggerfish.names import CHANGE_CHECKPOINTS_NAMESPACE, change_group, table_stream
from triggerfish.store import Store
from triggerfish.store.atomic import Forward
from triggerfish.streams.records import SourceRecord, encode_record, partition_of
from triggerfish.streams.subscription import StreamSubscription


@dataclass(frozen=True, slots=True)
class Route:
    """One function reading one table's changes: the ops it takes and its partition streams."""

    function: str
    table: str
    ops: tuple[str, ...]
    stream: StreamSubscription


class ChangeRoutes:
    """The functions each table's writes hand their changes to, in this process."""

    def __init__(self) -> None:
        # Weakly: an owner holds the store, and this is kept per store (a strong reference would keep both alive).
        self._by_owner: weakref.WeakKeyDictionary[object, list[Route]] = weakref.WeakKeyDictionary()
        self._by_table: dict[str, list[Route]] = {}

    def set(self, owner: object, routes: Sequence[Route]) -> None:
        """What `owner` (a change consumer) reads now; replaces what it said before (an empty list: nothing)."""
        if routes:
            self._by_owner[owner] = list(routes)
        else:
            self._by_owner.pop(owner, None)
        by_table: dict[str, list[Route]] = {}
        for owned in self._by_owner.values():
            for route in owned:
                by_table.setdefault(route.table, []).append(route)
        self._by_table = {table: sorted(found, key=lambda r: r.function) for table, found in by_table.items()}

    def forwards(self, table: str, changes: Sequence[Change]) -> list[Forward]:
        """The `Forward` ops that hand `changes` (appended to the table's stream, in this order) to each function."""
        return [_forward(route, changes) for route in self._by_table.get(table, ())]


def _forward(route: Route, changes: Sequence[Change]) -> Forward:
    sub = route.stream

    def build(index: int, offset: int) -> tuple[int, bytes] | None:
        change = changes[index]
        if OPS[change.event] not in route.ops:
            return None  # not one the function takes: its checkpoint moves past it all the same
        record = dynamodb_record(change, offset=offset, source_arn=sub.source_arn)
        stored = SourceRecord(change.key, change.at, orjson.dumps(record), traceparent=change.traceparent)
        return partition_of(change.key, sub.partitions), encode_record(stored)

    streams = tuple(sub.stream(partition) for partition in range(sub.partitions))
    checkpoint = change_group(route.function)
    return Forward(table_stream(route.table), CHANGE_CHECKPOINTS_NAMESPACE, checkpoint, streams, build)


_ROUTES: weakref.WeakKeyDictionary[Store, ChangeRoutes] = weakref.WeakKeyDictionary()


def change_routes(store: Store) -> ChangeRoutes:
    """The routes of writes through `store` (this store object: a scoped view has its own)."""
    routes = _ROUTES.get(store)
    if routes is None:
        routes = _ROUTES[store] = ChangeRoutes()
    return routes
