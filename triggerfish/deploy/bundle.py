"""App bundles: an app directory as one deterministic, content-addressed tar.gz, and its safe unpacking.

    bundle = pack(Path("shop"))                 # .data, .sha256, .files, .size
    store = BundleStore(Path("data/bundles"))
    app_dir = store.put(bundle.data, bundle.sha256)

`pack` gives the same bytes, and so the same sha256, for the same files:
entries are sorted, and times, owners and modes are fixed (a file is 0644,
or 0755 when it was executable). What `.triggerfishignore` names is left
out, and so is what is never shipped (see `triggerfish.deploy.ignore`).
Symbolic links are followed when they stay inside the directory and refused
when they leave it, so a bundle holds only regular files.

`unpack` is the server's side and trusts nothing: it checks the hash before
reading a byte of the archive, refuses absolute paths, `..`, links, devices
and anything over the limits (naming the member), and extracts into a
temporary directory that is renamed into place only once every file is
written and synced. An interrupted upload or unpack leaves nothing behind
under the final name, and unpacking a bundle that is already there is a no-op.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from triggerfish.deploy.ignore import IGNORE_FILE, IgnoreRules
from triggerfish.errors import BundleError

_MB = 1024 * 1024
#: Largest single file a bundle may hold.
DEFAULT_MAX_FILE_BYTES = 20 * _MB
#: Largest total of a bundle's files (uncompressed), and so also of an upload.
DEFAULT_MAX_BUNDLE_BYTES = 50 * _MB
#: Most files a bundle may hold (an archive of empty files is a bomb of inodes).
DEFAULT_MAX_FILES = 20_000
#: Prefix of the temporary directories `unpack` writes into, beside the final one.
PARTIAL_PREFIX = ".unpacking-"

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class BundleLimits:
    """Caps that `pack` and `unpack` enforce, in bytes and files."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_total_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    max_files: int = DEFAULT_MAX_FILES


@dataclass(frozen=True, slots=True)
class Bundle:
    """A packed app: the tar.gz bytes, their sha256 (hex), the files in it (POSIX paths, sorted)."""

    data: bytes
    sha256: str
    files: list[str]
    #: Total size of the files before compression.
    source_bytes: int

    @property
    def size(self) -> int:
        """Size of the tar.gz in bytes (what is uploaded)."""
        return len(self.data)


def pack(app_dir: Path, *, limits: BundleLimits | None = None) -> Bundle:
    """Pack `app_dir` into a deterministic tar.gz.

    Raises BundleError (phase "pack", `path` naming the file) for a symbolic
    link leaving the directory or pointing nowhere, a socket, FIFO or device,
    a file over `limits.max_file_bytes`, more than `limits.max_files` files, a
    total over `limits.max_total_bytes`, or a bad `.triggerfishignore` line.
    """
    limits = limits or BundleLimits()
    root = Path(app_dir)
    if not root.is_dir():
        raise BundleError(f"{root} is not a directory: give the app's directory", phase="pack", path=str(root))
    collected = _Collector(root.resolve(), IgnoreRules.load(root), limits).collect()
    buffer = io.BytesIO()
    # filename="" and mtime=0 keep the gzip header free of anything that differs between runs.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as archive,
    ):
        for relative, content, executable in collected:
            info = tarfile.TarInfo(relative)
            info.size = len(content)
            info.mode = 0o755 if executable else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(content))
    data = buffer.getvalue()
    return Bundle(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        files=[relative for relative, _, _ in collected],
        source_bytes=sum(len(content) for _, content, _ in collected),
    )


