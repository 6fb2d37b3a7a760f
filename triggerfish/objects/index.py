"""The object store's metadata, kept in the platform's store: buckets, objects, multipart uploads, parts.

    index = ObjectIndex(store)
    await index.create_bucket("uploads", now)
    await index.commit([index.put_op(meta, expect=0), *notifications])   # one transaction: an outbox
    page = await index.list_objects("uploads", prefix="images/", after="images/a.jpg", limit=1000)

Every record is a key-value record (namespaces from triggerfish.names), so the index runs on every
store backend, and a write can go in one `Store.atomic` with the notifications it causes: the
metadata and the function invocations and bus events it triggers commit together or not at all.
An object's namespace is its bucket's and its key is the object key, so a key-range scan is S3's
listing order (UTF-8 byte order) on every backend. Writes are compare-and-set on the record's
version (`expect`), so two writers racing for one key are told, and a sequencer grows per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from triggerfish.errors import AtomicConflictError
from triggerfish.names import (
    BUCKET_NOTIFICATIONS_NAMESPACE,
    BUCKETS_NAMESPACE,
    PENDING_BLOBS_NAMESPACE,
    UPLOADS_NAMESPACE,
    object_data_namespace,
    objects_namespace,
    parts_namespace,
)
from triggerfish.objects.bucket_notifications import NotificationConfiguration
from triggerfish.objects.model import BucketMeta, ObjectMeta, PartMeta, UploadMeta
from triggerfish.store import Store
from triggerfish.store.atomic import Delete, Op, Put
from triggerfish.store.base import ABSENT

#: Most parts of one multipart upload (S3's limit).
MAX_PARTS = 10_000


class ObjectIndex:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- buckets ---

    async def create_bucket(self, name: str, now: float) -> bool:
        """Create `name`; False when it exists already."""
        put = Put(BUCKETS_NAMESPACE, name, BucketMeta(name, now).encode(), if_version=ABSENT)
        try:
            await self.store.atomic([put])
        except AtomicConflictError:
            return False
        return True

    async def bucket(self, name: str) -> BucketMeta | None:
        record = await self.store.kv.get(BUCKETS_NAMESPACE, name)
        return None if record is None else BucketMeta.decode(name, record.value)

    async def buckets(self) -> list[BucketMeta]:
        records = await self.store.kv.scan(BUCKETS_NAMESPACE, limit=100_000)
        return [BucketMeta.decode(r.key, r.value) for r in records]

    async def delete_bucket(self, name: str) -> bool:
        """Delete an empty bucket: False when it does not exist. The caller checks it is empty first."""
        await self.store.kv.delete(BUCKET_NOTIFICATIONS_NAMESPACE, name)
        return await self.store.kv.delete(BUCKETS_NAMESPACE, name)

    async def notifications(self, bucket: str) -> NotificationConfiguration:
        """The bucket's notification configuration (empty when none was put)."""
        record = await self.store.kv.get(BUCKET_NOTIFICATIONS_NAMESPACE, bucket)
        return NotificationConfiguration() if record is None else NotificationConfiguration.decode(record.value)

    def notifications_op(self, bucket: str, config: NotificationConfiguration) -> Op:
        if not config.destinations:
            return Delete(BUCKET_NOTIFICATIONS_NAMESPACE, bucket)
        return Put(BUCKET_NOTIFICATIONS_NAMESPACE, bucket, config.encode())

    async def is_empty(self, bucket: str) -> bool:
        if await self.store.kv.scan(objects_namespace(bucket), limit=1):
            return False
        return not await self.store.kv.scan(UPLOADS_NAMESPACE, prefix=f"{bucket}/", limit=1)

    # --- objects ---

    async def get(self, bucket: str, key: str) -> ObjectMeta | None:
        record = await self.store.kv.get(objects_namespace(bucket), key)
        return None if record is None else ObjectMeta.decode(bucket, key, record.value, record.version)

    async def list_objects(
        self, bucket: str, *, prefix: str = "", after: str | None = None, limit: int = 1000
    ) -> list[ObjectMeta]:
        """Objects whose key starts with `prefix` and sorts after `after`, in S3's order."""
        # Keys hold no NUL, so `after + "\x01"` is the least key sorting after `after`.
        start = "" if after is None else after + "\x01"
        records = await self.store.kv.scan(objects_namespace(bucket), prefix=prefix, start=start, limit=limit)
        return [ObjectMeta.decode(bucket, r.key, r.value, r.version) for r in records]

    def put_op(self, meta: ObjectMeta, *, expect: int | None) -> Put:
        """The write of `meta`, if the key's record is still at version `expect` (0: absent; None: any)."""
        return Put(objects_namespace(meta.bucket), meta.key, meta.encode(), if_version=expect)

    def delete_op(self, bucket: str, key: str, *, expect: int | None) -> Delete:
        return Delete(objects_namespace(bucket), key, if_version=expect)

    def data_op(self, meta: ObjectMeta, data: bytes) -> Put:
        """The write of a small object's bytes, tagged with its sequencer (so a reader can tell they match)."""
        return Put(object_data_namespace(meta.bucket), meta.key, meta.sequencer.encode() + b"\n" + data)

    def delete_data_op(self, bucket: str, key: str) -> Delete:
        return Delete(object_data_namespace(bucket), key)

    async def data(self, meta: ObjectMeta) -> bytes | None:
        """A small object's bytes; None when the key changed since `meta` was read (read it again)."""
        record = await self.store.kv.get(object_data_namespace(meta.bucket), meta.key)
        if record is None:
            return None
        sequencer, _, data = record.value.partition(b"\n")
        return data if sequencer.decode() == meta.sequencer else None

    async def commit(self, ops: Sequence[Op]) -> list[Any]:
        """Run `ops` in one transaction; raises AtomicConflictError when a version did not hold."""
        return await self.store.atomic(list(ops))

    # --- write intents: blobs on disk whose commit has not happened (yet) ---

    async def intend(self, blob_id: str, now: float) -> None:
        """Record that `blob_id` is about to be written; the commit that refers to it deletes the record."""
        await self.store.kv.put(PENDING_BLOBS_NAMESPACE, blob_id, repr(now).encode())

    def intent_done_op(self, blob_id: str) -> Delete:
        return Delete(PENDING_BLOBS_NAMESPACE, blob_id)

    async def forget_intent(self, blob_id: str) -> None:
        await self.store.kv.delete(PENDING_BLOBS_NAMESPACE, blob_id)

    async def stale_intents(self, before: float, *, limit: int = 1000) -> list[str]:
        """The blobs intended before `before` whose commit never came."""
        records = await self.store.kv.scan(PENDING_BLOBS_NAMESPACE, limit=limit)
        return [r.key for r in records if float(r.value) < before]

    # --- multipart uploads ---

    async def start_upload(self, upload: UploadMeta) -> None:
        await self.store.kv.put(UPLOADS_NAMESPACE, f"{upload.bucket}/{upload.upload_id}", upload.encode())

    async def upload(self, bucket: str, upload_id: str) -> UploadMeta | None:
        record = await self.store.kv.get(UPLOADS_NAMESPACE, f"{bucket}/{upload_id}")
        return None if record is None else UploadMeta.decode(bucket, upload_id, record.value)

    async def uploads(self, bucket: str, *, limit: int = 1000) -> list[UploadMeta]:
        records = await self.store.kv.scan(UPLOADS_NAMESPACE, prefix=f"{bucket}/", limit=limit)
        return [UploadMeta.decode(bucket, r.key.split("/", 1)[1], r.value) for r in records]

    async def put_part(self, upload_id: str, part: PartMeta) -> PartMeta | None:
        """Record a part (replacing one of the same number), and end its blob's write intent with it; the part it
        replaced, whose blob the caller drops."""
        namespace = parts_namespace(upload_id)
        key = _part_key(part.number)
        while True:
            old = await self.store.kv.get(namespace, key)
            put = Put(namespace, key, part.encode(), if_version=ABSENT if old is None else old.version)
            try:
                await self.store.atomic([put, self.intent_done_op(part.blob)])
            except AtomicConflictError:
                continue  # another upload of the same part number landed first: replace that one
            return None if old is None else PartMeta.decode(part.number, old.value)

    async def parts(self, upload_id: str, *, after: int = 0, limit: int = MAX_PARTS) -> list[PartMeta]:
        start = _part_key(after + 1) if after else ""
        records = await self.store.kv.scan(parts_namespace(upload_id), start=start, limit=limit)
        return [PartMeta.decode(int(r.key), r.value) for r in records]

    def end_upload_ops(self, bucket: str, upload_id: str, parts: Sequence[PartMeta]) -> list[Op]:
        """The deletes that end an upload (completed or aborted): its record and its parts' records."""
        ops: list[Op] = [Delete(UPLOADS_NAMESPACE, f"{bucket}/{upload_id}", if_version=None)]
        ops += [Delete(parts_namespace(upload_id), _part_key(p.number)) for p in parts]
        return ops


def _part_key(number: int) -> str:
    return f"{number:05d}"
