"""The whole platform for one app in one process: store, bus, topics, queues, schedules, gateway, runtime.

    platform = Platform("app.py", data_dir=Path(".triggerfish"))
    await platform.start()            # AppLoadError if the app cannot be loaded
    ...                                # serve platform.asgi (triggerfish.server.http)
    result = await platform.reload()  # a new version, or the reason it failed (the old one keeps serving)
    await platform.stop()             # drains work in flight

What lives where, and why:
- The platform owns everything durable or shared: the store, the event bus
  and its rules, topics, queue triggers and the scheduler. They outlive a
  version, and they reach functions through the platform's `invoke` /
  `invoke_async`, which always mean "the version serving now".
- An `AppVersion` owns the processes running the code (zygotes, workers),
  its invoker's dispatcher and its routes. A reload loads the new version
  beside the old one, switches to it in one assignment, then retires the
  old one in the background: what it started finishes there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triggerfish.bus.archive import Archive
from triggerfish.bus.bus import EventBus
from triggerfish.bus.rules import Rules
from triggerfish.config import load_config
from triggerfish.errors import AppLoadError, DeclarationError
from triggerfish.events.cloudevent import Event
from triggerfish.gateway.asgi import DEFAULT_BODY_TIMEOUT
from triggerfish.model import FunctionSpec
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.server.versions import AppVersion
from triggerfish.store import Store, open_store
from triggerfish.triggers.queues import QueueTriggers
from triggerfish.triggers.schedules import Scheduler
from triggerfish.triggers.topics import Topics

log = logging.getLogger("triggerfish.server")

STORE_FILE = "store.db"


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: `version` is the number serving afterwards; `error` and `details` say why it failed."""

    ok: bool
    version: int
    error: str = ""
    details: str = ""
    seconds: float = 0.0


