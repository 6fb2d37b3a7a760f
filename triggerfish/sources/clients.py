"""What every broker client of a source shares: one task per subscription, reconnecting with backoff.

    class NatsSources(SourceClients[NatsSubscription]):
        async def _session(self, sub, client): ...   # connect, subscribe, set client.subscribed, consume

`update` runs exactly the subscriptions given (unchanged ones keep their
connection, changed ones reconnect); a session that fails or drops is begun
again after a backoff (0.5 s doubling to 30 s, jittered), and `status` shows
each client's connection, what it stored, its reconnects and its last error.
Messages are acknowledged to a broker only once stored, so what a session
loses when it drops, the broker delivers again.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from triggerfish.retry import RetryPolicy
from triggerfish.store import Store

RECONNECT_POLICY = RetryPolicy(base=0.5, multiplier=2.0, ceiling=30.0)
logger = logging.getLogger("triggerfish.sources")


class _Named(Protocol):
    @property
    def function(self) -> str: ...


S = TypeVar("S", bound=_Named)


@dataclass(slots=True)
class ClientState:
    """What `status` shows of one subscription's client."""

    connected: bool = False
    received: int = 0
    reconnects: int = 0
    last_error: str | None = None


class Client(Generic[S]):
    """One subscription's task: sessions begun again after a backoff until stopped."""

    def __init__(self, owner: SourceClients[S], sub: S) -> None:
        self.owner = owner
        self.sub = sub
        self.state = ClientState()
        self.subscribed = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"triggerfish-{owner.kind}:{sub.function}")

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def ready(self) -> None:
        """The session is subscribed: called by `_session` before it consumes."""
        self.state.connected, self.state.last_error = True, None
        self.subscribed.set()

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self.owner._session(self.sub, self)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "%s: %s's session failed or dropped (%s); reconnecting", self.owner.kind, self.sub.function, exc
                )
            if self.state.connected:
                attempt = 0
            self.state.connected = False
            self.subscribed.clear()
            attempt += 1
            self.state.reconnects += 1
            await asyncio.sleep(self.owner.reconnect_policy.backoff(attempt))


class SourceClients(abc.ABC, Generic[S]):
    """The clients of one broker for one app on this node. See the module docstring."""

    #: The source's kind, for logs and task names ("nats", "redis").
    kind: str = "source"

    def __init__(self, store: Store, *, reconnect_policy: RetryPolicy = RECONNECT_POLICY) -> None:
        self.store = store
        self.reconnect_policy = reconnect_policy
        self._clients: dict[str, Client[S]] = {}

    def status(self) -> dict[str, ClientState]:
        return {name: client.state for name, client in self._clients.items()}

    async def update(self, subscriptions: Sequence[S]) -> None:
        """Run exactly these subscriptions: unchanged clients stay connected, changed ones reconnect."""
        wanted = {sub.function: sub for sub in subscriptions}
        stale = [name for name, client in self._clients.items() if wanted.get(name) != client.sub]
        await asyncio.gather(*(self._clients.pop(name).stop() for name in stale))
        for name, sub in wanted.items():
            if name not in self._clients:
                self._clients[name] = Client(self, sub)

    async def stop(self) -> None:
        await self.update([])

    async def wait_subscribed(self) -> None:
        """Wait until every client is subscribed (bound it with `asyncio.timeout`)."""
        await asyncio.gather(*(client.subscribed.wait() for client in self._clients.values()))

    @abc.abstractmethod
    async def _session(self, sub: S, client: Client[S]) -> Any:
        """Connect, subscribe, call `client.ready()`, then store and acknowledge messages until the connection drops."""
