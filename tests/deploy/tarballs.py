"""Hand-made tar.gz archives, hostile ones included, for tests of what the server accepts."""

from __future__ import annotations

import hashlib
import io
import tarfile

Member = tuple[tarfile.TarInfo, bytes | None]


def archive(members: list[Member], *, compresslevel: int = 6, pax: bool = True) -> bytes:
    """The tar.gz of `members`, as given (no checks: it may be anything a hostile client sends)."""
    buffer = io.BytesIO()
    tar_format = tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tar_format, compresslevel=compresslevel) as out:
        for info, content in members:
            out.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def file(name: str, content: bytes = b"x = 1\n", mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mode = mode
    return info, content


def directory(name: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, None


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def empty_files(count: int, *, then: list[Member] | None = None) -> bytes:
    """`count` empty files (then `then`): tiny compressed, and an inode each once unpacked."""
    members = [file(f"f{index}", b"") for index in range(count)]
    return archive([*members, *(then or [])], compresslevel=1)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
