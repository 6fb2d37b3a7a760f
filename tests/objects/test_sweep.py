"""A blob whose write died between its rename and its commit is found by its write intent and removed by a
sweep once the intent is old; committed blobs are never touched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from triggerfish.objects.service import INTENT_GRACE, ObjectStore
from triggerfish.store import open_store


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_sweep_removes_only_blobs_whose_commit_never_came(tmp_path: Path) -> None:
    now = [1000.0]
    store = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        objects = ObjectStore(store, tmp_path / "objects", clock=lambda: now[0])
        await objects.ensure_buckets(["photos"])
        # a write that died after its blob was renamed into place, before its commit
        writer = objects.blobs.writer()
        await writer.write(b"o" * 100_000)
        await objects.index.intend(writer.id, now[0])
        orphan = await writer.finish()
        # and a write that committed (its intent went with the commit)
        kept = await objects.put_object("photos", "big.bin", body(b"k" * 100_000))
        assert not kept.inline
        assert objects.blobs.path(orphan.id).exists()

        now[0] += INTENT_GRACE - 1
        assert await objects.sweep() == 0  # young intents may be writes in progress
        now[0] += 2
        assert await objects.sweep() == 1
        assert not objects.blobs.path(orphan.id).exists()
        _, file = await objects.open("photos", "big.bin")
        with file:
            assert file.read() == b"k" * 100_000
        assert await objects.sweep() == 0
    finally:
        await store.close()
