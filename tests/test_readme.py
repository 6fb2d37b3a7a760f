"""The commands the README and docs/cli.md show work as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bash_commands(page: Path) -> list[str]:
    """Each command of the page's ```bash blocks, with backslash continuations joined."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
        commands += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return commands


def run_triggerfish(command: str) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    assert words[0].endswith("triggerfish"), command
    return subprocess.run([sys.executable, "-m", "triggerfish", *words[1:]], cwd=ROOT, capture_output=True, text=True)


def test_the_readme_has_two_setup_commands_and_the_test_one_is_what_ci_runs() -> None:
    first, second = bash_commands(ROOT / "README.md")[:2]
    assert first.startswith("scripts/install && ")
    assert second == "scripts/test"
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_main_command_matches_the_example_event() -> None:
    first = bash_commands(ROOT / "README.md")[0]
    done = run_triggerfish(first.removeprefix("scripts/install && "))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "match"


def test_the_cli_page_pattern_example_matches() -> None:
    (example,) = [c for c in bash_commands(ROOT / "docs" / "cli.md") if "test-pattern" in c]
    done = run_triggerfish(example)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "match"
