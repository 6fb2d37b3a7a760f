"""`pip install` of an app's requirements in a box of the app's own, its result checked on the way out.

    code, output = await install_in_box(box, Path("bundle/requirements.txt"), Path("deps/x/site-packages"),
                                        extra_args=["--no-index"], timeout=900)

pip runs the build code of every package it builds from source, so it gets
what the app's code gets: the app's uid, no data directory, no server
environment, and nothing writable but the box's /tmp (`box.tmp_mb` MiB).
Inside (`python -m triggerfish.isolation.install`), the bundle is copied
into /tmp (builds write into their source trees, and the bundle is
read-only), pip installs into /tmp/site-packages under an address-space
limit, and the result leaves the box as a tar stream on a pipe.

Outside, `unpack` takes the stream as hostile: it stops at the box's size,
accepts only directories, regular files and symlinks that stay inside, and
writes each file new (never through a link). What pip installed can thus
only be what the box could see: the bundle, the index and the runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from triggerfish.errors import DeployError
from triggerfish.isolation.box import BOX_TMP, Box, prepare, python_path
from triggerfish.isolation.pids import kill_box
from triggerfish.runtime.limits import die_with_parent

#: Address space of each process of an install, in MiB (compilers included).
INSTALL_MEMORY_MB = 2048
#: Files and directories an install may produce.
MAX_MEMBERS = 200_000
_SOURCE = f"{BOX_TMP}/src"
_TARGET = f"{BOX_TMP}/site-packages"
_INHERITED = ("PATH", "LANG", "TZ")


async def install_in_box(
    box: Box, requirements: Path, target: Path, *, extra_args: Sequence[str], time_limit: float
) -> tuple[int, str]:
    """Install `requirements` into `target` (which must not exist) with pip in `box`; (exit status, output).

    Raises DeployError (phase "install") on a timeout or when the result is refused (too large, or a
    member that is not a plain file, directory or inner link); pip's own failure is the exit status.
    """
    read_end, write_end = os.pipe()
    command = [sys.executable, "-s", "-m", "triggerfish.isolation.install", "--tar-fd", str(write_end)]
    command += ["--requirements", requirements.name, "--memory-mb", str(INSTALL_MEMORY_MB), "--", *extra_args]
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update(PYTHONPATH=os.pathsep.join(python_path()), HOME=BOX_TMP, TMPDIR=BOX_TMP, PIP_NO_INPUT="1")
    try:
        launch = prepare(
            box,
            command,
            read_only=[str(requirements.parent), *_directories(extra_args)],
            keep_fds=[write_end],
            env=env,
            chdir=str(requirements.parent),
        )
        try:
            process = await asyncio.create_subprocess_exec(
                *launch.argv,
                pass_fds=launch.pass_fds,
                env=launch.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                **launch.popen,
            )
        finally:
            launch.started()
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    limit = box.tmp_mb * 1024 * 1024
    stream = os.fdopen(read_end, "rb")
    unpacked = asyncio.ensure_future(asyncio.to_thread(unpack, stream, target, limit))
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(time_limit):
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                chunks.append(chunk)
            code = await process.wait()
            await unpacked
    except TimeoutError:
        raise DeployError(
            f"pip did not finish installing {requirements.name} within {time_limit:g} s",
            phase="install",
            details=_text(chunks),
        ) from None
    except DeployError as exc:
        raise DeployError(str(exc), phase="install", details=_text(chunks)) from None
    finally:
        if process.returncode is None:
            kill_box(process.pid)
            try:
                async with asyncio.timeout(5.0):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        with contextlib.suppress(BaseException):
            await unpacked  # the box is gone, so the stream ends
        stream.close()
    return code, _text(chunks)


def _directories(args: Sequence[str]) -> list[str]:
    """Directories named by the server's pip arguments (--find-links DIR): readable in the box too."""
    return [arg for arg in args if os.path.isabs(arg) and os.path.isdir(arg)]


