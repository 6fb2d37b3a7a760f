"""A version is what its hash says: an unpacked bundle checked against the archive it came from.

    verify_tree(Path("bundles/shop/<sha>.tar.gz"), Path("bundles/shop/<sha>"), sha)

The archive is kept beside the unpacked tree. Before a version is loaded
(a deploy, a restart, a rollback to a version not loaded), the archive's
sha256 must still be the bundle's name, and the tree must hold exactly the
archive's files: the same paths and contents, the same modes (0444, 0555
for executables and directories), owned by the server, and nothing else (no
added module that would shadow another on the app's path, no link). Any
difference raises TamperedBundleError naming what differs; the server then
refuses to serve the version rather than run code nobody deployed.

One exception: `__pycache__` directories the archive does not hold are
bytecode Python wrote while importing the app (possible only when the
server runs as root without the box). They are removed, not trusted: a
cache can always be written again, and a `.pyc` planted there would run.

Blocking work: the server runs it in a thread.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from triggerfish.deploy.archive import read_members
from triggerfish.deploy.bundle import BundleLimits, check_sha256
from triggerfish.deploy.unpack import DIR_MODE, EXECUTABLE_MODE, FILE_MODE, file_sha256, remove_tree
from triggerfish.errors import BundleError

BYTECODE_CACHE = "__pycache__"
#: How many differences an error names.
_SHOWN = 5


class TamperedBundleError(BundleError):
    """An unpacked bundle no longer matches its archive (or the archive its hash); `differences` says how."""

    def __init__(self, message: str, *, differences: list[str]) -> None:
        self.differences = differences
        super().__init__(message, phase="unpack")


def verify_tree(archive: Path, tree: Path, sha256: str, *, limits: BundleLimits | None = None) -> None:
    """Check that `tree` is exactly what `archive` unpacks to, and `archive` is the bundle `sha256`.

    Raises TamperedBundleError naming up to five differences; BundleError if
    the archive cannot be read as a bundle within `limits` (it was checked
    when it was uploaded, so that too means it changed).
    """
    check_sha256(sha256)
    limits = limits or BundleLimits()
    try:
        source = archive.open("rb")
    except OSError as exc:
        raise _tampered(tree, sha256, [f"its archive {archive.name} cannot be read ({exc.strerror})"]) from None
    with source:
        if file_sha256(source) != sha256:
            raise _tampered(tree, sha256, [f"its archive {archive.name} no longer has that sha256"])
        source.seek(0)
        expected: dict[str, tuple[str, int]] = {}
        for member, content in read_members(source, limits):
            if content is None:
                expected[member.name] = ("dir", DIR_MODE)
                continue
            for parent in Path(member.name).parents[:-1]:
                expected.setdefault(parent.as_posix(), ("dir", DIR_MODE))
            digest = hashlib.sha256()
            while chunk := content.read(1024 * 1024):
                digest.update(chunk)
            expected[member.name] = (digest.hexdigest(), EXECUTABLE_MODE if member.executable else FILE_MODE)
    _drop_bytecode_caches(tree, expected)
    differences = _compare(tree, expected)
    if differences:
        raise _tampered(tree, sha256, differences)


def _compare(tree: Path, expected: dict[str, tuple[str, int]]) -> list[str]:
    owner = os.geteuid()
    try:
        differences = _differences("the bundle's directory", tree, ("dir", DIR_MODE), owner)
    except OSError as exc:
        return [f"the directory cannot be read ({exc.strerror})"]
    seen: set[str] = set()
    for directory, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            path = Path(directory, name)
            relative = path.relative_to(tree).as_posix()
            seen.add(relative)
            wanted = expected.get(relative)
            if wanted is None:
                differences.append(f"{relative} was added")
            else:
                differences.extend(_differences(relative, path, wanted, owner))
        dirs[:] = [name for name in dirs if not Path(directory, name).is_symlink()]
    differences.extend(f"{name} is missing" for name in sorted(set(expected) - seen))
    return differences


def _differences(relative: str, path: Path, wanted: tuple[str, int], owner: int) -> list[str]:
    """How the entry at `path` differs from what the archive says (`wanted`: digest or "dir", and mode)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return [f"{relative} was replaced by a symbolic link"]
    is_dir = stat.S_ISDIR(info.st_mode)
    if (wanted[0] == "dir") != is_dir or not (is_dir or stat.S_ISREG(info.st_mode)):
        return [f"{relative} changed kind"]
    found = []
    if not is_dir and _file_digest(path) != wanted[0]:
        found.append(f"{relative} has other content")
    if stat.S_IMODE(info.st_mode) != wanted[1]:
        found.append(f"{relative} is mode {stat.S_IMODE(info.st_mode):o}, not {wanted[1]:o}")
    if info.st_uid != owner:
        found.append(f"{relative} is owned by uid {info.st_uid}, not the server's")
    return found


def _drop_bytecode_caches(tree: Path, expected: dict[str, tuple[str, int]]) -> None:
    for directory, dirs, _ in os.walk(tree):
        for name in list(dirs):
            path = Path(directory, name)
            if name == BYTECODE_CACHE and path.relative_to(tree).as_posix() not in expected and not path.is_symlink():
                parent_mode = stat.S_IMODE(os.stat(directory).st_mode)
                os.chmod(directory, parent_mode | stat.S_IWUSR)
                try:
                    remove_tree(path)
                finally:
                    os.chmod(directory, parent_mode)
                dirs.remove(name)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
    except OSError:
        return ""
    return digest.hexdigest()


def _tampered(tree: Path, sha256: str, differences: list[str]) -> TamperedBundleError:
    shown = "; ".join(differences[:_SHOWN])
    if len(differences) > _SHOWN:
        shown += f"; and {len(differences) - _SHOWN} more"
    return TamperedBundleError(
        f"the unpacked bundle {sha256[:12]} in {tree} does not match what was deployed: {shown}. It is not"
        " served; deploy the app again (a new upload unpacks it afresh) once you know who changed it",
        differences=differences,
    )
