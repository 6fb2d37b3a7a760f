"""The nodes of a cluster: each `triggerfish serve` process says who it is and that it is alive, in the store.

Every node writes its record (`triggerfish.cluster`, `node/<id>`) when it
starts and again every `HEARTBEAT` seconds: its address, roles, the app
versions it has loaded, the work it has in flight, and when it last wrote.
`triggerfish status` lists them. A node whose last heartbeat is older than
`GONE_AFTER` is shown as gone; nothing waits for it, because what it held is
held by leases in the store (queue messages, consumer claims, schedule
claims, deploy locks), which run out and are taken over by the others. A
record gone for `FORGET_AFTER` is deleted by whichever node notices.

    nodes = Nodes(store, NodeInfo.new(address="http://10.0.0.5:8080", roles=("gateway", "worker")))
    await nodes.start(describe)     # describe() -> what the node runs now (versions, in flight)
    for node in await nodes.list(): print(node.id, node.state, node.address)
    await nodes.stop()              # deletes its record: a clean stop is not "gone"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from triggerfish.names import CLUSTER_NAMESPACE
from triggerfish.store import Store

logger = logging.getLogger("triggerfish.cluster")

#: Seconds between two heartbeats of a node.
HEARTBEAT = 2.0
#: A node that has not written for this long is gone.
GONE_AFTER = 10.0
#: A gone node's record is deleted after this long.
FORGET_AFTER = 3600.0
#: The roles a node can take: `gateway` serves HTTP and the control API; `worker` runs asynchronous
#: invocations, queue batches, bus and topic consumers and schedules.
ROLES = ("gateway", "worker")

Role = Literal["gateway", "worker"]
_PREFIX = "node/"


@dataclass(frozen=True, slots=True)
class Activity:
    """What a node runs right now: the versions it loaded per app, and its invocations in flight."""

    versions: Mapping[str, list[int]] = field(default_factory=dict)
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: str
    host: str
    pid: int
    address: str | None
    roles: tuple[str, ...]
    started_at: float
    heartbeat_at: float = 0.0
    activity: Activity = field(default_factory=Activity)

    @classmethod
    def new(cls, *, address: str | None, roles: tuple[str, ...]) -> NodeInfo:
        unknown = sorted(set(roles) - set(ROLES))
        if not roles or unknown:
            raise ValueError(f"a node's roles are one or more of {', '.join(ROLES)}, not {list(roles)!r}")
        return cls(uuid.uuid4().hex[:12], socket.gethostname(), os.getpid(), address, tuple(roles), time.time())

    def state(self, now: float) -> Literal["up", "gone"]:
        return "up" if now - self.heartbeat_at < GONE_AFTER else "gone"

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "address": self.address,
            "roles": list(self.roles),
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
            "versions": {app: list(numbers) for app, numbers in self.activity.versions.items()},
            "in_flight": self.activity.in_flight,
        }
        if now is not None:
            document["state"] = self.state(now)
        return document

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> NodeInfo:
        return cls(
            id=str(document["id"]),
            host=str(document["host"]),
            pid=int(document["pid"]),
            address=document.get("address"),
            roles=tuple(document["roles"]),
            started_at=float(document["started_at"]),
            heartbeat_at=float(document["heartbeat_at"]),
            activity=Activity(
                {str(app): [int(n) for n in numbers] for app, numbers in document.get("versions", {}).items()},
                int(document.get("in_flight", 0)),
            ),
        )


class Nodes:
    """This node's record, kept fresh in the background, and the records of every node on the store."""

    def __init__(self, store: Store, me: NodeInfo, *, heartbeat: float = HEARTBEAT) -> None:
        self.store = store
        self.me = me
        self.heartbeat = heartbeat
        self._task: asyncio.Task[None] | None = None
        self._describe: Callable[[], Activity] = Activity

    async def start(self, describe: Callable[[], Activity] = Activity) -> None:
        """Write this node's record now, then every `heartbeat` seconds until `stop()`."""
        self._describe = describe
        await self.beat()
        self._task = asyncio.create_task(self._beat_forever(), name="triggerfish-heartbeat")

    async def stop(self) -> None:
        """Stop beating and delete this node's record: a node that stopped cleanly is not 'gone'."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.store.kv.delete(CLUSTER_NAMESPACE, _PREFIX + self.me.id)

    async def beat(self) -> None:
        self.me = replace(self.me, heartbeat_at=time.time(), activity=self._describe())
        await self.store.kv.put(CLUSTER_NAMESPACE, _PREFIX + self.me.id, orjson.dumps(self.me.to_dict()))

    async def list(self) -> list[NodeInfo]:
        """Every node on the store (up or gone), oldest first; records long gone are deleted on the way."""
        now = time.time()
        nodes = []
        for record in await self.store.kv.scan(CLUSTER_NAMESPACE, prefix=_PREFIX, limit=10_000):
            try:
                node = NodeInfo.from_dict(orjson.loads(record.value))
            except (ValueError, KeyError, TypeError):
                logger.warning("node record %s is unreadable; deleting it", record.key)
                await self.store.kv.delete(CLUSTER_NAMESPACE, record.key, if_version=record.version)
                continue
            if now - node.heartbeat_at > FORGET_AFTER:
                await self.store.kv.delete(CLUSTER_NAMESPACE, record.key, if_version=record.version)
                continue
            nodes.append(node)
        return sorted(nodes, key=lambda n: (n.started_at, n.id))

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.beat()
            except Exception:
                # The store may be down for a while: the record ages, the others see this node as gone
                # if it lasts, and the next beat brings it back.
                logger.exception("node %s: the heartbeat could not be written; trying again", self.me.id)