class _Collector:
    """Walks an app directory in a fixed order and reads the files a bundle holds."""

    def __init__(self, root: Path, rules: IgnoreRules, limits: BundleLimits) -> None:
        self.root = root
        self.rules = rules
        self.limits = limits
        self.total = 0
        self.files: list[tuple[str, bytes, bool]] = []

    def collect(self) -> list[tuple[str, bytes, bool]]:
        self._walk(self.root, "", frozenset({self.root}))
        # Sorted on the whole path, not per directory, so the order does not depend on how the walk went.
        return sorted(self.files, key=lambda item: item[0])

    def _fail(self, relative: str, message: str) -> BundleError:
        return BundleError(f"{self.root / relative}: {message}", phase="pack", path=relative)

    def _walk(self, directory: Path, prefix: str, chain: frozenset[Path]) -> None:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            relative = prefix + entry.name
            path = Path(entry.path)
            try:
                info = os.stat(path)  # follows a symbolic link
            except OSError:
                info = None
            is_dir = info is not None and stat.S_ISDIR(info.st_mode)
            ignored = self.rules.ignores_dir(relative, path) if is_dir else self.rules.ignores_file(relative)
            if ignored:
                continue
            if entry.is_symlink():
                target = os.readlink(path)
                if info is None:
                    raise self._fail(
                        relative, f"symbolic link to {target!r}, which does not exist; remove it or {_ignore_hint()}"
                    )
                resolved = path.resolve()
                if not resolved.is_relative_to(self.root):
                    raise self._fail(
                        relative,
                        f"symbolic link to {target!r}, outside the app directory; copy what it points to into the app"
                        f" (or list the dependency in requirements.txt), or {_ignore_hint()}",
                    )
                if resolved in chain:
                    raise self._fail(relative, f"symbolic link to {target!r} makes a loop; {_ignore_hint()}")
                if is_dir:
                    self._walk(path, relative + "/", chain | {resolved})
                    continue
            elif is_dir:
                self._walk(path, relative + "/", chain | {path.resolve()})
                continue
            if info is None or not stat.S_ISREG(info.st_mode):
                raise self._fail(relative, f"not a regular file (a socket, FIFO or device); {_ignore_hint()}")
            self._add(relative, path, info)

    def _check_size(self, relative: str, size: int) -> None:
        limits = self.limits
        if size > limits.max_file_bytes:
            raise self._fail(
                relative,
                f"is {_size(size)}, over the limit of {_size(limits.max_file_bytes)} per file; {_ignore_hint()}"
                " and fetch it at run time",
            )
        if self.total + size > limits.max_total_bytes:
            raise self._fail(
                relative,
                f"brings the app's files over the bundle limit of {_size(limits.max_total_bytes)}; leave out"
                f" large data with {IGNORE_FILE}",
            )

    def _add(self, relative: str, path: Path, info: os.stat_result) -> None:
        limits = self.limits
        if len(self.files) >= limits.max_files:
            raise self._fail(
                relative,
                f"the app has more than {limits.max_files} files; leave out what it does not need with {IGNORE_FILE}",
            )
        # Checked before reading too, so a huge file is refused without being read into memory.
        self._check_size(relative, info.st_size)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise self._fail(relative, f"cannot be read: {exc.strerror or exc}") from None
        self._check_size(relative, len(content))
        self.total += len(content)
        self.files.append((relative, content, bool(info.st_mode & 0o111)))


def unpack(data: bytes, expected_sha256: str, into: Path, *, limits: BundleLimits | None = None) -> Path:
    """Check `data` against `expected_sha256`, then extract it safely as the directory `into`; returns `into`.

    When `into` already exists the bundle is taken as unpacked (it only ever
    appears complete) and nothing is written. Raises BundleError (phase
    "unpack", `path` naming the member) for a hash mismatch, an archive that is
    not a tar.gz, or a member that is absolute, climbs out with `..`, is a
    link, a device or a FIFO, appears twice, or breaks `limits`.
    """
    limits = limits or BundleLimits()
    check_sha256(expected_sha256)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise BundleError(
            f"the bundle's sha256 is {actual}, not {expected_sha256}: it was damaged or cut short on the way;"
            " upload it again",
            phase="unpack",
        )
    if len(data) > limits.max_total_bytes:
        raise BundleError(
            f"the bundle is {_size(len(data))}, over the limit of {_size(limits.max_total_bytes)}", phase="unpack"
        )
    into = Path(into)
    if into.is_dir():
        return into
    into.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{expected_sha256[:12]}-", dir=into.parent))
    try:
        _extract(data, partial, limits)
        partial.chmod(0o755)
        _fsync_dir(partial)
        try:
            partial.rename(into)
        except OSError:
            if not into.is_dir():
                raise
            # Another unpack of the same bundle finished first: the same files are there already.
            shutil.rmtree(partial, ignore_errors=True)
            return into
        _fsync_dir(into.parent)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return into


