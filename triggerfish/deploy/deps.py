"""An app's `requirements.txt`, checked, then installed once per app and distinct text.

    deps = Dependencies(Path("data/deps"), extra_args=["--index-url", "https://pypi.internal/simple"])
    result = await deps.ensure("shop", app_dir / "requirements.txt")
    runner = await ProcessRunner.start(..., extra_paths=[str(result.path)] if result.path else [])

The file is checked first (see `triggerfish.deploy.requirements`): only
requirement specifiers and `--hash` options are accepted, and a refused line
fails the deploy, naming it, before pip runs. pip is then given the server's
own rendering of what was accepted, never the deployer's file, and every
other choice is the server's: `extra_args` (the index, `--find-links`),
`--isolated` (no user configuration or `PIP_*` variables), `--no-input`,
`--no-cache-dir` (a pip cache shared by apps is one app's way into another's
install), and `--only-binary=:all:` unless `source_builds` is on: building a
source distribution runs its build backend, code of the package author's
choosing, on the server at deploy time.

The install goes to `root/by-app/<app>/<interpreter>/<key>/site-packages`:
each app's installs are its own; `key` is the sha256 of the normalised
requirements text (blank lines, comments and surrounding spaces do not
count); `<interpreter>` is the cache tag of the Python running the server
(`cpython-311`), since compiled wheels fit one interpreter only. pip's output
(at most `max_output` characters: its start and its end) is kept in the
result and in `pip.log` beside `site-packages`.

The cache is keyed by the text alone: pin versions (`orders-lib==1.4.2`).
A failed install leaves nothing in the cache (pip writes into a temporary
directory that is renamed into place only on success) and raises DeployError
with phase "install" and pip's output in `details`.

Servers from before installs were per app kept them in `root/<interpreter>/<key>`,
shared by every app; `ensure(..., reuse_legacy=True)`, for versions deployed
then, still finds them there.
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

from triggerfish.deploy.bundle import app_segment
from triggerfish.deploy.requirements import canonical_requirements, check_requirements, check_requirements_size
from triggerfish.errors import DeployError
from triggerfish.isolation.box import Box
from triggerfish.isolation.install import install_in_box

#: Seconds pip may take before the install is abandoned.
DEFAULT_INSTALL_TIMEOUT = 900.0
#: Characters of pip's output kept and shown: its first quarter and its last three.
DEFAULT_MAX_OUTPUT = 64 * 1024
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
    """Checks requirements files and installs them into a cache under `root`, once per app and distinct text.

    `extra_args` go to every `pip install`: where packages come from (`--index-url URL`, or `--no-index` and
    `--find-links DIR` on a machine without an index) is the server's choice, never an app's. With
    `source_builds`, pip may build source distributions (running their build code); without, wheels only.
    """

    def __init__(
        self,
        root: Path,
        *,
        extra_args: Sequence[str] = (),
        timeout: float = DEFAULT_INSTALL_TIMEOUT,
        source_builds: bool = False,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self.root = Path(root).absolute()
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.source_builds = source_builds
        self.max_output = max_output
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def directory(self, app: str, key: str) -> Path:
        """Where `app`'s install of the requirements with this key is (or would be) kept."""
        return self.root / "by-app" / app_segment(app) / sys.implementation.cache_tag / key

    def legacy_directory(self, key: str) -> Path:
        """Where a server from before per-app installs kept the install with this key, for every app."""
        return self.root / sys.implementation.cache_tag / key

    def remove_app(self, app: str) -> None:
        """Forget every install of `app` (it was removed from the server)."""
        shutil.rmtree(self.root / "by-app" / app_segment(app), ignore_errors=True)

    async def ensure(
        self, app: str, requirements: Path | None, *, reuse_legacy: bool = False, box: Box | None = None
    ) -> DepsResult:
        """Install `requirements` for `app` unless the same text was installed for it before; where it is.

        None, a missing file, or one with nothing but comments gives a result
        whose `path` is None. Raises RequirementsError (a DeployError, phase
        "install") naming every refused line before pip runs; DeployError
        (phase "install", pip's output in `details`) when the file cannot be
        read or pip fails or times out. With `reuse_legacy` (a version deployed
        before installs were per app, loading again) an install of the same
        text in the old shared layout is used when the app has none of its own.
        `box`: run pip in it (see triggerfish.isolation.install).
        """
        started = time.monotonic()
        text = _read_requirements(requirements)
        normalised = normalise_requirements(text or "")
        if requirements is None or text is None or not normalised:
            return DepsResult(path=None, cached=False, seconds=0.0, output="")
        # A deploy: a refused line fails it even when the same text was installed before.
        lines = None if reuse_legacy else await asyncio.to_thread(check_requirements, text, source=requirements.name)
        key = requirements_key(normalised)
        final = self.directory(app, key)
        async with self._locks.setdefault((app, key), asyncio.Lock()):
            for directory in (final, self.legacy_directory(key)) if reuse_legacy else (final,):
                cached = _cached_output(directory)
                if cached is not None:
                    return DepsResult(
                        path=directory / SITE_PACKAGES,
                        cached=True,
                        seconds=time.monotonic() - started,
                        output=cached,
                        key=key,
                    )
            if lines is None:
                lines = await asyncio.to_thread(check_requirements, text, source=requirements.name)
            output = await self._install(requirements.name, canonical_requirements(lines), final, box)
        return DepsResult(
            path=final / SITE_PACKAGES, cached=False, seconds=time.monotonic() - started, output=output, key=key
        )

    def pip_options(self) -> list[str]:
        """The options of every `pip install` beside the target and the requirements file."""
        binaries = [] if self.source_builds else ["--only-binary=:all:"]
        return ["--isolated", "--disable-pip-version-check", "--no-input", "--no-cache-dir", *binaries]

    async def _install(self, name: str, canonical: str, final: Path, box: Box | None = None) -> str:
        partial = _make_partial(final)
        try:
            # pip reads the server's rendering of what was accepted, never the deployer's file. In a directory
            # of its own that anyone may read: a boxed pip (the app's uid) binds it, and it holds no secret.
            request = partial / "request"
            request.mkdir(mode=0o755)
            request.chmod(0o755)
            accepted = request / "requirements.txt"
            accepted.write_text(canonical, encoding="utf-8")
            accepted.chmod(0o644)
            code, output = await self._pip(accepted, partial / SITE_PACKAGES, box)
            accepted.rename(partial / "requirements.txt")  # kept beside the install: what it was made from
            request.rmdir()
            if code != 0:
                raise DeployError(
                    f"pip could not install {name} (exit status {code}); its output says why",
                    phase="install",
                    details=output,
                )
            _publish(partial, final, output)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return output

    async def _pip(self, requirements: Path, target: Path, box: Box | None = None) -> tuple[int, str]:
        if box is not None:
            options = [*self.pip_options(), *self.extra_args]
            return await install_in_box(box, requirements, target, extra_args=options, time_limit=self.timeout)
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--target",
            str(target),
            *self.pip_options(),
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
        kept = KeptOutput(self.max_output)

        async def read_all() -> None:
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                kept.add(chunk)

        try:
            async with asyncio.timeout(self.timeout):
                await read_all()
                code = await process.wait()
        except TimeoutError:
            output = kept.text()
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
        return code, kept.text()


