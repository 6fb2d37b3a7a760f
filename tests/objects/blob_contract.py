"""The blob backend contract (triggerfish.objects.blob_backend), run on every backend: the directory of a
store on SQLite and the database of a store on PostgreSQL."""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator

import pytest

from triggerfish.objects.blob_backend import Blob, BlobBackend, BlobMissingError

MIB = 1024 * 1024
#: Bytes no two positions of which are alike over a few MiB, so a range read from the wrong place shows.
PATTERN = bytes(range(251)) * (3 * MIB // 251 + 1)


async def write(blobs: BlobBackend, data: bytes, piece: int = 70_001) -> Blob:
    """`data` written as a body arrives: in pieces of an odd size (they straddle every chunk boundary)."""
    writer = blobs.writer()
    for at in range(0, len(data), piece):
        await writer.write(data[at : at + piece])
    return await writer.finish()


async def read(blobs: BlobBackend, blob_id: str, start: int = 0, length: int | None = None) -> bytes:
    with await blobs.open(blob_id) as reader:
        return b"".join([piece async for piece in reader.read(start, length)])


class BlobBackendContract(abc.ABC):
    @abc.abstractmethod
    def backend(self) -> AsyncIterator[BlobBackend]: ...

    @pytest.fixture
    async def blobs(self) -> AsyncIterator[BlobBackend]:
        async for backend in self.backend():
            yield backend

    async def test_a_blob_written_in_pieces_reads_back_whole_and_in_any_range(self, blobs: BlobBackend) -> None:
        data = PATTERN[: 2 * MIB + 12345]
        blob = await write(blobs, data)
        assert blob.size == len(data)
        assert await read(blobs, blob.id) == data
        for start, length in [(0, 1), (MIB - 1, 2), (MIB, MIB), (2 * MIB + 5, 1000), (len(data) - 1, 1), (7, None)]:
            expected = data[start:] if length is None else data[start : start + length]
            assert await read(blobs, blob.id, start, length) == expected, (start, length)
        with await blobs.open(blob.id) as reader:
            assert reader.size == len(data)
            assert all(len(piece) <= MIB for piece in [p async for p in reader.read()])  # never the whole at once

    async def test_an_empty_blob_is_a_blob(self, blobs: BlobBackend) -> None:
        blob = await blobs.writer().finish()
        assert blob.size == 0
        assert await read(blobs, blob.id) == b""

    async def test_a_write_is_invisible_until_it_finishes_and_an_aborted_one_never_is(self, blobs: BlobBackend) -> None:
        writer = blobs.writer()
        await writer.write(PATTERN[: MIB + 10])  # past the first flush: some of it is stored already
        with pytest.raises(BlobMissingError):
            await blobs.open(writer.id)
        await writer.abort()
        with pytest.raises(BlobMissingError):
            await blobs.open(writer.id)
        assert await blobs.sweep(time.time() + 60) == 0  # the abort left nothing to sweep

    async def test_a_copy_outlives_its_original(self, blobs: BlobBackend) -> None:
        original = await write(blobs, PATTERN[: MIB + 3])
        copy = await blobs.copy(original.id)
        assert copy.id != original.id
        assert copy.size == original.size
        await blobs.remove([original.id])
        assert await read(blobs, copy.id) == PATTERN[: MIB + 3]
        with pytest.raises(BlobMissingError):
            await blobs.copy(original.id)

    async def test_blobs_and_ranges_of_blobs_concatenate_in_order(self, blobs: BlobBackend) -> None:
        first = await write(blobs, PATTERN[: MIB + 100])
        second = await write(blobs, PATTERN[5 : 5 + 999])
        third = await write(blobs, PATTERN[: 2 * MIB])
        joined = await blobs.concatenate([first.id, second.id, third.id])
        whole = PATTERN[: MIB + 100] + PATTERN[5 : 5 + 999] + PATTERN[: 2 * MIB]
        assert joined.size == len(whole)
        assert await read(blobs, joined.id) == whole
        assert await read(blobs, joined.id, MIB + 50, 2000) == whole[MIB + 50 : MIB + 2050]  # across the seams
        spans = [(MIB - 10, MIB + 20), None, (3, MIB + 4)]
        cut = await blobs.concatenate([first.id, second.id, third.id], spans)
        expected = PATTERN[MIB - 10 : MIB + 21] + PATTERN[5 : 5 + 999] + PATTERN[3 : MIB + 5]
        assert cut.size == len(expected)
        assert await read(blobs, cut.id) == expected
        assert await read(blobs, cut.id, 20, 1500) == expected[20:1520]

    async def test_concatenating_into_a_writer_gives_the_blob_its_id(self, blobs: BlobBackend) -> None:
        part = await write(blobs, b"abc" * 1000)
        writer = blobs.writer()
        joined = await blobs.concatenate([part.id, part.id], writer=writer)
        assert joined.id == writer.id
        assert await read(blobs, writer.id) == b"abc" * 2000

    async def test_a_missing_source_fails_the_concatenation_and_leaves_nothing(self, blobs: BlobBackend) -> None:
        part = await write(blobs, b"x" * 100)
        writer = blobs.writer()
        with pytest.raises(BlobMissingError):
            await blobs.concatenate([part.id, "0" * 32], writer=writer)
        with pytest.raises(BlobMissingError):
            await blobs.open(writer.id)

    async def test_a_reader_opened_before_a_removal_reads_to_the_end(self, blobs: BlobBackend) -> None:
        data = PATTERN[: 2 * MIB + 1]
        blob = await write(blobs, data)
        with await blobs.open(blob.id) as reader:
            pieces = reader.read()
            got = [await anext(pieces)]
            await blobs.remove([blob.id])
            got += [piece async for piece in pieces]
        assert b"".join(got) == data
        with pytest.raises(BlobMissingError):
            await blobs.open(blob.id)
        await blobs.remove([blob.id])  # twice is fine

    async def test_the_sweep_removes_abandoned_writes_once_untouched_for_the_grace(self, blobs: BlobBackend) -> None:
        kept = await write(blobs, PATTERN[: MIB + 1])
        abandoned = blobs.writer()
        await abandoned.write(PATTERN[: MIB + 1])  # its writer died here: never finished, never aborted
        assert await blobs.sweep(time.time() - 60) == 0  # a write touched a moment ago may be in progress
        assert await blobs.sweep(time.time() + 60) == 1
        await abandoned.abort()  # (lets go of what the dead writer held open in this process)
        assert await read(blobs, kept.id) == PATTERN[: MIB + 1]  # finished blobs are never swept
        await blobs.remove([kept.id])
        await blobs.sweep(time.time() + 60)  # and removed bytes go for good
        with pytest.raises(BlobMissingError):
            await blobs.open(kept.id)