class Platform:
    """Runs one app with every trigger live. See the module docstring.

    `target` is what `triggerfish dev` was given ("app.py", "app.py:app",
    "pkg.module"). `data_dir` holds the SQLite store and the functions'
    working directories; `store_url` picks another store. `stage` and
    `overrides` apply triggerfish.toml's stage and command-line settings.
    `idle_timeout` is how long idle workers are kept (down to `min_warm`).
    """

    def __init__(
        self,
        target: str,
        *,
        data_dir: Path,
        store_url: str | None = None,
        stage: str | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        idle_timeout: float = 300.0,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.target = target
        #: Backoff between attempts of failed async invocations (None: Lambda's, about 1 then 2 minutes).
        self.retry_policy = retry_policy
        #: Seconds a request body may take to arrive, on user routes and platform endpoints alike (then 408).
        self.body_timeout = body_timeout
        self.data_dir = Path(data_dir)
        self.store_url = store_url or f"sqlite:///{(self.data_dir / STORE_FILE).resolve()}"
        self.stage = stage
        self.overrides = overrides
        self.idle_timeout = idle_timeout
        self.started_at = time.time()
        self._store: Store | None = None
        self._current: AppVersion | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._reload_lock = asyncio.Lock()
        self._versions = 0
        self.bus: EventBus
        self.archive: Archive
        self.topics: Topics
        self.queues: QueueTriggers
        self.scheduler: Scheduler

    # --- what the rest of the platform calls --------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the platform is not started; call start() first")
        return self._store

    @property
    def current(self) -> AppVersion:
        """The version serving now."""
        if self._current is None:
            raise RuntimeError("the platform is not started; call start() first")
        return self._current

    @property
    def specs(self) -> dict[str, FunctionSpec]:
        return self.current.specs

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        """Invoke `function` synchronously on the version serving now (Invoker.invoke's arguments)."""
        return await self.current.invoke(function, event, **options)

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
        """Queue an asynchronous invocation durably (Invoker.invoke_async's arguments); its request id."""
        return await self.current.invoke_async(function, event, **options)

    async def publish(self, bus: str, events: Sequence[Event]) -> list[str]:
        """Append events to `bus` durably; their ids once stored (EventBus.publish)."""
        return await self.bus.publish(bus, events)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, load the app and start every trigger. Raises AppLoadError / DeclarationError."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = await open_store(self.store_url)
        self._store = store
        try:
            version = await self._load()
            self._current = version
            specs = version.specs
            self.bus = EventBus(store, Rules(store, specs), invoker=self)
            self.archive = Archive(self.bus)
            self.topics = Topics(store, specs, invoker=self)
            self.queues = QueueTriggers(store, self, specs, queue_settings=self._queue_settings())
            self.scheduler = Scheduler(store, specs, invoker=self)
            await version.start()
            await self.bus.start()
            await self.topics.start()
            await self.queues.start()
            await self.scheduler.start()
        except BaseException:
            await self._close_everything(drain=False)
            raise

    async def reload(self) -> ReloadResult:
        """Load the app again; if it loads, serve the new version and retire the old one.

        A new version that fails to load changes nothing: the result says why
        (with the traceback of an import error) and the old version keeps serving.
        """
        async with self._reload_lock:
            began = time.monotonic()
            old = self.current
            try:
                new = await self._load()
            except (AppLoadError, DeclarationError) as exc:
                details = exc.details if isinstance(exc, AppLoadError) else ""
                return ReloadResult(False, old.number, str(exc), details, time.monotonic() - began)
            try:
                rules = Rules(self.store, new.specs)
                await rules.load()
                # Checked before anything switches: a refused queue table leaves the old version serving.
                await self.queues.update(new.specs, self._queue_settings())
            except DeclarationError as exc:
                await new.retire(drain=False)
                return ReloadResult(False, old.number, str(exc), "", time.monotonic() - began)
            await new.start()
            # From here new requests, events, messages and schedules reach the new version.
            self._current = new
            self.bus.rules = rules
            self.topics.update(new.specs)
            await self.scheduler.update(new.specs)
            self._retire(old)
            return ReloadResult(True, new.number, seconds=time.monotonic() - began)

    async def stop(self, *, drain: bool = True) -> None:
        """Stop the triggers, let work in flight finish (with `drain`), stop the processes, close the store."""
        await self._close_everything(drain=drain)

    async def __aenter__(self) -> Platform:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- internals ----------------------------------------------------------------------------

    async def _load(self) -> AppVersion:
        version = await AppVersion.load(
            self.target,
            number=self._versions + 1,
            store=self.store,
            work_dir=self.data_dir / "work",
            platform=StorePlatform(self.store),
            stage=self.stage,
            overrides=self.overrides,
            idle_timeout=self.idle_timeout,
            body_timeout=self.body_timeout,
            retry_policy=self.retry_policy,
        )
        self._versions = version.number
        return version

    def _queue_settings(self) -> dict[str, dict[str, Any]]:
        return load_config(self.app_dir).queue_settings(self.stage)

    @property
    def app_dir(self) -> Path:
        """The directory the app's files (and triggerfish.toml) are in."""
        location = self.target.split(":", 1)[0]
        return Path(location).parent if location.endswith(".py") else Path()

    def _retire(self, version: AppVersion) -> None:
        task = asyncio.ensure_future(self._retire_quietly(version))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _retire_quietly(version: AppVersion, *, drain: bool = True) -> None:
        try:
            await version.retire(drain=drain)
        except Exception:
            log.exception("retiring version %d failed", version.number)

    async def _close_everything(self, *, drain: bool) -> None:
        # Triggers first, so nothing new starts; then the versions, which finish what they started.
        for name in ("scheduler", "queues", "topics", "bus"):
            component = getattr(self, name, None)
            if component is not None:
                try:
                    await component.stop()
                except Exception:
                    log.exception("stopping the %s failed", name)
        if self._current is not None:
            await self._retire_quietly(self._current, drain=drain)
            self._current = None
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._store is not None:
            await self._store.close()
            self._store = None
