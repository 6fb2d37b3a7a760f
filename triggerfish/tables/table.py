"""Tables over the platform's store: items, conditional writes, queries, transactions and change streams.

    tables = Tables(store)
    await tables.create(TableSchema("orders", KeyAttribute("id")))
    old = await tables.put("orders", {"id": {"S": "o-1"}, "total": {"N": "42"}}, condition=None)
    page = await tables.query("orders", key_condition, limit=25)

Items are records of the store's key-value part (one namespace per table, the store
key ordered as DynamoDB orders keys, `schema.py`), so every backend (SQLite,
PostgreSQL, memory) holds tables with nothing of its own to add. A write reads the
item, checks the condition against it, and commits with `Store.atomic` the item (on
the version it read: compare-and-set), the change record on the table's stream and
any outbox events, all or nothing. A concurrent write to the same item makes the
compare-and-set fail, and the write is tried again from the read: conditions are
checked against the item as it is committed. Transactions do the same for several
items at once.
"""

from __future__ import annotations

import copy
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson

from triggerfish.changes.records import Change, change_of, encode_change
from triggerfish.changes.routes import change_routes
from triggerfish.errors import AtomicConflictError
from triggerfish.events.cloudevent import Event
from triggerfish.names import TABLES_NAMESPACE, bus_stream, table_items_namespace, table_stream
from triggerfish.store import ABSENT, KVRecord, Store
from triggerfish.store.atomic import Append, Delete, Op, Put
from triggerfish.tables.errors import (
    CancellationReason,
    ConditionFailedError,
    TableError,
    TableExistsError,
    TableNotFoundError,
    TransactionCanceledError,
    ValidationError,
)
from triggerfish.tables.evaluate import apply_update, holds, key_matches, project
from triggerfish.tables.expressions import Condition, KeyCondition, Path, Update
from triggerfish.tables.schema import TableSchema, check_table_name
from triggerfish.tables.values import Item, equal, key_text

#: Times a write is tried again when another write to the same item committed between its read and its commit.
MAX_ATTEMPTS = 50
#: Seconds a table's schema is used without reading it again.
SCHEMA_TTL = 1.0
#: Items a scan or query reads from the store at once.
_CHUNK = 500
#: DynamoDB's limits on batches and transactions.
MAX_BATCH_GET = 100
MAX_BATCH_WRITE = 25
MAX_TRANSACT_ITEMS = 100

#: What an outbox entry is: an event and the bus it goes to, appended with the write (all or nothing).
Outbox = Sequence[tuple[str, Event]]


@dataclass(frozen=True, slots=True)
class Page:
    """A query's or scan's result: the items, where to go on from (None: done), how many items were read."""

    items: list[Item]
    last_key: Item | None
    scanned: int


@dataclass(frozen=True, slots=True)
class TransactItem:
    """One action of `transact_write`: "put" (item), "update" (key, update), "delete" (key) or "check" (key)."""

    action: Literal["put", "update", "delete", "check"]
    table: str
    item: Item | None = None
    key: Item | None = None
    update: Update | None = None
    condition: Condition | None = None
    #: Whether a failed condition's reason carries the item as it was (ReturnValuesOnConditionCheckFailure).
    return_old_on_failure: bool = False


#: `StagedWrite.expected` when the writer did not read the item: the write holds whatever the item is now.
UNREAD = object()


@dataclass(frozen=True, slots=True)
class StagedWrite:
    """A put (`item`) or delete (`key`) another transaction commits (a projection's, with its checkpoint), with the
    item as the writer read it (`expected`: None for none; UNREAD when it did not read it)."""

    table: str
    item: Item | None = None
    key: Item | None = None
    expected: object = UNREAD


@dataclass
class _Write:
    schema: TableSchema
    store_key: str
    record: KVRecord | None
    old: Item | None
    new: Item | None
    keys: Item
    extra: list[Op] = field(default_factory=list)
    #: The change record `_ops` appends for this write (None: it appends none).
    change: Change | None = None


