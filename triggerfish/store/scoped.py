"""A view of a `Store` confined to one scope, so that several apps share one store unseen by each other.

Every queue name, log stream name and key-value namespace the caller gives is
stored as `<scope>/<name>`, so an app's platform components run unchanged over
the view and cannot name another app's data. Records, messages and configs
come back with the caller's names; errors name them too.

The view wraps the inner store's public methods, not its backend primitives:
the inner store validates once, and its own notifier wakes a waiting `read`
or `receive`, so a send through any view of a scope (or the inner store, under
the prefixed name) wakes it. Closing a view does not close the inner store,
which other scopes share; it only stops this view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Generic, NoReturn, TypeVar

from triggerfish.errors import AtomicConflictError, InvalidInputError, InvalidNameError, StoreClosedError
from triggerfish.store.atomic import Ack, Append, Commit, Delete, Forward, Op, Put, Route, Send, conflict
from triggerfish.store.base import (
    Clock,
    EventLog,
    KeyValue,
    KVRecord,
    LogClaim,
    LogRecord,
    Message,
    OutgoingMessage,
    QueueConfig,
    Queues,
    QueueStats,
    RecordKeys,
    SendResult,
    Store,
    check_key,
    check_name,
)

_MAX_NAME_CHARS = 255

Part = TypeVar("Part", EventLog, Queues, KeyValue)


class _Scope:
    """The prefix and the open state shared by the three parts of one view."""

    def __init__(self, scope: str, url: str) -> None:
        self.name = scope
        self.prefix = scope + "/"
        self.room = _MAX_NAME_CHARS - len(self.prefix)
        self.url = url
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def check_open(self) -> None:
        if self.closed:
            raise StoreClosedError(
                f"the view of scope {self.name!r} over {self.url} is closed; the store itself stays open"
            )

    def wrap(self, kind: str, name: str) -> str:
        self.check_open()
        if isinstance(name, str) and len(name) > self.room:
            raise InvalidNameError(
                f"invalid {kind} name {name!r}: it is {len(name)} characters, and within scope {self.name!r}"
                f" a name may have at most {self.room}; use 1 to {self.room} characters from letters, digits"
                " and . _ : / @ -"
            )
        return self.prefix + check_name(kind, name)

    def wrap_keys(self, keys: Sequence[RecordKeys] | None) -> Sequence[RecordKeys] | None:
        """Log records' keys as stored: `<scope>/<key>`, so that no scope finds another's records. Anything but a
        list or tuple of tuples goes on as it is, for the inner store to refuse."""
        self.check_open()
        if type(keys) is not list and type(keys) is not tuple:
            return keys
        prefix = self.prefix
        return [tuple(prefix + check_key(key) for key in found) if type(found) is tuple else found for found in keys]

    def own(self, names: list[str]) -> list[str]:
        return [name[len(self.prefix) :] for name in names if name.startswith(self.prefix)]

    def wrap_claim(self, claim: LogClaim) -> LogClaim:
        if not isinstance(claim, LogClaim):
            raise InvalidInputError(f"takes the LogClaim that claim() returned, not {type(claim).__name__}")
        return dataclasses.replace(claim, stream=self.wrap("stream", claim.stream))

    def unwrap_claim(self, claim: LogClaim, stream: str) -> LogClaim:
        records = [dataclasses.replace(r, stream=stream) for r in claim.records]
        return dataclasses.replace(claim, stream=stream, records=records)

    def wrap_op(self, op: Op) -> Op:
        if isinstance(op, Append):
            return Append(self.wrap("stream", op.stream), op.items, self.wrap_keys(op.keys))
        if isinstance(op, Send):
            return Send(self.wrap("queue", op.queue), op.messages)
        if isinstance(op, Put):
            return dataclasses.replace(op, namespace=self.wrap("namespace", op.namespace))
        if isinstance(op, Delete):
            return dataclasses.replace(op, namespace=self.wrap("namespace", op.namespace))
        if isinstance(op, Ack):
            return Ack(self.wrap("queue", op.queue), op.receipts)
        if isinstance(op, Commit):
            return Commit(self.wrap_claim(op.claim))
        if isinstance(op, Forward):
            return dataclasses.replace(
                op,
                source=self.wrap("stream", op.source),
                namespace=self.wrap("namespace", op.namespace),
                streams=tuple(self.wrap("stream", stream) for stream in op.streams),
            )
        if isinstance(op, Route):
            sends = tuple(Send(self.wrap("queue", send.queue), send.messages) for send in op.sends)
            return Route(self.wrap("stream", op.source), op.group, sends)
        return op  # not an operation: the inner store refuses it, naming it

    def unwrap_result(self, op: Op, result: Any) -> Any:
        if isinstance(op, Append):
            return [dataclasses.replace(r, stream=op.stream) for r in result]
        if isinstance(op, Put):
            return dataclasses.replace(result, namespace=op.namespace)
        return result


async def _never(*args: Any, **kwargs: Any) -> NoReturn:
    raise AssertionError("a scoped view delegates to the inner store's public methods, never to primitives")


class _View(Generic[Part]):
    """One part of a view. Its clock and record limit are the inner part's, shared by every scope."""

    def __init__(self, inner: Part, scope: _Scope) -> None:
        # No super().__init__(): the inner part owns the clock, the limit and the notifier that wakes waits.
        self.inner: Part = inner
        self._scope = scope

    @property
    def clock(self) -> Clock:
        return self.inner.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.inner.clock = clock

    @property
    def max_record_bytes(self) -> int:
        return self.inner.max_record_bytes

    @max_record_bytes.setter
    def max_record_bytes(self, limit: int) -> None:
        self.inner.max_record_bytes = limit


