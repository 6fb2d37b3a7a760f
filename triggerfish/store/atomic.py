"""Writes to several parts of a store in one transaction: the operations `Store.atomic` takes.

    from triggerfish.store.atomic import Ack, Commit, Put, Send

    await store.atomic([
        Send("fn.notify", [OutgoingMessage(b"...")]),       # the deliveries a batch of events makes
        Put("invocations", "r/1", b"...", ttl=3600),
        Ack("fn.orders", [message.receipt]),
        Commit(claim),                                      # and the consumer group moves past the batch
    ])

Each operation is a small dataclass, checked as its single-operation method
checks it before anything is written; the store runs checked copies of those
that are not frozen (Put, Append, Ack: built per invocation, where a frozen
dataclass's `__init__` costs several times a plain one's). On a store whose parts share one
engine (`store.atomic_writes`), the operations are one transaction: a failed
condition raises `AtomicConflictError` and nothing is written. A store whose
parts come from different engines cannot do that; it runs the operations in
order and stops at the first failed condition (what ran before stays written).
A consumer that puts its `Commit` last keeps at-least-once delivery either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from triggerfish.errors import AtomicConflictError, InvalidInputError
from triggerfish.store.base import (
    ABSENT,
    LogClaim,
    OutgoingMessage,
    RecordKeys,
    check_claim,
    check_name,
    check_record_keys,
)

if TYPE_CHECKING:
    from triggerfish.store.base import Store

__all__ = ["Ack", "Append", "Commit", "Delete", "Forward", "Op", "Put", "Route", "Send"]


@dataclass(slots=True)
class Append:
    """Append `items` to `stream`; the result is the list of `LogRecord`s. `keys`, when given, are each item's keys
    to `EventLog.find` it by (as `append_many` takes them)."""

    stream: str
    items: Sequence[bytes]
    keys: Sequence[RecordKeys] | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """Send `messages` to `queue`; the result is the list of `SendResult`s."""

    queue: str
    messages: Sequence[OutgoingMessage]


@dataclass(slots=True)
class Put:
    """Write a record; the result is the `KVRecord`. An `if_version` that does not hold is a conflict."""

    namespace: str
    key: str
    value: bytes
    ttl: float | None = None
    if_version: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete a record; the result says whether one was deleted. An `if_version` that does not hold is a conflict."""

    namespace: str
    key: str
    if_version: int | None = None


@dataclass(slots=True)
class Ack:
    """Acknowledge leased messages; the result is a bool per receipt (False: the lease had ended)."""

    queue: str
    receipts: Sequence[str]


@dataclass(frozen=True, slots=True)
class Commit:
    """Commit a claimed range of a consumer group; the result is True. A lost claim is a conflict."""

    claim: LogClaim


@dataclass(frozen=True, slots=True)
class Forward:
    """Hand the records the earlier `Append`s of the same ops wrote to `source` straight to a reader.

    The reader is one that copies `source` into other streams (`streams`) and keeps its place in
    the record (`namespace`, `key`): the offset (decimal text) up to which it has copied. If that
    place is exactly before the first of the records, this transaction appends, for each record,
    the body `build(index, offset)` gives (its position among the records and its offset in
    `source`) to the stream of `streams` it names by index (None: the reader skips that record),
    and moves the place past them, as the reader's own copy would have. Otherwise nothing
    happens and the reader copies them itself later. The result says which (True: forwarded).
    Either way every record reaches the reader once and in order, and the write costs no second
    transaction. A store that cannot decide this inside the write's transaction answers False.
    Put Forwards after the Appends they forward.
    """

    source: str
    namespace: str
    key: str
    streams: tuple[str, ...]
    build: Callable[[int, int], tuple[int, bytes] | None]


@dataclass(frozen=True, slots=True)
class Route:
    """Consume the records the earlier `Append`s of the same ops wrote to `source` in the name of the
    consumer group `group`: store `sends` (the deliveries its consumer would make of them) and move the
    group past the records, in this write's own transaction.

    Done only when the group has consumed everything before the records and holds no range uncommitted
    (the highest offset it claimed and its position are both the offset just before the first record):
    its consumer would have claimed exactly these records next, so they are delivered in order (a group that
    has no place yet starts before the stream's first record, so it takes a new stream's first records). Otherwise
    nothing happens (`sends` are not stored) and the group's consumer claims and delivers the records
    itself. The result says which (True: routed). Either way the group delivers every record, and a
    publisher that routes its own events spares them a second durable write before they reach their
    targets. A store that cannot decide this inside the write's transaction answers False. Put Routes after
    the Appends they route.
    """

    source: str
    group: str
    sends: tuple[Send, ...]