class KeptOutput:
    """What is kept of a process's output: its first quarter of `limit` bytes and its last three quarters.

    pip's output is shown to the deployer and stored: a build printing without end must not fill memory,
    and the end (where pip says what failed) matters most.
    """

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 4
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        excess = len(self.tail) - self.tail_limit
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    def text(self) -> str:
        cut = f"\n[... {self.dropped} bytes of output left out ...]\n" if self.dropped else ""
        return (
            bytes(self.head).decode("utf-8", errors="replace")
            + cut
            + bytes(self.tail).decode("utf-8", errors="replace")
        )


# The file system work is small and synchronous, so it stays out of the coroutines.


def _read_requirements(requirements: Path | None) -> str | None:
    if requirements is None or not requirements.is_file():
        return None
    try:
        check_requirements_size(requirements.stat().st_size, source=requirements.name)
        return requirements.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"{requirements.name}: cannot be read as UTF-8 text: {exc}", phase="install") from None


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


def _publish(partial: Path, final: Path, output: str) -> None:
    (partial / LOG_FILE).write_text(output, encoding="utf-8")
    try:
        partial.rename(final)
    except OSError:
        if not (final / SITE_PACKAGES).is_dir():
            raise
        # Another server sharing this directory installed the same requirements first.
        shutil.rmtree(partial, ignore_errors=True)