class ScopedLog(_View[EventLog], EventLog):
    async def append_many(
        self, stream: str, items: Sequence[bytes], *, keys: Sequence[RecordKeys] | None = None
    ) -> list[LogRecord]:
        records = await self.inner.append_many(
            self._scope.wrap("stream", stream), items, keys=self._scope.wrap_keys(keys)
        )
        return [dataclasses.replace(r, stream=stream) for r in records]

    async def find(self, prefix: str, *, limit: int = 1000) -> list[tuple[str, LogRecord]]:
        self._scope.check_open()
        if not isinstance(prefix, str) or not prefix:
            return await self.inner.find(prefix, limit=limit)  # refused there, naming the prefix
        scope = self._scope.prefix
        found = await self.inner.find(scope + prefix, limit=limit)
        return [
            (key[len(scope) :], dataclasses.replace(r, stream=r.stream[len(scope) :]))
            for key, r in found
            if r.stream.startswith(scope)
        ]

    async def read(
        self,
        stream: str,
        *,
        after: int = 0,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
        wait: float = 0.0,
    ) -> list[LogRecord]:
        scoped = self._scope.wrap("stream", stream)
        records = await self.inner.read(scoped, after=after, since=since, until=until, limit=limit, wait=wait)
        return [dataclasses.replace(r, stream=stream) for r in records]

    async def last_offset(self, stream: str) -> int:
        return await self.inner.last_offset(self._scope.wrap("stream", stream))

    async def trim(self, stream: str, *, max_age: float | None = None, max_bytes: int | None = None) -> int:
        return await self.inner.trim(self._scope.wrap("stream", stream), max_age=max_age, max_bytes=max_bytes)

    async def streams(self) -> list[str]:
        self._scope.check_open()
        return self._scope.own(await self.inner.streams())

    async def claim(
        self, stream: str, group: str, *, limit: int = 256, lease: float = 30.0, wait: float = 0.0
    ) -> LogClaim | None:
        scoped = self._scope.wrap("stream", stream)
        claim = await self.inner.claim(scoped, group, limit=limit, lease=lease, wait=wait)
        return None if claim is None else self._scope.unwrap_claim(claim, stream)

    async def commit(self, claim: LogClaim) -> bool:
        return await self.inner.commit(self._scope.wrap_claim(claim))

    async def extend_claim(self, claim: LogClaim, lease: float) -> LogClaim | None:
        extended = await self.inner.extend_claim(self._scope.wrap_claim(claim), lease)
        return None if extended is None else self._scope.unwrap_claim(extended, claim.stream)

    async def release_claim(self, claim: LogClaim) -> bool:
        return await self.inner.release_claim(self._scope.wrap_claim(claim))

    async def position(self, stream: str, group: str) -> int:
        return await self.inner.position(self._scope.wrap("stream", stream), group)

    async def seek(self, stream: str, group: str, offset: int) -> None:
        await self.inner.seek(self._scope.wrap("stream", stream), group, offset)

    async def advance(self, stream: str, group: str, *, expected: int, offset: int) -> bool:
        return await self.inner.advance(self._scope.wrap("stream", stream), group, expected=expected, offset=offset)

    async def groups(self, stream: str) -> list[str]:
        return await self.inner.groups(self._scope.wrap("stream", stream))

    _append = _find = _read = _last_offset = _trim = _streams = _never
    _claim = _commit = _extend_claim = _release_claim = _position = _seek = _advance = _groups = _never


