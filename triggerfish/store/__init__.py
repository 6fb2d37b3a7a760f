"""The durable store, chosen by URL: `memory://` or `sqlite:///path/to/file.db`.

    store = await open_store("sqlite:///.triggerfish/store.db")
    await store.log.append("default", b"...")
    await store.close()

Backends are imported only when their scheme is used, so an optional engine's
driver is needed only by those who choose it.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from triggerfish.errors import UnknownStoreURLError
from triggerfish.store.base import (
    ABSENT,
    DEFAULT_MAX_RECORD_BYTES,
    EventLog,
    KeyValue,
    KVRecord,
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

__all__ = [
    "ABSENT",
    "EventLog",
    "KVRecord",
    "KeyValue",
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

SCHEMES = ("memory", "sqlite")


async def open_store(url: str) -> Store:
    """Open the store a URL names.

    - `memory://`: in this process only, gone when it exits (for tests and `triggerfish.testing`).
    - `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`: the embedded durable store.

    Query parameters: `max_record_bytes` (default 1 MiB).
    """
    if not isinstance(url, str):
        raise UnknownStoreURLError(f"a store URL must be a string like 'sqlite:///s.db', not {type(url).__name__}")
    parts = urlsplit(url)
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    try:
        max_record_bytes = int(options.pop("max_record_bytes", DEFAULT_MAX_RECORD_BYTES))
    except ValueError as exc:
        raise UnknownStoreURLError(f"store URL {url!r}: max_record_bytes must be a whole number") from exc
    if max_record_bytes < 1:
        raise UnknownStoreURLError(f"store URL {url!r}: max_record_bytes must be at least 1, not {max_record_bytes}")
    if options:
        raise UnknownStoreURLError(f"store URL {url!r}: unknown option(s) {', '.join(sorted(options))}")
    if parts.scheme == "memory":
        from triggerfish.store.memory import open_memory_store

        return open_memory_store(url, max_record_bytes=max_record_bytes)
    if parts.scheme == "sqlite":
        from triggerfish.store.sqlite import open_sqlite_store

        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc:
            raise UnknownStoreURLError(
                f"store URL {url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        if not path:
            raise UnknownStoreURLError(f"store URL {url!r} names no file: write sqlite:///path/to/store.db")
        return await open_sqlite_store(url, path, max_record_bytes=max_record_bytes)
    raise UnknownStoreURLError(
        f"unknown store URL {url!r}: the schemes known are {', '.join(s + '://' for s in SCHEMES)}"
    )