class Tables:
    """The tables of one app's store. Every method raises TableError subclasses with DynamoDB's codes."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        #: Schemas read recently, with when (monotonic): a table dropped and made again with other keys (by another
        #: caller) is seen within SCHEMA_TTL, without a read of the schema on every operation.
        self._schemas: dict[str, tuple[TableSchema, float]] = {}
        #: The writing invocation's traceparent, kept with each change record (`traced`); None: no trace.
        self.traceparent: str | None = None

    def traced(self, traceparent: str | None) -> Tables:
        """These tables (sharing their schema cache) writing change records that carry `traceparent`."""
        tables = copy.copy(self)
        tables.traceparent = traceparent
        return tables

    # --- tables ---------------------------------------------------------------------------------

    async def create(self, schema: TableSchema) -> TableSchema:
        """Make a table; TableExistsError when one of that name exists."""
        created = await self.store.kv.put(
            TABLES_NAMESPACE, schema.name, orjson.dumps(schema.to_json()), if_version=ABSENT
        )
        if created is None:
            raise TableExistsError(f"Table already exists: {schema.name}")
        self._schemas[schema.name] = (schema, time.monotonic())
        return schema

    async def ensure(self, schema: TableSchema) -> TableSchema:
        """The table as declared: made if missing; an existing one is kept as it is (its keys cannot change)."""
        try:
            return await self.create(schema)
        except TableExistsError:
            return await self.describe(schema.name)

    async def describe(self, name: str) -> TableSchema:
        check_table_name(name)
        record = await self.store.kv.get(TABLES_NAMESPACE, name)
        if record is None:
            self._schemas.pop(name, None)
            raise TableNotFoundError(f"Requested resource not found: Table: {name} not found")
        schema = TableSchema.from_json(orjson.loads(record.value))
        self._schemas[name] = (schema, time.monotonic())
        return schema

    async def schema(self, name: str) -> TableSchema:
        """The table's schema, remembered for SCHEMA_TTL (a table's keys never change while it exists)."""
        cached = self._schemas.get(name)
        if cached is not None and time.monotonic() - cached[1] < SCHEMA_TTL:
            return cached[0]
        return await self.describe(name)

    async def names(self) -> list[str]:
        return [record.key for record in await self.store.kv.scan(TABLES_NAMESPACE, limit=10_000)]

    async def delete_table(self, name: str) -> TableSchema:
        """Drop a table and its items (its stream stays, as DynamoDB keeps a stream 24 hours after)."""
        schema = await self.describe(name)
        await self.store.kv.delete(TABLES_NAMESPACE, name)
        self._schemas.pop(name, None)
        namespace = table_items_namespace(name)
        while records := await self.store.kv.scan(namespace, limit=_CHUNK):
            for record in records:
                await self.store.kv.delete(namespace, record.key)
        return schema

    async def count(self, name: str, *, at_most: int = 100_000) -> int:
        """How many items the table holds, counted up to `at_most` (DynamoDB's ItemCount is approximate too)."""
        schema, total, start = await self.schema(name), 0, ""
        while total < at_most and (
            records := await self.store.kv.scan(table_items_namespace(schema.name), start=start, limit=_CHUNK)
        ):
            total += len(records)
            start = records[-1].key + "\x01"
        return total

    # --- one item -------------------------------------------------------------------------------

    async def get(self, name: str, key: Item, *, projection: Sequence[Path] | None = None) -> Item | None:
        schema = await self.schema(name)
        record = await self.store.kv.get(table_items_namespace(name), schema.store_key(schema.check_key(key)))
        item = _item(record)
        return item if item is None or projection is None else project(item, projection)

    async def put(
        self, name: str, item: Item, *, condition: Condition | None = None, outbox: Outbox = (),
        return_old_on_failure: bool = False,
    ) -> Item | None:  # fmt: skip
        """Write a whole item (replacing any); returns the item it replaced. ConditionFailedError leaves it."""
        schema = await self.schema(name)
        keys = schema.key_of(item)
        old, _ = await self._write_one(schema, keys, lambda old: item, condition, outbox, return_old_on_failure)
        return old

    async def update(
        self, name: str, key: Item, update: Update | None, *, condition: Condition | None = None,
        outbox: Outbox = (), return_old_on_failure: bool = False,
    ) -> tuple[Item | None, Item]:  # fmt: skip
        """Change an item by `update` (made if missing, from its key); returns the item before and after."""
        schema = await self.schema(name)
        keys = schema.check_key(key)

        def change(old: Item | None) -> Item:
            base = dict(old) if old is not None else dict(keys)
            return base if update is None else apply_update(update, base, schema.key_names)

        old, new = await self._write_one(schema, keys, change, condition, outbox, return_old_on_failure)
        assert new is not None
        return old, new

    async def delete(
        self, name: str, key: Item, *, condition: Condition | None = None, outbox: Outbox = (),
        return_old_on_failure: bool = False,
    ) -> Item | None:  # fmt: skip
        """Delete an item; returns it (None: there was none, and nothing is written but the outbox)."""
        schema = await self.schema(name)
        keys = schema.check_key(key)
        old, _ = await self._write_one(schema, keys, lambda old: None, condition, outbox, return_old_on_failure)
        return old

    async def _write_one(
        self,
        schema: TableSchema,
        keys: Item,
        change: Callable[[Item | None], Item | None],
        condition: Condition | None,
        outbox: Outbox,
        return_old_on_failure: bool,
    ) -> tuple[Item | None, Item | None]:
        store_key = schema.store_key(keys)
        for _ in range(MAX_ATTEMPTS):
            write = await self._read(schema, store_key, keys)
            if condition is not None and not holds(condition, write.old or {}):
                raise ConditionFailedError(item=write.old if return_old_on_failure else None)
            write.new = change(write.old)
            try:
                await self.store.atomic([*self._ops(write), *self._forwards([write]), *outbox_ops(outbox)])
            except AtomicConflictError:
                continue  # another write to this item committed since the read: read it again
            return write.old, write.new
        raise TableError(f"the item {keys} of {schema.name} is written too often at once; try again")

    async def _read(self, schema: TableSchema, store_key: str, keys: Item) -> _Write:
        record = await self.store.kv.get(table_items_namespace(schema.name), store_key)
        return _Write(schema, store_key, record, _item(record), None, keys)

    def _ops(self, write: _Write) -> list[Op]:
        """The item's write (on the version read) and its change record; nothing when nothing changes."""
        namespace = table_items_namespace(write.schema.name)
        version = ABSENT if write.record is None else write.record.version
        if write.new is None:
            if write.old is None:
                return []
            ops: list[Op] = [Delete(namespace, write.store_key, if_version=version)]
        else:
            if write.old is not None and _same(write.old, write.new):
                return []  # as DynamoDB: a write that changes nothing makes no stream record
            ops = [Put(namespace, write.store_key, orjson.dumps(write.new), if_version=version)]
        change = change_of(
            write.old, write.new, write.keys, at=self.clock(), key=write.store_key,
            view_type=write.schema.stream_view_type, traceparent=self.traceparent,
        )  # fmt: skip
        ops.append(Append(table_stream(write.schema.name), [encode_change(change)]))
        write.change = change
        return ops

    def _forwards(self, writes: Sequence[_Write]) -> list[Op]:
        """The ops handing the writes' changes straight to the `@app.on_change` functions (`changes.routes`).

        After `_ops` of every write: the changes of each table go in the order their appends were made."""
        by_table: dict[str, list[Change]] = {}
        for write in writes:
            if write.change is not None:
                by_table.setdefault(write.schema.name, []).append(write.change)
        routes = change_routes(self.store)
        return [forward for table, changes in by_table.items() for forward in routes.forwards(table, changes)]

    async def staged_ops(self, writes: Sequence[StagedWrite]) -> list[Op] | None:
        """The store operations of `writes` (in order; the last write of an item wins) on the items as they are
        now, with their change records, for a caller that commits them in a transaction of its own: each item's
        write is a compare-and-set on the version read here, so the commit fails if it changed since. None when
        an item is no longer as a write's `expected` says (the writer read it before another write changed it).
        Raises TableNotFoundError, ValidationError (an item without its keys)."""
        latest: dict[tuple[str, str], tuple[TableSchema, Item, Item | None, object]] = {}
        for staged in writes:
            schema = await self.schema(staged.table)
            if staged.item is not None:
                keys, new = schema.key_of(staged.item), staged.item
            else:
                keys, new = schema.check_key(staged.key or {}), None
            slot = (staged.table, schema.store_key(keys))
            expected = latest[slot][3] if slot in latest and latest[slot][3] is not UNREAD else staged.expected
            latest[slot] = (schema, keys, new, expected)
        made: list[_Write] = []
        for (_, store_key), (schema, keys, new, expected) in latest.items():
            write = await self._read(schema, store_key, keys)
            if expected is not UNREAD and not _same_or_none(write.old, expected):
                return None
            write.new = new
            made.append(write)
        ops = [op for write in made for op in self._ops(write)]
        return [*ops, *self._forwards(made)]

    async def clear(self, name: str) -> int:
        """Delete every item of table `name` (each with its change record); how many."""
        schema = await self.schema(name)
        deleted = 0
        while records := await self.store.kv.scan(table_items_namespace(name), limit=_CHUNK):
            for record in records:
                item = _item(record)
                if item is not None:
                    await self.delete(name, schema.key_of(item))
                    deleted += 1
        return deleted

    # --- reading many ---------------------------------------------------------------------------

    async def query(
        self,
        name: str,
        condition: KeyCondition,
        *,
        forward: bool = True,
        limit: int | None = None,
        start_key: Item | None = None,
        filter: Condition | None = None,
        projection: Sequence[Path] | None = None,
    ) -> Page:
        """The items of one partition meeting the sort key condition, in sort key order (or reversed).

        `limit` counts items read, before `filter` (as DynamoDB); `start_key` is a page's `last_key`.
        """
        schema = await self.schema(name)
        if condition.partition_name != schema.partition_key.name:
            raise ValidationError(f"Query condition missed key schema element: {schema.partition_key.name}")
        partition = {condition.partition_name: condition.partition_value}
        schema.key_of({**partition, **_sort_stub(schema)})  # the partition value's type
        if condition.sort is not None and schema.sort_key is not None:
            for value in condition.sort[2]:
                if next(iter(value)) != schema.sort_key.type:
                    raise ValidationError(
                        "One or more parameter values were invalid: Condition parameter type does not match schema type"
                    )
        prefix = schema.partition_prefix(condition.partition_value)
        low, high = _sort_range(prefix, condition)
        after = None if start_key is None else schema.store_key(schema.check_key(start_key, "ExclusiveStartKey"))
        namespace = table_items_namespace(name)

        def wanted(item: Item) -> bool:
            return key_matches(condition, item)

        if forward:
            return await self._pages(namespace, prefix, low, high, after, limit, wanted, filter, projection, schema)
        # Backwards: the store scans forwards, so the range (up to the start key) is read, then reversed.
        records = await self._all(namespace, prefix, low, high if after is None else after)
        items = [item for record in reversed(records) if (item := _item(record)) is not None and wanted(item)]
        return _page(items, limit, filter, projection, schema)

    async def scan(
        self,
        name: str,
        *,
        limit: int | None = None,
        start_key: Item | None = None,
        filter: Condition | None = None,
        projection: Sequence[Path] | None = None,
        segment: tuple[int, int] | None = None,
    ) -> Page:
        """Every item, in the store's key order, a page at a time. `segment` is (Segment, TotalSegments)."""
        schema = await self.schema(name)
        after = None if start_key is None else schema.store_key(schema.check_key(start_key, "ExclusiveStartKey"))

        def wanted(item: Item) -> bool:
            if segment is None:
                return True
            return zlib.crc32(schema.item_key(item).encode()) % segment[1] == segment[0]

        return await self._pages(
            table_items_namespace(name), "", "", None, after, limit, wanted, filter, projection, schema
        )

    async def _pages(
        self, namespace: str, prefix: str, low: str, high: str | None, after: str | None, limit: int | None,
        wanted: Callable[[Item], bool], filter: Condition | None, projection: Sequence[Path] | None,
        schema: TableSchema,
    ) -> Page:  # fmt: skip
        start = low if after is None else max(low, after + "\x01")
        read: list[Item] = []
        while limit is None or len(read) < limit:
            want = _CHUNK if limit is None else min(_CHUNK, limit - len(read))
            records = await self.store.kv.scan(namespace, prefix=prefix, start=start, end=high, limit=want)
            read.extend(item for record in records if (item := _item(record)) is not None and wanted(item))
            if len(records) < want:
                return _page(read, None, filter, projection, schema, more=False)
            start = records[-1].key + "\x01"
        return _page(read, limit, filter, projection, schema, more=True)

    async def _all(self, namespace: str, prefix: str, low: str, high: str | None) -> list[KVRecord]:
        found: list[KVRecord] = []
        start = low
        while records := await self.store.kv.scan(namespace, prefix=prefix, start=start, end=high, limit=_CHUNK):
            found.extend(records)
            start = records[-1].key + "\x01"
        return found

    async def batch_get(
        self, requests: Mapping[str, Sequence[Item]], *, projection: Mapping[str, Sequence[Path]] | None = None
    ) -> dict[str, list[Item]]:
        """The items that exist, per table (missing ones are left out)."""
        total = sum(len(keys) for keys in requests.values())
        if total > MAX_BATCH_GET:
            raise ValidationError(
                f"Too many items requested for the BatchGetItem call: {total}, at most {MAX_BATCH_GET}"
            )
        found: dict[str, list[Item]] = {}
        for name, keys in requests.items():
            paths = None if projection is None else projection.get(name)
            items = [await self.get(name, key, projection=paths) for key in keys]
            found[name] = [item for item in items if item is not None]
        return found

    async def transact_get(self, requests: Sequence[tuple[str, Item, Sequence[Path] | None]]) -> list[Item | None]:
        if len(requests) > MAX_TRANSACT_ITEMS:
            raise ValidationError(f"Member must have length less than or equal to {MAX_TRANSACT_ITEMS}")
        return [await self.get(name, key, projection=paths) for name, key, paths in requests]

    # --- writing many ---------------------------------------------------------------------------

    async def batch_write(
        self, writes: Sequence[tuple[str, Literal["put", "delete"], Item]], *, outbox: Outbox = ()
    ) -> None:
        """Puts and deletes (unconditional), written together in one transaction."""
        if len(writes) > MAX_BATCH_WRITE:
            raise ValidationError(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must"
                f" satisfy constraint: [Member must have length less than or equal to {MAX_BATCH_WRITE}]"
            )
        actions = [
            TransactItem("put", name, item=item) if kind == "put" else TransactItem("delete", name, key=item)
            for name, kind, item in writes
        ]
        await self.transact_write(actions, outbox=outbox, check_duplicates="BatchWriteItem")

    async def transact_write(
        self, actions: Sequence[TransactItem], *, outbox: Outbox = (), check_duplicates: str = "TransactWriteItems"
    ) -> None:
        """All the actions or none: TransactionCanceledError (a reason per action) when a condition fails."""
        if not actions:
            raise ValidationError(f"{check_duplicates} needs at least one action")
        if len(actions) > MAX_TRANSACT_ITEMS:
            raise ValidationError(f"Member must have length less than or equal to {MAX_TRANSACT_ITEMS}")
        prepared: list[tuple[TransactItem, TableSchema, Item, str]] = []
        seen: set[tuple[str, str]] = set()
        for action in actions:
            schema = await self.schema(action.table)
            if action.action == "put":
                keys = schema.key_of(action.item or {})
            else:
                keys = schema.check_key(action.key or {})
            store_key = schema.store_key(keys)
            if (action.table, store_key) in seen:
                raise ValidationError(
                    "Provided list of item keys contains duplicates"
                    if check_duplicates == "BatchWriteItem"
                    else "Transaction request cannot include multiple operations on one item"
                )
            seen.add((action.table, store_key))
            prepared.append((action, schema, keys, store_key))
        for _ in range(MAX_ATTEMPTS):
            writes: list[_Write] = []
            reasons: list[CancellationReason] = []
            for action, schema, keys, store_key in prepared:
                write = await self._read(schema, store_key, keys)
                if action.condition is not None and not holds(action.condition, write.old or {}):
                    reasons.append(
                        CancellationReason(
                            "ConditionalCheckFailed",
                            "The conditional request failed",
                            write.old if action.return_old_on_failure else None,
                        )
                    )
                    continue
                reasons.append(CancellationReason())
                if action.action == "put":
                    write.new = action.item
                elif action.action == "delete":
                    write.new = None
                elif action.action == "update":
                    base = dict(write.old) if write.old is not None else dict(keys)
                    try:
                        write.new = (
                            base if action.update is None else apply_update(action.update, base, schema.key_names)
                        )
                    except ValidationError as exc:
                        reasons[-1] = CancellationReason("ValidationError", exc.message)
                        continue
                else:  # a condition check writes nothing, but the item must not change before the commit
                    write.new = write.old
                    if write.record is not None:
                        write.extra.append(
                            Put(
                                table_items_namespace(schema.name),
                                store_key,
                                write.record.value,
                                if_version=write.record.version,
                            )
                        )
                writes.append(write)
            if any(reason.code != "None" for reason in reasons):
                raise TransactionCanceledError(reasons)
            ops: list[Op] = []
            for write in writes:
                ops.extend(write.extra or self._ops(write))
            try:
                await self.store.atomic([*ops, *self._forwards(writes), *outbox_ops(outbox)])
            except AtomicConflictError:
                continue
            return
        raise TableError("the transaction's items are written too often at once; try again")


def outbox_ops(outbox: Outbox) -> list[Op]:
    """The appends that publish `outbox`'s events with a write (one per bus, in order)."""
    ops: list[Op] = []
    for bus, event in outbox:
        ops.append(Append(bus_stream(bus), [event.to_json()]))
    return ops


def _item(record: KVRecord | None) -> Item | None:
    if record is None:
        return None
    item: Item = orjson.loads(record.value)
    return item


def _same_or_none(a: Item | None, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return isinstance(b, dict) and _same(a, b)


def _same(a: Item, b: Item) -> bool:
    return a.keys() == b.keys() and all(
        equal(a[name], b[name]) and next(iter(a[name])) == next(iter(b[name])) for name in a
    )


def _sort_stub(schema: TableSchema) -> Item:
    if schema.sort_key is None:
        return {}
    return {schema.sort_key.name: {schema.sort_key.type: {"S": "x", "N": "0", "B": "eA=="}[schema.sort_key.type]}}


def _sort_range(prefix: str, condition: KeyCondition) -> tuple[str, str | None]:
    """The store key range `[low, high)` holding the partition's items that can meet the sort key condition."""
    after_partition = prefix[:-1] + "\x02"
    if condition.sort is None:
        return prefix, after_partition
    op, _, values = condition.sort
    first = prefix + key_text(values[0])
    if op == "=":
        return first, first + "\x01"
    if op == "<":
        return prefix, first
    if op == "<=":
        return prefix, first + "\x01"
    if op == ">":
        return first + "\x01", after_partition
    if op == ">=":
        return first, after_partition
    if op == "BETWEEN":
        return first, prefix + key_text(values[1]) + "\x01"
    # begins_with: strings and (hex-encoded) binary keep prefixes, so the range is a prefix's
    return first, _after(first) or after_partition


def _after(text: str) -> str | None:
    stripped = text.rstrip(chr(0x10FFFF))
    if not stripped:
        return None
    following = ord(stripped[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:
        following = 0xE000
    return stripped[:-1] + chr(following)


def _page(
    read: list[Item], limit: int | None, filter: Condition | None, projection: Sequence[Path] | None,
    schema: TableSchema, *, more: bool | None = None,
) -> Page:  # fmt: skip
    if limit is not None and len(read) > limit:
        read, more = read[:limit], True
    elif more is None:
        more = False
    last_key = schema.key_of(read[-1]) if more and read else None
    items = [item for item in read if filter is None or holds(filter, item)]
    if projection is not None:
        items = [project(item, projection) for item in items]
    return Page(items, last_key, len(read))