def check_sha256(value: str) -> str:
    """`value` if it is a sha256 in lowercase hex; BundleError otherwise."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise BundleError(f"{value!r} is not a sha256: expected 64 lowercase hex digits", phase="unpack")
    return value


def _extract(data: bytes, into: Path, limits: BundleLimits) -> None:
    seen: set[str] = set()
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                name = _safe_name(member)
                if name is None:  # the archive's own top directory, "./"
                    continue
                target = into / name
                if member.isdir():
                    _make_dirs(target, member.name)
                    continue
                if name in seen:
                    raise _refuse(member.name, "appears twice in the bundle")
                seen.add(name)
                total += member.size
                if len(seen) > limits.max_files:
                    raise _refuse(member.name, f"is past the limit of {limits.max_files} files per bundle")
                if member.size > limits.max_file_bytes:
                    raise _refuse(member.name, f"is {_size(member.size)}, over {_size(limits.max_file_bytes)} per file")
                if total > limits.max_total_bytes:
                    raise _refuse(member.name, f"takes the files past {_size(limits.max_total_bytes)} in all")
                source = archive.extractfile(member)
                if source is None:  # not reached: members other than regular files were refused
                    raise _refuse(member.name, "has no content")
                _make_dirs(target.parent, member.name)
                _write(target, source, 0o755 if member.mode & 0o111 else 0o644, member.name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleError(f"the bundle is not a valid tar.gz archive: {exc}", phase="unpack") from None


def _safe_name(member: tarfile.TarInfo) -> str | None:
    """The member's path inside the bundle, normalised; BundleError for anything that is not a plain file."""
    name = member.name
    if not (member.isfile() or member.isdir()):
        raise _refuse(name, f"is a {_kind(member)}; a bundle holds only regular files")
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        raise _refuse(name, "is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refuse(name, "climbs out of the bundle with '..'")
    if not parts:
        if member.isdir():
            return None
        raise _refuse(name, "has no file name")
    return "/".join(parts)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"hard link (to {member.linkname!r})"
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "FIFO"
    return f"special member (type {member.type!r})"


def _make_dirs(path: Path, member: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _refuse(member, "clashes with a file of the same name in the bundle") from None


def _write(path: Path, source: IO[bytes], mode: int, member: str) -> None:
    # O_EXCL and O_NOFOLLOW: the directory is new and holds nothing but what was written here.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise _refuse(member, "clashes with another member of the same name") from None
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(path, mode)  # the umask must not decide what the app can execute


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refuse(member: str, reason: str) -> BundleError:
    return BundleError(f"bundle member {member!r} {reason}; the bundle was refused", phase="unpack", path=member)


def _ignore_hint() -> str:
    return f"leave it out with a line in {IGNORE_FILE}"


def _size(size: int) -> str:
    if size >= _MB:
        return f"{size / _MB:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} kB"
    return f"{size} bytes"


class BundleStore:
    """Unpacked bundles by sha256 under `root`: `root/<sha256>/` holds the app's files."""

    def __init__(self, root: Path, *, limits: BundleLimits | None = None) -> None:
        self.root = Path(root)
        self.limits = limits or BundleLimits()

    def path(self, sha256: str) -> Path:
        """Where the bundle `sha256` is (or would be) unpacked."""
        return self.root / check_sha256(sha256)

    def has(self, sha256: str) -> bool:
        """Whether the bundle is unpacked here (a directory only ever appears complete)."""
        return self.path(sha256).is_dir()

    def put(self, data: bytes, sha256: str) -> Path:
        """Verify and unpack an uploaded bundle (see `unpack`); its directory. A second put is a no-op."""
        return unpack(data, sha256, self.path(sha256), limits=self.limits)

    def sweep(self, older_than: float = 3600.0) -> int:
        """Remove what interrupted unpacks left (older than `older_than` seconds); how many were removed.

        Call it when the server starts; recent ones may belong to an unpack running right now.
        """
        if not self.root.is_dir():
            return 0
        removed = 0
        cutoff = time.time() - older_than
        for entry in self.root.iterdir():
            if entry.name.startswith(PARTIAL_PREFIX) and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed
