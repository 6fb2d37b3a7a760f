"""What changed in a cluster, in order: every node follows one log stream and applies what it reads.

A node that changes what the cluster serves (a deploy or rollback moves an
alias, an app is removed, an app's rules or subscriptions change at run time)
first makes the change durable in the store, then appends a `Change` to the
stream `triggerfish.changes`. Every node (the one that made it too) follows the
stream with a waiting read and applies each change it reads, so a change made
on one node holds on every node within a second or two, without a restart.
The store is the truth and the stream only says "look again": applying a
change reads the current state from the store, so a change read twice, or
late, or a burst coalesced, all end in the same place.

    feed = ChangeFeed(store)
    await feed.announce(Change("alias", app="shop"))
    await feed.follow(apply)        # in a task: apply(change) for each change from now on
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from triggerfish.names import CHANGES_STREAM
from triggerfish.store import Store

logger = logging.getLogger("triggerfish.cluster")

#: How long a follower's read waits for a new change before it reads again.
FOLLOW_WAIT = 1.0
#: How long changes are kept in the stream.
RETENTION = 24 * 3600.0

Kind = Literal["alias", "removed", "rules", "subscriptions", "secrets"]
KINDS: tuple[str, ...] = ("alias", "removed", "rules", "subscriptions", "secrets")


@dataclass(frozen=True, slots=True)
class Change:
    """`kind` of change to `app`: its aliases moved ("alias"), it was removed, its run-time rules or
    subscriptions changed, or its secrets did (their values are never in a change). `node` made it."""

    kind: Kind
    app: str
    node: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps({"kind": self.kind, "app": self.app, "node": self.node})

    @classmethod
    def from_json(cls, data: bytes) -> Change:
        document: Any = orjson.loads(data)
        kind = document["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown change kind {kind!r}")
        return cls(kind, str(document["app"]), str(document.get("node", "")))


class ChangeFeed:
    """Announces changes and follows them. See the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.position = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Make `follow` return once the change it is applying (if any) is applied: a node loading a version
        must not be cut off half way (its processes would be left behind)."""
        self._stopping.set()

    async def announce(self, change: Change) -> None:
        """Append `change`; returns once it is durable (every node will read it)."""
        await self.store.log.append(CHANGES_STREAM, change.to_json())

    async def start_here(self) -> None:
        """Follow from the newest change on: what happened before, the node reads as the store's state."""
        self._stopping.clear()
        self.position = await self.store.log.last_offset(CHANGES_STREAM)

    async def follow(self, apply: Callable[[Change], Awaitable[None]], *, wait: float = FOLLOW_WAIT) -> None:
        """Apply every change after `position`, in order, until `stop()`. A change that fails to apply is
        logged and skipped (the store keeps the truth; the next change of that app applies it again)."""
        # Not cleared here: a stop() that comes before this task first runs must still stop it.
        while not self._stopping.is_set():
            try:
                records = await self.store.log.read(CHANGES_STREAM, after=self.position, wait=wait)
            except Exception:
                logger.exception("reading the cluster's changes failed; trying again in 1 s")
                await asyncio.sleep(1.0)
                continue
            for record in records:
                if self._stopping.is_set():
                    return
                self.position = record.offset
                try:
                    change = Change.from_json(record.data)
                except (ValueError, KeyError, TypeError) as exc:
                    logger.error("change %d is unreadable and is skipped: %s", record.offset, exc)
                    continue
                try:
                    await apply(change)
                except Exception:
                    logger.exception("applying change %d (%s of app %r) failed", record.offset, change.kind, change.app)

    async def trim(self) -> int:
        """Drop changes older than RETENTION; how many went."""
        return await self.store.log.trim(CHANGES_STREAM, max_age=RETENTION)
