"""Reading a bundle someone else made: the members of an untrusted tar.gz, each checked against the limits.

    with open(path, "rb") as source:
        for member, content in read_members(source, BundleLimits()):
            ...                                   # content is None for a directory

The archive is read as a stream, once, front to back, and every byte
tarfile sees has passed through `_Inflater`, which counts what gzip expands
to: past the limit on the unpacked size, or past `max_ratio` times the
compressed bytes read so far (a decompression bomb), reading stops at once,
even inside a member's header. Each member is checked before its content is
read: its kind (regular files and directories only: no links, devices,
FIFOs or sparse files), its name (relative, no `..`, UTF-8 without control
characters, within the path length and depth limits, no component longer
than a file system allows), clashes (a name twice, a file where a directory
is), and the running count and sizes. The first member past any limit stops
the read with BundleError naming the member and the limit; the rest of the
archive is never read.

Pure apart from reading `source`: nothing is written.
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from triggerfish.deploy.bundle import BundleLimits, size_text
from triggerfish.errors import BundleError

#: Compressed bytes read from the source at a time.
_CHUNK = 64 * 1024
#: Below this many unpacked bytes the ratio is not checked: a small file of zeros is no bomb.
RATIO_FLOOR = 1024 * 1024
#: Longest file or directory name most file systems take, in bytes.
NAME_MAX = 255
_TAR_BLOCK = 512


@dataclass(frozen=True, slots=True)
class Member:
    """A checked member: its normalised path inside the bundle, and what it is."""

    name: str
    is_dir: bool
    size: int
    executable: bool


def read_members(source: IO[bytes], limits: BundleLimits) -> Iterator[tuple[Member, IO[bytes] | None]]:
    """Each member of the tar.gz in `source`, checked, with a reader of its content (None for a directory).

    Read a member's content before asking for the next: the archive is a
    stream. Raises BundleError (phase "unpack") at the first member or byte
    past `limits`, for a member that is not a plain file or directory or
    whose name is unsafe, and for data that is not a tar.gz.
    """
    checker = _Checker(limits)
    try:
        with tarfile.open(fileobj=_Inflater(source, limits), mode="r|") as archive:  # type: ignore[call-overload]
            for info in archive:
                member = checker.check(info)
                if member is None:
                    continue
                yield member, None if member.is_dir else archive.extractfile(info)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BundleError(f"the bundle is not a valid tar.gz archive: {exc}", phase="unpack") from None


class _Inflater:
    """The bytes gzip expands `source` to, refused past a total size or a compression ratio.

    tarfile reads through it in small pieces (it asks for a header, then
    skips or reads content), so a limit stops the read within one piece.
    """

    def __init__(self, source: IO[bytes], limits: BundleLimits) -> None:
        self.source = source
        self.inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing, checked
        self.limits = limits
        # Headers are not files but are unpacked too: allow each member's (a PAX header for a long name
        # included) and the end-of-archive padding on top of the files' own limit.
        self.cap = limits.max_total_bytes + limits.max_files * (3 * _TAR_BLOCK + 2 * limits.max_path_bytes) + 20480
        self.pending = b""
        self.taken = 0
        self.produced = 0
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = _CHUNK
        parts: list[bytes] = []
        wanted = size
        while wanted > 0 and not self.ended:
            if not self.pending:
                self.pending = self.source.read(_CHUNK)
                self.taken += len(self.pending)
                if not self.pending:
                    break  # cut short: tarfile says the archive ended too early
            piece = self.inflate.decompress(self.pending, wanted)
            self.pending = self.inflate.unconsumed_tail
            self.ended = self.inflate.eof  # what follows the gzip stream is not part of the bundle
            self._count(len(piece))
            parts.append(piece)
            wanted -= len(piece)
        return b"".join(parts)

    def _count(self, produced: int) -> None:
        self.produced += produced
        if self.produced > self.cap:
            raise BundleError(
                f"the bundle expands to more than {size_text(self.cap)} (max_total_bytes of"
                f" {size_text(self.limits.max_total_bytes)}, plus its tar headers); the bundle was refused",
                phase="unpack",
            )
        consumed = max(self.taken - len(self.pending), 1)
        if self.produced > RATIO_FLOOR and self.produced > self.limits.max_ratio * consumed:
            raise BundleError(
                f"the bundle expands more than {self.limits.max_ratio} times (max_ratio): {size_text(consumed)}"
                f" became {size_text(self.produced)} so far, as a decompression bomb does; leave highly"
                " repetitive data out of the bundle (.triggerfishignore) and fetch it at run time; the bundle was"
                " refused",
                phase="unpack",
            )


class _Checker:
    """The running checks across members: count, sizes, names seen, clashes."""

    def __init__(self, limits: BundleLimits) -> None:
        self.limits = limits
        self.members = 0
        self.total = 0
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def check(self, info: tarfile.TarInfo) -> Member | None:
        """The member as it will be unpacked, None for the archive's own top directory; BundleError if refused."""
        limits = self.limits
        self.members += 1
        if self.members > limits.max_files:
            raise _refuse(info.name, f"is past the limit of {limits.max_files} members per bundle (max_files)")
        name = _safe_name(info, limits)
        if name is None:
            return None
        parents = _parents(name)
        clash = next((parent for parent in parents if parent in self.files), None)
        if clash is not None:
            raise _refuse(info.name, f"is inside {clash!r}, which the bundle holds as a file")
        if info.isdir():
            if name in self.files:
                raise _refuse(info.name, "clashes with a file of the same name in the bundle")
            self.dirs.update(parents, (name,))
            return Member(name, True, 0, False)
        if name in self.files:
            raise _refuse(info.name, "appears twice in the bundle")
        if name in self.dirs:
            raise _refuse(info.name, "clashes with a directory of the same name in the bundle")
        if info.size > limits.max_file_bytes:
            raise _refuse(info.name, f"is {size_text(info.size)}, over {size_text(limits.max_file_bytes)} per file")
        self.total += info.size
        if self.total > limits.max_total_bytes:
            raise _refuse(info.name, f"takes the files past {size_text(limits.max_total_bytes)} in all")
        self.files.add(name)
        self.dirs.update(parents)
        return Member(name, False, info.size, bool(info.mode & 0o111))