Op = Append | Send | Put | Delete | Ack | Commit | Forward | Route

_KINDS = (Append, Send, Put, Delete, Ack, Commit, Forward, Route)


def check_ops(store: Store, ops: Sequence[Op]) -> list[Op]:
    """The operations as the store will run them (bodies as bytes, lists as lists); raises for bad input."""
    # A list or tuple (what every caller passes) skips the Sequence ABC's slower check.
    if (
        type(ops) is not list
        and type(ops) is not tuple
        and (isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence))
    ):
        raise InvalidInputError(f"atomic takes a list of operations, not {type(ops).__name__}")
    checked: list[Op] = []
    kv = store.kv
    for index, op in enumerate(ops):
        if type(op) is Put:  # the common op (an invocation record writes three), first and without isinstance
            # A copy of what was checked: a Put is not frozen (building a frozen one costs more than this copy), so
            # the caller's may change after the check; the one the store runs cannot.
            namespace, key, ttl, if_version = op.namespace, op.key, op.ttl, op.if_version
            value = kv.check_put(namespace, key, op.value, ttl, if_version)
            checked.append(
                Put(namespace, key, value, ttl if ttl is None or type(ttl) is float else float(ttl), if_version)
            )
        elif isinstance(op, Append):
            items = store.log.check_append(op.stream, op.items)
            keys = None if op.keys is None else check_record_keys(op.keys, len(items))
            checked.append(Append(op.stream, items, keys))
        elif isinstance(op, Send):
            checked.append(Send(op.queue, store.queues.check_send(op.queue, op.messages)))
        elif isinstance(op, Put):  # a subclass of Put
            value = kv.check_put(op.namespace, op.key, op.value, op.ttl, op.if_version)
            checked.append(Put(op.namespace, op.key, value, None if op.ttl is None else float(op.ttl), op.if_version))
        elif isinstance(op, Delete):
            store.kv.check_delete(op.namespace, op.key, op.if_version)
            checked.append(op)
        elif isinstance(op, Ack):
            checked.append(Ack(op.queue, store.queues.check_ack(op.queue, op.receipts)))
        elif isinstance(op, Commit):
            check_claim(op.claim)
            checked.append(op)
        elif isinstance(op, Forward):
            check_forward(store, checked, op)
            checked.append(op)
        elif isinstance(op, Route):
            checked.append(check_route(store, checked, op))
        else:
            names = ", ".join(kind.__name__ for kind in _KINDS)
            raise InvalidInputError(f"atomic operation {index} is a {type(op).__name__}; use one of {names}")
    return checked


def check_forward(store: Store, before: Sequence[Op], op: Forward) -> None:
    store.kv.check_delete(op.namespace, op.key, None)  # the place's names, as any record's
    for stream in op.streams:
        store.log.check_append(stream, [])
    if not any(isinstance(earlier, Append) and earlier.stream == op.source for earlier in before):
        raise InvalidInputError(f"Forward from {op.source!r} comes after no Append to {op.source!r} in the same ops")
    if not callable(op.build):
        raise InvalidInputError(f"Forward from {op.source!r}: build must be a function of (index, offset)")


def check_route(store: Store, before: Sequence[Op], op: Route) -> Route:
    """`op` with its sends checked as `send_many` checks them; raises for a bad group or a Route without its Append."""
    check_name("group", op.group)
    if not any(isinstance(earlier, Append) and earlier.stream == op.source for earlier in before):
        raise InvalidInputError(f"Route of {op.source!r} comes after no Append to {op.source!r} in the same ops")
    if isinstance(op.sends, (Send, str, bytes)) or not all(isinstance(send, Send) for send in op.sends):
        raise InvalidInputError(f"Route of {op.source!r}: sends must be a sequence of Send")
    sends = tuple(Send(send.queue, store.queues.check_send(send.queue, send.messages)) for send in op.sends)
    return Route(op.source, op.group, sends)


