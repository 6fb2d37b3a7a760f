"""Bundles: the same files give the same bytes; ignore rules and the fixed exclusions hold; links, special
files and sizes are checked with precise errors; unpacking verifies the hash, refuses every hostile member
by name, and never leaves a half-written directory behind."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from triggerfish.deploy.bundle import BundleLimits, pack
from triggerfish.deploy.unpack import PARTIAL_PREFIX, unpack
from triggerfish.errors import BundleError, DeployError


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


APP_FILES: dict[str, str | bytes] = {
    "app.py": "import triggerfish\napp = triggerfish.App('shop')\n",
    "requirements.txt": "orjson\n",
    "lib/prices.py": "RATE = 2\n",
    "data/blob.bin": bytes(range(256)) * 8,
}


def _app(root: Path) -> Path:
    return _write(root, APP_FILES)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _partials(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(PARTIAL_PREFIX)] if parent.exists() else []


# --- pack ------------------------------------------------------------------------------------------


def test_the_same_files_give_the_same_bytes_wherever_and_whenever_they_were_written(tmp_path: Path) -> None:
    first = pack(_app(tmp_path / "one"))
    second_dir = _app(tmp_path / "two")
    old = time.time() - 86400
    for path in second_dir.rglob("*"):
        os.utime(path, (old, old))
    second = pack(second_dir)
    assert first.data == second.data
    assert first.sha256 == second.sha256 == hashlib.sha256(first.data).hexdigest()
    assert first.size == len(first.data)
    assert first.files == ["app.py", "data/blob.bin", "lib/prices.py", "requirements.txt"]
    assert first.source_bytes == sum(len(c) for c in APP_FILES.values())
    (second_dir / "lib" / "prices.py").write_text("RATE = 3\n", encoding="utf-8")
    assert pack(second_dir).sha256 != first.sha256


def test_members_have_fixed_owners_times_and_modes(tmp_path: Path) -> None:
    root = _app(tmp_path / "app")
    (root / "run.sh").write_text("#!/bin/sh\n", encoding="utf-8")
    (root / "run.sh").chmod(0o750)
    (root / "app.py").chmod(0o600)
    with tarfile.open(fileobj=io.BytesIO(pack(root).data), mode="r:gz") as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members.values()} == {(0, 0, "", "", 0)}
    assert members["run.sh"].mode == 0o755
    assert members["app.py"].mode == 0o644
    assert all(m.isfile() for m in members.values())


def test_what_is_never_shipped_stays_out_and_the_ignore_file_is_honoured(tmp_path: Path) -> None:
    root = _app(tmp_path / "app")
    _write(
        root,
        {
            ".git/HEAD": "ref: refs/heads/main\n",
            "__pycache__/app.cpython-311.pyc": b"\0",
            "lib/__pycache__/prices.cpython-311.pyc": b"\0",
            "lib/stale.pyc": b"\0",
            ".venv/bin/python": "#",
            "env/pyvenv.cfg": "home = /usr/bin\n",  # a virtualenv under another name
            "env/lib/site.py": "",
            ".triggerfish/store.db": b"\0",
            "build/out.txt": "x",
            "logs/a.log": "x",
            "logs/keep.log": "x",
            "notes/draft.md": "x",
            "nested/build/deep.txt": "x",
            ".triggerfishignore": "# comments and blank lines are fine\n\nbuild/\n*.log\n!keep.log\n/notes\n!.git/\n",
        },
    )
    bundle = pack(root)
    assert bundle.files == [
        ".triggerfishignore",
        "app.py",
        "data/blob.bin",
        "lib/prices.py",
        "logs/keep.log",
        "requirements.txt",
    ]


def test_a_file_in_an_ignored_directory_cannot_be_brought_back(tmp_path: Path) -> None:
    root = _write(tmp_path / "app", {"app.py": "", "vendor/a.py": "", "vendor/b.py": ""})
    (root / ".triggerfishignore").write_text("vendor/\n!vendor/a.py\n", encoding="utf-8")
    assert pack(root).files == [".triggerfishignore", "app.py"]
    (root / ".triggerfishignore").write_text("vendor/*\n!vendor/a.py\n", encoding="utf-8")
    assert pack(root).files == [".triggerfishignore", "app.py", "vendor/a.py"]


def test_a_bad_ignore_line_is_named_with_its_line_number(tmp_path: Path) -> None:
    root = _app(tmp_path / "app")
    (root / ".triggerfishignore").write_text("build/\nfoo\\\n", encoding="utf-8")
    with pytest.raises(BundleError, match=r"\.triggerfishignore:2: 'foo\\\\' is not a gitignore pattern"):
        pack(root)


def test_links_inside_the_directory_are_followed_and_stored_as_files(tmp_path: Path) -> None:
    root = _app(tmp_path / "app")
    (root / "current.py").symlink_to("lib/prices.py")
    (root / "shared").symlink_to("lib", target_is_directory=True)
    bundle = pack(root)
    assert "current.py" in bundle.files
    assert "shared/prices.py" in bundle.files
    out = unpack(bundle.data, bundle.sha256, tmp_path / "out")
    assert (out / "current.py").read_text(encoding="utf-8") == "RATE = 2\n"
    assert not (out / "current.py").is_symlink()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root, outside: (root / "secrets").symlink_to(outside), r"secrets: symbolic link to .*outside the app"),
        (
            lambda root, _o: (root / "gone.py").symlink_to("nowhere.py"),
            r"gone.py: symbolic link to 'nowhere.py', which",
        ),
        (lambda root, _o: (root / "lib" / "loop").symlink_to(".."), r"lib/loop: symbolic link to '..' makes a loop"),
        (lambda root, _o: os.mkfifo(root / "pipe"), r"pipe: not a regular file"),
    ],
    ids=["outside", "dangling", "loop", "fifo"],
)
def test_links_leaving_the_directory_and_special_files_are_refused(
    tmp_path: Path, make: Callable[[Path, Path], None], expected: str
) -> None:
    outside = _write(tmp_path / "outside", {"key.pem": "secret"})
    root = _app(tmp_path / "app")
    make(root, outside)
    with pytest.raises(BundleError, match=expected) as caught:
        pack(root)
    assert caught.value.phase == "pack"
    assert ".triggerfishignore" in str(caught.value)


def test_an_ignored_link_to_the_outside_is_no_trouble(tmp_path: Path) -> None:
    outside = _write(tmp_path / "outside", {"key.pem": "secret"})
    root = _app(tmp_path / "app")
    (root / "secrets").symlink_to(outside)
    (root / ".triggerfishignore").write_text("secrets\n", encoding="utf-8")
    assert "secrets/key.pem" not in pack(root).files


def test_size_and_count_limits_name_the_file(tmp_path: Path) -> None:
    root = _app(tmp_path / "app")
    with pytest.raises(BundleError, match=r"data/blob.bin: is 2.0 kB, over the limit of 1.0 kB per file") as caught:
        pack(root, limits=BundleLimits(max_file_bytes=1024))
    assert caught.value.path == "data/blob.bin"
    with pytest.raises(BundleError, match=r"over the bundle limit of 2.0 kB"):
        pack(root, limits=BundleLimits(max_total_bytes=2048))
    with pytest.raises(BundleError, match=r"more than 3 files"):
        pack(root, limits=BundleLimits(max_files=3))


def test_packing_something_that_is_not_a_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="is not a directory"):
        pack(tmp_path / "missing")


# --- unpack ----------------------------------------------------------------------------------------


def test_unpack_gives_back_the_files_and_their_executable_bit(tmp_path: Path) -> None:
    root = _app(tmp_path / "app")
    (root / "run.sh").write_text("#!/bin/sh\n", encoding="utf-8")
    (root / "run.sh").chmod(0o700)
    bundle = pack(root)
    out = unpack(bundle.data, bundle.sha256, tmp_path / "bundles" / bundle.sha256)
    assert out == tmp_path / "bundles" / bundle.sha256
    assert _tree(out) == _tree(root)
    # Read-only: the version's code is changed by nothing but a deploy.
    assert (out / "run.sh").stat().st_mode & 0o777 == 0o555
    assert (out / "app.py").stat().st_mode & 0o777 == 0o444
    assert {p.stat().st_mode & 0o777 for p in [out, *out.rglob("*")] if p.is_dir()} == {0o555}
    assert {p.stat().st_uid for p in out.rglob("*")} == {os.geteuid()}
    assert _partials(out.parent) == []


def test_a_hash_mismatch_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bundle = pack(_app(tmp_path / "app"))
    into = tmp_path / "bundles" / bundle.sha256
    with pytest.raises(BundleError, match="damaged or cut short") as caught:
        unpack(bundle.data[:-10], bundle.sha256, into)
    assert caught.value.phase == "unpack"
    assert isinstance(caught.value, DeployError)
    assert not (tmp_path / "bundles").exists()


def test_unpacking_an_unpacked_bundle_again_changes_nothing(tmp_path: Path) -> None:
    bundle = pack(_app(tmp_path / "app"))
    into = tmp_path / "bundles" / bundle.sha256
    unpack(bundle.data, bundle.sha256, into)
    before = {p: p.stat().st_mtime_ns for p in into.rglob("*")}
    assert unpack(bundle.data, bundle.sha256, into) == into
    assert {p: p.stat().st_mtime_ns for p in into.rglob("*")} == before
    assert sorted(p.name for p in into.parent.iterdir()) == [bundle.sha256]


def test_names_the_server_would_refuse_are_refused_when_packing(tmp_path: Path) -> None:
    root = _app(tmp_path / "app")
    _write(root, {"a/" * 33 + "deep.py": ""})
    with pytest.raises(BundleError, match=r"is more than 32 directories deep"):
        pack(root)
    with pytest.raises(BundleError, match=r"data/blob.bin: its path is longer than 10 bytes"):
        pack(_app(tmp_path / "other"), limits=BundleLimits(max_path_bytes=10))
    weird = _app(tmp_path / "weird")
    (weird / "bell\a.py").write_text("", encoding="utf-8")
    with pytest.raises(BundleError, match=r"bell\\x07.py': its name has a control character"):
        pack(weird)


@pytest.mark.parametrize("field", ["max_files", "max_ratio", "max_upload_bytes"])
@pytest.mark.parametrize("value", [0, -1, 1.5, True, "10"])
def test_limits_must_be_positive_whole_numbers(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"bundle limit {field} must be a whole number of at least 1"):
        BundleLimits(**{field: value})  # type: ignore[arg-type]
