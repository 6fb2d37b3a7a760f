"""The durable store, chosen by URL: `memory://`, `sqlite:///path/to/file.db` or `postgresql://...`.

    store = await open_store("sqlite:///.triggerfish/store.db")
    await store.log.append("default", b"...")
    await store.close()

Backends are imported only when their scheme is used, so an optional engine's
driver is needed only by those who choose it.
"""

from __future__ import annotations

from triggerfish.store.base import (
    ABSENT,
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
    SendResult,
    Store,
)
from triggerfish.store.scoped import ScopedStore
from triggerfish.store.urls import open_parts

__all__ = [
    "ABSENT",
    "EventLog",
    "KVRecord",
    "KeyValue",
    "LogClaim",
    "LogRecord",
    "Message",
    "OutgoingMessage",
    "QueueConfig",
    "QueueStats",
    "Queues",
    "ScopedStore",
    "SendResult",
    "Store",
    "open_store",
]


async def open_store(
    url: str,
    *,
    log: str | None = None,
    queues: str | None = None,
    kv: str | None = None,
    migrate: bool = True,
) -> Store:
    """Open the store a URL names; `log`, `queues` and `kv` may each name a part's own URL.

    - `memory://`: in this process only, gone when it exits (for tests and `triggerfish.testing`).
    - `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`: the embedded durable store.
    - `postgresql://user@host:port/db?schema=NAME` (or `postgres://`): many machines over one
      database; needs `pip install 'triggerfish[postgres]'`.

    Query parameters: `max_record_bytes` (default 1 MiB) for every backend, and each
    backend's own (docs/store.md). With parts from different URLs, each distinct URL is
    opened once, closing the store closes them all, and `atomic` is not all or nothing
    (`store.atomic_writes` is False). With `migrate=False`, a store whose schema needs
    migrating is refused with SchemaVersionError (`triggerfish store migrate` migrates it).

    Raises UnknownStoreURLError for a URL or option that is not understood (and for a
    backend whose driver is missing, naming the extra to install), StoreUnavailableError
    when the database cannot be reached, SchemaVersionError for a schema this version
    cannot run against.

        store = await open_store("postgresql://app@db/triggerfish", kv="sqlite:///records.db")
    """
    return await open_parts(url, log=log, queues=queues, kv=kv, migrate=migrate)
