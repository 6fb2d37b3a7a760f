"""Unpacking an uploaded bundle on the server: the hash first, every member checked, then the files, read-only.

    app_dir = unpack(data, sha256, Path("bundles/shop") / sha256)

It trusts nothing it is given. The sha256 is checked before the archive is
read. Then the archive is read twice: once to check every member and the
whole (`triggerfish.deploy.archive`: kinds, names, counts, sizes, the
compression ratio) without writing anything, so a bundle over a limit is
refused after reading up to the member past it, and nothing is written for
it; then to write the files into a temporary directory beside the final one,
which is renamed into place only once every file is written and synced.
Files are 0444 (0555 when executable) and directories 0555: a version's code
is not changed by the app it runs, nor by anything else of the server's but
a deploy. An interrupted unpack leaves nothing under the final name, and
unpacking a bundle that is already there is a no-op.

This is blocking work (a large bundle takes a second): the server runs it
in a thread, off its event loop.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO

from triggerfish.deploy.archive import read_members
from triggerfish.deploy.bundle import BundleLimits, check_sha256, size_text
from triggerfish.errors import BundleError

#: Prefix of the temporary directories `unpack` writes into, beside the final one.
PARTIAL_PREFIX = ".unpacking-"
FILE_MODE = 0o444
EXECUTABLE_MODE = 0o555
DIR_MODE = 0o555
_CHUNK = 1024 * 1024


def unpack(data: bytes | IO[bytes], expected_sha256: str, into: Path, *, limits: BundleLimits | None = None) -> Path:
    """Check `data` against `expected_sha256` and `limits`, then extract it as the directory `into`; returns `into`.

    `data` is the tar.gz, as bytes or a binary file open for reading (read
    from its start). When `into` already exists the bundle is taken as
    unpacked (it only ever appears complete) and nothing is written. Raises
    BundleError (phase "unpack", `path` naming the member where there is
    one) for a hash mismatch, an upload over `max_upload_bytes`, an archive
    that is not a tar.gz, or any member `triggerfish.deploy.archive` refuses.
    """
    limits = limits or BundleLimits()
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    check_archive(source, expected_sha256, limits)
    into = Path(into)
    if into.is_dir():
        return into
    into.parent.mkdir(parents=True, exist_ok=True)
    return publish(extract(source, into.parent, expected_sha256[:12], limits), into)


def file_sha256(source: IO[bytes]) -> str:
    """The sha256 (hex) of everything in `source`, from its start."""
    source.seek(0)
    digest = hashlib.sha256()
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def check_archive(source: IO[bytes], expected_sha256: str, limits: BundleLimits) -> None:
    """Everything `unpack` checks before it writes: the hash, the upload size, every member; BundleError if not."""
    check_sha256(expected_sha256)
    size = source.seek(0, os.SEEK_END)
    if size > limits.max_upload_bytes:
        raise BundleError(
            f"the bundle is {size_text(size)}, over the limit of {size_text(limits.max_upload_bytes)}"
            " (max_upload_bytes)",
            phase="unpack",
        )
    actual = file_sha256(source)
    if actual != expected_sha256:
        raise BundleError(
            f"the bundle's sha256 is {actual}, not {expected_sha256}: it was damaged or cut short on the way;"
            " upload it again",
            phase="unpack",
        )
    source.seek(0)
    for _ in read_members(source, limits):
        pass  # each member is checked as it is read; its content is skipped


def extract(source: IO[bytes], parent: Path, label: str, limits: BundleLimits) -> Path:
    """Write the checked members of `source` into a new directory in `parent`, read-only; that directory.

    Call `check_archive` first: this checks again as it goes (it reads the
    same stream), but a bundle refused here has had files written. On any
    error the directory is removed.
    """
    partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{label}-", dir=parent))
    try:
        source.seek(0)
        directories = {partial}
        for member, content in read_members(source, limits):
            target = partial / member.name
            if content is None:
                target.mkdir(parents=True, exist_ok=True)
                directories.add(target)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            directories.update(target.parents[: len(Path(member.name).parents) - 1])
            _write(target, content, EXECUTABLE_MODE if member.executable else FILE_MODE)
        # Deepest first: a directory made read-only takes no new entries, its own included.
        for directory in sorted(directories, key=lambda path: len(path.parts), reverse=True):
            directory.chmod(DIR_MODE)
        # One sync for every file and directory: an fsync per file costs a journal commit each, 20 s for
        # 25,000 files here against 2 s in all this way.
        os.sync()
    except BaseException:
        remove_tree(partial)
        raise
    return partial


def publish(partial: Path, into: Path) -> Path:
    """Rename the complete directory `partial` to `into`; when another unpack got there first, keep that one."""
    try:
        partial.rename(into)
    except OSError:
        remove_tree(partial)
        if not into.is_dir():
            raise
        return into  # the same bundle, unpacked by a concurrent upload: the same files
    _fsync_dir(into.parent)
    return into


def make_read_only(tree: Path) -> None:
    """Give `tree` the modes of an unpacked bundle: files 0444 (0555 when executable), directories 0555."""
    for directory, _, files in os.walk(tree, topdown=False):
        for name in files:
            path = Path(directory, name)
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                path.chmod(EXECUTABLE_MODE if info.st_mode & 0o111 else FILE_MODE)
        os.chmod(directory, DIR_MODE)


def remove_tree(path: Path) -> None:
    """Remove `path` and everything under it, read-only directories included; no error if it is gone."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():
        for directory, _, _ in os.walk(path):
            os.chmod(directory, stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)


def _write(path: Path, source: IO[bytes], mode: int) -> None:
    # O_EXCL and O_NOFOLLOW: the directory is new and holds nothing but what was written here.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out)
    os.chmod(path, mode)  # the umask must not decide the modes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
