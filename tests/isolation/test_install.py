"""Dependency installs in a box: pip's build code runs as the app's uid, sees neither the server's files
nor its environment, is bounded in time and size; and what comes out is checked as hostile on the way."""

from __future__ import annotations

import io
import os
import tarfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.isolation.conftest import require_root
from tests.runtime.conftest import eventually
from triggerfish.deploy.deps import Dependencies
from triggerfish.errors import DeployError
from triggerfish.isolation import install
from triggerfish.isolation.box import Box
from triggerfish.isolation.policy import Isolation

# --- the stream out of the box, taken as hostile ---------------------------------------------------


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|") as archive:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    buffer.seek(0)
    return buffer


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _kind(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, b""


HOSTILE: list[tuple[str, Callable[[], io.BytesIO], str]] = [
    ("an absolute name", lambda: _tar(_file("/etc/cron.d/evil")), "leads outside its directory"),
    ("a climb out", lambda: _tar(_file("pkg/../../evil.py")), "leads outside its directory"),
    ("a link out", lambda: _tar(_kind("key", tarfile.SYMTYPE, "/srv/data/admin.key")), "not a file, a directory"),
    ("a relative link out", lambda: _tar(_kind("up", tarfile.SYMTYPE, "../../admin.key")), "not a file, a directory"),
    (
        "a write through a link",
        lambda: _tar(_kind("here", tarfile.SYMTYPE, "."), _file("here/x.py")),
        "through a link",
    ),
    ("a hard link", lambda: _tar(_file("a"), _kind("b", tarfile.LNKTYPE, "a")), "not a file, a directory"),
    ("a device", lambda: _tar(_kind("sda", tarfile.BLKTYPE)), "not a file, a directory"),
    ("a fifo", lambda: _tar(_kind("pipe", tarfile.FIFOTYPE)), "not a file, a directory"),
    ("a name twice", lambda: _tar(_file("a.py"), _file("a.py")), "twice"),
    ("too many bytes", lambda: _tar(_file("big", b"x" * 5000)), "more than 4096 bytes"),
]


@pytest.mark.parametrize(("what", "stream", "message"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_a_hostile_result_is_refused(tmp_path: Path, what: str, stream: Callable[[], io.BytesIO], message: str) -> None:
    with pytest.raises(DeployError, match=message):
        install.unpack(stream(), tmp_path / "site-packages", 4096)
    assert not (tmp_path / "evil.py").exists()


def test_a_good_result_is_unpacked_with_plain_modes(tmp_path: Path) -> None:
    stream = _tar(
        _kind("pkg", tarfile.DIRTYPE),
        _file("pkg/__init__.py", b"X = 1\n", mode=0o4777),
        _file("pkg/tool", b"#!/bin/sh\n", mode=0o755),
        _kind("pkg/alias.py", tarfile.SYMTYPE, "__init__.py"),
    )
    install.unpack(stream, tmp_path / "out", 1 << 20)
    assert (tmp_path / "out" / "pkg" / "__init__.py").read_text() == "X = 1\n"
    assert (tmp_path / "out" / "pkg" / "__init__.py").stat().st_mode & 0o7777 == 0o755  # no setuid, no g+w or o+w
    assert (tmp_path / "out" / "pkg" / "tool").stat().st_mode & 0o7777 == 0o755
    assert os.readlink(tmp_path / "out" / "pkg" / "alias.py") == "__init__.py"


def test_an_empty_stream_unpacks_nothing(tmp_path: Path) -> None:
    install.unpack(io.BytesIO(b""), tmp_path / "out", 4096)
    assert list((tmp_path / "out").iterdir()) == []


# --- real installs in a box ------------------------------------------------------------------------

PYPROJECT = '[build-system]\nrequires = []\nbuild-backend = "probe_backend"\nbackend-path = ["."]\n'
BACKEND = """
import base64, hashlib, os, pathlib, time, zipfile

SECRET_FILE, PADDING, HANG, HOG = {secret!r}, {padding!r}, {hang!r}, {hog!r}


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if HANG:
        time.sleep(600)
    if HOG:
        hoard = bytearray(HOG)
    try:
        secret = pathlib.Path(SECRET_FILE).read_text()
    except OSError as exc:
        secret = type(exc).__name__
    seen = dict(uid=os.getuid(), secret=secret, environment=sorted(os.environ))
    dist = "probe-1.0.dist-info"
    files = {{
        "probe/__init__.py": f"SEEN = {{seen!r}}\\n".encode(),
        "probe/padding.bin": b"p" * PADDING,
        f"{{dist}}/METADATA": b"Metadata-Version: 2.1\\nName: probe\\nVersion: 1.0\\n",
        f"{{dist}}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }}
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{{path}},sha256={{digest}},{{len(data)}}")
    record.append(f"{{dist}}/RECORD,,")
    files[f"{{dist}}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    name = "probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name
"""


def probe_index(index: Path, secret: Path, *, padding: int = 0, hang: bool = False, hog: int = 0) -> Path:
    """An index (a --find-links directory) holding `probe`, a source distribution whose own build backend
    records what it could see (its uid, `secret`, its environment): only an index the server chose serves
    packages now, and sdists are built only where the server allows source builds."""
    index.mkdir(parents=True, exist_ok=True)
    backend = textwrap.dedent(BACKEND.format(secret=str(secret), padding=padding, hang=hang, hog=hog))
    with tarfile.open(index / "probe-1.0.tar.gz", "w:gz") as sdist:
        for name, text in (
            ("pyproject.toml", PYPROJECT),
            ("probe_backend.py", backend),
            ("PKG-INFO", "Metadata-Version: 2.1\nName: probe\nVersion: 1.0\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(f"probe-1.0/{name}")
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    return index


def _bundle(tmp_path: Path, *, padding: int = 0, hang: bool = False, hog: int = 0) -> Path:
    """An app requiring `probe` (see `probe_index`)."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    secret = tmp_path / "server" / "admin.key"
    secret.parent.mkdir()
    secret.write_text("tfk_the_admin_key")
    probe_index(tmp_path / "index", secret, padding=padding, hang=hang, hog=hog)
    (bundle / "requirements.txt").write_text("probe==1.0\n")
    return bundle


def _dependencies(tmp_path: Path, **options: float) -> Dependencies:
    index = ["--no-index", "--find-links", str(tmp_path / "index")]
    return Dependencies(tmp_path / "deps", extra_args=index, source_builds=True, **options)  # type: ignore[arg-type]


def _box(bundle: Path, install_mb: int = 64) -> Box:
    require_root()
    uid = 1_900_099_991
    return Isolation(install_mb=install_mb).install_box(Box(uid=uid, gid=uid, read_only=(str(bundle),)))


async def test_pip_builds_as_the_app_s_uid_without_the_server_s_files_or_environment(
    boxed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = _bundle(tmp_path)
    monkeypatch.setenv("TRIGGERFISH_TEST_SECRET", "hunter2")
    deps = _dependencies(tmp_path)
    result = await deps.ensure("app", bundle / "requirements.txt", box=_box(bundle))
    assert result.path is not None
    namespace: dict[str, object] = {}
    exec((result.path / "probe" / "__init__.py").read_text(), namespace)
    seen = namespace["SEEN"]
    assert isinstance(seen, dict)
    assert seen["uid"] == 1_900_099_991
    assert seen["secret"] in ("FileNotFoundError", "PermissionError")
    assert "TRIGGERFISH_TEST_SECRET" not in seen["environment"]
    assert "Successfully installed probe-1.0" in result.output
    owner = (result.path / "probe" / "__init__.py").stat()
    assert (owner.st_uid, owner.st_mode & 0o777) == (os.geteuid(), 0o644)  # the server's, read-only to the app
    assert not (bundle / "vendor" / "probe" / "build").exists()  # built in the box's copy, not in the bundle


async def test_an_install_writing_more_than_its_box_holds_fails_and_leaves_nothing(boxed: None, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, padding=12 * 1024 * 1024)
    deps = _dependencies(tmp_path)
    with pytest.raises(DeployError) as failed:
        await deps.ensure("app", bundle / "requirements.txt", box=_box(bundle, install_mb=8))
    assert failed.value.phase == "install"
    assert "No space left on device" in (failed.value.details or "") or "more than" in str(failed.value)
    assert not any((tmp_path / "deps").rglob("site-packages"))


async def test_a_build_past_the_install_s_memory_limit_fails_with_memory_error(boxed: None, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, hog=4 * 1024**3)  # 4 GiB, past the 2 GiB of address space each process has
    deps = _dependencies(tmp_path)
    with pytest.raises(DeployError) as failed:
        await deps.ensure("app", bundle / "requirements.txt", box=_box(bundle))
    assert "MemoryError" in (failed.value.details or "")


async def test_an_install_past_its_time_limit_is_killed_with_its_box(boxed: None, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, hang=True)
    deps = _dependencies(tmp_path, timeout=3.0)
    with pytest.raises(DeployError, match=r"did not finish installing requirements\.txt within 3 s"):
        await deps.ensure("app", bundle / "requirements.txt", box=_box(bundle))
    await eventually(lambda: not _processes_of(1_900_099_991), 10.0)  # the kernel takes a moment to clear a box
    assert _processes_of(1_900_099_991) == []


def _processes_of(uid: int) -> list[int]:
    """The live (not zombie) processes of `uid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                alive = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
                if entry.stat().st_uid == uid and alive:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found