def _safe_name(info: tarfile.TarInfo, limits: BundleLimits) -> str | None:
    """The member's path inside the bundle, normalised; BundleError for anything that is not a plain file."""
    name = info.name
    if not (info.isfile() or info.isdir()) or info.issparse():
        raise _refuse(name, f"is a {_kind(info)}; a bundle holds only regular files")
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in name):  # how tarfile keeps bytes that are not UTF-8
        raise _refuse(name, "has a name that is not UTF-8")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _refuse(name, "has a control character in its name")
    if name.startswith("/"):
        raise _refuse(name, "is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refuse(name, "climbs out of the bundle with '..'")
    if not parts:
        if info.isdir():
            return None
        raise _refuse(name, "has no file name")
    normal = "/".join(parts)
    if len(normal.encode()) > limits.max_path_bytes:
        raise _refuse(name, f"has a path longer than {limits.max_path_bytes} bytes (max_path_bytes)")
    if len(parts) > limits.max_depth:
        raise _refuse(name, f"is {len(parts)} levels deep, past the limit of {limits.max_depth} (max_depth)")
    if any(len(part.encode()) > NAME_MAX for part in parts):
        raise _refuse(name, f"has a file or directory name longer than {NAME_MAX} bytes")
    return normal


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:end]) for end in range(1, len(parts))]


def _kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"symbolic link (to {info.linkname!r})"
    if info.islnk():
        return f"hard link (to {info.linkname!r})"
    if info.ischr():
        return "character device"
    if info.isblk():
        return "block device"
    if info.isfifo():
        return "FIFO"
    if info.issparse():
        return "sparse file"
    return f"special member (type {info.type!r})"


def _refuse(member: str, reason: str) -> BundleError:
    return BundleError(f"bundle member {member!r} {reason}; the bundle was refused", phase="unpack", path=member)
