"""Objects' bytes in PostgreSQL (the blob backend of a store on PostgreSQL): every node of a cluster reads
every object, with no shared file system.

    blobs = PostgresBlobs(store.engine)
    writer = blobs.writer()
    await writer.write(piece)              # gathered to CHUNK_BYTES, then one INSERT per chunk
    blob = await writer.finish()           # the blob's row gets its size: readable from now on

Tables (migration 2 of the store's schema): `blobs(id, size, touched, removed)` and
`blob_chunks(blob_id, start, data)`, a chunk of at most CHUNK_BYTES per row keyed by the offset of its first
byte. Why chunks in a table and not PostgreSQL's large objects: large objects belong to the database, not
to the store's schema (dropping or dumping a schema would leave them or miss them), each needs an
`lo_unlink` of its own or it leaks, and reading one takes a transaction held open for the whole read. Chunk
rows go with the schema, are deleted with a DELETE, and are read one statement per chunk.

- **Writes** stream: at most one chunk (plus the piece that arrived) is held in memory; each chunk is its
  own statement, which also marks the blob `touched`. `size` stays NULL until `finish`: nothing reads an
  unfinished blob, and the sweep removes one untouched for the grace (its writer died).
- **Reads** of a range fetch only the chunks that overlap it: every chunk is at most CHUNK_BYTES, so the
  first one starts within CHUNK_BYTES before the range.
- **Removal** marks the blob `removed`; the sweep deletes its chunks after the grace, so a GET streaming the
  old bytes of an object overwritten meanwhile reads them to the end, as with an open file.
- **Copies and concatenations** (CopyObject, UploadPartCopy, CompleteMultipartUpload) run in the
  database, one transaction each: the bytes never travel to the node.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from triggerfish.errors import StoreError
from triggerfish.objects.blob_backend import Blob, BlobBackend, BlobMissingError, BlobReader, BlobWriter
from triggerfish.store._pg_engine import Conn, Engine

logger = logging.getLogger("triggerfish.objects")

#: The most bytes one chunk row holds.
CHUNK_BYTES = 1024 * 1024


class PostgresBlobs(BlobBackend):
    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def writer(self) -> ChunkWriter:
        return ChunkWriter(self, secrets.token_hex(16))

    async def open(self, blob_id: str) -> ChunkReader:
        async def size(conn: Conn) -> int | None:
            cursor = await conn.execute(
                "SELECT size FROM blobs WHERE id = %s AND size IS NOT NULL AND removed IS NULL", (blob_id,)
            )
            row = await cursor.fetchone()
            return None if row is None else int(row[0])

        found = await self.engine.read(size)
        if found is None:
            raise BlobMissingError(blob_id)
        return ChunkReader(self.engine, blob_id, found)

    async def copy(self, blob_id: str, *, into: str | None = None) -> Blob:
        return await self.concatenate([blob_id], writer=None if into is None else ChunkWriter(self, into))

    async def concatenate(
        self,
        blob_ids: Sequence[str],
        ranges: Sequence[tuple[int, int] | None] = (),
        *,
        writer: BlobWriter | None = None,
    ) -> Blob:
        new = writer.id if writer is not None else secrets.token_hex(16)
        spans = list(ranges) or [None] * len(blob_ids)
        now = self.clock()

        async def join(conn: Conn) -> int:
            cursor = await conn.execute(
                "SELECT id, size FROM blobs WHERE id = ANY(%s) AND size IS NOT NULL AND removed IS NULL",
                (list(blob_ids),),
            )
            sizes = {blob_id: int(size) for blob_id, size in await cursor.fetchall()}
            await conn.execute(
                "INSERT INTO blobs (id, size, touched) VALUES (%s, NULL, %s)"
                " ON CONFLICT (id) DO UPDATE SET touched = excluded.touched",
                (new, now),
            )
            offset = 0
            for blob_id, span in zip(blob_ids, spans, strict=True):
                if blob_id not in sizes:
                    raise BlobMissingError(blob_id)
                first, last = span if span is not None else (0, sizes[blob_id] - 1)
                if last < first:
                    continue  # an empty blob adds nothing
                # Each overlapping chunk, cut to the range, lands at its place in the new blob: still at most
                # CHUNK_BYTES each, one after another.
                await conn.execute(
                    "INSERT INTO blob_chunks (blob_id, start, data)"
                    " SELECT %(new)s, %(offset)s + greatest(start - %(first)s, 0),"
                    "   substring(data FROM (greatest(%(first)s - start, 0) + 1)::integer"
                    "     FOR (least(start + octet_length(data), %(end)s) - greatest(start, %(first)s))::integer)"
                    " FROM blob_chunks WHERE blob_id = %(source)s AND start > %(first)s - %(chunk)s"
                    "   AND start < %(end)s AND start + octet_length(data) > %(first)s",
                    {
                        "new": new,
                        "offset": offset,
                        "first": first,
                        "end": last + 1,
                        "source": blob_id,
                        "chunk": CHUNK_BYTES,
                    },
                )
                offset += last - first + 1
            await conn.execute("UPDATE blobs SET size = %s WHERE id = %s", (offset, new))
            return offset

        return Blob(new, await self.engine.run(join))

    async def remove(self, blob_ids: Sequence[str]) -> None:
        if not blob_ids:
            return

        async def mark(conn: Conn) -> None:
            await conn.execute(
                "UPDATE blobs SET removed = %s WHERE id = ANY(%s) AND removed IS NULL", (self.clock(), list(blob_ids))
            )

        await self.engine.read(mark)  # one statement: no transaction around it

    async def sweep(self, before: float) -> int:
        async def sweep(conn: Conn) -> int:
            cursor = await conn.execute(
                "DELETE FROM blobs WHERE id IN (SELECT id FROM blobs WHERE size IS NULL AND touched < %(before)s"
                " UNION ALL SELECT id FROM blobs WHERE removed < %(before)s) RETURNING id",
                {"before": before},
            )
            gone = [blob_id for (blob_id,) in await cursor.fetchall()]
            if gone:
                await conn.execute("DELETE FROM blob_chunks WHERE blob_id = ANY(%s)", (gone,))
            return len(gone)

        return await self.engine.run(sweep)

    async def _drop_now(self, blob_id: str) -> None:
        async def drop(conn: Conn) -> None:
            await conn.execute("DELETE FROM blobs WHERE id = %s", (blob_id,))
            await conn.execute("DELETE FROM blob_chunks WHERE blob_id = %s", (blob_id,))

        await self.engine.run(drop)


class ChunkWriter(BlobWriter):
    def __init__(self, blobs: PostgresBlobs, blob_id: str) -> None:
        self.blobs = blobs
        self.id = blob_id
        self.size = 0
        self._pending = bytearray()
        self._written = 0  # bytes already in chunk rows
        self._begun = False

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        self._pending += data
        while len(self._pending) >= CHUNK_BYTES:
            chunk = bytes(self._pending[:CHUNK_BYTES])
            del self._pending[:CHUNK_BYTES]
            await self._insert(chunk)

    async def _insert(self, chunk: bytes) -> None:
        start, now = self._written, self.blobs.clock()
        # One statement per chunk: the chunk, and the blob marked touched so the sweep leaves it alone. A blob
        # the sweep took meanwhile gets no more chunks: the write fails.
        if not self._begun:
            statement = (
                "WITH blob AS (INSERT INTO blobs (id, size, touched) VALUES (%(id)s, NULL, %(now)s) RETURNING id)"
                " INSERT INTO blob_chunks (blob_id, start, data) SELECT id, %(start)s, %(data)s FROM blob"
            )
        else:
            statement = (
                "WITH blob AS (UPDATE blobs SET touched = %(now)s WHERE id = %(id)s AND size IS NULL"
                " AND removed IS NULL RETURNING id)"
                " INSERT INTO blob_chunks (blob_id, start, data) SELECT id, %(start)s, %(data)s FROM blob"
            )

        async def insert(conn: Conn) -> int:
            # No WAL flush of its own: `finish`'s commit flushes the WAL up to itself, chunks and all, before the
            # blob is readable; a crash before then leaves an unfinished blob for the sweep, whatever was lost.
            await conn.execute("SET LOCAL synchronous_commit = off")
            cursor = await conn.execute(statement, {"id": self.id, "now": now, "start": start, "data": chunk})
            return cursor.rowcount

        if await self.blobs.engine.run(insert) != 1:
            raise BlobMissingError(f"{self.id}: swept while it was written (untouched for longer than the grace)")
        self._begun = True
        self._written += len(chunk)

    async def finish(self) -> Blob:
        if self._pending or not self._begun:
            chunk = bytes(self._pending)
            self._pending.clear()
            await self._insert(chunk)

        async def finish(conn: Conn) -> int:
            cursor = await conn.execute(
                "UPDATE blobs SET size = %s WHERE id = %s AND size IS NULL AND removed IS NULL",
                (self._written, self.id),
            )
            return cursor.rowcount

        if await self.blobs.engine.run(finish) != 1:
            raise BlobMissingError(f"{self.id}: swept while it was written (untouched for longer than the grace)")
        return Blob(self.id, self._written)

    async def abort(self) -> None:
        self._pending.clear()
        if self._begun:
            try:
                await self.blobs._drop_now(self.id)
            except StoreError as exc:  # the write's own failure matters more; the sweep removes the rest
                logger.warning("could not drop the unfinished blob %s (%s); the sweep will", self.id, exc)


class ChunkReader(BlobReader):
    def __init__(self, engine: Engine, blob_id: str, size: int) -> None:
        self.engine = engine
        self.id = blob_id
        self.size = size

    async def read(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        end = self.size if length is None else min(self.size, start + length)
        position = start
        after = start - CHUNK_BYTES  # the chunk holding `start` begins after this
        while position < end:
            found = await self.engine.read(_next_chunk, self.id, after, position, end)
            if found is None or found[0] > position:
                raise BlobMissingError(f"{self.id}: the bytes at {position} are gone")
            chunk_start, data = found
            piece = data[position - chunk_start : end - chunk_start]
            if not piece:
                raise BlobMissingError(f"{self.id}: the bytes at {position} are gone")
            yield piece
            position += len(piece)
            after = chunk_start


async def _next_chunk(conn: Conn, blob_id: str, after: int, position: int, end: int) -> tuple[int, bytes] | None:
    """The chunk holding byte `position` (it starts after `after`), if it is there."""
    # In binary: bytea's text form is hex, twice the bytes on the wire and a decoding pass here.
    cursor = await conn.execute(
        "SELECT start, data FROM blob_chunks WHERE blob_id = %s AND start > %s AND start < %s"
        " AND start + octet_length(data) > %s ORDER BY start LIMIT 1",
        (blob_id, after, end, position),
        binary=True,
    )
    row: Any = await cursor.fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]))
