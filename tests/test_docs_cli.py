"""The command lines and the output the docs quote are the CLI's: a renamed flag or a changed banner fails here.

Every `triggerfish ...` the pages show (inline, in tables and in ```bash blocks) must name a verb that
exists and only options that verb has. A block of output after `<!-- output: VERB ARGS -->` must be
what the command prints: each of its lines, in order (`...` stands for lines left out), the port of
a server as the page writes it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.server.devserver import DevServer
from triggerfish.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "examples").glob("*/README.md")])
#: Where a command line starts: `triggerfish VERB` or `.venv/bin/triggerfish VERB`.
_COMMAND = re.compile(r"(?:\.venv/bin/)?triggerfish\s+[a-z]")
_OUTPUT = re.compile(r"<!-- output: (.+?) -->\n```[a-z]*\n(.*?)```", re.S)


def quoted_commands(text: str) -> list[str]:
    """The `triggerfish ...` command lines of a page: code spans, and code-block lines that start with one."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        found += [line.strip() for line in block.replace("\\\n", " ").splitlines()]
    found = [line for line in found if _COMMAND.match(line)]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = re.findall(r"``(.+?)``|`([^`\n]+)`", prose)
    found += [span for pair in spans for span in pair if _COMMAND.match(span.strip())]
    return [line.strip().split(" | ")[0].split(" && ")[0].split(";")[0] for line in found]


def words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unbalanced quote in prose
        return command.split()


def resolve(command: str) -> tuple[click.Command, list[str]]:
    """The click command a line runs, and the words after its name."""
    given = words(command)[1:]
    current: click.Command = cli
    while isinstance(current, click.Group) and given and given[0] in current.commands:
        current = current.commands[given.pop(0)]
    if isinstance(current, click.Group) and given and "/" in given[0]:
        # `triggerfish secrets set/list/remove`: several verbs at once, each one of the group's.
        verbs = given.pop(0).split("/")
        missing = [verb for verb in verbs if verb not in current.commands]
        assert not missing, f"`{command}`: {missing} are no verbs of `triggerfish {current.name}`"
    return current, given


def options_of(command: click.Command) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)} | {"--help", "-h"}


def problems(page: Path) -> list[str]:
    """What is wrong with the command lines `page` quotes: verbs and options the CLI does not have."""
    found = []
    for command in quoted_commands(page.read_text(encoding="utf-8")):
        try:
            command_found, rest = resolve(command)
        except AssertionError as exc:
            found.append(str(exc))
            continue
        if isinstance(command_found, click.Group) and rest and not rest[0].startswith("-") and not rest[0].isupper():
            found.append(f"`{command}`: {rest[0]!r} is no verb of `triggerfish {command_found.name}`")
        known = options_of(command_found)
        for word in rest:
            option = word.strip("[]()").split("=")[0].rstrip(",.:")
            if re.fullmatch(r"--[a-z][a-z0-9-]*|-[a-zA-Z]", option) and option not in known:
                found.append(f"`{command}`: `triggerfish {command_found.name}` has no option {option}")
    return found


def test_the_pages_quote_many_command_lines() -> None:
    assert sum(len(quoted_commands(page.read_text(encoding="utf-8"))) for page in PAGES) > 100


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_quoted_command_names_a_verb_and_options_it_has(page: Path) -> None:
    assert problems(page) == []


def test_a_renamed_flag_or_verb_would_fail_here(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("Run `triggerfish dev app.py --no-relaod`, then\n```bash\ntriggerfish queues sned jobs\n```\n")
    assert problems(page) == [
        "`triggerfish queues sned jobs`: 'sned' is no verb of `triggerfish queues`",
        "`triggerfish dev app.py --no-relaod`: `triggerfish dev` has no option --no-relaod",
    ]


def run_quoted(command: str, tmp_path: Path) -> str:
    """What `triggerfish COMMAND` prints; a server (dev, serve) until it serves, then stopped."""
    given = words(command)
    if given[0] in ("dev", "serve"):
        extra = ["--port", "0", "--data-dir", str(tmp_path / "data")]
        server = DevServer(*given[1:], *extra, *(["--no-reload"] if given[0] == "dev" else []), cwd=ROOT, verb=given[0])
        server.start(60)
        server.stop()
        return server.output()
    done = subprocess.run([sys.executable, "-m", "triggerfish", *given], cwd=ROOT, capture_output=True, text=True)
    return done.stdout + done.stderr


def output_cases() -> list[tuple[str, str, str]]:
    return [
        (page.relative_to(ROOT).as_posix(), command, block)
        for page in PAGES
        for command, block in _OUTPUT.findall(page.read_text())
    ]


def test_some_output_is_marked() -> None:
    assert output_cases()


@pytest.mark.parametrize(("page", "command", "block"), output_cases())
def test_quoted_output_is_what_the_command_prints(page: str, command: str, block: str, tmp_path: Path) -> None:
    printed = run_quoted(command, tmp_path)
    # The page's server is on its usual port; the test's on a free one.
    lines = [re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:8080", line.rstrip()) for line in printed.splitlines()]
    at = 0
    for expected in block.rstrip("\n").splitlines():
        if expected.strip() == "...":
            continue
        assert expected.rstrip() in lines[at:], f"{page}: `{command}` no longer prints {expected!r}:\n{printed}"
        at = lines.index(expected.rstrip(), at) + 1
