"""Hot reload: watch the app's directory and load a new version after a saved change.

watchfiles (Rust's notify underneath) reports changes in batches and already
debounces bursts, so an editor's save-as-rename-and-write is one reload. What
counts as a change: Python files and the project's configuration
(`triggerfish.toml`, `pyproject.toml`), outside the platform's data directory,
caches and virtualenvs, so the platform's own writes never reload it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import watchfiles

from triggerfish.server import heap
from triggerfish.server.platform import Platform, ReloadResult

log = logging.getLogger("triggerfish.server")

WATCHED_NAMES = frozenset({"triggerfish.toml", "pyproject.toml"})
#: Event-loop steps awatch takes to reach its first wait (creating its watcher on the way); a few spare.
WATCH_SETUP_STEPS = 5
IGNORED_DIRS = frozenset({"__pycache__", ".git", ".venv", "venv", ".mypy_cache", ".ruff_cache", ".pytest_cache"})


class SourceFilter(watchfiles.DefaultFilter):
    """Python sources and project configuration, outside `data_dir` and the usual caches."""

    def __init__(self, data_dir: Path | None) -> None:
        super().__init__(ignore_dirs=tuple(IGNORED_DIRS))
        self.data_dir = None if data_dir is None else data_dir.resolve()

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        candidate = Path(path)
        if candidate.suffix != ".py" and candidate.name not in WATCHED_NAMES:
            return False
        if self.data_dir is not None and candidate.resolve().is_relative_to(self.data_dir):
            return False
        return super().__call__(change, path)


async def watch_and_reload(
    platform: Platform,
    directory: Path,
    *,
    on_reload: Callable[[ReloadResult, list[str]], Awaitable[None] | None],
) -> None:
    """Reload `platform` after each batch of changes under `directory`, until cancelled.

    `on_reload` gets each result and the changed paths (to print them).
    """
    changes = watchfiles.awatch(
        directory,
        watch_filter=SourceFilter(platform.data_dir),
        debounce=200,
        step=50,
    )
    async for batch in changes:
        paths = sorted({_shown(Path(path), directory) for _, path in batch})
        heap.thaw()  # the old app's objects may be garbage now
        try:
            result = await platform.reload()
        finally:
            heap.freeze()
        outcome = on_reload(result, paths)
        if outcome is not None:
            await outcome


async def start_watching(
    platform: Platform, directory: Path, *, on_reload: Callable[[ReloadResult, list[str]], Awaitable[None] | None]
) -> asyncio.Task[None]:
    """`watch_and_reload` as a task, returned once the directory is being watched.

    awatch sets up its inotify watches when first iterated, before its first
    wait; letting the task run that far means a save right after this
    returns is seen (an editor, or a test, may save at once).
    """
    task = asyncio.ensure_future(watch_and_reload(platform, directory, on_reload=on_reload))
    for _ in range(WATCH_SETUP_STEPS):
        await asyncio.sleep(0)
    return task


def _shown(path: Path, directory: Path) -> str:
    try:
        return str(path.relative_to(directory.resolve()))
    except ValueError:
        return str(path)
