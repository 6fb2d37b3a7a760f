"""An app's `requirements.txt`, installed once per distinct text and shared by every version that has it.

    deps = Dependencies(Path("data/deps"))
    result = await deps.ensure(app_dir / "requirements.txt")
    runner = await ProcessRunner.start(..., extra_paths=[str(result.path)] if result.path else [])

The install goes to `root/<interpreter>/<key>/site-packages`, where `key` is
the sha256 of the normalised requirements text (blank lines, comments and
surrounding spaces do not count) and `<interpreter>` is the cache tag of the
Python running the server (`cpython-311`), since compiled wheels fit one
interpreter only. pip runs as `python -m pip install --target ...` in the
requirements file's directory, so relative paths in it (`./vendor/pkg`)
mean what they mean to the app's author. Its output is kept in the result
and in `pip.log` beside `site-packages`.

The cache is keyed by the text alone: pin versions (`orders-lib==1.4.2`).
A requirement that names a local directory, or a file included with `-r`,
is not read for the key, so changing what it holds without changing
`requirements.txt` reuses the install made before.

A failed install leaves nothing in the cache (pip writes into a temporary
directory that is renamed into place only on success) and raises DeployError
with phase "install" and pip's output in `details`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from triggerfish.errors import DeployError
from triggerfish.isolation.box import Box
from triggerfish.isolation.install import install_in_box

#: Seconds pip may take before the install is abandoned.
DEFAULT_INSTALL_TIMEOUT = 900.0
LOG_FILE = "pip.log"
SITE_PACKAGES = "site-packages"
_PARTIAL_PREFIX = ".installing-"
_INLINE_COMMENT = re.compile(r"\s+#.*$")


@dataclass(frozen=True, slots=True)
class DepsResult:
    """What `Dependencies.ensure` did."""

    #: The directory to put on the app's sys.path; None when the app has no requirements.
    path: Path | None
    #: True when an earlier install of the same requirements was reused.
    cached: bool
    #: Seconds this call took (the install's, or the look-up's when cached).
    seconds: float
    #: pip's output, from this install or the one that made the cache entry.
    output: str
    #: The sha256 of the normalised requirements text; None without requirements.
    key: str | None = None


def normalise_requirements(text: str) -> str:
    """The requirements text that decides the cache key: no blank lines, comments or surrounding spaces."""
    joined = re.sub(r"\\\r?\n", "", text)  # pip joins a line ending in a backslash with the next
    lines = []
    for raw in joined.splitlines():
        line = _INLINE_COMMENT.sub("", raw.strip())
        if line and not line.startswith("#"):
            lines.append(line)
    return "".join(f"{line}\n" for line in lines)


def requirements_key(text: str) -> str:
    """The cache key of a requirements text: sha256 (hex) of its normalised form."""
    return hashlib.sha256(normalise_requirements(text).encode("utf-8")).hexdigest()


class Dependencies:
    """Installs requirements files into a cache under `root`, once per distinct text.

    `extra_args` go to every `pip install` (for example `--no-index` and
    `--find-links DIR` on a machine without an index, or `--index-url URL`).
    """

    def __init__(self, root: Path, *, extra_args: Sequence[str] = (), timeout: float = DEFAULT_INSTALL_TIMEOUT) -> None:
        # Absolute: pip runs in the requirements file's directory.
        self.root = Path(root).absolute()
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self._locks: dict[str, asyncio.Lock] = {}

    def directory(self, key: str) -> Path:
        """Where the install of the requirements with this key is (or would be) kept."""
        return self.root / sys.implementation.cache_tag / key

    async def ensure(self, requirements: Path | None, *, box: Box | None = None) -> DepsResult:
        """Install `requirements` unless the same text was installed before; where it is.

        None, a missing file, or one with nothing but comments gives a result
        whose `path` is None. `box`: run pip in it (see triggerfish.isolation.install).
        Raises DeployError (phase "install", pip's output in `details`) when the
        file cannot be read or pip fails or times out.
        """
        started = time.monotonic()
        text = _read_requirements(requirements)
        normalised = normalise_requirements(text or "")
        if requirements is None or not normalised:
            return DepsResult(path=None, cached=False, seconds=0.0, output="")
        key = requirements_key(normalised)
        final = self.directory(key)
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = _cached_output(final)
            if cached is not None:
                return DepsResult(
                    path=final / SITE_PACKAGES,
                    cached=True,
                    seconds=time.monotonic() - started,
                    output=cached,
                    key=key,
                )
            output = await self._install(requirements, normalised, final, box)
        return DepsResult(
            path=final / SITE_PACKAGES, cached=False, seconds=time.monotonic() - started, output=output, key=key
        )

    async def _install(self, requirements: Path, normalised: str, final: Path, box: Box | None = None) -> str:
        partial = _make_partial(final)
        try:
            code, output = await self._pip(requirements, partial / SITE_PACKAGES, box)
            if code != 0:
                raise DeployError(
                    f"pip could not install {requirements.name} (exit status {code}); its output says why",
                    phase="install",
                    details=output,
                )
            _publish(partial, final, output, normalised)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return output

    async def _pip(self, requirements: Path, target: Path, box: Box | None = None) -> tuple[int, str]:
        if box is not None:
            return await install_in_box(box, requirements, target, extra_args=self.extra_args, time_limit=self.timeout)
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--target",
            str(target),
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            requirements.name,
            *self.extra_args,
        ]
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=requirements.parent,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PIP_NO_INPUT": "1"},
            # Its own process group, so a timeout also stops the builds pip started.
            start_new_session=True,
        )
        assert process.stdout is not None
        chunks: list[bytes] = []

        async def read_all() -> None:
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                chunks.append(chunk)

        try:
            async with asyncio.timeout(self.timeout):
                await read_all()
                code = await process.wait()
        except TimeoutError:
            output = b"".join(chunks).decode("utf-8", errors="replace")
            raise DeployError(
                f"pip did not finish installing {requirements.name} within {self.timeout:g} s",
                phase="install",
                details=output,
            ) from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        return code, b"".join(chunks).decode("utf-8", errors="replace")


# The file system work is small and synchronous, so it stays out of the coroutines.


def _read_requirements(requirements: Path | None) -> str | None:
    if requirements is None or not requirements.is_file():
        return None
    try:
        return requirements.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"{requirements}: cannot be read: {exc}", phase="install") from None


def _cached_output(directory: Path) -> str | None:
    """pip's output of the install kept in `directory`; None when there is none."""
    if not (directory / SITE_PACKAGES).is_dir():
        return None
    try:
        return (directory / LOG_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _make_partial(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_PARTIAL_PREFIX, dir=final.parent))


def _publish(partial: Path, final: Path, output: str, normalised: str) -> None:
    (partial / LOG_FILE).write_text(output, encoding="utf-8")
    (partial / "requirements.txt").write_text(normalised, encoding="utf-8")
    try:
        partial.rename(final)
    except OSError:
        if not (final / SITE_PACKAGES).is_dir():
            raise
        # Another server sharing this directory installed the same requirements first.
        shutil.rmtree(partial, ignore_errors=True)
