"""A blob whose write died between its rename and its commit is found by its write intent and removed by a
sweep once the intent is old; committed blobs are never touched. On SQLite (files) and PostgreSQL (rows)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.services import POSTGRES_URL, drop_schema, require_postgres
from triggerfish.objects.blob_backend import BlobMissingError
from triggerfish.objects.service import INTENT_GRACE, Content, ObjectStore
from triggerfish.store import Store, open_store


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        opened = await open_store(f"sqlite:///{tmp_path / 'store.db'}")
        yield opened
        await opened.close()
        return
    require_postgres()
    schema = f"t_blobs11_{uuid.uuid4().hex[:12]}"
    opened = await open_store(f"{POSTGRES_URL}?schema={schema}&pool_size=2")
    try:
        yield opened
    finally:
        await opened.close()
        await drop_schema(schema)


async def test_a_sweep_removes_only_blobs_whose_commit_never_came(store: Store, tmp_path: Path) -> None:
    now = [1000.0]
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
    (await objects.blobs.open(orphan.id)).close()

    now[0] += INTENT_GRACE - 1
    assert await objects.sweep() == 0  # young intents may be writes in progress
    now[0] += 2
    assert await objects.sweep() == 1
    with pytest.raises(BlobMissingError):
        await objects.blobs.open(orphan.id)
    _, reader = await objects.open("photos", "big.bin")
    with reader:
        assert await reader.read_all() == b"k" * 100_000
    assert await objects.sweep() == 0


async def test_every_write_that_commits_ends_its_intent_so_no_sweep_ever_takes_its_blob(
    store: Store, tmp_path: Path
) -> None:
    now = [1000.0]
    objects = ObjectStore(store, tmp_path / "objects", clock=lambda: now[0])
    await objects.ensure_buckets(["photos"])
    big = b"p" * (5 * 1024 * 1024)
    await objects.put_object("photos", "source.bin", body(big))
    await objects.copy_object(("photos", "source.bin"), "photos", "copy.bin")
    upload = await objects.create_upload("photos", "joined.bin", Content())
    first = await objects.upload_part("photos", "joined.bin", upload.upload_id, 1, body(big))
    second = await objects.upload_part_copy(
        "photos", "joined.bin", upload.upload_id, 2, ("photos", "source.bin"), (0, 99)
    )
    pending = await objects.create_upload("photos", "pending.bin", Content())
    await objects.upload_part("photos", "pending.bin", pending.upload_id, 1, body(b"q" * 100_000))
    await objects.complete_upload("photos", "joined.bin", upload.upload_id, [(1, first.etag), (2, second.etag)])
    assert await objects.index.stale_intents(float("inf")) == []

    now[0] += 10 * INTENT_GRACE
    assert await objects.sweep() == 0
    for key, expected in [("source.bin", big), ("copy.bin", big), ("joined.bin", big + big[:100])]:
        _, reader = await objects.open("photos", key)
        with reader:
            assert await reader.read_all() == expected, key
    # the part of an upload still in progress is kept too
    (part,) = await objects.list_parts("photos", "pending.bin", pending.upload_id, after=0, limit=10)
    (await objects.blobs.open(part.blob)).close()
