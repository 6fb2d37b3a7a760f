"""Where objects' bytes live: the blob backend interface, and the choice of backend for a store.

    blobs = blob_backend(store, root, clock=time.time)     # a directory under SQLite, the database under PostgreSQL
    writer = blobs.writer()
    await writer.write(b"...")                             # as the body arrives: never held whole in memory
    blob = await writer.finish()                           # durable, readable under blob.id
    reader = await blobs.open(blob.id)                     # BlobMissingError when it is gone
    async for piece in reader.read(start, length): ...     # a range reads only what it covers
    await blobs.remove([blob.id])                          # a reader already open still reads to its end
    await blobs.sweep(before)                              # what crashed writers left, and removed bytes, go

A blob is written once and never changed: a new write is a new blob with a fresh random id, so an
overwrite never touches bytes a reader streams and a crash leaves at worst a blob nothing refers to.
The object store's metadata (in the store) names the blob; the write intents there find blobs whose
commit never came. Each backend finds on its own the writes that never finished (`sweep`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from triggerfish.store import Store


@dataclass(frozen=True, slots=True)
class Blob:
    id: str
    size: int


class BlobMissingError(LookupError):
    """The blob is not there (removed, or never finished): the object that named it has changed since."""


class BlobWriter(ABC):
    """One blob being written. `write` as bytes arrive; `finish` to keep it, `abort` to drop it."""

    id: str
    size: int

    @abstractmethod
    async def write(self, data: bytes) -> None: ...

    @abstractmethod
    async def finish(self) -> Blob:
        """Make the blob durable and readable under `id`; returns it."""

    @abstractmethod
    async def abort(self) -> None:
        """Drop what was written (what a failed abort leaves, `sweep` removes)."""


class BlobReader(ABC):
    """An opened blob: its bytes stay readable until `close`, whatever happens to the blob meanwhile
    (for at least the sweep's grace, on a backend that keeps removed bytes until the sweep)."""

    size: int

    @abstractmethod
    def read(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """`length` bytes (to the end when None) from `start`, in pieces of about a MiB."""

    def close(self) -> None:  # noqa: B027 - most readers hold nothing to close
        """Let go of the blob."""

    async def read_all(self) -> bytes:
        """The whole blob in memory: for small ones only."""
        return b"".join([piece async for piece in self.read()])

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BytesReader(BlobReader):
    """A reader over bytes in memory: a small object's, kept in the store."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    async def read(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        end = self.size if length is None else min(self.size, start + length)
        if start < end:
            yield self.data[start:end]


class BlobBackend(ABC):
    """The blobs of one app's object store."""

    @abstractmethod
    def writer(self) -> BlobWriter: ...

    @abstractmethod
    async def open(self, blob_id: str) -> BlobReader:
        """The finished blob `blob_id`, opened; raises BlobMissingError when it is gone."""

    @abstractmethod
    async def copy(self, blob_id: str, *, into: str | None = None) -> Blob:
        """A new blob (with the id `into`, when given) with the bytes of `blob_id`; raises BlobMissingError when
        it is gone."""

    @abstractmethod
    async def concatenate(
        self,
        blob_ids: Sequence[str],
        ranges: Sequence[tuple[int, int] | None] = (),
        *,
        writer: BlobWriter | None = None,
    ) -> Blob:
        """A new blob (the `writer`'s, when given) of the given blobs' bytes one after another: each whole, or
        its `(first, last)` byte range."""

    @abstractmethod
    async def remove(self, blob_ids: Sequence[str]) -> None:
        """Nothing refers to these blobs any more. Readers that have them open still read them to the end."""

    @abstractmethod
    async def sweep(self, before: float) -> int:
        """Remove for good the writes not touched since `before` that never finished (their writer died), and
        bytes removed before `before`; how many blobs went."""


def blob_backend(store: Store, root: Path, *, clock: Callable[[], float] = time.time) -> BlobBackend:
    """The backend for `store`: the database itself for a PostgreSQL store (so every node of a cluster reads
    every object), else files under `root`."""
    inner = store
    while (deeper := getattr(inner, "inner", None)) is not None:  # a scoped view of a server's store
        inner = deeper
    engine = getattr(inner, "engine", None)
    if engine is not None and type(inner).__name__ == "PostgresStore":
        from triggerfish.objects.pg_blobs import PostgresBlobs

        return PostgresBlobs(engine, clock=clock)
    from triggerfish.objects.blobs import Blobs

    return Blobs(root)
