"""The server's bundles, each app's its own: `root/by-app/<app>/<sha256>/` and the archive it came from.

    store = BundleStore(Path("data/bundles"))
    app_dir = store.put("shop", sha256, data)     # checks, unpacks read-only, keeps the archive
    store.has("shop", sha256)                     # True; store.has("blog", sha256) is False
    store.verify("shop", sha256)                  # before the version loads again

A bundle is keyed by (app, sha256): an app sees only the bundles uploaded
for it, so one tenant can neither learn that another's bundle exists nor
deploy it by its hash. The interface is deliberately narrow (`put`, `has`,
`path`, `verify`), the seam where bundles move into the shared store as
content-addressed blobs per app, so that every node of a cluster can fetch
them: the archive kept here (`<sha256>.tar.gz`, 0444) is that blob.

All of it blocks (hashing, unpacking, verifying); the server calls it from a
thread. Servers from before bundles were per app kept them unpacked in
`root/<sha256>/`, shared; see `legacy_path` and `adopt_legacy`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO

from triggerfish.deploy.bundle import BundleLimits, app_segment, check_sha256, pack
from triggerfish.deploy.unpack import FILE_MODE, PARTIAL_PREFIX, check_archive, extract, publish, remove_tree
from triggerfish.deploy.verify import TamperedBundleError, verify_tree
from triggerfish.errors import BundleError

ARCHIVE_SUFFIX = ".tar.gz"
_ARCHIVE_PARTIAL = ".archive-"
_SET_ASIDE = ".tampered-"


class BundleStore:
    """Unpacked bundles by app and sha256 under `root`, each beside its archive. See the module docstring."""

    def __init__(self, root: Path, *, limits: BundleLimits | None = None) -> None:
        self.root = Path(root)
        self.limits = limits or BundleLimits()

    def app_root(self, app: str) -> Path:
        """The directory holding `app`'s bundles."""
        return self.root / "by-app" / app_segment(app)

    def path(self, app: str, sha256: str) -> Path:
        """Where `app`'s bundle `sha256` is (or would be) unpacked."""
        return self.app_root(app) / check_sha256(sha256)

    def archive_path(self, app: str, sha256: str) -> Path:
        """Where the archive of `app`'s bundle `sha256` is kept."""
        return self.app_root(app) / f"{check_sha256(sha256)}{ARCHIVE_SUFFIX}"

    def has(self, app: str, sha256: str) -> bool:
        """Whether `app` has the bundle (its directory only ever appears complete, after its archive)."""
        return self.path(app, sha256).is_dir()

    def put(self, app: str, sha256: str, data: bytes | IO[bytes]) -> Path:
        """Check and unpack an uploaded bundle for `app` (see `triggerfish.deploy.unpack`); its directory.

        `data` is the tar.gz, bytes or a binary file. Raises BundleError
        naming the limit or member when it is refused; then nothing is kept.
        Putting a bundle the app has already changes nothing.
        """
        tree = self.path(app, sha256)
        directory = tree.parent
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=_ARCHIVE_PARTIAL, delete=False) as kept:
            try:
                if isinstance(data, bytes):
                    kept.write(data)
                else:
                    data.seek(0)
                    shutil.copyfileobj(data, kept)
                kept.flush()
                os.fsync(kept.fileno())
                os.chmod(kept.name, FILE_MODE)
                with open(kept.name, "rb") as archive:
                    check_archive(archive, sha256, self.limits)
                    if tree.is_dir():
                        os.unlink(kept.name)
                        return tree
                    partial = extract(archive, directory, sha256[:12], self.limits)
                # The archive first: a tree is only there with its archive beside it.
                os.replace(kept.name, self.archive_path(app, sha256))
            except BaseException:
                Path(kept.name).unlink(missing_ok=True)
                raise
        return publish(partial, tree)

    def verify(self, app: str, sha256: str) -> Path:
        """`app`'s bundle directory once it is checked against its archive (see `triggerfish.deploy.verify`).

        A tampered bundle is moved aside (into `.tampered-...` beside it, for
        whoever looks into it) so that the next upload unpacks it afresh, and
        TamperedBundleError says what differed.
        """
        tree = self.path(app, sha256)
        try:
            verify_tree(self.archive_path(app, sha256), tree, sha256, limits=self.limits)
        except TamperedBundleError:
            aside = tree.parent / f"{_SET_ASIDE}{sha256[:12]}-{int(time.time())}"
            aside.mkdir(exist_ok=True)
            if tree.is_dir():
                tree.chmod(0o755)  # moving a directory to another parent rewrites its `..`
                tree.rename(aside / tree.name)
            if self.archive_path(app, sha256).exists():
                self.archive_path(app, sha256).rename(aside / self.archive_path(app, sha256).name)
            raise
        except BundleError as exc:
            raise TamperedBundleError(str(exc), differences=[str(exc)]) from None
        return tree

    def remove_app(self, app: str) -> None:
        """Forget every bundle of `app` (it was removed from the server)."""
        remove_tree(self.app_root(app))

    # --- bundles of servers from before bundles were per app --------------------------------------

    def legacy_path(self, sha256: str) -> Path | None:
        """The shared, unpacked bundle `sha256` an older server left in `root/`; None when there is none."""
        path = self.root / check_sha256(sha256)
        return path if path.is_dir() else None

    def adopt_legacy(self, app: str, sha256: str) -> bool:
        """Make the legacy bundle `sha256` `app`'s own, checked and read-only like any other; whether it could be.

        The archive was not kept then, so it is made again: `pack` gives the
        same bytes for the same files, so packing the unpacked files gives the
        bundle back when it was packed by `triggerfish deploy` with the same
        compression. When the hash differs (another packer, another zlib) the
        bundle cannot be proved to be what its hash says: False, and the caller
        decides (the server serves such versions from the legacy path).
        """
        legacy = self.legacy_path(sha256)
        if legacy is None:
            return False
        try:
            again = pack(legacy, limits=self.limits)
        except BundleError:
            return False
        if again.sha256 != sha256:
            return False
        try:
            self.put(app, sha256, again.data)
        except BundleError:  # over this server's limits now
            return False
        return True

    def legacy_bundles(self) -> list[str]:
        """The sha256 of every legacy bundle left in `root/`."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            try:
                found.append(check_sha256(entry.name))
            except BundleError:
                continue
        return sorted(found)

    def remove_legacy(self, sha256: str) -> None:
        """Remove the legacy bundle `sha256` (every app that uses it has it as its own now)."""
        remove_tree(self.root / check_sha256(sha256))

    # --- housekeeping -----------------------------------------------------------------------------

    def sweep(self, older_than: float = 3600.0) -> int:
        """Remove what interrupted uploads and unpacks left (older than `older_than` seconds); how many.

        Call it when the server starts; recent ones may belong to an unpack running right now.
        """
        removed = 0
        cutoff = time.time() - older_than
        places = [self.root]
        if (self.root / "by-app").is_dir():
            places.extend(entry for entry in (self.root / "by-app").iterdir() if entry.is_dir())
        for place in places:
            if not place.is_dir():
                continue
            for entry in place.iterdir():
                if entry.name.startswith((PARTIAL_PREFIX, _ARCHIVE_PARTIAL)) and entry.lstat().st_mtime < cutoff:
                    if entry.is_dir():
                        remove_tree(entry)
                    else:
                        entry.unlink(missing_ok=True)
                    removed += 1
        return removed
