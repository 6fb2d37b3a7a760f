"""Objects' bytes on disk (the blob backend of a store on SQLite): each write a new file, written under a
temporary name, fsynced, then renamed.

    blobs = Blobs(Path(".triggerfish/objects"))
    writer = blobs.writer()
    await writer.write(b"...")           # as the body arrives; flushed to disk in a thread, in large pieces
    blob = await writer.finish()         # fsync, rename: durable under blobs/<2 hex>/<id>
    ...
    await blobs.remove([blob.id])

Why one file per write (a fresh random id) and not one per key or per content hash: an overwrite
never touches the bytes a reader has open (a GET streams the old file to its end), a crash
between the rename and the metadata commit leaves an unreferenced file and never a half-replaced
one, a copy is a hard link (no bytes copied, no reference counts), and a delete is an unlink.
Content addressing would save space for duplicates only, at the price of a hash over every body
and reference counting across transactions.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from triggerfish.objects.blob_backend import Blob, BlobBackend, BlobMissingError, BlobReader, BlobWriter

#: Bytes gathered in memory before they are written to the file (in a thread, off the event loop).
FLUSH_BYTES = 1024 * 1024
#: Bytes read at a time when a blob is streamed out (each read is a hop to a thread: not too small).
READ_BYTES = 1024 * 1024


class Blobs(BlobBackend):
    """The blob files of one app, under `root` (`blobs/` for objects, `tmp/` for writes in progress)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        (self.root / "blobs").mkdir(exist_ok=True)
        # Writes in progress when the process last stopped were never acknowledged: nothing refers to them.
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)

    def path(self, blob_id: str) -> Path:
        return self.root / "blobs" / blob_id[:2] / blob_id

    def writer(self) -> FileWriter:
        return FileWriter(self, secrets.token_hex(16))

    async def open(self, blob_id: str) -> FileReader:
        # An open file keeps its bytes after an unlink: a reader reads to its end whatever happens.
        try:
            return FileReader(await asyncio.to_thread(open, self.path(blob_id), "rb"))
        except FileNotFoundError:
            raise BlobMissingError(blob_id) from None

    async def copy(self, blob_id: str, *, into: str | None = None) -> Blob:
        """A new blob with the same bytes as `blob_id` (a hard link: nothing is copied)."""
        new = into or secrets.token_hex(16)
        source, target = self.path(blob_id), self.path(new)

        def link() -> int:
            target.parent.mkdir(exist_ok=True)
            try:
                os.link(source, target)
            except FileNotFoundError:
                raise BlobMissingError(blob_id) from None
            _fsync_dir(target.parent)
            return target.stat().st_size

        return Blob(new, await asyncio.to_thread(link))

    async def concatenate(
        self,
        blob_ids: Sequence[str],
        ranges: Sequence[tuple[int, int] | None] = (),
        *,
        writer: BlobWriter | None = None,
    ) -> Blob:
        """A new blob of the given blobs' bytes one after another (each whole, or its `(start, end)` range)."""
        into = writer or self.writer()
        assert isinstance(into, FileWriter), "a blob backend concatenates into a writer of its own"
        spans = list(ranges) or [None] * len(blob_ids)

        def copy() -> None:
            with open(into.temp, "wb") as out:
                for blob_id, span in zip(blob_ids, spans, strict=True):
                    try:
                        source = open(self.path(blob_id), "rb")  # noqa: SIM115 - closed by the with below
                    except FileNotFoundError:
                        raise BlobMissingError(blob_id) from None
                    with source:
                        if span is None:
                            shutil.copyfileobj(source, out, READ_BYTES * 4)
                        else:
                            source.seek(span[0])
                            for chunk in _read_range(source, span[1] - span[0] + 1):
                                out.write(chunk)
                out.flush()
                os.fsync(out.fileno())

        try:
            await asyncio.to_thread(copy)
        except BaseException:
            await into.abort()
            raise
        return await into.finish(already_synced=True)

    async def remove(self, blob_ids: Sequence[str]) -> None:
        if blob_ids:

            def remove_all() -> None:
                for blob_id in blob_ids:
                    self.path(blob_id).unlink(missing_ok=True)

            await asyncio.to_thread(remove_all)

    async def sweep(self, before: float) -> int:
        """Temporary files of writes untouched since `before` (`tmp/` is emptied at start too: one process
        owns a data directory, so what is there at start is a dead writer's)."""

        def sweep() -> int:
            gone = 0
            for leftover in self._tmp.iterdir():
                try:
                    if leftover.stat().st_mtime < before:
                        leftover.unlink()
                        gone += 1
                except FileNotFoundError:
                    continue  # finished or aborted meanwhile
            return gone

        return await asyncio.to_thread(sweep)


class FileReader(BlobReader):
    """An open blob file: its pieces are read in a thread, off the event loop."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.size = os.fstat(file.fileno()).st_size

    async def read(self, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        left = self.size - start if length is None else min(length, self.size - start)
        if left <= 0:
            return
        if left <= READ_BYTES:  # one hop to a thread for a small read
            yield await asyncio.to_thread(os.pread, self.file.fileno(), left, start)
            return
        pieces = read_range(self.file, start, left)
        while piece := await asyncio.to_thread(next, pieces, b""):
            yield piece

    def close(self) -> None:
        self.file.close()


class FileWriter(BlobWriter):
    """One blob being written. `write` as bytes arrive; `finish` to keep it, `abort` to drop it."""

    def __init__(self, blobs: Blobs, blob_id: str) -> None:
        self.blobs = blobs
        self.id = blob_id
        self.temp = blobs._tmp / blob_id
        self.size = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._file: BinaryIO | None = None

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        if self._file is None:
            self._file = open(self.temp, "wb")  # noqa: SIM115 - kept open across writes, closed in finish/abort
        self._file.write(b"".join(self._pending))
        self._pending.clear()
        self._pending_bytes = 0

    async def finish(self, *, already_synced: bool = False) -> Blob:
        """Make the blob durable under its name; returns it."""

        def finish() -> None:
            if not already_synced:
                self._flush()
                assert self._file is not None
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
            target = self.blobs.path(self.id)
            target.parent.mkdir(exist_ok=True)
            os.replace(self.temp, target)
            _fsync_dir(target.parent)

        await asyncio.to_thread(finish)
        if already_synced:
            self.size = self.blobs.path(self.id).stat().st_size
        return Blob(self.id, self.size)

    async def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._pending.clear()
        self.temp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory holding the new name is.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_range(source: BinaryIO, length: int) -> Iterator[bytes]:
    while length > 0:
        chunk = source.read(min(READ_BYTES, length))
        if not chunk:
            return
        length -= len(chunk)
        yield chunk


def read_range(source: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """`length` bytes of `source` from `start`, in pieces of READ_BYTES."""
    source.seek(start)
    return _read_range(source, length)
