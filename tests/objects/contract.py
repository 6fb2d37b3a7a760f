"""The object metadata contract (triggerfish.objects.index), run on every store backend."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator

import pytest

from triggerfish.errors import AtomicConflictError
from triggerfish.objects.index import ObjectIndex
from triggerfish.objects.model import ObjectMeta, PartMeta, UploadMeta
from triggerfish.store import Store
from triggerfish.store.atomic import Send
from triggerfish.store.base import ABSENT, OutgoingMessage


def meta(key: str, *, bucket: str = "photos", blob: str = "b1", size: int = 5) -> ObjectMeta:
    return ObjectMeta(
        bucket,
        key,
        blob,
        size,
        "5d41402abc4b2a76b9719d911017c592",
        1.5,
        "0000000000000001",
        "image/jpeg",
        {"cache-control": "no-cache"},
        {"owner": "ann"},
        {"crc32": "NhCmhg=="},
    )


class ObjectIndexContract(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> Store: ...

    @pytest.fixture
    async def index(self) -> AsyncIterator[ObjectIndex]:
        store = await self.open()
        try:
            yield ObjectIndex(store)
        finally:
            await store.close()

    async def test_a_bucket_is_made_once_and_listed(self, index: ObjectIndex) -> None:
        assert await index.create_bucket("photos", 10.0)
        assert not await index.create_bucket("photos", 11.0)
        assert await index.create_bucket("docs", 12.0)
        assert [(b.name, b.created) for b in await index.buckets()] == [("docs", 12.0), ("photos", 10.0)]
        assert await index.delete_bucket("docs")
        assert await index.bucket("docs") is None
        assert not await index.delete_bucket("docs")

    async def test_an_object_round_trips_with_everything_it_carries(self, index: ObjectIndex) -> None:
        await index.create_bucket("photos", 1.0)
        written = meta("cats/tom.jpg")
        await index.commit([index.put_op(written, expect=ABSENT)])
        found = await index.get("photos", "cats/tom.jpg")
        assert found is not None
        assert found.version > 0
        assert found.encode() == written.encode()
        assert not await index.is_empty("photos")

    async def test_the_write_and_its_notification_commit_together(self, index: ObjectIndex) -> None:
        await index.create_bucket("photos", 1.0)
        note = Send("fn.on_photo", [OutgoingMessage(b'{"Records": []}')])
        await index.commit([index.put_op(meta("a.jpg"), expect=ABSENT), note])
        assert (await index.store.queues.stats("fn.on_photo")).visible == 1
        # a second writer that read the key as absent loses, and its notification is not sent
        with pytest.raises(AtomicConflictError):
            await index.commit([index.put_op(meta("a.jpg", blob="b2"), expect=ABSENT), note])
        assert (await index.store.queues.stats("fn.on_photo")).visible == 1
        found = await index.get("photos", "a.jpg")
        assert found is not None
        assert found.blob == "b1"

    async def test_listing_is_in_utf8_byte_order_and_pages_after_a_key(self, index: ObjectIndex) -> None:
        keys = ["b", "a/2", "a/1", "é", "a/10", "Z", "\U0001f600"]
        await index.commit([index.put_op(meta(k), expect=ABSENT) for k in keys])
        listed = [m.key for m in await index.list_objects("photos")]
        assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))
        assert [m.key for m in await index.list_objects("photos", prefix="a/", after="a/10", limit=5)] == ["a/2"]
        assert [m.key for m in await index.list_objects("photos", prefix="a/", limit=2)] == ["a/1", "a/10"]

    async def test_delete_is_compare_and_set(self, index: ObjectIndex) -> None:
        await index.commit([index.put_op(meta("k"), expect=ABSENT)])
        found = await index.get("photos", "k")
        assert found is not None
        with pytest.raises(AtomicConflictError):
            await index.commit([index.delete_op("photos", "k", expect=found.version + 1000)])
        await index.commit([index.delete_op("photos", "k", expect=found.version)])
        assert await index.get("photos", "k") is None

    async def test_an_upload_keeps_its_parts_in_number_order(self, index: ObjectIndex) -> None:
        await index.create_bucket("photos", 1.0)
        upload = UploadMeta("photos", "big.bin", "a" * 32, 2.0, "video/mp4", {}, {"x": "1"}, "crc32")
        await index.start_upload(upload)
        assert await index.upload("photos", "a" * 32) == upload
        assert [u.upload_id for u in await index.uploads("photos")] == ["a" * 32]
        assert not await index.is_empty("photos")
        for number in (10, 2, 1):
            assert await index.put_part(upload.upload_id, PartMeta(number, f"p{number}", 5, "e", 3.0)) is None
        replaced = await index.put_part(upload.upload_id, PartMeta(2, "p2b", 6, "f", 4.0))
        assert replaced is not None
        assert replaced.blob == "p2"
        parts = await index.parts(upload.upload_id)
        assert [(p.number, p.blob) for p in parts] == [(1, "p1"), (2, "p2b"), (10, "p10")]
        assert [p.number for p in await index.parts(upload.upload_id, after=2)] == [10]
        await index.commit(index.end_upload_ops("photos", upload.upload_id, parts))
        assert await index.upload("photos", upload.upload_id) is None
        assert await index.parts(upload.upload_id) == []
        assert await index.is_empty("photos")
