"""What a deploy leaves out of an app's bundle: the `.triggerfishignore` file and the paths never shipped.

`.triggerfishignore`, at the top of the app directory, has gitignore's
syntax and meaning (`build/`, `*.csv`, `!keep.csv`, `/only-at-the-top`,
`**/fixtures`). As in git, a file inside an ignored directory cannot be
brought back with `!`.

Some paths are left out whatever the file says, because shipping them is
never right: version control, bytecode, virtual environments (any directory
holding a `pyvenv.cfg`), Triggerfish's own data directories and tool caches.
"""

from __future__ import annotations

from pathlib import Path

import pathspec

from triggerfish.errors import BundleError

IGNORE_FILE = ".triggerfishignore"

#: Left out of every bundle; `!` lines in the ignore file cannot bring them back.
ALWAYS_IGNORED = (
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.py[cod]",
    ".venv/",
    ".triggerfish/",
    ".triggerfish-server/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".hypothesis/",
    ".tox/",
    ".nox/",
    "*.egg-info/",
    ".DS_Store",
)
_ALWAYS = pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED)


class IgnoreRules:
    """Decides, for paths relative to the app directory (POSIX form), what stays out of the bundle."""

    def __init__(self, app_dir: Path, lines: list[str] | None = None) -> None:
        self.app_dir = app_dir
        self._spec = pathspec.GitIgnoreSpec.from_lines(lines or [])

    @classmethod
    def load(cls, app_dir: Path) -> IgnoreRules:
        """The rules of `app_dir`: its `.triggerfishignore` if there is one, and the fixed ones.

        A pattern gitignore would reject raises BundleError naming the file and line.
        """
        path = app_dir / IGNORE_FILE
        if not path.is_file():
            return cls(app_dir)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: cannot be read: {exc}", phase="pack", path=IGNORE_FILE) from None
        for number, line in enumerate(lines, 1):
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
            except ValueError as exc:
                raise BundleError(
                    f"{path}:{number}: {line!r} is not a gitignore pattern ({exc}); fix or remove the line",
                    phase="pack",
                    path=IGNORE_FILE,
                ) from None
        return cls(app_dir, lines)

    def ignores_dir(self, relative: str, absolute: Path) -> bool:
        """Whether the directory `relative` (no trailing slash) and everything below it stay out."""
        as_dir = relative + "/"
        if _ALWAYS.match_file(as_dir) or self._spec.match_file(as_dir):
            return True
        # A virtual environment under any name: shipping one would ship another machine's interpreter.
        return (absolute / "pyvenv.cfg").is_file()

    def ignores_file(self, relative: str) -> bool:
        """Whether the file `relative` stays out."""
        return _ALWAYS.match_file(relative) or self._spec.match_file(relative)
