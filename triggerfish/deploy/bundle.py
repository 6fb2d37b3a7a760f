"""App bundles: an app directory as one deterministic, content-addressed tar.gz, and the limits on one.

    bundle = pack(Path("shop"))                 # .data, .sha256, .files, .size

`pack` gives the same bytes, and so the same sha256, for the same files:
entries are sorted, and times, owners and modes are fixed (a file is 0644,
or 0755 when it was executable). What `.triggerfishignore` names is left
out, and so is what is never shipped (see `triggerfish.deploy.ignore`).
Symbolic links are followed when they stay inside the directory and refused
when they leave it, so a bundle holds only regular files.

`BundleLimits` are what the deployer's `pack` and the server's unpacking
(`triggerfish.deploy.archive`, `unpack`) both hold a bundle to; the server's
are its own settings (`triggerfish serve` config), so a deployer learns of a
limit before uploading only when both sides use the defaults.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
from dataclasses import dataclass, fields
from pathlib import Path

from triggerfish.deploy.ignore import IGNORE_FILE, IgnoreRules
from triggerfish.errors import BundleError

_MB = 1024 * 1024
#: Largest single file a bundle may hold.
DEFAULT_MAX_FILE_BYTES = 20 * _MB
#: Largest total of a bundle's files (uncompressed).
DEFAULT_MAX_BUNDLE_BYTES = 50 * _MB
#: Largest upload: the tar.gz as sent.
DEFAULT_MAX_UPLOAD_BYTES = 50 * _MB
#: Most members (files, and directories the archive lists) a bundle may hold: an archive of empty files is a
#: bomb of inodes, each written and synced.
DEFAULT_MAX_FILES = 10_000
#: Longest path inside a bundle, in bytes of UTF-8, and most directories deep.
DEFAULT_MAX_PATH_BYTES = 512
DEFAULT_MAX_DEPTH = 32
#: Most times a bundle may expand on unpacking (source code and tar headers come in near 5 to 20).
DEFAULT_MAX_RATIO = 100

_SHA256 = re.compile(r"[0-9a-f]{64}")
_APP_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


@dataclass(frozen=True, slots=True)
class BundleLimits:
    """Caps on a bundle, checked by `pack` and, on the server, before a byte of an upload is written.

    Every field is a positive int; ValueError names one that is not. On a
    server each is the setting `bundle_<field>` of `triggerfish serve`'s
    config file.
    """

    #: Largest single file, unpacked.
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    #: Largest total of the files, unpacked.
    max_total_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    #: Most members (files and directories).
    max_files: int = DEFAULT_MAX_FILES
    #: Largest tar.gz upload, refused with 413 as it streams past it.
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    #: Longest path of a member, in bytes.
    max_path_bytes: int = DEFAULT_MAX_PATH_BYTES
    #: Most path segments of a member (`lib/a/b.py` is 3).
    max_depth: int = DEFAULT_MAX_DEPTH
    #: Most times the unpacked archive may be larger than the compressed bytes read (checked past 1 MB).
    max_ratio: int = DEFAULT_MAX_RATIO

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"bundle limit {field.name} must be a whole number of at least 1, not {value!r}")


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
        where = str(self.root / relative)
        shown = where if where.isprintable() else repr(where)  # no terminal escapes from a file name
        return BundleError(f"{shown}: {message}", phase="pack", path=relative)

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
                f"is {size_text(size)}, over the limit of {size_text(limits.max_file_bytes)} per file; {_ignore_hint()}"
                " and fetch it at run time",
            )
        if self.total + size > limits.max_total_bytes:
            raise self._fail(
                relative,
                f"brings the app's files over the bundle limit of {size_text(limits.max_total_bytes)}; leave out"
                f" large data with {IGNORE_FILE}",
            )

    def _check_name(self, relative: str) -> None:
        """What the server refuses in a name, said before the upload."""
        limits = self.limits
        if any(ord(c) < 32 or ord(c) == 127 or 0xDC80 <= ord(c) <= 0xDCFF for c in relative):
            raise self._fail(
                relative, f"its name has a control character or is not UTF-8; rename it or {_ignore_hint()}"
            )
        if len(relative.encode()) > limits.max_path_bytes:
            raise self._fail(relative, f"its path is longer than {limits.max_path_bytes} bytes; {_ignore_hint()}")
        if relative.count("/") + 1 > limits.max_depth:
            raise self._fail(relative, f"is more than {limits.max_depth} directories deep; {_ignore_hint()}")

    def _add(self, relative: str, path: Path, info: os.stat_result) -> None:
        limits = self.limits
        if len(self.files) >= limits.max_files:
            raise self._fail(
                relative,
                f"the app has more than {limits.max_files} files; leave out what it does not need with {IGNORE_FILE}",
            )
        self._check_name(relative)
        # Checked before reading too, so a huge file is refused without being read into memory.
        self._check_size(relative, info.st_size)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise self._fail(relative, f"cannot be read: {exc.strerror or exc}") from None
        self._check_size(relative, len(content))
        self.total += len(content)
        self.files.append((relative, content, bool(info.st_mode & 0o111)))


def check_sha256(value: str) -> str:
    """`value` if it is a sha256 in lowercase hex; BundleError otherwise."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise BundleError(f"{value!r} is not a sha256: expected 64 lowercase hex digits", phase="unpack")
    return value


def app_segment(app: str) -> str:
    """`app` if it can name a directory of its own (one path segment); ValueError otherwise.

    The server's app names already are (letters, digits and `._:@-`, starting with a letter or digit); this
    is the last check before a name becomes part of a path.
    """
    if not isinstance(app, str) or not _APP_SEGMENT.fullmatch(app):
        raise ValueError(f"invalid app name {app!r}: it must be one path segment of letters, digits and ._:@-")
    return app


def _ignore_hint() -> str:
    return f"leave it out with a line in {IGNORE_FILE}"


def size_text(size: int) -> str:
    """A size in bytes as people read it: `812 bytes`, `3.2 kB`, `20.0 MB`."""
    if size >= _MB:
        return f"{size / _MB:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} kB"
    return f"{size} bytes"
