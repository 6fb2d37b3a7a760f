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

`triggerfish.testing` runs this same class: with an in-process runner
instead of processes (`loader`), a clock it moves itself (`clock`), and the
triggers pumped by `run_due()` instead of running in the background
(`start(background=False)`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import shutil
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from triggerfish.aws.sns_signature import UNSERVED_ENDPOINT, Links
from triggerfish.aws.sns_signing import SnsSigning
from triggerfish.bus.archive import Archive, trim_consumed
from triggerfish.bus.bus import EventBus
from triggerfish.bus.publisher import Publisher
from triggerfish.bus.rules import Rules
from triggerfish.changes.consumer import ChangeTriggers
from triggerfish.changes.pg_triggers import PgChanges
from triggerfish.config import load_config
from triggerfish.errors import AppLoadError, DeclarationError, InvalidInputError, IsolationError, SecretsKeyError
from triggerfish.events.cloudevent import Event
from triggerfish.eventstore.projections import Projections
from triggerfish.eventstore.service import EventStoreService
from triggerfish.gateway.asgi import DEFAULT_BODY_TIMEOUT, RequestObserver
from triggerfish.gateway.route_auth import KeyLookup
from triggerfish.isolation.box import Box
from triggerfish.model import FunctionSpec
from triggerfish.names import topic_stream
from triggerfish.objects.calls import ObjectCalls
from triggerfish.objects.notifications import PlatformNotifications, declare_buckets
from triggerfish.objects.service import ObjectStore
from triggerfish.observe.spans import SpanListener
from triggerfish.observe.usage import UsageRollup
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.invocation_message import RawJSON
from triggerfish.runtime.invoke import DEFAULT_LEASE_MARGIN
from triggerfish.runtime.platform_calls import StorePlatform
from triggerfish.runtime.process_runner import ProcessRunner
from triggerfish.runtime.records import RecordListener
from triggerfish.runtime.types import LoadedRunner, PlatformHandler
from triggerfish.secrets.store import SecretStore, open_secrets
from triggerfish.server.versions import AppVersion, VersionSource

if TYPE_CHECKING:
    from triggerfish.server.registry import AppReleases
from triggerfish.store import OutgoingMessage, Store, open_store
from triggerfish.streams.triggers import SourceTriggers
from triggerfish.triggers.queues import DEFAULT_RETRY_POLICY, QueueTriggers
from triggerfish.triggers.schedules import Scheduler
from triggerfish.triggers.topics import Topics
from triggerfish.workflows.service import Workflows

log = logging.getLogger("triggerfish.server")

STORE_FILE = "store.db"
#: How long a bus's archive keeps events unless `[buses.NAME] archive_retention` says otherwise.
ARCHIVE_RETENTION = 7 * 24 * 3600.0
#: How long a topic's log keeps messages after they were fanned out (SQS's default retention).
TOPIC_RETENTION = 4 * 24 * 3600.0
#: Seconds between two trims of archives and topic logs.
MAINTENANCE_PERIOD = 60.0


class RunnerLoader(Protocol):
    """Starts the runner of one version, whose handlers' platform calls go to `platform`."""

    async def __call__(self, source: VersionSource, platform: PlatformHandler) -> LoadedRunner: ...


#: Gives a version its box (or None), given its source and the platform's store; raises IsolationError.
BoxFor = Callable[[VersionSource, Store], Awaitable[Box | None]]


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
    `loader` starts each version's runner (default: worker processes forked
    from zygotes, in `data_dir`); `clock` is the time every component reads.
    `secrets` holds the app's secrets (None: none can be set, and a function
    declaring one fails), under the name `secrets_app` (a server's name for the
    app; default: the name its code gives it, as under `triggerfish dev`); or,
    with `secrets_key_file`, a secret store opened at start over the
    platform's store, its key from `TRIGGERFISH_SECRETS_KEY` or that file
    (made on the first start), as `triggerfish dev` keeps them.
    """

    def __init__(
        self,
        target: str | None,
        *,
        data_dir: Path | None = None,
        store: Store | None = None,
        store_url: str | None = None,
        stage: str | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        idle_timeout: float = 300.0,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        keys_lookup: KeyLookup | None = None,
        loader: RunnerLoader | None = None,
        clock: Callable[[], float] = time.time,
        run_async: bool = True,
        lease_margin: float = DEFAULT_LEASE_MARGIN,
        box_for: BoxFor | None = None,
        secrets: SecretStore | None = None,
        secrets_app: str | None = None,
        secrets_key_file: Path | None = None,
    ) -> None:
        if data_dir is None and (store is None or loader is None):
            raise ValueError("Platform needs a data_dir, unless it is given both its store and a runner loader")
        self.target = target
        self.clock = clock
        #: Whether this platform runs asynchronous invocations and triggers (a cluster's `worker` role), or
        #: only what callers wait for: HTTP requests and direct invocations (the `gateway` role).
        self.run_async = run_async
        #: How long past its timeout an asynchronous invocation may run before another node runs it again.
        self.lease_margin = lease_margin
        #: Told when the run-time rules or subscriptions changed in the store (a server tells its other nodes).
        self.on_change: Callable[[Literal["rules", "subscriptions"]], Awaitable[None]] | None = None
        #: Told of every invocation record this platform's versions store (metrics, usage, dev's lines).
        self.record_listeners: list[RecordListener] = []
        #: Told of every producer span (a handler's publish or send) once stored: OTLP export.
        self.span_listeners: list[SpanListener] = []
        #: Told of every request the app's routes answered: route, status, seconds (metrics).
        self.request_observers: list[RequestObserver] = []
        #: Whether functions that do not set `keep_inputs` keep their invocations' inputs (`triggerfish dev`: yes).
        self.keep_inputs = False
        self._loader = loader or self._start_processes
        #: Gives each version the box its code runs in (None: no box; see triggerfish.isolation).
        self.box_for = box_for
        #: The app's secrets, and the app's name they are kept under (None: the name its code gives it).
        self.secrets = secrets
        self.secrets_app = secrets_app
        self._secrets_key_file = secrets_key_file
        #: Asked about the API key sent to a route declared `auth="api_key"` (None: no keys, such routes are open).
        self.keys_lookup = keys_lookup
        #: Backoff between attempts of failed async invocations (None: Lambda's, about 1 then 2 minutes).
        self.retry_policy = retry_policy
        #: Seconds a request body may take to arrive, on user routes and platform endpoints alike (then 408).
        self.body_timeout = body_timeout
        #: The AWS endpoint and credentials every version's code gets (runtime.worker.PLATFORM_ENVIRONMENT),
        #: read when a version loads: dev sets it once its address is bound.
        self.environment: dict[str, str] = {}
        #: The app's versions and aliases as serve's registry has them (None under dev: its versions are its
        #: reloads, its one alias `live`).
        self.releases: AppReleases | None = None
        self.data_dir = None if data_dir is None else Path(data_dir)
        self.store_url = store_url or (
            "memory://" if self.data_dir is None else f"sqlite:///{(self.data_dir / STORE_FILE).resolve()}"
        )
        #: A store handed in is shared (a server's apps each get a scoped view of one): not closed here.
        self._given_store = store
        self.stage = stage
        self.overrides = overrides
        self.idle_timeout = idle_timeout
        self.started_at = time.time()
        self._store: Store | None = None
        self._current: AppVersion | None = None
        #: A second version taking a share of synchronous traffic (a canary), and its share from 0 to 1.
        self._canary: tuple[AppVersion, float] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._reload_lock = asyncio.Lock()
        self._maintenance: asyncio.Future[None] | None = None
        self._versions = 0
        self._background = False
        self.publisher: Publisher
        self.bus: EventBus
        self.archive: Archive
        self.topics: Topics
        self.queues: QueueTriggers
        self.scheduler: Scheduler
        self.sources: SourceTriggers
        self.changes: ChangeTriggers
        #: PostgreSQL change captures (`@app.on_change("env:DB", table=...)`), read under background=True.
        self.pg_changes: PgChanges
        self.workflows: Workflows
        #: The app's event store (appends publish on its bus) and its projections (triggerfish.eventstore).
        self.eventstore: EventStoreService
        self.projections: Projections
        #: The app's usage, rolled up from its invocation records (triggerfish.observe.usage).
        self.usage: UsageRollup
        #: The app's buckets and objects (triggerfish.objects), served as S3 on /-/aws.
        self.objects: ObjectStore

    # --- what the rest of the platform calls --------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the platform is not started; call start() first")
        return self._store

    @property
    def running(self) -> bool:
        """Whether the platform is started and not stopped: it has a store and a version serving."""
        return self._store is not None and self._current is not None

    @property
    def current(self) -> AppVersion:
        """The version serving now."""
        if self._current is None:
            raise RuntimeError("the platform is not started; call start() first")
        return self._current

    @property
    def specs(self) -> dict[str, FunctionSpec]:
        return self.current.specs

    @property
    def canary(self) -> tuple[AppVersion, float] | None:
        """The canary version and its share of synchronous traffic, if one is set."""
        return self._canary

    def pick(self) -> AppVersion:
        """The version a synchronous request goes to: the canary for its share of them, else the current one."""
        canary = self._canary
        if canary is not None and random.random() < canary[1]:
            return canary[0]
        return self.current

    async def invoke(self, function: str, event: Any = None, **options: Any) -> Any:
        """Invoke `function` synchronously (Invoker.invoke's arguments), on `pick()`'s version."""
        return await self.pick().invoke(function, event, **options)

    def message(self, function: str, event: Any, **options: Any) -> tuple[str, OutgoingMessage, str]:
        """An asynchronous invocation of the current version, built but not sent (Invoker.message)."""
        return self.current.invoker.message(function, event, **options)

    def messages(
        self, functions: Sequence[str], event: RawJSON, **options: Any
    ) -> list[tuple[str, OutgoingMessage] | InvalidInputError | LookupError]:
        """One event's asynchronous invocations of several functions of the current version, built but not sent
        (Invoker.messages)."""
        return self.current.invoker.messages(functions, event, **options)

    async def invoke_async(self, function: str, event: Any = None, **options: Any) -> str:
        """Queue an asynchronous invocation durably (Invoker.invoke_async's arguments); its request id."""
        return await self.current.invoke_async(function, event, **options)

    async def invoke_async_many(self, function: str, events: list[Any], **options: Any) -> list[str]:
        """Queue one asynchronous invocation per event in one durable write (Invoker.invoke_async_many); their ids."""
        return await self.current.invoker.invoke_async_many(function, events, **options)

    async def changed(self, what: Literal["rules", "subscriptions"]) -> None:
        """The run-time rules or subscriptions were changed in the store: say so to whoever listens."""
        if self.on_change is not None:
            await self.on_change(what)

    def _sns_links(self) -> Links:
        # Read when signing: dev learns its address after the platform is made (docs/aws.md, "SNS signatures").
        endpoint = self.environment.get("AWS_ENDPOINT_URL") or UNSERVED_ENDPOINT
        return Links(endpoint, self.secrets_name)

    @property
    def secrets_name(self) -> str:
        """The app's name its secrets are kept under."""
        return self.secrets_app or self.current.app_name

    async def secret_values(self, declared_app: str, names: tuple[str, ...]) -> Mapping[str, str]:
        """The values of the app's secrets `names`, for a worker starting (a `SecretsSource`)."""
        if self.secrets is None:
            raise SecretsKeyError("this platform keeps no secrets; functions that declare secrets cannot run here")
        return await self.secrets.values(self.secrets_app or declared_app, names)

    def secrets_changed(self) -> None:
        """The app's secrets changed in the store: every invocation from now on sees them (workers started with the
        old values stop: idle ones now, busy ones when they finish)."""
        for version in self.serving():
            version.runner.renew_secrets()

    async def publish(self, bus: str, events: Sequence[Event]) -> list[str]:
        """Append events to `bus` durably; their ids once stored (EventBus.publish)."""
        return await self.bus.publish(bus, events)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(
        self,
        source: VersionSource | None = None,
        *,
        background: bool = True,
        queue_retry_policy: RetryPolicy | None = None,
    ) -> None:
        """Open the store, load the app and start every trigger. Raises AppLoadError / DeclarationError.

        `source` says which code is version 1 (default: `target`, with `stage`). With `background` off
        the triggers are built but only `run_due()` moves them (for `triggerfish.testing`); asynchronous
        invocations run in the background either way. `queue_retry_policy` sets how long a failed queue
        message stays hidden before it is received again (default: QueueTriggers').
        """
        if source is None:
            if self.target is None:
                raise ValueError("Platform.start() needs a source when the platform has no target")
            source = VersionSource(self.target, 1, stage=self.stage)
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        store = self._given_store or await open_store(self.store_url)
        self._store = store
        try:
            if self.secrets is None and self._secrets_key_file is not None:
                self.secrets = await open_secrets(
                    store.kv, environ=os.environ, key_file=None, default_file=self._secrets_key_file
                )
            self.publisher = Publisher(store)
            self.workflows = Workflows(store, self, clock=self.clock, span_listeners=self.span_listeners)
            self.eventstore = EventStoreService(store, self.publisher, app="app")
            self.usage = UsageRollup(store, clock=self.clock)
            version = await self.load(source)
            self._current = version
            specs = version.specs
            self.eventstore.app = version.app_name
            self.projections = Projections(store, self, specs, node=self._node_name(), clock=self.clock)
            clock = self.clock
            self.bus = EventBus(store, Rules(store, specs), invoker=self, publisher=self.publisher, clock=clock)
            self.archive = Archive(self.bus)
            self.topics = Topics(store, specs, invoker=self, publisher=self.publisher, clock=clock)
            self.topics.deliverer.signing = SnsSigning(store.kv, links=self._sns_links)
            self.queues = QueueTriggers(
                store,
                self,
                specs,
                queue_settings=_queue_settings(source),
                retry_policy=queue_retry_policy or DEFAULT_RETRY_POLICY,
            )
            self.scheduler = Scheduler(store, specs, invoker=self, clock=clock)
            self.sources = SourceTriggers(
                store, self, self.publisher, app=version.app_name, node=self._node_name(), clock=clock
            )
            self.changes = ChangeTriggers(
                store, self, self.publisher, app=version.app_name, node=self._node_name(), clock=clock
            )
            await _declare_tables(store, source)
            self.pg_changes = PgChanges(
                store, self, self.publisher, app=version.app_name, clock=clock, node=self._node_name()
            )
            self.objects = ObjectStore(store, self._objects_root(), notify=PlatformNotifications(self), clock=clock)
            await declare_buckets(self, _bucket_settings(source))
            await self.objects.sweep()
            if self.run_async:
                await version.start()
            self._background = background and self.run_async
            if self._background:
                await self.bus.start()
                await self.topics.start()
                await self.queues.start()
                await self.scheduler.start()
                await self.sources.update(specs, *_broker_tables(source))
                await self.changes.update(specs)
                await self.pg_changes.update(specs)
                await self.workflows.start()
                await self.projections.start()
                self._maintenance = asyncio.ensure_future(self._maintain_forever())
            else:
                await self.bus.reload()
                await self.topics.reload()
                self.sources.configure(specs)
                await self.changes.configure(specs)
                await self.pg_changes.configure(specs)
        except BaseException:
            await self._close_everything(drain=False)
            raise

    def _objects_root(self) -> Path:
        """Where the app's objects' bytes live: `<data_dir>/objects`, or a temporary directory without one."""
        if self.data_dir is not None:
            return self.data_dir / "objects"
        import tempfile

        return Path(tempfile.mkdtemp(prefix="triggerfish-objects-"))

    async def run_due(self) -> int:
        """Move every trigger once, here and now: route what is new on the buses and deliver what is due, fan
        topic messages out, run one batch per queue subscription. Returns how much was done (0: nothing was
        due). For a platform started with `background=False`; asynchronous invocations run by themselves."""
        done = 0
        for bus in await self.bus.buses():
            while count := await self.bus.pump(bus):
                done += count
            while count := await self.bus.deliverer.run_once(bus):
                done += count
        done += await self.topics.deliver_due()
        done += await self.queues.deliver_due()
        done += await self.sources.deliver_due()
        done += await self.changes.deliver_due()
        done += await self.pg_changes.deliver_due()
        done += await self.workflows.run_due()
        done += await self.projections.run_due()
        return done

    async def reload(self) -> ReloadResult:
        """Load `target` again as the next version; if it loads, serve it and retire the old one.

        A new version that fails to load changes nothing: the result says why
        (with the traceback of an import error) and the old version keeps serving.
        """
        if self.target is None:
            raise ValueError("reload() needs a platform with a target")
        async with self._reload_lock:
            began = time.monotonic()
            old = self.current
            try:
                new = await self.load(VersionSource(self.target, self._versions + 1, stage=self.stage))
                await self.switch(new)
            except (AppLoadError, DeclarationError, IsolationError) as exc:
                details = exc.details if isinstance(exc, AppLoadError) else ""
                return ReloadResult(False, old.number, str(exc), details, time.monotonic() - began)
            return ReloadResult(True, new.number, seconds=time.monotonic() - began)

    async def load(self, source: VersionSource) -> AppVersion:
        """Load a version beside the ones serving (its zygote, its workers); it serves nothing until `switch`.

        Raises AppLoadError (traceback in `details`) or DeclarationError.
        """
        calls = StorePlatform(
            self.store,
            publisher=self.publisher,
            workflows=self.workflows,
            events=self.eventstore,
            objects=ObjectCalls(lambda: self.objects),
            span_listeners=self.span_listeners,
            streams=_StreamPuts(self),
        )
        runner = await self._loader(source, calls)
        try:
            version = AppVersion.create(
                source,
                runner,
                store=self.store,
                publisher=self.publisher,
                clock=self.clock,
                body_timeout=self.body_timeout,
                retry_policy=self.retry_policy,
                keys_lookup=self.keys_lookup,
                lease_margin=self.lease_margin,
                record_listeners=self.record_listeners,
                request_observers=self.request_observers,
                keep_inputs=self.keep_inputs,
            )
        except BaseException:
            await runner.close()
            raise
        # A workflow's resumed run gets its record with its request, not from a platform call (Workflows.prelude).
        version.invoker.dispatcher.prelude = self.workflows.prelude
        self._versions = max(self._versions, version.number)
        return version

    def _node_name(self) -> str:
        """This node's name across restarts: its host and data directory (a restarted node resumes its streams)."""
        where = str(self.data_dir.resolve()) if self.data_dir is not None else self.store_url
        return f"{socket.gethostname()}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"

    async def _start_processes(self, source: VersionSource, platform: PlatformHandler) -> LoadedRunner:
        """The default loader: worker processes forked from the version's zygotes, in `data_dir/work`."""
        if source.target is None or self.data_dir is None:
            raise AppLoadError("the process runtime loads an app from its file; this version names none")
        box = await self.box_for(source, self.store) if self.box_for is not None else None
        return await ProcessRunner.start(
            source.target,
            work_dir=self.data_dir / "work",
            version=str(source.number),
            stage=source.stage,
            overrides=self.overrides,
            platform=platform,
            idle_timeout=self.idle_timeout,
            extra_paths=list(source.extra_paths),
            box=box,
            secrets=self.secret_values,
            environment=self.environment,
        )

    async def switch(self, primary: AppVersion, canary: AppVersion | None = None, weight: float = 0.0) -> None:
        """Serve `primary` (and `canary` for `weight` of synchronous requests); retire what no longer serves.

        The primary version also runs everything asynchronous and every
        trigger. Raises DeclarationError, changing nothing and retiring the
        versions it was given that are not serving, when the primary's
        declarations are refused (a queue table, say).
        """
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"a canary's weight is from 0 to 1, not {weight!r}")
        serving = self.serving()
        if primary is not self._current:
            try:
                rules = Rules(self.store, primary.specs)
                await rules.load()
                if self._background:
                    # Before anything switches: a refused broker URL leaves the old version serving everything.
                    self.sources.check(primary.specs, *_broker_tables(primary.source))
                    await self.pg_changes.prepare(primary.specs)
                # Checked before anything switches: a refused queue table leaves the old version serving.
                await self.queues.update(primary.specs, _queue_settings(primary.source))
                await _declare_tables(self.store, primary.source)
                if self._background:
                    await self.sources.update(primary.specs, *_broker_tables(primary.source))
                    await self.changes.update(primary.specs)
                    await self.pg_changes.update(primary.specs)
                else:
                    self.sources.configure(primary.specs)
                    await self.changes.configure(primary.specs)
                    await self.pg_changes.configure(primary.specs)
            except DeclarationError:
                for version in {primary, *([canary] if canary else [])} - serving:
                    self._retire(version)
                raise
            if self.run_async:
                await primary.start()
            # From here new requests, events, messages and schedules reach the new version.
            self._current = primary
            self.bus.rules = rules
            self.topics.update(primary.specs)
            await self.scheduler.update(primary.specs)
            self.projections.configure(primary.specs)
            # A new version may watch, or declare, buckets the old one did not: they exist from now on.
            await declare_buckets(self, _bucket_settings(primary.source))
        self._canary = (canary, weight) if canary is not None and canary is not primary and weight > 0 else None
        for version in serving - self.serving():
            self._retire(version)

    async def stop(self, *, drain: bool = True) -> None:
        """Stop the triggers, let work in flight finish (with `drain`), stop the processes, close the store."""
        await self._close_everything(drain=drain)

    async def __aenter__(self) -> Platform:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- internals ----------------------------------------------------------------------------

    @property
    def app_dir(self) -> Path | None:
        """The directory the serving version's files (and triggerfish.toml) are in; None for an app with no
        files (`triggerfish.testing`)."""
        return self.current.source.app_dir

    def in_flight(self) -> int:
        """Invocations running now on the versions serving (synchronous and asynchronous)."""
        return sum(version.in_flight for version in self.serving())

    def serving(self) -> set[AppVersion]:
        """The versions serving now: the current one, and the canary if there is one."""
        versions = {self._current} if self._current is not None else set()
        if self._canary is not None:
            versions.add(self._canary[0])
        return versions

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

    async def maintain(self) -> int:
        """Trim what is kept past its retention: every bus's archive, every topic's log, and the records of the
        source partition streams handled more than a day ago. Returns how many records went.

        `[buses.NAME] archive_retention` / `archive_max_bytes` and `[topics.NAME] retention` in the serving
        version's triggerfish.toml set them (defaults: ARCHIVE_RETENTION, TOPIC_RETENTION); a record its
        consumer has not handled yet is never trimmed by age.
        """
        source = self.current.source
        config = load_config(source.app_dir) if source.app_dir is not None else None
        buses = config.bus_settings(source.stage) if config is not None else {}
        topics = config.topic_settings(source.stage) if config is not None else {}
        removed = 0
        for bus in await self.bus.buses():
            table = buses.get(bus, {})
            age = float(table.get("archive_retention", ARCHIVE_RETENTION))
            removed += await self.archive.trim(bus, max_age=age, max_bytes=table.get("archive_max_bytes"))
        for topic in await self.topics.names():
            age = float(topics.get(topic, {}).get("retention", TOPIC_RETENTION))
            checkpoint = await self.topics.checkpoint(topic)
            removed += await trim_consumed(self.store.log, topic_stream(topic), checkpoint, max_age=age)
        removed += await self.sources.trim()
        removed += await self.changes.trim()
        removed += await self.pg_changes.trim()
        await self.objects.sweep()
        return removed

    async def _maintain_forever(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_PERIOD)
            try:
                # Well within the records' retention: usage is rolled up before its records can be trimmed.
                await self.usage.roll()
            except Exception:
                log.exception("rolling usage up failed; trying again in %g s", MAINTENANCE_PERIOD)
            try:
                await self.maintain()
            except Exception:
                log.exception("trimming archives and topic logs failed; trying again in %g s", MAINTENANCE_PERIOD)

    async def _close_everything(self, *, drain: bool) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        # Triggers first, so nothing new starts; then the versions, which finish what they started.
        for name in (
            "projections", "workflows", "changes", "pg_changes", "sources", "scheduler", "queues", "topics", "bus",
        ):  # fmt: skip
            component = getattr(self, name, None)
            if component is not None:
                try:
                    await component.stop()
                except Exception:
                    log.exception("stopping the %s failed", name)
        serving, self._current, self._canary = self.serving(), None, None
        for version in serving:
            await self._retire_quietly(version, drain=drain)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._store is not None and self._given_store is None:
            await self._store.close()
        self._store = None
        if self.data_dir is None and getattr(self, "objects", None) is not None:
            # Without a data directory the objects' bytes were in a temporary one (a test platform's).
            root = getattr(self.objects.blobs, "root", None)  # None: the bytes are in the store (PostgreSQL)
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)