class ScopedQueues(_View[Queues], Queues):
    async def configure(self, queue: str, config: QueueConfig) -> None:
        scoped = self._scope.wrap("queue", queue)
        if not isinstance(config, QueueConfig):
            raise InvalidInputError(f"configure takes a QueueConfig, not {type(config).__name__}")
        if config.dead_letter == queue:
            raise InvalidInputError(f"queue {queue!r} cannot be its own dead-letter queue")
        if config.dead_letter is not None:
            config = dataclasses.replace(config, dead_letter=self._scope.wrap("dead-letter queue", config.dead_letter))
        await self.inner.configure(scoped, config)

    async def config(self, queue: str) -> QueueConfig:
        config = await self.inner.config(self._scope.wrap("queue", queue))
        if config.dead_letter is None:
            return config
        return dataclasses.replace(config, dead_letter=config.dead_letter.removeprefix(self._scope.prefix))

    async def send_many(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        return await self.inner.send_many(self._scope.wrap("queue", queue), messages)

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = 1,
        visibility_timeout: float | None = None,
        wait: float = 0.0,
    ) -> list[Message]:
        scoped = self._scope.wrap("queue", queue)
        messages = await self.inner.receive(
            scoped, max_messages=max_messages, visibility_timeout=visibility_timeout, wait=wait
        )
        return [dataclasses.replace(m, queue=queue) for m in messages]

    async def ack_many(self, queue: str, receipts: Sequence[str]) -> list[bool]:
        return await self.inner.ack_many(self._scope.wrap("queue", queue), receipts)

    async def release(self, queue: str, receipt: str, *, delay: float = 0.0) -> bool:
        return await self.inner.release(self._scope.wrap("queue", queue), receipt, delay=delay)

    async def extend(self, queue: str, receipt: str, visibility_timeout: float) -> bool:
        return await self.inner.extend(self._scope.wrap("queue", queue), receipt, visibility_timeout)

    async def purge(self, queue: str) -> int:
        return await self.inner.purge(self._scope.wrap("queue", queue))

    async def stats(self, queue: str) -> QueueStats:
        return await self.inner.stats(self._scope.wrap("queue", queue))

    async def queues(self) -> list[str]:
        self._scope.check_open()
        return self._scope.own(await self.inner.queues())

    _configure = _config = _send = _receive = _ack = _release = _extend = _purge = _stats = _queues = _never


class ScopedKeyValue(_View[KeyValue], KeyValue):
    async def get(self, namespace: str, key: str) -> KVRecord | None:
        record = await self.inner.get(self._scope.wrap("namespace", namespace), key)
        return None if record is None else dataclasses.replace(record, namespace=namespace)

    async def put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        ttl: float | None = None,
        if_version: int | None = None,
    ) -> KVRecord | None:
        scoped = self._scope.wrap("namespace", namespace)
        record = await self.inner.put(scoped, key, value, ttl=ttl, if_version=if_version)
        return None if record is None else dataclasses.replace(record, namespace=namespace)

    async def put_many(
        self, namespace: str, items: Sequence[tuple[str, bytes]], *, ttl: float | None = None
    ) -> list[KVRecord]:
        records = await self.inner.put_many(self._scope.wrap("namespace", namespace), items, ttl=ttl)
        return [dataclasses.replace(r, namespace=namespace) for r in records]

    async def delete(self, namespace: str, key: str, *, if_version: int | None = None) -> bool:
        return await self.inner.delete(self._scope.wrap("namespace", namespace), key, if_version=if_version)

    async def scan(
        self, namespace: str, *, prefix: str = "", limit: int = 1000, start: str = "", end: str | None = None
    ) -> list[KVRecord]:
        records = await self.inner.scan(
            self._scope.wrap("namespace", namespace), prefix=prefix, limit=limit, start=start, end=end
        )
        return [dataclasses.replace(r, namespace=namespace) for r in records]

    _get = _put = _delete = _scan = _never


class ScopedStore(Store):
    """`store` as seen by one scope: every queue, stream and namespace name is prefixed `<scope>/`.

    `scope` is a name without `/` (so that no two scopes' names can meet), like `app.shop`.
    Closing the view stops it (its calls raise StoreClosedError) but leaves `store` open.

        shop = ScopedStore(store, "app.shop")
        await shop.kv.put("triggerfish.bus", "rules", b"...")   # namespace "app.shop/triggerfish.bus"
    """

    def __init__(self, store: Store, scope: str) -> None:
        check_name("scope", scope)
        if "/" in scope or len(scope) > _MAX_NAME_CHARS - 2:
            raise InvalidNameError(
                f"invalid scope {scope!r}: a scope has no '/' and at most {_MAX_NAME_CHARS - 2} characters,"
                " to leave room for the names inside it"
            )
        self.inner = store
        self.scope = scope
        view = _Scope(scope, store.url)
        self._view = view
        self.atomic_writes = store.atomic_writes
        self.commits_apart = store.commits_apart
        self.routes_appends = store.routes_appends
        super().__init__(
            store.url,
            log=ScopedLog(store.log, view),
            queues=ScopedQueues(store.queues, view),
            kv=ScopedKeyValue(store.kv, view),
            on_close=view.close,
        )

    async def atomic(self, ops: Sequence[Op]) -> list[Any]:
        if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence):
            raise InvalidInputError(f"atomic takes a list of operations, not {type(ops).__name__}")
        ops = list(ops)
        try:
            results = await self.inner.atomic([self._view.wrap_op(op) for op in ops])
        except AtomicConflictError as exc:
            raise conflict(exc.index, ops[exc.index]) from None  # named as the caller named it
        return [self._view.unwrap_result(op, result) for op, result in zip(ops, results, strict=True)]

    def __repr__(self) -> str:
        return f"<ScopedStore {self.scope!r} of {self.inner.url}>"
