"""What a server keeps of each deployed app: its bundles and its dependency installs, the blocking work off the loop.

    artifacts = Artifacts(data_dir, limits=BundleLimits(), pip_args=("--index-url", URL))
    artifacts.start()
    stored = await artifacts.put("shop", sha256, upload)   # checked and unpacked in a bundle thread
    tree = await artifacts.checked_tree("shop", sha256)    # verified against its archive before it loads
    installed = await artifacts.install("shop", tree / "requirements.txt")

In a cluster the bundles are kept in the store too (`shared`, see
`triggerfish.deploy.shared`): a node fetches a bundle it was not sent before
it loads it.

Everything here is the app's own: bundles are kept by (app, sha256) and
dependencies installed per app (see `triggerfish.deploy.bundles` and
`triggerfish.deploy.deps`). Checking, unpacking and verifying a bundle block
for up to seconds, so they run in a small pool of threads of their own
(`BUNDLE_THREADS`), never on the event loop and never in the loop's default
executor, which other work shares: a tenant sending bundles can keep at
most one of those threads busy at a time (uploads of one app wait for each
other), and no other app's requests wait for it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TypeVar

from triggerfish.deploy.bundle import BundleLimits
from triggerfish.deploy.bundles import BundleStore
from triggerfish.deploy.deps import Dependencies, DepsResult
from triggerfish.deploy.shared import SharedBundles
from triggerfish.deploy.unpack import make_read_only
from triggerfish.isolation.box import Box

log = logging.getLogger("triggerfish.server")

#: Threads checking, unpacking and verifying bundles; each app uses at most one at a time.
BUNDLE_THREADS = 2

_T = TypeVar("_T")


class Artifacts:
    """Each app's bundles and dependency installs on one server. See the module docstring."""

    def __init__(
        self,
        data_dir: Path,
        *,
        limits: BundleLimits | None = None,
        pip_args: Sequence[str] = (),
        source_builds: bool = False,
    ) -> None:
        self.bundles = BundleStore(data_dir / "bundles", limits=limits)
        self.dependencies = Dependencies(data_dir / "deps", extra_args=pip_args, source_builds=source_builds)
        #: The bundles in the store, for the other nodes of a cluster (set once the store is open).
        self.shared: SharedBundles | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._uploads: dict[str, asyncio.Lock] = {}
        #: (app, sha256) of versions deployed by an older server whose bundle could not be made the app's own.
        self._legacy: dict[tuple[str, str], Path] = {}

    def start(self) -> None:
        """Start the bundle threads and clear what interrupted unpacks left."""
        self._threads = ThreadPoolExecutor(BUNDLE_THREADS, thread_name_prefix="triggerfish-bundles")
        self.bundles.sweep()

    def close(self) -> None:
        """Stop the bundle threads (work they started finishes in them)."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    async def run(self, work: Callable[..., _T], *args: object) -> _T:
        """`work(*args)` in a bundle thread."""
        if self._threads is None:
            raise RuntimeError("the server's artifacts are not started; call start() first")
        return await asyncio.get_running_loop().run_in_executor(self._threads, functools.partial(work, *args))

    def has(self, app: str, sha256: str) -> bool:
        """Whether `app` has the bundle, kept and checked (an older server's that could not be is not counted,
        so that deploying it again uploads it)."""
        return self.bundles.has(app, sha256)

    async def put(self, app: str, sha256: str, data: bytes | IO[bytes]) -> bool:
        """Check and unpack `data` as `app`'s bundle `sha256`; False when the app had it already.

        Raises BundleError (naming the limit or member) when it is refused.
        Uploads of one app run one at a time.
        """
        async with self._uploads.setdefault(app, asyncio.Lock()):
            if self.has(app, sha256):
                return False
            await self.run(self.bundles.put, app, sha256, data)
            self._legacy.pop((app, sha256), None)  # kept and checked from now on
            if self.shared is not None:
                await self.shared.put(app, sha256, self.bundles.archive_path(app, sha256))
            return True

    async def available(self, app: str, sha256: str) -> bool:
        """Whether `app` has the bundle here or, in a cluster, in the store (another node received it)."""
        return self.has(app, sha256) or (self.shared is not None and await self.shared.has(app, sha256))

    async def _fetch(self, app: str, sha256: str) -> None:
        """Bring a bundle another node received from the store, checked and unpacked as an upload is."""
        if self.has(app, sha256) or self.shared is None:
            return
        async with self._uploads.setdefault(app, asyncio.Lock()):
            if self.has(app, sha256):
                return
            data = await self.shared.fetch(app, sha256)
            if data is not None:
                await self.run(self.bundles.put, app, sha256, data)
                log.info("app %r: bundle %s fetched from the store", app, sha256[:12])

    async def checked_tree(self, app: str, sha256: str) -> Path:
        """The directory of `app`'s bundle once verified against its archive; TamperedBundleError if it changed."""
        await self._fetch(app, sha256)
        legacy = self._legacy.get((app, sha256))
        if legacy is not None and not self.bundles.has(app, sha256):
            log.warning(
                "app %r: bundle %s was unpacked by an older server and cannot be checked against its hash; it is"
                " served as it is; deploy the app again (it is uploaded afresh) to have it kept and checked",
                app,
                sha256[:12],
            )
            return legacy
        return await self.run(self.bundles.verify, app, sha256)

    async def install(
        self, app: str, requirements: Path | None, *, reuse_legacy: bool = False, box: Box | None = None
    ) -> DepsResult:
        """`app`'s requirements, checked and installed (or found installed), pip in `box` when one is given;
        see `Dependencies.ensure`."""
        return await self.dependencies.ensure(app, requirements, reuse_legacy=reuse_legacy, box=box)

    async def adopt_legacy(self, versions: Mapping[str, Sequence[str]]) -> None:
        """Make the bundles an older server shared between apps each app's own; `versions`: app -> its bundles.

        A bundle that packs again to its hash is put for every app that used it;
        one that does not is served from where it is, made read-only, with a
        warning. Legacy bundles no version uses any more are removed.
        """
        legacy = set(await self.run(self.bundles.legacy_bundles))
        still_used: set[str] = set()
        for app, bundles in versions.items():
            for sha256 in dict.fromkeys(bundles):
                if sha256 not in legacy or self.bundles.has(app, sha256):
                    continue
                if await self.run(self.bundles.adopt_legacy, app, sha256):
                    log.info("app %r: bundle %s of an older server is now the app's own, checked", app, sha256[:12])
                    continue
                path = self.bundles.legacy_path(sha256)
                assert path is not None
                await self.run(make_read_only, path)
                self._legacy[(app, sha256)] = path
                still_used.add(sha256)
                log.warning(
                    "app %r: bundle %s of an older server does not pack again to its hash, so it cannot be"
                    " checked; it is served from %s, read-only",
                    app,
                    sha256[:12],
                    path,
                )
        for sha256 in sorted(legacy - still_used):
            await self.run(self.bundles.remove_legacy, sha256)

    async def remove_app(self, app: str) -> None:
        """Forget `app`'s bundles and installs (the app was removed; a new app of that name starts empty)."""
        self._legacy = {key: path for key, path in self._legacy.items() if key[0] != app}
        await self.run(self.bundles.remove_app, app)
        await self.run(self.dependencies.remove_app, app)
        if self.shared is not None:
            await self.shared.remove_app(app)