def routable(records: Sequence[Any], position: int, claimed: int) -> bool:
    """Whether a group at `position`, having claimed up to `claimed`, takes `records` (one run of offsets) by a
    Route: it has consumed everything before them and holds nothing uncommitted. Pure, for every backend."""
    return (
        bool(records)
        and position == claimed == records[0].offset - 1
        and records[-1].offset == records[0].offset + len(records) - 1
    )


def forwarded_source(ops: Sequence[Op], results: Sequence[Any], op: Forward | Route) -> list[Any]:
    """The records the Appends to `op.source` before `op` wrote, in order (`results`: the earlier ops')."""
    records: list[Any] = []
    for earlier, result in zip(ops, results, strict=False):
        if isinstance(earlier, Append) and earlier.stream == op.source:
            records.extend(result)
    return records


def unconditional_puts(ops: Sequence[Op], start: int) -> list[Put]:
    """The run of unconditional Puts from `ops[start]` on: what a backend writes as one batched put."""
    run: list[Put] = []
    for op in ops[start:]:
        if not isinstance(op, Put) or op.if_version is not None:
            break
        run.append(op)
    return run


def forward_bodies(
    op: Forward, records: Sequence[Any], place: bytes | None, limit: int
) -> list[tuple[str, list[bytes]]] | None:
    """The appends (stream, bodies) `op` makes for `records` given the reader's place; None: the reader copies
    them itself. Pure, for every backend: the place must be exactly before the first record (and the records
    one run of offsets), and every body must fit `limit` (else the reader's own copy meets, and reports, it)."""
    if not records or place is None:
        return None
    try:
        at = int(place)
    except ValueError:
        return None
    if at != records[0].offset - 1 or records[-1].offset != records[0].offset + len(records) - 1:
        return None
    by_stream: dict[int, list[bytes]] = {}
    for index, record in enumerate(records):
        built = op.build(index, record.offset)
        if built is None:
            continue
        target, body = built
        if len(body) > limit or not 0 <= target < len(op.streams):
            return None
        by_stream.setdefault(target, []).append(body)
    return [(op.streams[target], bodies) for target, bodies in sorted(by_stream.items())]


def conflict(index: int, op: Op) -> AtomicConflictError:
    """The error for `op`, at `index`, whose condition did not hold."""
    if isinstance(op, Put):
        wanted = "no live record" if op.if_version == ABSENT else f"version {op.if_version}"
        return AtomicConflictError(index, f"Put {op.namespace!r} {op.key!r} expected {wanted}")
    if isinstance(op, Delete):
        return AtomicConflictError(index, f"Delete {op.namespace!r} {op.key!r} expected version {op.if_version}")
    if isinstance(op, Commit):
        c = op.claim
        return AtomicConflictError(
            index,
            f"Commit of {c.stream!r} group {c.group!r} offsets {c.first}-{c.last}: another consumer re-claimed it",
        )
    return AtomicConflictError(index, f"{type(op).__name__} has no condition")  # pragma: no cover


async def run_in_order(store: Store, ops: list[Op]) -> list[Any]:
    """Run checked `ops` one after another through the parts' public methods (no transaction)."""
    results: list[Any] = []
    for index, op in enumerate(ops):
        if isinstance(op, Append):
            results.append(await store.log.append_many(op.stream, op.items, keys=op.keys))
        elif isinstance(op, Send):
            results.append(await store.queues.send_many(op.queue, op.messages))
        elif isinstance(op, Put):
            record = await store.kv.put(op.namespace, op.key, op.value, ttl=op.ttl, if_version=op.if_version)
            if record is None:
                raise conflict(index, op)
            results.append(record)
        elif isinstance(op, Delete):
            deleted = await store.kv.delete(op.namespace, op.key, if_version=op.if_version)
            if not deleted and op.if_version is not None:
                raise conflict(index, op)
            results.append(deleted)
        elif isinstance(op, Ack):
            results.append(await store.queues.ack_many(op.queue, op.receipts))
        elif isinstance(op, Forward):
            results.append(False)  # no transaction to decide it in: the reader copies the records itself
        elif isinstance(op, Route):
            results.append(False)  # no transaction to decide it in: the group's consumer delivers the records
        else:
            if not await store.log.commit(op.claim):
                raise conflict(index, op)
            results.append(True)
    return results
