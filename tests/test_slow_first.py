"""The suite's own order (tests/slow_first.py): the slowest files first, each file whole and in its own order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from tests.slow_first import SLOWEST_FILES, slowest_files_first

ROOT = Path(__file__).resolve().parent.parent


def test_every_listed_file_exists_once() -> None:
    # A renamed file would silently lose its place at the front: the list names files that are there.
    assert [path for path in SLOWEST_FILES if not (ROOT / path).is_file()] == []
    assert len(set(SLOWEST_FILES)) == len(SLOWEST_FILES)


def test_this_session_runs_the_listed_files_first_each_file_whole(request: pytest.FixtureRequest) -> None:
    files = [item.path.relative_to(ROOT).as_posix() for item in request.session.items]
    runs = [path for n, path in enumerate(files) if n == 0 or files[n - 1] != path]
    assert len(runs) == len(set(runs)), "a file's tests were split apart"
    listed = [path for path in runs if path in SLOWEST_FILES]
    assert listed == [path for path in SLOWEST_FILES if path in listed]
    assert runs[: len(listed)] == listed


@dataclass(frozen=True)
class Collected:
    """What slowest_files_first reads of a pytest.Item: its file (and, here, a name to tell tests apart)."""

    path: Path
    name: str


def test_the_listed_files_go_first_in_the_lists_order_and_the_rest_keep_theirs() -> None:
    second, first = ROOT / SLOWEST_FILES[1], ROOT / SLOWEST_FILES[0]
    other, elsewhere = ROOT / "tests/test_app.py", Path("/elsewhere/test_x.py")
    collected = [
        Collected(other, "a"),
        Collected(second, "b"),
        Collected(second, "c"),
        Collected(elsewhere, "d"),
        Collected(first, "e"),
        Collected(other, "f"),
    ]
    items = cast("list[pytest.Item]", list(collected))
    slowest_files_first(items, ROOT)
    assert [item.name for item in items] == ["e", "b", "c", "a", "d", "f"]
