"""One loaded version of an app: its worker processes, its invoker and its HTTP routes.

Hot reload and deploys replace the version the platform serves; the old one
is *retired*, not killed: it takes no new work, the requests and
asynchronous invocations it already started finish on it, and only then are
its zygotes and workers stopped. Everything durable (queues, records, the
bus) belongs to the platform, so a version holds nothing that must survive it.

    source = VersionSource("app.py", number=1)
    runner = await ProcessRunner.start(source.target, work_dir=..., platform=StorePlatform(store))
    version = AppVersion.create(source, runner, store=store)
    result = await version.invoke("hello", {"name": "Ada"})
    await version.retire()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triggerfish.bus.publisher import Publisher
from triggerfish.gateway import Gateway, RouteTable
from triggerfish.gateway.asgi import DEFAULT_BODY_TIMEOUT, Authorize, RequestObserver
from triggerfish.gateway.route_auth import KeyLookup, route_authorizer
from triggerfish.model import FunctionSpec
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.invoke import DEFAULT_LEASE_MARGIN, Invoker
from triggerfish.runtime.records import RecordListener
from triggerfish.runtime.types import LoadedRunner
from triggerfish.store import Store

log = logging.getLogger("triggerfish.server")

#: Seconds a retiring version waits for its sync invocations beyond the longest function timeout.
RETIRE_MARGIN = 5.0


@dataclass(frozen=True, slots=True)
class VersionSource:
    """Where a version's code comes from and how it is loaded.

    `target` is what the loader takes ("app.py", "dir/app.py:app", "pkg.module"),
    or None for an app given as objects (`triggerfish.testing`), which has no
    files and no triggerfish.toml; `extra_paths` go first on the app's
    `sys.path` (a deploy's installed requirements); `stage` applies that stage
    of the app's triggerfish.toml.
    """

    target: str | None
    number: int
    extra_paths: tuple[str, ...] = ()
    stage: str | None = None
    #: The directory holding all of the app's files (a deployed bundle), bound into its box; None: `app_dir`.
    root: str | None = None

    @property
    def app_dir(self) -> Path | None:
        """The directory the app's files (and its triggerfish.toml) are in; None for an app with no files."""
        if self.target is None:
            return None
        location = self.target.split(":", 1)[0]
        return Path(location).parent if location.endswith(".py") else Path()


class AppVersion:
    """A loaded app version, serving sync invocations (`invoke`, its `gateway`) and running async ones.

    Build one with `await AppVersion.load(...)`; it raises AppLoadError (with
    the traceback in `details`) when the app cannot be imported, and
    DeclarationError for a declaration the platform refuses (two handlers on
    one route, a destination naming an unknown function).
    """

    def __init__(
        self,
        source: VersionSource,
        runner: LoadedRunner,
        invoker: Invoker,
        routes: RouteTable,
        *,
        body_timeout: float,
        authorize: Authorize | None = None,
        request_observers: list[RequestObserver] | None = None,
    ) -> None:
        self.source = source
        self.number = source.number
        self.runner = runner
        self.invoker = invoker
        self.routes = routes
        self.gateway = Gateway(
            routes, self.invoke, body_timeout=body_timeout, authorize=authorize, observers=request_observers
        )
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._retired = False

    @classmethod
    def create(
        cls,
        source: VersionSource,
        runner: LoadedRunner,
        *,
        store: Store,
        publisher: Publisher | None = None,
        clock: Callable[[], float] = time.time,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        keys_lookup: KeyLookup | None = None,
        lease_margin: float = DEFAULT_LEASE_MARGIN,
        record_listeners: list[RecordListener] | None = None,
        request_observers: list[RequestObserver] | None = None,
        keep_inputs: bool = False,
    ) -> AppVersion:
        """The version `runner` loaded, with its invoker and routes. Raises DeclarationError (two handlers
        on one route, a destination naming an unknown function); the caller closes the runner then."""
        routes = RouteTable.from_specs(runner.specs)
        invoker = Invoker(
            runner,
            store,
            app_name=runner.app_name,
            retry_policy=retry_policy,
            clock=clock,
            publisher=publisher,
            lease_margin=lease_margin,
            record_listeners=record_listeners,
            keep_inputs=keep_inputs,
        )
        # Routes declared with auth= are checked here; with no keys (dev), api_key routes stay open.
        authorize = route_authorizer(runner.specs, keys_lookup=keys_lookup)
        return cls(
            source,
            runner,
            invoker,
            routes,
            body_timeout=body_timeout,
            authorize=authorize,
            request_observers=request_observers,
        )

    @property
    def in_flight(self) -> int:
        """Invocations running now: requests and direct invocations, and asynchronous ones."""
        return self._in_flight + self.invoker.dispatcher.in_flight

    @property
    def app_name(self) -> str:
        return self.runner.app_name

    @property
    def specs(self) -> dict[str, FunctionSpec]:
        return self.runner.specs

    async def start(self) -> None:
        """Start running the queued asynchronous invocations of this version's functions."""
        await self.invoker.start()

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        """`Invoker.invoke` on this version, counted so that retiring waits for it."""
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self.invoker.invoke(function, event, **options)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
        return await self.invoker.invoke_async(function, event, **options)

    async def retire(self, *, drain: bool = True) -> None:
        """Stop taking async work, let what is in flight finish (with `drain`), then stop the processes.

        Async invocations still queued stay in the store for the next version.
        """
        if self._retired:
            return
        self._retired = True
        await self.invoker.stop(drain=drain)
        if drain and self._in_flight:
            patience = max((s.settings.timeout for s in self.specs.values()), default=0.0) + RETIRE_MARGIN
            try:
                async with asyncio.timeout(patience):
                    await self._idle.wait()
            except TimeoutError:
                log.warning(
                    "version %d: %d requests still running after %g s; stopping it",
                    self.number,
                    self._in_flight,
                    patience,
                )
        await self.runner.close()
