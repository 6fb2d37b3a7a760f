"""`triggerfish serve`: any number of deployed apps side by side on one store, each isolated by name.

    host = Host(data_dir=Path(".triggerfish-server"))
    await host.start()                          # serves every app's `live` alias, as before a restart
    result = await host.deploy("shop", sha256)  # install, import, publish version N, move `live` to it
    await host.rollback("shop")                 # `live` back to the version before
    await host.stop()                           # drains what is in flight

Each app is a `Platform` (its bus, topics, queue triggers, scheduler and
versions) over `ScopedStore(store, "app.<name>")`, so one app cannot see
another's queues, events or records, and its components run unchanged.
The server's own records (apps, versions, aliases: see registry.py; API
keys: see keys.py) are in the unscoped store.

A deploy changes nothing unless it succeeds: the bundle is unpacked, its
requirements installed (once per distinct requirements file) and the app
imported in its own processes beside the version serving; only then is
the version recorded and `live` moved to it, in one switch. Requests and
invocations already running finish on the version they started on.

Any number of hosts (nodes) can share one store and form one platform (see
docs/cluster.md): each says it is alive in the store (`cluster/nodes.py`),
a deploy, alias change or removal of an app runs on one node at a time
across the cluster (`cluster/locks.py`), and each is announced on the
cluster's change feed (`cluster/changes.py`), which every node follows and
applies by reading the app's aliases from the store again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from triggerfish.cluster.changes import Change, ChangeFeed
from triggerfish.cluster.changes import Kind as ChangeKind
from triggerfish.cluster.locks import ClusterLock
from triggerfish.cluster.nodes import ROLES, Activity, NodeInfo, Nodes
from triggerfish.config import load_config
from triggerfish.deploy.bundle import BundleLimits
from triggerfish.deploy.bundles import BundleStore
from triggerfish.deploy.deps import Dependencies
from triggerfish.deploy.shared import SharedBundles
from triggerfish.errors import AppLoadError, DeclarationError, DeployError, InvalidInputError, IsolationError
from triggerfish.isolation.box import Box
from triggerfish.isolation.policy import Isolation
from triggerfish.observe.metrics import Metrics
from triggerfish.observe.otlp import OtlpExport
from triggerfish.retry import RetryPolicy
from triggerfish.runtime.invoke import DEFAULT_LEASE_MARGIN
from triggerfish.secrets.keyring import KEY_FILE
from triggerfish.secrets.store import SecretStore, open_secrets
from triggerfish.server.artifacts import Artifacts
from triggerfish.server.audit import DEFAULT_RETENTION, AuditLog
from triggerfish.server.auth import invoke_check
from triggerfish.server.aws_access import ServerCredentials
from triggerfish.server.keys import ApiKeys
from triggerfish.server.platform import STORE_FILE, BoxFor, Platform
from triggerfish.server.registry import (
    LIVE,
    Alias,
    AppReleases,
    Registry,
    VersionConflictError,
    VersionRecord,
    check_app_name,
)
from triggerfish.server.versions import AppVersion, VersionSource
from triggerfish.store import Store, open_store
from triggerfish.store.scoped import ScopedStore

log = logging.getLogger("triggerfish.server")

DEFAULT_ENTRY = "app.py"
#: The steps a deploy reports as its progress: install, import, switch.
DEPLOY_STEPS = 3
#: Seconds a stopping node waits for the change it is applying (a version loading) before it gives up on it.
FOLLOWER_PATIENCE = 130.0
#: Where the first start writes the admin key it made (mode 0600), beside the store.
ADMIN_KEY_FILE = "admin.key"
#: Seconds between two trims of the audit log past its retention.
AUDIT_TRIM_PERIOD = 3600.0


class AppNotFoundError(InvalidInputError, LookupError):
    """No app of that name is deployed (or the caller may not know of it)."""


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    seconds: float
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": round(self.seconds, 3), "output": self.output}


@dataclass(frozen=True, slots=True)
class DeployResult:
    app: str
    version: int
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "version": self.version,
            "functions": {
                "changed": self.changed,
                "unchanged": self.unchanged,
                "added": self.added,
                "removed": self.removed,
            },
            "phases": [p.to_dict() for p in self.phases],
        }


class Host:
    """Every deployed app of one server. See the module docstring."""

    def __init__(
        self,
        *,
        data_dir: Path,
        store_url: str | None = None,
        idle_timeout: float = 300.0,
        retry_policy: RetryPolicy | None = None,
        pip_args: tuple[str, ...] = (),
        roles: tuple[str, ...] = ROLES,
        address: str | None = None,
        store_parts: Mapping[str, str] | None = None,
        lease_margin: float = DEFAULT_LEASE_MARGIN,
        source_builds: bool = False,
        bundle_limits: BundleLimits | None = None,
        isolation: Isolation | None = None,
        secrets_key_file: Path | None = None,
        audit_retention: float = DEFAULT_RETENTION,
        environ: Mapping[str, str] | None = None,
        export: OtlpExport | None = None,
    ) -> None:
        #: This node's record in the cluster (checks the roles now, not at start).
        self.node = NodeInfo.new(address=address, roles=roles)
        self.lease_margin = lease_margin
        #: URLs of store parts taken from elsewhere than `store_url`: "log", "queues", "kv" (see open_store).
        self.store_parts = dict(store_parts or {})
        self.data_dir = Path(data_dir).resolve()
        #: Whether and how apps' code (and their installs) run boxed; None: unboxed (see triggerfish.isolation).
        self.isolation = isolation if isolation is not None and isolation.enabled else None
        self.store_url = store_url or f"sqlite:///{self.data_dir / STORE_FILE}"
        self.idle_timeout = idle_timeout
        self.retry_policy = retry_policy
        #: Each app's bundles and dependency installs; `pip_args` and `source_builds` are how pip installs.
        self.artifacts = Artifacts(self.data_dir, limits=bundle_limits, pip_args=pip_args, source_builds=source_builds)
        self.started_at = time.time()
        self.apps: dict[str, Platform] = {}
        #: This node's metrics: every app's invocations counted as their records are stored (GET /-/metrics).
        self.metrics = Metrics()
        #: Where every app's spans are exported over OTLP, when configured (triggerfish.observe.otlp).
        self.export = export
        #: The admin key made on the first start (shown once), else None.
        self.first_admin_key: str | None = None
        self._store: Store | None = None
        self._keys: ApiKeys | None = None
        self._aws: ServerCredentials | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._nodes: Nodes | None = None
        self._changes: ChangeFeed | None = None
        self._follower: asyncio.Task[None] | None = None
        #: Where the secrets key comes from: the environment (TRIGGERFISH_SECRETS_KEY), else this file, else
        #: DATA_DIR/secrets.key (see triggerfish.secrets.keyring).
        self.secrets_key_file = secrets_key_file
        self.audit_retention = audit_retention
        self._environ = os.environ if environ is None else environ
        self._secrets: SecretStore | None = None
        self._audit: AuditLog | None = None
        self._trimmer: asyncio.Task[None] | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the host is not started; call start() first")
        return self._store

    @property
    def aws_credentials(self) -> ServerCredentials:
        """Who may use `/-/aws` (API keys of one app, each app's functions); once started."""
        if self._aws is None:
            raise RuntimeError("the host is not started")
        return self._aws

    @property
    def keys(self) -> ApiKeys:
        if self._keys is None:
            raise RuntimeError("the host is not started; call start() first")
        return self._keys

    @property
    def secrets(self) -> SecretStore:
        """Every app's secrets (sealed with this server's key; see triggerfish.secrets)."""
        if self._secrets is None:
            raise RuntimeError("the host is not started; call start() first")
        return self._secrets

    @property
    def audit(self) -> AuditLog:
        """The audit log of key, secret and deploy operations (see audit.py)."""
        if self._audit is None:
            raise RuntimeError("the host is not started; call start() first")
        return self._audit

    @property
    def registry(self) -> Registry:
        return Registry(self.store)

    @property
    def nodes(self) -> Nodes:
        if self._nodes is None:
            raise RuntimeError("the host is not started; call start() first")
        return self._nodes

    @property
    def runs_async(self) -> bool:
        """Whether this node runs asynchronous work and triggers (the `worker` role)."""
        return "worker" in self.node.roles

    @property
    def bundles(self) -> BundleStore:
        return self.artifacts.bundles

    @property
    def dependencies(self) -> Dependencies:
        return self.artifacts.dependencies

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store and serve every registered app's `live` alias. An app that fails to load is logged."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.artifacts.start()  # clears what unpacks a crash cut short left
        parts = self.store_parts
        self._store = await open_store(
            self.store_url, log=parts.get("log"), queues=parts.get("queues"), kv=parts.get("kv")
        )
        self.artifacts.shared = SharedBundles(self._store)
        self._keys = ApiKeys(self._store)
        try:
            # Before anything is served: a node whose key is not the cluster's must not start (SecretsKeyError).
            self._secrets = await open_secrets(
                self._store.kv,
                environ=self._environ,
                key_file=self.secrets_key_file,
                default_file=self.data_dir / KEY_FILE,
            )
        except BaseException:
            await self._store.close()
            self._store = None
            raise
        self._audit = AuditLog(self._store, retention=self.audit_retention, node=self.node.id)
        self.first_admin_key = await self._keys.ensure_admin(self.data_dir / ADMIN_KEY_FILE)
        self._aws = ServerCredentials(self._keys, self._store.kv)
        await self._aws.load()
        # Changes made from here on are applied after the apps below loaded; earlier ones are in the store.
        self._changes = ChangeFeed(self._store)
        await self._changes.start_here()
        apps = await self.registry.apps()
        await self.artifacts.adopt_legacy({app: [v.bundle for v in await self.registry.versions(app)] for app in apps})
        for app in apps:
            alias = await self.registry.alias(app)
            if alias is None:
                continue
            try:
                await self._serve_alias(app, alias)
            except (AppLoadError, DeclarationError, DeployError, IsolationError, OSError) as exc:
                log.error("app %r: version %d did not load again and is not served: %s", app, alias.version, exc)
        self._nodes = Nodes(self._store, self.node)
        await self._nodes.start(self._activity)
        self._follower = asyncio.create_task(self._changes.follow(self._apply), name="triggerfish-changes")
        self._trimmer = asyncio.create_task(self._trim_audit_forever(), name="triggerfish-audit-trim")

    async def stop(self, *, drain: bool = True) -> None:
        """Stop every app (letting work in flight finish, with `drain`), then close the store."""
        if self._trimmer is not None:
            self._trimmer.cancel()
            await asyncio.gather(self._trimmer, return_exceptions=True)
            self._trimmer = None
        if self._follower is not None and self._changes is not None:
            self._changes.stop()
            try:
                async with asyncio.timeout(FOLLOWER_PATIENCE):
                    await asyncio.shield(self._follower)
            except TimeoutError:
                self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
            self._follower = None
        platforms, self.apps = list(self.apps.values()), {}
        await asyncio.gather(*(p.stop(drain=drain) for p in platforms), return_exceptions=True)
        if self._nodes is not None:
            await self._nodes.stop()
            self._nodes = None
        if self._store is not None:
            await self._store.close()
            self._store = None
        self.artifacts.close()
        if self.export is not None:
            await asyncio.to_thread(self.export.shutdown)  # what is queued goes out (the SDK's blocking flush)

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def platform(self, app: str) -> Platform:
        """The serving platform of `app`; AppNotFoundError when it is not deployed."""
        platform = self.apps.get(app)
        if platform is None:
            raise AppNotFoundError(f"no app named {app!r} is deployed")
        return platform

    # --- deploying ----------------------------------------------------------------------------

    async def deploy(
        self,
        app: str,
        bundle: str,
        *,
        stage: str | None = None,
        progress: Callable[[int, int | None, str], None] | None = None,
    ) -> DeployResult:
        """Deploy the uploaded bundle `bundle` (its sha256) as the next version of `app` and make it live.

        `progress` is told each step as it begins (install, import, switch: three) and when all are done.
        Raises DeployError (with `phase` and `details`: pip's output or the
        import's traceback) and changes nothing when any step fails;
        InvalidInputError for a bad name or a bundle that was not uploaded.
        """
        check_app_name(app)
        if not await self.artifacts.available(app, bundle):
            # The same answer whether no app has it or another app has: bundles are each app's own.
            raise InvalidInputError(
                f"no bundle {bundle!r} was uploaded; PUT it to /-/api/v1/apps/{app}/bundles/{bundle} first"
            )
        step = progress or (lambda done, total, name: None)
        async with self._exclusive(app, f"a deploy of app {app!r}"):
            phases: list[Phase] = []
            number = await self.registry.last_version(app) + 1
            step(0, DEPLOY_STEPS, "install")
            source, install = await self._source(app, bundle, number, stage)
            phases.append(install)
            step(1, DEPLOY_STEPS, "import")
            began = time.monotonic()
            platform = self.apps.get(app)
            try:
                if platform is None:
                    platform = self._new_platform(app)
                    await platform.start(source)
                    new = platform.current
                else:
                    new = await platform.load(source)
            except AppLoadError as exc:
                raise DeployError(str(exc), phase="import", details=exc.details) from None
            except (DeclarationError, IsolationError) as exc:
                raise DeployError(str(exc), phase="import") from None
            phases.append(Phase("import", time.monotonic() - began))
            step(2, DEPLOY_STEPS, "switch")
            began = time.monotonic()
            previous = await self._live_record(app)
            record = VersionRecord(app, number, bundle, time.time(), stage, _fingerprints(new))
            try:
                await self.registry.claim_version(app, number)
            except VersionConflictError:
                await (new.retire(drain=False) if app in self.apps else platform.stop(drain=False))
                raise
            if app in self.apps:
                try:
                    await platform.switch(new)
                except DeclarationError as exc:
                    raise DeployError(str(exc), phase="import") from None
            await self.registry.add_version(record)
            await self.registry.set_alias(app, Alias(LIVE, number))
            self.apps[app] = platform
            await self._announce("alias", app)
            phases.append(Phase("switch", time.monotonic() - began))
            step(DEPLOY_STEPS, DEPLOY_STEPS, "live")
            return _diff(record, previous, phases)

    async def set_alias(self, app: str, alias: Alias) -> Alias:
        """Point `alias` at its versions; for `live`, serve them (loading what is not loaded) and retire the rest."""
        self.platform(app)
        async with self._exclusive(app, f"a change of app {app!r}'s aliases"):
            for number in (alias.version, *alias.weights):
                if await self.registry.version(app, number) is None:
                    raise InvalidInputError(f"app {app!r} has no version {number}; see its versions")
            if alias.name == LIVE:
                await self._serve_alias(app, alias)
            await self.registry.set_alias(app, alias)
            await self._announce("alias", app)
            return alias

    async def rollback(self, app: str, to: int | None = None) -> int:
        """Move `live` to version `to` (default: the version before the live one); returns it."""
        live = await self.registry.alias(app)
        if live is None:
            raise AppNotFoundError(f"no app named {app!r} is deployed")
        if to is None:
            earlier = [v.version for v in await self.registry.versions(app) if v.version < live.version]
            if not earlier:
                raise InvalidInputError(
                    f"app {app!r} is at its first version ({live.version}); there is nothing to roll back to"
                )
            to = earlier[-1]
        await self.set_alias(app, Alias(LIVE, to))
        return to

    async def remove(self, app: str) -> None:
        """Stop serving `app` (work in flight finishes) and forget its versions and aliases."""
        platform = self.platform(app)
        async with self._exclusive(app, f"the removal of app {app!r}"):
            del self.apps[app]
            pg_changes = getattr(platform, "pg_changes", None)
            if pg_changes is not None:
                # Its PostgreSQL captures' slots go with it: a slot nobody reads keeps WAL on the user's server.
                try:
                    await pg_changes.update({})
                except Exception:
                    log.exception("dropping the replication slots of app %r failed", app)
            await platform.stop(drain=True)
            await self.registry.remove(app)
            await self.artifacts.remove_app(app)
            # A credential must not outlive its app: an app deployed later under the name starts with none.
            await self.secrets.remove_app(app)
            await self._announce("removed", app)

    async def secrets_changed(self, app: str) -> None:
        """`app`'s secrets changed in the store: renew its workers here, and tell every other node to."""
        platform = self.apps.get(app)
        if platform is not None:
            platform.secrets_changed()
        await self._announce("secrets", app)

    async def advertise(self, address: str) -> None:
        """Show `address` as this node's address from now on (`triggerfish status`, the nodes list)."""
        self.node = dataclasses.replace(self.node, address=address)
        for app, platform in self.apps.items():
            platform.environment = self._function_environment(app)
        if self._nodes is not None:
            self._nodes.me = dataclasses.replace(self._nodes.me, address=address)
            await self._nodes.beat()

    async def announce(self, kind: Literal["rules", "subscriptions"], app: str) -> None:
        """Tell every node that `app`'s run-time rules or subscriptions changed in the store, so that they
        read them again now rather than at their next periodic refresh."""
        await self._announce(kind, app)

    # --- internals ----------------------------------------------------------------------------

    def _lock(self, app: str) -> asyncio.Lock:
        return self._locks.setdefault(app, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _exclusive(self, app: str, what: str) -> AsyncIterator[None]:
        """One deploy, alias change or removal of `app` at a time across the cluster (DeployInProgressError
        for the second), then this node's own lock, which applying the change feed also takes."""
        async with ClusterLock(self.store, f"app/{app}", holder=f"node {self.node.id}", what=what), self._lock(app):
            yield

    async def _announce(self, kind: ChangeKind, app: str) -> None:
        if self._changes is not None:
            await self._changes.announce(Change(kind, app, self.node.id))

    async def _apply(self, change: Change) -> None:
        """Make this node serve what the store now says of `change.app` (a change another node made)."""
        if change.node == self.node.id:
            return  # made here: applied already
        async with self._lock(change.app):
            platform = self.apps.get(change.app)
            if change.kind == "rules" and platform is not None:
                await platform.bus.reload()
            elif change.kind == "subscriptions" and platform is not None:
                await platform.topics.reload()
            elif change.kind == "secrets" and platform is not None:
                platform.secrets_changed()
            elif change.kind in ("alias", "removed"):
                alias = await self.registry.alias(change.app)
                if alias is None:
                    if platform is not None:
                        del self.apps[change.app]
                        await platform.stop(drain=True)
                    return
                if platform is None or _serving(platform) != (alias.version, alias.canary):
                    await self._serve_alias(change.app, alias)

    async def _trim_audit_forever(self) -> None:
        while True:
            try:
                await self.audit.trim()
            except Exception:
                log.exception("trimming the audit log failed; trying again in %g s", AUDIT_TRIM_PERIOD)
            await asyncio.sleep(AUDIT_TRIM_PERIOD)

    def _activity(self) -> Activity:
        versions = {app: sorted({v.number for v in platform.serving()}) for app, platform in self.apps.items()}
        in_flight = sum(platform.in_flight() for platform in self.apps.values())
        return Activity(versions, in_flight)

    def _new_platform(self, app: str) -> Platform:
        platform = Platform(
            None,
            run_async=self.runs_async,
            lease_margin=self.lease_margin,
            data_dir=self.data_dir / "apps" / app,
            store=ScopedStore(self.store, f"app.{app}"),
            idle_timeout=self.idle_timeout,
            retry_policy=self.retry_policy,
            keys_lookup=invoke_check(self.keys, app),
            box_for=self._box_for(app),
            secrets=self.secrets,
            secrets_app=app,
        )
        platform.on_change = functools.partial(self.announce, app=app)
        platform.releases = AppReleases(self.registry, app)
        self.metrics.watch(platform)
        if self.export is not None:
            self.export.watch(platform)
        platform.environment = self._function_environment(app)
        return platform

    def _function_environment(self, app: str) -> dict[str, str]:
        """The AWS endpoint (this node's address) and credentials `app`'s functions get; none without an address."""
        address = self.node.address
        if address is None or self._aws is None:
            return {}
        return self._aws.environment(address, app)

    def _box_for(self, app: str) -> BoxFor | None:
        isolation = self.isolation
        if isolation is None:
            return None

        async def box_for(source: VersionSource, _scoped: Store) -> Box | None:
            # The unscoped store: uids are the server's records, not the app's.
            code = Path(source.root) if source.root else source.app_dir
            assert code is not None  # a deployed version has files
            return await isolation.box(app, app_dir=code, code=code, store=self.store)

        return box_for

    async def _source(
        self, app: str, bundle: str, number: int, stage: str | None, *, reloading: bool = False
    ) -> tuple[VersionSource, Phase]:
        """Where version `number` of a bundle loads from, its requirements installed (the install phase).

        The bundle is verified against its archive first (TamperedBundleError if it changed on disk).
        `reloading`: a recorded version loading again, which may use an older server's shared install.
        """
        directory = await self.artifacts.checked_tree(app, bundle)
        try:
            config = await self.artifacts.run(load_config, directory)
        except DeclarationError as exc:  # a bad triggerfish.toml: the deploy's fault, named, not a 500
            raise DeployError(str(exc), phase="import") from None
        entry = config.app or DEFAULT_ENTRY
        if not entry.split(":", 1)[0].endswith(".py"):
            # A module path would be looked up on the server's own sys.path, not in the bundle.
            raise DeployError(
                f"triggerfish.toml: app = {entry!r} names a module; a deployed app names its file, relative to"
                " the project, such as app = 'app.py' or app = 'src/main.py:app'",
                phase="import",
            )
        requirements = directory / "requirements.txt"
        began = time.monotonic()
        box = None
        if self.isolation is not None and requirements.is_file():
            # pip runs the packages' build code: in a box of the app's own, like the app.
            try:
                app_box = await self.isolation.box(app, app_dir=directory, code=directory, store=self.store)
            except IsolationError as exc:
                raise DeployError(str(exc), phase="install") from None
            box = self.isolation.install_box(app_box) if app_box is not None else None
        installed = await self.artifacts.install(
            app, requirements if requirements.is_file() else None, reuse_legacy=reloading, box=box
        )
        output = installed.output if not installed.cached else "requirements already installed (cached)"
        install = Phase("install", time.monotonic() - began, output)
        extra = (str(installed.path),) if installed.path is not None else ()
        source = VersionSource(str(directory / entry), number, extra_paths=extra, stage=stage, root=str(directory))
        return source, install

    async def _serve_alias(self, app: str, alias: Alias) -> None:
        platform = self.apps.get(app)
        loaded: dict[int, AppVersion] = {}
        if platform is not None:
            loaded = {platform.current.number: platform.current}
            if platform.canary is not None:
                loaded[platform.canary[0].number] = platform.canary[0]

        async def version(number: int) -> AppVersion:
            nonlocal platform
            if number in loaded:
                return loaded[number]
            record = await self.registry.version(app, number)
            if record is None:
                raise InvalidInputError(f"app {app!r} has no version {number}")
            source, _ = await self._source(app, record.bundle, number, record.stage, reloading=True)
            if platform is None:
                platform = self._new_platform(app)
                await platform.start(source)
                loaded[number] = platform.current
            else:
                loaded[number] = await platform.load(source)
            return loaded[number]

        primary = await version(alias.version)
        canary = alias.canary
        second = await version(canary[0]) if canary else None
        assert platform is not None
        await platform.switch(primary, second, canary[1] if canary else 0.0)
        self.apps[app] = platform

    async def _live_record(self, app: str) -> VersionRecord | None:
        live = await self.registry.alias(app)
        return None if live is None else await self.registry.version(app, live.version)


def _serving(platform: Platform) -> tuple[int, tuple[int, float] | None]:
    """What a platform serves, as an alias says it: the live version, and the canary with its weight."""
    canary = platform.canary
    return platform.current.number, None if canary is None else (canary[0].number, canary[1])


def _fingerprints(version: AppVersion) -> dict[str, str]:
    return {
        name: hashlib.sha256(orjson.dumps(description, option=orjson.OPT_SORT_KEYS)).hexdigest()
        for name, description in version.runner.descriptions.items()
    }


def _diff(record: VersionRecord, previous: VersionRecord | None, phases: list[Phase]) -> DeployResult:
    before: Mapping[str, str] = previous.functions if previous is not None else {}
    after = record.functions
    return DeployResult(
        app=record.app,
        version=record.version,
        changed=sorted(n for n in after if n in before and before[n] != after[n]),
        unchanged=sorted(n for n in after if n in before and before[n] == after[n]),
        added=sorted(n for n in after if n not in before),
        removed=sorted(n for n in before if n not in after),
        phases=phases,
    )