class _StreamPuts:
    """`context.streams.put` and `context.mqtt.publish`, answered by the sources of the version serving now."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def put(self, stream: str, records: Any, *, traceparent: str | None = None) -> list[dict[str, Any]]:
        return await self.platform.sources.partitioned.put(stream, records, traceparent=traceparent)

    async def publish_mqtt(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        await self.platform.sources.publish_mqtt(topic, payload, qos=qos, retain=retain)


def _broker_tables(
    source: VersionSource,
) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
    """The `[mqtt]`, `[amqp]`, `[nats]` and `[redis]` tables of the version's triggerfish.toml."""
    if source.app_dir is None:
        return {}, {}, {}, {}
    config = load_config(source.app_dir)
    return config.mqtt, config.amqp, config.nats, config.redis


async def _declare_tables(store: Store, source: VersionSource) -> None:
    """Make the tables triggerfish.toml declares (`[tables.NAME]`) that do not exist yet."""
    if source.app_dir is None:
        return
    from triggerfish.tables.schema import TableSchema
    from triggerfish.tables.table import Tables

    tables = Tables(store)
    for name, body in load_config(source.app_dir).tables.items():
        await tables.ensure(TableSchema.from_config(name, body))


def _bucket_settings(source: VersionSource) -> dict[str, dict[str, Any]]:
    return {} if source.app_dir is None else load_config(source.app_dir).buckets


def _queue_settings(source: VersionSource) -> dict[str, dict[str, Any]]:
    if source.app_dir is None:
        return {}
    return load_config(source.app_dir).queue_settings(source.stage)
