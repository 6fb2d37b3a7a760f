"""Unpacking trusts nothing: every hostile member is refused by name, every limit by name, before anything is
written; a bundle over a limit is refused without reading past the member that broke it; what is unpacked is
read-only."""

from __future__ import annotations

import io
import tarfile
import zlib
from pathlib import Path

import pytest

from tests.deploy.tarballs import Member, archive, directory, empty_files, file, sha, special
from triggerfish.deploy.archive import read_members
from triggerfish.deploy.bundle import BundleLimits
from triggerfish.deploy.unpack import PARTIAL_PREFIX, make_read_only, remove_tree, unpack
from triggerfish.errors import BundleError

HOSTILE: dict[str, tuple[list[Member], str]] = {
    "absolute": ([file("app.py"), file("/etc/cron.d/evil")], "'/etc/cron.d/evil' is an absolute path"),
    "dot-dot": ([file("app.py"), file("lib/../../escape.py")], r"'lib/../../escape.py' climbs out"),
    "dot-dot-dir": ([directory("../outside")], r"'../outside' climbs out"),
    "symlink": ([file("app.py"), special("passwd", tarfile.SYMTYPE, "/etc/passwd")], r"'passwd' is a symbolic link"),
    "symlink-dir": ([special("lib", tarfile.SYMTYPE, "/etc"), file("lib/x.py")], r"'lib' is a symbolic link"),
    "hardlink": ([file("app.py"), special("shadow", tarfile.LNKTYPE, "/etc/shadow")], r"'shadow' is a hard link"),
    "char-device": ([file("app.py"), special("tty", tarfile.CHRTYPE)], r"'tty' is a character device"),
    "block-device": ([file("app.py"), special("sda", tarfile.BLKTYPE)], r"'sda' is a block device"),
    "fifo": ([file("app.py"), special("pipe", tarfile.FIFOTYPE)], r"'pipe' is a FIFO"),
    "duplicate": ([file("app.py"), file("./app.py", b"evil = 1\n")], r"'./app.py' appears twice"),
    "file-then-dir": ([file("lib"), file("lib/x.py")], r"'lib/x.py' is inside 'lib', which the bundle holds as a"),
    "dir-then-file": ([file("lib/x.py"), file("lib")], r"'lib' clashes with a directory"),
    "file-then-dir-entry": ([file("lib"), directory("lib")], r"'lib' clashes with a file"),
    "control-character": ([file("app.py\n.py")], r"has a control character in its name"),
    "too-deep": ([file("a/" * 40 + "x.py")], r"is 41 levels deep, past the limit of 32 \(max_depth\)"),
    "long-path": ([file("/".join(["d" * 100] * 6))], r"has a path longer than 512 bytes \(max_path_bytes\)"),
    "long-name": ([file("x" * 300)], r"has a file or directory name longer than 255 bytes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_members_are_refused_by_name_before_anything_is_written(tmp_path: Path, case: str) -> None:
    members, expected = HOSTILE[case]
    data = archive(members)
    into = tmp_path / "bundles" / "b"
    with pytest.raises(BundleError, match=expected) as caught:
        unpack(data, sha(data), into)
    assert caught.value.phase == "unpack"
    assert caught.value.path
    assert "the bundle was refused" in str(caught.value)
    assert not (tmp_path / "bundles").exists()  # checked before a directory was even made
    assert not (tmp_path / "escape.py").exists()


def test_a_name_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo("caf\udce9.py")  # the byte 0xE9 alone, as tarfile keeps bytes it cannot decode
    info.size = 0
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT, errors="surrogateescape") as out:
        out.addfile(info, io.BytesIO(b""))
    data = buffer.getvalue()
    with pytest.raises(BundleError, match="has a name that is not UTF-8"):
        unpack(data, sha(data), tmp_path / "b")


def _with_pax(member: Member, headers: dict[str, str]) -> Member:
    member[0].pax_headers = headers
    return member


LIMITS: dict[str, tuple[bytes, BundleLimits, str]] = {
    "members": (empty_files(50), BundleLimits(max_files=10), r"'f10' is past the limit of 10 members per bundle"),
    "directory-members": (
        archive([directory(f"d{i}") for i in range(20)]),
        BundleLimits(max_files=5),
        r"'d5' is past the limit of 5 members",
    ),
    "file-size": (
        archive([file("a.bin", b"a" * 3000)]),
        BundleLimits(max_file_bytes=2048),
        r"'a.bin' is 2.9 kB, over 2.0 kB per file",
    ),
    "total-size": (
        archive([file("a.bin", b"a" * 3000), file("b.bin", b"b" * 3000)]),
        BundleLimits(max_total_bytes=5000),
        r"'b.bin' takes the files past 4.9 kB in all",
    ),
    "ratio": (
        archive([file("zeros.bin", bytes(8 * 1024 * 1024))], compresslevel=9),
        BundleLimits(),
        r"the bundle expands more than 100 times \(max_ratio\)",
    ),
    "header-bomb": (
        # 3 MB of PAX header for one empty file: no file is large, but the archive expands past what its
        # files and headers may add up to.
        archive([(_with_pax(file("a.py", b""), {"comment": "a" * 3_000_000}))]),
        BundleLimits(max_total_bytes=1024 * 1024, max_files=10, max_ratio=1_000_000),
        r"the bundle expands to more than 1.0 MB \(max_total_bytes of 1.0 MB, plus its tar headers\)",
    ),
    "upload-size": (
        archive([file("app.py")]),
        BundleLimits(max_upload_bytes=64),
        r"the bundle is \d+ bytes, over the limit of 64 bytes \(max_upload_bytes\)",
    ),
}


@pytest.mark.parametrize("case", sorted(LIMITS))
def test_each_limit_refuses_a_bundle_naming_the_limit(tmp_path: Path, case: str) -> None:
    data, limits, expected = LIMITS[case]
    with pytest.raises(BundleError, match=expected):
        unpack(data, sha(data), tmp_path / "bundles" / "b", limits=limits)
    assert not (tmp_path / "bundles").exists()


class CountingReader(io.BytesIO):
    """A file whose reads are counted: how far into the archive did unpacking go?"""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def test_a_bundle_past_a_limit_is_refused_without_reading_the_rest(tmp_path: Path) -> None:
    data = empty_files(40_000)
    source = CountingReader(data)
    with pytest.raises(BundleError, match="'f100' is past the limit of 100 members"):
        for _ in read_members(source, BundleLimits(max_files=100)):
            pass
    # One read of 64 kB held the first 101 members; the other 300 kB were never read.
    assert source.taken <= 64 * 1024 < len(data) // 4


@pytest.mark.parametrize(
    "data",
    [
        b"not a tarball at all",
        archive([file("app.py", b"y" * 5000)])[:60],
        zlib.compress(b"a zlib stream, not gzip"),
        archive([file("app.py")])[:-8] + b"\0" * 8,  # a damaged gzip trailer
    ],
    ids=["garbage", "truncated", "zlib", "bad-trailer"],
)
def test_what_is_not_a_tar_gz_is_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(BundleError, match=r"not a valid tar\.gz archive"):
        unpack(data, sha(data), tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_what_follows_the_gzip_stream_is_not_part_of_the_bundle(tmp_path: Path) -> None:
    data = archive([file("app.py", b"good = 1\n")]) + archive([file("evil.py")])
    out = unpack(data, sha(data), tmp_path / "b")
    assert sorted(p.name for p in out.iterdir()) == ["app.py"]


def test_a_refused_bundle_never_leaves_a_partial_directory(tmp_path: Path) -> None:
    good = [file(f"mod{i}.py") for i in range(20)]
    data = archive([*good, special("late", tarfile.SYMTYPE, "/")])
    into = tmp_path / "bundles" / "b"
    with pytest.raises(BundleError, match="'late' is a symbolic link"):
        unpack(data, sha(data), into)
    assert not (tmp_path / "bundles").exists()


def test_unpacked_files_are_read_only_and_directories_too(tmp_path: Path) -> None:
    data = archive([directory("lib"), file("lib/a.py"), file("run.sh", b"#!/bin/sh\n", mode=0o775), file("x/y/z.txt")])
    out = unpack(data, sha(data), tmp_path / "bundles" / "b")
    modes = {p.relative_to(out).as_posix(): p.stat().st_mode & 0o7777 for p in out.rglob("*")}
    assert modes == {"lib": 0o555, "lib/a.py": 0o444, "run.sh": 0o555, "x": 0o555, "x/y": 0o555, "x/y/z.txt": 0o444}
    assert out.stat().st_mode & 0o7777 == 0o555
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(PARTIAL_PREFIX)] == []
    remove_tree(out)  # read-only is no obstacle to the server removing its own bundle
    assert not out.exists()


def test_make_read_only_gives_a_tree_the_modes_of_an_unpacked_bundle(tmp_path: Path) -> None:
    (tmp_path / "t" / "lib").mkdir(parents=True)
    (tmp_path / "t" / "lib" / "a.py").write_text("")
    (tmp_path / "t" / "run.sh").write_text("")
    (tmp_path / "t" / "run.sh").chmod(0o700)
    make_read_only(tmp_path / "t")
    modes = {p.name: p.stat().st_mode & 0o7777 for p in (tmp_path / "t").rglob("*")}
    assert modes == {"lib": 0o555, "a.py": 0o444, "run.sh": 0o555}
    remove_tree(tmp_path / "t")
