"""Writes to several parts of a store in one transaction: the operations `Store.atomic` takes.

    from triggerfish.store.atomic import Ack, Commit, Put, Send

    await store.atomic([
        Send("fn.notify", [OutgoingMessage(b"...")]),       # the deliveries a batch of events makes
        Put("invocations", "r/1", b"...", ttl=3600),
        Ack("fn.orders", [message.receipt]),
        Commit(claim),                                      # and the consumer group moves past the batch
    ])

Each operation is a small frozen dataclass, checked as its single-operation
method checks it before anything is written. On a store whose parts share one
engine (`store.atomic_writes`), the operations are one transaction: a failed
condition raises `AtomicConflictError` and nothing is written. A store whose
parts come from different engines cannot do that; it runs the operations in
order and stops at the first failed condition (what ran before stays written).
A consumer that puts its `Commit` last keeps at-least-once delivery either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from triggerfish.errors import AtomicConflictError, InvalidInputError
from triggerfish.store.base import ABSENT, LogClaim, OutgoingMessage, check_claim

if TYPE_CHECKING:
    from triggerfish.store.base import Store

__all__ = ["Ack", "Append", "Commit", "Delete", "Op", "Put", "Send"]


@dataclass(frozen=True, slots=True)
class Append:
    """Append `items` to `stream`; the result is the list of `LogRecord`s."""

    stream: str
    items: Sequence[bytes]


@dataclass(frozen=True, slots=True)
class Send:
    """Send `messages` to `queue`; the result is the list of `SendResult`s."""

    queue: str
    messages: Sequence[OutgoingMessage]


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledge leased messages; the result is a bool per receipt (False: the lease had ended)."""

    queue: str
    receipts: Sequence[str]


@dataclass(frozen=True, slots=True)
class Commit:
    """Commit a claimed range of a consumer group; the result is True. A lost claim is a conflict."""

    claim: LogClaim


Op = Append | Send | Put | Delete | Ack | Commit

_KINDS = (Append, Send, Put, Delete, Ack, Commit)


def check_ops(store: Store, ops: Sequence[Op]) -> list[Op]:
    """The operations as the store will run them (bodies as bytes, lists as lists); raises for bad input."""
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence):
        raise InvalidInputError(f"atomic takes a list of operations, not {type(ops).__name__}")
    checked: list[Op] = []
    for index, op in enumerate(ops):
        if isinstance(op, Append):
            checked.append(Append(op.stream, store.log.check_append(op.stream, op.items)))
        elif isinstance(op, Send):
            checked.append(Send(op.queue, store.queues.check_send(op.queue, op.messages)))
        elif isinstance(op, Put):
            value = store.kv.check_put(op.namespace, op.key, op.value, op.ttl, op.if_version)
            checked.append(Put(op.namespace, op.key, value, None if op.ttl is None else float(op.ttl), op.if_version))
        elif isinstance(op, Delete):
            store.kv.check_delete(op.namespace, op.key, op.if_version)
            checked.append(op)
        elif isinstance(op, Ack):
            checked.append(Ack(op.queue, store.queues.check_ack(op.queue, op.receipts)))
        elif isinstance(op, Commit):
            check_claim(op.claim)
            checked.append(op)
        else:
            names = ", ".join(kind.__name__ for kind in _KINDS)
            raise InvalidInputError(f"atomic operation {index} is a {type(op).__name__}; use one of {names}")
    return checked


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
            results.append(await store.log.append_many(op.stream, op.items))
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
        else:
            if not await store.log.commit(op.claim):
                raise conflict(index, op)
            results.append(True)
    return results
