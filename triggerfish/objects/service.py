"""One app's object store: buckets and objects, their bytes in blobs and their metadata in the store.

    objects = ObjectStore(store, Path(".triggerfish/objects"), notify=notifications)
    await objects.ensure_buckets(["uploads"])
    meta = await objects.put_object("uploads", "a.jpg", chunks, request=who)
    meta, reader = await objects.open("uploads", "a.jpg")

The blobs are files under `root` for a store on SQLite, rows of the database for a store on PostgreSQL
(triggerfish.objects.blob_backend: so every node of a cluster reads every object).
A write is: the body streamed to a new blob (temporary file, fsync, rename), then one store
transaction holding the object's metadata and everything its notification causes (`notify`
returns those writes: the function invocations of matching `@app.on_object` triggers and the
bus event). So an acknowledged write always has its notifications, even when the process dies
right after, and a write that fails or is cut off leaves no metadata: its blob is dropped, and a
blob a crash left unreferenced is only disk space. The previous blob of an overwritten or
deleted object is dropped after the commit.

A small object (up to INLINE_BYTES) skips the blob: its bytes go into the same store transaction
as its metadata, a record of their own. Why: a blob costs two fsyncs of its own (the file and its
directory, about 3 ms each on the machines measured) before the commit's, while records share the
store's group commit; most objects by count are small (thumbnails, JSON documents, CSV rows).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from triggerfish.errors import AtomicConflictError
from triggerfish.objects.blob_backend import (
    BlobBackend,
    BlobMissingError,
    BlobReader,
    BlobWriter,
    BytesReader,
    blob_backend,
)
from triggerfish.objects.checksums import composite
from triggerfish.objects.events import Change
from triggerfish.objects.index import MAX_PARTS, ObjectIndex
from triggerfish.objects.model import (
    ObjectError,
    ObjectMeta,
    PartMeta,
    UploadMeta,
    check_bucket_name,
    check_object_key,
)
from triggerfish.store import Store
from triggerfish.store.atomic import Op
from triggerfish.store.base import ABSENT

#: Largest object one PUT (or one part) may be: 5 GiB, as S3 allows.
MAX_PUT_BYTES = 5 * 1024**3
#: Smallest part of a multipart upload but the last (S3's 5 MiB).
MIN_PART_BYTES = 5 * 1024**2
#: Objects up to this size keep their bytes in the store, committed with their metadata (see above).
INLINE_BYTES = 32 * 1024
#: How old a write intent must be before a sweep takes its blob for abandoned: an intent is recorded just
#: before the blob's rename and deleted by the commit that follows within moments.
INTENT_GRACE = 600.0
#: Attempts of a write whose key another writer changed at the same moment.
_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Requester:
    """Who made a change, as its notification tells."""

    request_id: str = ""
    source_ip: str = "127.0.0.1"
    principal: str = "triggerfish"
    #: The trace the change was made in (a handler's `context.objects`): what it fires continues that trace.
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Content:
    """What a client says about an object besides its bytes."""

    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Listing:
    objects: list[ObjectMeta]
    prefixes: list[str]
    truncated: bool
    #: Where the next page starts (an `after` value), when truncated.
    next_after: str | None


#: The writes a change's notifications make, committed with the change (the outbox).
Notify = Callable[[Change], Awaitable[list[Op]]]
#: Checks a finished body and gives the checksums to keep (raises ObjectError: BadDigest, ...).
BodyCheck = Callable[[], dict[str, str]]


class ObjectStore:
    def __init__(
        self,
        store: Store,
        root: Path,
        *,
        notify: Notify | None = None,
        clock: Callable[[], float] = time.time,
        max_put_bytes: int = MAX_PUT_BYTES,
        blobs: BlobBackend | None = None,
    ) -> None:
        self.index = ObjectIndex(store)
        self.blobs = blobs if blobs is not None else blob_backend(store, root, clock=clock)
        self.notify = notify
        self.clock = clock
        self.max_put_bytes = max_put_bytes
        self._last_sequencer = 0

    # --- buckets ---

    async def ensure_buckets(self, names: Iterable[str]) -> None:
        """Create the buckets an app declares, if they do not exist."""
        for name in names:
            await self.index.create_bucket(check_bucket_name(name), self.clock())

    async def create_bucket(self, name: str) -> None:
        if not await self.index.create_bucket(check_bucket_name(name), self.clock()):
            raise ObjectError(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
                status=409,
                resource=name,
            )

    async def require_bucket(self, name: str) -> None:
        if await self.index.bucket(name) is None:
            raise ObjectError("NoSuchBucket", "The specified bucket does not exist", status=404, resource=name)

    async def delete_bucket(self, name: str) -> None:
        await self.require_bucket(name)
        if not await self.index.is_empty(name):
            raise ObjectError(
                "BucketNotEmpty", "The bucket you tried to delete is not empty", status=409, resource=name
            )
        await self.index.delete_bucket(name)

    # --- objects ---

    async def head(self, bucket: str, key: str) -> ObjectMeta:
        meta = await self.index.get(bucket, check_object_key(key))
        if meta is None:
            await self.require_bucket(bucket)  # only a miss asks which of the two is missing
            raise ObjectError("NoSuchKey", "The specified key does not exist.", status=404, resource=key)
        return meta

    async def open(self, bucket: str, key: str) -> tuple[ObjectMeta, BlobReader]:
        """The object and its bytes, opened: a later overwrite does not change what is read."""
        for _ in range(_ATTEMPTS):
            meta = await self.head(bucket, key)
            if meta.inline:
                data = await self.index.data(meta)
                if data is not None:
                    return meta, BytesReader(data)
                continue  # overwritten between the two reads: look again
            try:
                return meta, await self.blobs.open(meta.blob)
            except BlobMissingError:
                continue  # overwritten between the lookup and the open: look again
        raise ObjectError("InternalError", f"object {key!r} kept changing while it was read", status=500)

    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterator[bytes],
        *,
        content: Content = Content(),
        check: BodyCheck | None = None,
        requester: Requester = Requester(),
        if_none_match: bool = False,
        content_md5: str | None = None,
    ) -> ObjectMeta:
        """Store `body` as `bucket`/`key`; the object's metadata once it is durable with its notifications."""
        check_object_key(key)
        await self.require_bucket(bucket)
        if if_none_match and await self.index.get(bucket, key) is not None:
            raise _precondition_failed(key)
        received = await self._receive(body, check, content_md5, inline=True)
        meta = ObjectMeta(
            bucket,
            key,
            received.blob,
            received.size,
            received.md5,
            self.clock(),
            "",
            content.content_type,
            content.headers,
            content.metadata,
            received.checksums,
        )
        return await self._commit(meta, "ObjectCreated:Put", requester, if_none_match=if_none_match, data=received.data)

    async def _receive(
        self, body: AsyncIterator[bytes], check: BodyCheck | None, content_md5: str | None, *, inline: bool
    ) -> _Received:
        """Take a body: in memory while it fits INLINE_BYTES (with `inline`), else into a new blob."""
        md5 = hashlib.md5(usedforsecurity=False)
        held: list[bytes] = []
        size = 0
        writer: BlobWriter | None = None if inline else self.blobs.writer()
        try:
            async for chunk in body:
                md5.update(chunk)
                size += len(chunk)
                if size > self.max_put_bytes:
                    raise ObjectError(
                        "EntityTooLarge",
                        f"Your proposed upload exceeds the maximum allowed size: {self.max_put_bytes} bytes in one"
                        " PUT (use a multipart upload for more)",
                    )
                if writer is not None:
                    await writer.write(chunk)
                    continue
                held.append(chunk)
                if size > INLINE_BYTES:
                    writer = self.blobs.writer()
                    for piece in held:
                        await writer.write(piece)
                    held.clear()
            checksums = check() if check is not None else {}
            if content_md5 is not None and base64.b64encode(md5.digest()).decode() != content_md5.strip():
                raise ObjectError("BadDigest", "The Content-MD5 you specified did not match what we received.")
            if writer is None:
                return _Received(md5.hexdigest(), size, checksums, "", b"".join(held))
            # The blob is committed later (an object's metadata, or a part's record): a crash in between must
            # not leave it unknown.
            await self.index.intend(writer.id, self.clock())
            blob = await writer.finish()
        except BaseException:
            if writer is not None:
                await writer.abort()
            raise
        return _Received(md5.hexdigest(), blob.size, checksums, blob.id, None)

    async def copy_object(
        self,
        source: tuple[str, str],
        bucket: str,
        key: str,
        *,
        content: Content | None = None,
        requester: Requester = Requester(),
    ) -> ObjectMeta:
        """Copy an object (its bytes by a hard link); `content` replaces its content headers and metadata."""
        check_object_key(key)
        await self.require_bucket(bucket)
        original = await self.head(*source)
        if source == (bucket, key) and content is None:
            raise ObjectError(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself without changing the"
                " object's metadata, storage class, website redirect location or encryption attributes.",
            )
        data: bytes | None = None
        blob = ""
        for _ in range(_ATTEMPTS):
            original, reader = await self.open(*source)
            with reader:
                if original.inline:
                    data = await reader.read_all()
                    break
            into = secrets.token_hex(16)
            await self.index.intend(into, self.clock())
            try:
                blob = (await self.blobs.copy(original.blob, into=into)).id
                break
            except BlobMissingError:
                await self.index.forget_intent(into)
                continue  # overwritten between the open and the copy: look again
        else:
            raise _busy(source[1])
        kept = content or Content(original.content_type, original.headers, original.metadata)
        meta = replace(
            original,
            bucket=bucket,
            key=key,
            blob=blob,
            modified=self.clock(),
            content_type=kept.content_type,
            headers=kept.headers,
            metadata=kept.metadata,
            version=0,
        )
        return await self._commit(meta, "ObjectCreated:Copy", requester, data=data)

    async def delete_object(self, bucket: str, key: str, *, requester: Requester = Requester()) -> None:
        """Delete an object; deleting one that is not there succeeds too, as on S3."""
        check_object_key(key)
        await self.require_bucket(bucket)
        for _ in range(_ATTEMPTS):
            meta = await self.index.get(bucket, key)
            if meta is None:
                return
            change = Change(
                "ObjectRemoved:Delete",
                bucket,
                key,
                0,
                "",
                self._sequencer(meta),
                self.clock(),
                requester.request_id,
                requester.source_ip,
                requester.principal,
                requester.traceparent,
            )
            try:
                ops: list[Op] = [self.index.delete_op(bucket, key, expect=meta.version)]
                if meta.inline:
                    ops.append(self.index.delete_data_op(bucket, key))
                await self.index.commit([*ops, *(await self._notes(change))])
            except AtomicConflictError:
                continue
            await self._drop(meta)
            return
        raise _busy(key)

    async def list_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", after: str | None = None, max_keys: int = 1000
    ) -> Listing:
        """One page of S3's listing: objects and common prefixes (keys rolled up at `delimiter`) in key order."""
        await self.require_bucket(bucket)
        found: list[ObjectMeta] = []
        prefixes: list[str] = []
        if max_keys <= 0:
            return Listing(found, prefixes, False, None)
        last: str | None = None
        while True:
            want = max_keys - len(found) - len(prefixes)
            page = await self.index.list_objects(bucket, prefix=prefix, after=after, limit=want + 1)
            for meta in page:
                if len(found) + len(prefixes) >= max_keys:
                    return Listing(found, prefixes, True, last)
                rest = meta.key[len(prefix) :]
                at = rest.find(delimiter) if delimiter else -1
                if at >= 0:
                    common = prefix + rest[: at + len(delimiter)]
                    prefixes.append(common)
                    # Skip every key under this prefix: the least string sorting after all of them.
                    after = last = common + "\U0010ffff"
                    break
                found.append(meta)
                after = last = meta.key
            else:
                if len(page) <= want:
                    return Listing(found, prefixes, False, None)

    async def _commit(
        self,
        meta: ObjectMeta,
        event: str,
        requester: Requester,
        *,
        if_none_match: bool = False,
        extra: Sequence[Op] = (),
        data: bytes | None = None,
    ) -> ObjectMeta:
        for _ in range(_ATTEMPTS):
            previous = await self.index.get(meta.bucket, meta.key)
            if previous is not None and if_none_match:
                await self._drop(meta)
                raise _precondition_failed(meta.key)
            meta = replace(meta, sequencer=self._sequencer(previous))
            change = Change(
                event,
                meta.bucket,
                meta.key,
                meta.size,
                meta.etag,
                meta.sequencer,
                meta.modified,
                requester.request_id,
                requester.source_ip,
                requester.principal,
                requester.traceparent,
            )
            expect = ABSENT if previous is None else previous.version
            ops: list[Op] = [self.index.put_op(meta, expect=expect)]
            if not meta.inline:
                ops.append(self.index.intent_done_op(meta.blob))
            if data is not None:
                ops.append(self.index.data_op(meta, data))
            elif previous is not None and previous.inline:
                ops.append(self.index.delete_data_op(meta.bucket, meta.key))
            try:
                await self.index.commit([*ops, *extra, *(await self._notes(change))])
            except AtomicConflictError:
                continue
            except BaseException:
                await self._drop(meta)
                raise
            if previous is not None and previous.blob != meta.blob:
                await self._drop(previous)
            return meta
        await self._drop(meta)
        raise _busy(meta.key)

    async def _drop(self, meta: ObjectMeta) -> None:
        if not meta.inline:
            await self.blobs.remove([meta.blob])

    async def sweep(self, *, grace: float = INTENT_GRACE) -> int:
        """Remove the blobs of writes that never committed (their intent is older than `grace` seconds: the
        process writing them died between the blob's rename and the commit), and let the blob backend remove
        what it keeps past its use (unfinished writes, removed bytes kept for readers); how many went."""
        before = self.clock() - grace
        stale = await self.index.stale_intents(before)
        for blob_id in stale:
            await self.blobs.remove([blob_id])
            await self.index.forget_intent(blob_id)
        await self.blobs.sweep(before)
        return len(stale)

    async def _notes(self, change: Change) -> list[Op]:
        return [] if self.notify is None else await self.notify(change)

    def _sequencer(self, previous: ObjectMeta | None) -> str:
        # Grows per key across restarts and writers: past the previous value of the key, and past
        # anything this process gave (two changes in one clock tick).
        floor = int(previous.sequencer, 16) + 1 if previous is not None and previous.sequencer else 0
        value = max(time.time_ns(), floor, self._last_sequencer + 1)
        self._last_sequencer = value
        return f"{value:016X}"

    # --- multipart uploads ---

    async def create_upload(self, bucket: str, key: str, content: Content, checksum: str = "") -> UploadMeta:
        check_object_key(key)
        await self.require_bucket(bucket)
        upload = UploadMeta(
            bucket,
            key,
            _upload_id(),
            self.clock(),
            content.content_type,
            content.headers,
            content.metadata,
            checksum,
        )
        await self.index.start_upload(upload)
        return upload

    async def require_upload(self, bucket: str, key: str, upload_id: str) -> UploadMeta:
        await self.require_bucket(bucket)
        upload = None if not _is_upload_id(upload_id) else await self.index.upload(bucket, upload_id)
        if upload is None or upload.key != key:
            raise ObjectError(
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been"
                " aborted or completed.",
                status=404,
                resource=upload_id,
            )
        return upload

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        body: AsyncIterator[bytes],
        *,
        check: BodyCheck | None = None,
        content_md5: str | None = None,
    ) -> PartMeta:
        _check_part_number(number)
        await self.require_upload(bucket, key, upload_id)
        received = await self._receive(body, check, content_md5, inline=False)
        return await self._keep_part(
            upload_id,
            PartMeta(number, received.blob, received.size, received.md5, self.clock(), received.checksums),
        )

    async def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, source: tuple[str, str], span: tuple[int, int] | None
    ) -> PartMeta:
        _check_part_number(number)
        await self.require_upload(bucket, key, upload_id)
        original = await self.head(*source)
        if span is not None and (span[0] > span[1] or span[1] >= original.size):
            raise ObjectError(
                "InvalidArgument",
                f"The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the"
                f" zero-based offsets of the first and last bytes to copy, within the object's {original.size} bytes",
            )
        writer = self.blobs.writer()
        await self.index.intend(writer.id, self.clock())  # the part's record deletes it
        if original.inline:
            original, reader = await self.open(*source)
            start, end = span if span is not None else (0, original.size - 1)
            with reader:
                async for piece in reader.read(start, end - start + 1):
                    await writer.write(piece)
            blob = await writer.finish()
        else:
            blob = await self.blobs.concatenate([original.blob], [span] if span is not None else [], writer=writer)
        md5 = hashlib.md5(usedforsecurity=False)
        with await self.blobs.open(blob.id) as copied:
            async for piece in copied.read():
                md5.update(piece)
        return await self._keep_part(upload_id, PartMeta(number, blob.id, blob.size, md5.hexdigest(), self.clock()))

    async def _keep_part(self, upload_id: str, part: PartMeta) -> PartMeta:
        replaced = await self.index.put_part(upload_id, part)
        if replaced is not None:
            await self.blobs.remove([replaced.blob])
        return part

    async def list_parts(self, bucket: str, key: str, upload_id: str, *, after: int, limit: int) -> list[PartMeta]:
        await self.require_upload(bucket, key, upload_id)
        return await self.index.parts(upload_id, after=after, limit=limit)

    async def complete_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        chosen: Sequence[tuple[int, str]],
        *,
        requester: Requester = Requester(),
    ) -> ObjectMeta:
        """Join the chosen parts (number, ETag) into the object; S3's checks on them first."""
        upload = await self.require_upload(bucket, key, upload_id)
        if not chosen:
            raise ObjectError(
                "MalformedXML", "The XML you provided was not well-formed: it lists no part to complete the upload with"
            )
        numbers = [n for n, _ in chosen]
        if numbers != sorted(set(numbers)):
            raise ObjectError(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            )
        stored = {p.number: p for p in await self.index.parts(upload_id)}
        parts: list[PartMeta] = []
        for number, etag in chosen:
            part = stored.get(number)
            if part is None or part.etag != etag.strip().strip('"'):
                raise ObjectError(
                    "InvalidPart",
                    f"One or more of the specified parts could not be found. The part may not have been uploaded, or"
                    f" the specified entity tag may not match the part's entity tag (part {number})",
                )
            parts.append(part)
        for part in parts[:-1]:
            if part.size < MIN_PART_BYTES:
                raise ObjectError(
                    "EntityTooSmall",
                    f"Your proposed upload is smaller than the minimum allowed object size: part {part.number} is"
                    f" {part.size} bytes, and every part but the last must be at least {MIN_PART_BYTES} bytes",
                )
        writer = self.blobs.writer()
        await self.index.intend(writer.id, self.clock())
        blob = await self.blobs.concatenate([p.blob for p in parts], writer=writer)
        digest = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in parts), usedforsecurity=False)
        checksums: dict[str, str] = {}
        if upload.checksum:
            value = composite(
                upload.checksum,
                [p.checksums.get(upload.checksum, "") for p in parts if p.checksums.get(upload.checksum)],
            )
            if value is not None and value.endswith(f"-{len(parts)}"):
                checksums[upload.checksum] = value
        meta = ObjectMeta(
            bucket,
            key,
            blob.id,
            blob.size,
            f"{digest.hexdigest()}-{len(parts)}",
            self.clock(),
            "",
            upload.content_type,
            upload.headers,
            upload.metadata,
            checksums,
            tuple(p.size for p in parts),
        )
        all_parts = list(stored.values())
        committed = await self._commit(
            meta,
            "ObjectCreated:CompleteMultipartUpload",
            requester,
            extra=self.index.end_upload_ops(bucket, upload_id, all_parts),
        )
        await self.blobs.remove([p.blob for p in all_parts])
        return committed

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.require_upload(bucket, key, upload_id)
        parts = await self.index.parts(upload_id)
        await self.index.commit(self.index.end_upload_ops(bucket, upload_id, parts))
        await self.blobs.remove([p.blob for p in parts])


@dataclass(frozen=True, slots=True)
class _Received:
    md5: str
    size: int
    checksums: dict[str, str]
    #: The blob it went to ("": held in `data`, a small object).
    blob: str
    data: bytes | None


def _check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PARTS:
        raise ObjectError("InvalidArgument", f"Part number must be an integer between 1 and {MAX_PARTS}, inclusive")


def _upload_id() -> str:
    import secrets

    return secrets.token_hex(16)


def _is_upload_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _precondition_failed(key: str) -> ObjectError:
    return ObjectError(
        "PreconditionFailed", "At least one of the pre-conditions you specified did not hold", status=412, resource=key
    )


def _busy(key: str) -> ObjectError:
    return ObjectError(
        "OperationAborted",
        f"A conflicting conditional operation is currently in progress against {key!r}. Please try again.",
        status=409,
        resource=key,
    )
