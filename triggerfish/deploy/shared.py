"""Bundles kept in the store as well as on disk, so that every node of a cluster can load every version.

A deploy reaches one node: the upload (and the deploy) may land on any node
behind a load balancer, and the other nodes must serve the new version too,
as must a node added later. So once a node has checked and unpacked an
upload, it also writes the bundle's archive into the store's key-value
records (`triggerfish.bundles`), in chunks of `CHUNK` bytes under
`<app>/<sha256>/<n>`, and then a manifest `<app>/<sha256>` (size, chunks):
the manifest is written last, so a bundle is in the store only once all of
it is. A node that needs a bundle it does not have fetches the chunks, checks
that they hash to the sha256 the bundle is named by, and unpacks them as if
they had been uploaded to it (the same checks and limits). What an app keeps
is its own: the app is part of every key.

    shared = SharedBundles(store)
    await shared.put("shop", sha, archive_path)
    data = await shared.fetch("shop", sha)      # None when the store has no such bundle
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import orjson

from triggerfish.errors import BundleError
from triggerfish.names import BUNDLES_NAMESPACE
from triggerfish.store import Store

#: Bytes per chunk: well under the store's default record limit (1 MiB).
CHUNK = 512 * 1024


class SharedBundles:
    """Bundle archives in the store, per app. See the module docstring."""

    def __init__(self, store: Store, *, chunk: int = CHUNK) -> None:
        self.store = store
        self.chunk = min(chunk, store.kv.max_record_bytes)

    async def has(self, app: str, sha256: str) -> bool:
        return await self.store.kv.get(BUNDLES_NAMESPACE, f"{app}/{sha256}") is not None

    async def put(self, app: str, sha256: str, archive: Path) -> None:
        """Keep the archive at `archive` (already checked against `sha256`) for every node; durable on return."""
        if await self.has(app, sha256):
            return
        data = await asyncio.to_thread(archive.read_bytes)
        chunks = [data[i : i + self.chunk] for i in range(0, len(data), self.chunk)] or [b""]
        for index, piece in enumerate(chunks):
            await self.store.kv.put(BUNDLES_NAMESPACE, f"{app}/{sha256}/{index:05d}", piece)
        manifest = orjson.dumps({"size": len(data), "chunks": len(chunks)})
        await self.store.kv.put(BUNDLES_NAMESPACE, f"{app}/{sha256}", manifest)

    async def fetch(self, app: str, sha256: str) -> bytes | None:
        """The archive of `app`'s bundle `sha256`, checked against its name; None when the store has none.

        Raises BundleError when what the store holds does not hash to `sha256` (a bundle to upload again).
        """
        manifest = await self.store.kv.get(BUNDLES_NAMESPACE, f"{app}/{sha256}")
        if manifest is None:
            return None
        document = orjson.loads(manifest.value)
        pieces = []
        for index in range(int(document["chunks"])):
            record = await self.store.kv.get(BUNDLES_NAMESPACE, f"{app}/{sha256}/{index:05d}")
            if record is None:
                raise BundleError(
                    f"app {app!r}: bundle {sha256} is incomplete in the store; deploy it again", phase="fetch"
                )
            pieces.append(record.value)
        data = b"".join(pieces)
        if len(data) != int(document["size"]) or hashlib.sha256(data).hexdigest() != sha256:
            raise BundleError(
                f"app {app!r}: bundle {sha256} in the store does not match its hash; deploy it again", phase="fetch"
            )
        return data

    async def remove_app(self, app: str) -> None:
        """Forget every bundle of `app` (it was removed)."""
        while records := await self.store.kv.scan(BUNDLES_NAMESPACE, prefix=f"{app}/", limit=1000):
            for record in records:
                await self.store.kv.delete(BUNDLES_NAMESPACE, record.key)
