"""A lock held in the store, so that one operation at a time runs across every node (a deploy of an app).

Taken by compare-and-set on a key-value record with a time to live, renewed
in the background while the holder works, deleted when it is done. A holder
that dies stops renewing and the lock lapses after `ttl` seconds, so a crash
mid-deploy blocks the next deploy of that app for at most that long. A lock
that is taken is not waited for: the caller hears who holds it.

    async with ClusterLock(store, "deploy/shop", holder="node 3f2a"):
        ...   # DeployInProgressError when another node holds it
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType

import orjson

from triggerfish.errors import DeployInProgressError
from triggerfish.names import CLUSTER_NAMESPACE
from triggerfish.store import ABSENT, KVRecord, Store

logger = logging.getLogger("triggerfish.cluster")

#: Seconds a lock outlives its holder's last renewal.
LOCK_TTL = 60.0


class ClusterLock:
    """One holder at a time for `name`, across every node on `store`. See the module docstring."""

    def __init__(self, store: Store, name: str, *, holder: str, what: str = "", ttl: float = LOCK_TTL) -> None:
        self.store = store
        self.key = f"lock/{name}"
        self.holder = holder
        self.what = what or name
        self.ttl = ttl
        self._record: KVRecord | None = None
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ClusterLock:
        value = orjson.dumps({"holder": self.holder, "since": time.time()})
        record = await self.store.kv.put(CLUSTER_NAMESPACE, self.key, value, ttl=self.ttl, if_version=ABSENT)
        if record is None:
            raise DeployInProgressError(await self._busy(), phase="lock")
        self._record = record
        self._renewer = asyncio.create_task(self._renew())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self._record is not None:
            with contextlib.suppress(Exception):  # it lapses by itself if the store is down now
                await self.store.kv.delete(CLUSTER_NAMESPACE, self.key, if_version=self._record.version)
            self._record = None

    async def _busy(self) -> str:
        current = await self.store.kv.get(CLUSTER_NAMESPACE, self.key)
        who = "another node"
        if current is not None:
            try:
                document = orjson.loads(current.value)
                who = f"{document['holder']} (since {time.time() - float(document['since']):.0f} s ago)"
            except (ValueError, KeyError, TypeError):
                pass
        return f"{self.what} is already in progress on {who}; try again when it is done"

    async def _renew(self) -> None:
        while self._record is not None:
            await asyncio.sleep(self.ttl / 3)
            try:
                renewed = await self.store.kv.put(
                    CLUSTER_NAMESPACE, self.key, self._record.value, ttl=self.ttl, if_version=self._record.version
                )
            except Exception:
                logger.exception("renewing the lock %s failed; trying again", self.key)
                continue
            if renewed is None:
                logger.error("the lock %s lapsed while it was held (the store was unreachable too long?)", self.key)
                return
            self._record = renewed
