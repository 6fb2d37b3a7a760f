"""Every code example in docs/ lives in a file under docs/examples/ that this test runs.

A Markdown page shows an example as a fenced block right after a marker line

    <!-- example: docs/examples/NAME.py -->

and the block must be the file's text, so the page cannot drift from the code
that runs. A Python block with no marker fails the test. Each example file
runs as a script with the project on its path and must exit 0: examples
assert what they claim.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))
BLOCK = re.compile(r"(?:<!-- example: (?P<file>[^ ]+) -->\n)?```(?P<lang>python|py)\n(?P<body>.*?)```", re.S)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.name)
def test_python_blocks_in_docs_are_files_that_run(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        name = match.group("file")
        assert name, f"{page.name}:{line}: a Python example needs a marker `<!-- example: docs/examples/NAME.py -->`"
        path = ROOT / name
        assert path.is_file(), f"{page.name}:{line}: the example file {name} does not exist"
        assert match.group("body") == path.read_text(encoding="utf-8"), (
            f"{page.name}:{line}: the block differs from {name}; paste the file's text into the page"
        )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(example: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{example.name} failed:\n{done.stdout}\n{done.stderr}"