def unpack(stream: IO[bytes], target: Path, limit: int) -> None:
    """Extract a tar stream from a box into `target` (made here), refusing what could reach outside it.

    Raises DeployError when the stream holds more than `limit` bytes of files or MAX_MEMBERS
    members, a member is not a directory, regular file or symlink, a name or link leads outside
    `target`, or a name repeats. An empty stream (pip failed, nothing was sent) unpacks nothing.
    """
    target.mkdir(parents=True)
    try:
        archive = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 (closed below, once known to open)
    except tarfile.ReadError:
        return  # nothing was sent
    try:
        with archive:
            _extract(archive, target, limit)
    except (tarfile.TarError, OSError) as exc:
        raise DeployError(f"the install's result could not be taken: {exc}", phase="install") from None


def _extract(archive: tarfile.TarFile, target: Path, limit: int) -> None:
    links: set[PurePosixPath] = set()
    total = 0
    count = 0
    for member in archive:
        count += 1
        if count > MAX_MEMBERS:
            raise DeployError(f"the install produced more than {MAX_MEMBERS} files", phase="install")
        name = _inner_name(member.name)
        if name is None:
            continue  # the archive's root, "."
        if any(parent in links for parent in name.parents):
            raise DeployError(f"the install wrote {member.name!r} through a link", phase="install")
        path = target.joinpath(*name.parts)
        if member.isdir():
            path.mkdir(mode=0o755, exist_ok=True)
        elif member.isfile():
            total += member.size
            if total > limit:
                raise DeployError(f"the install produced more than {limit} bytes", phase="install")
            source = archive.extractfile(member)
            assert source is not None
            _write_new(path, source, 0o755 if member.mode & 0o111 else 0o644)
        elif member.issym() and _link_stays_inside(name, member.linkname):
            os.symlink(member.linkname, path)
            links.add(name)
        else:
            raise DeployError(
                f"the install produced {member.name!r}, which is not a file, a directory or a link inside it",
                phase="install",
            )


def _inner_name(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    parts = [part for part in path.parts if part not in ("", ".")]
    if path.is_absolute() or ".." in parts:
        raise DeployError(f"the install produced {name!r}, which leads outside its directory", phase="install")
    return PurePosixPath(*parts) if parts else None


def _link_stays_inside(name: PurePosixPath, link: str) -> bool:
    if not link or os.path.isabs(link):
        return False
    resolved = os.path.normpath(os.path.join(str(name.parent), link))
    return resolved != ".." and not resolved.startswith("../")


def _write_new(path: Path, source: IO[bytes], mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise DeployError(f"the install produced {path.name!r} twice", phase="install") from None
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, 1024 * 1024)
    os.chmod(path, mode)


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", errors="replace")


# --- inside the box ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Copy the bundle (the current directory) into /tmp, run pip there, send the result to --tar-fd."""
    parser = argparse.ArgumentParser(prog="python -m triggerfish.isolation.install")
    parser.add_argument("--tar-fd", type=int, required=True)
    parser.add_argument("--requirements", required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("pip_args", nargs="*")
    args = parser.parse_args(argv)
    die_with_parent()  # setpriv's change of uid cleared bubblewrap's PR_SET_PDEATHSIG
    limit = args.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    shutil.copytree(os.getcwd(), _SOURCE, symlinks=True)
    command = [sys.executable, "-m", "pip", "install", "--target", _TARGET, "--disable-pip-version-check"]
    command += ["--no-input", "-r", args.requirements, *args.pip_args]
    sys.stdout.flush()
    code = subprocess.call(command, cwd=_SOURCE, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    with os.fdopen(args.tar_fd, "wb") as out:
        if code == 0 and os.path.isdir(_TARGET):
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
                archive.add(_TARGET, arcname=".")
    return code


if __name__ == "__main__":
    sys.exit(main())
