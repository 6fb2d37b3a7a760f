"""The commands the README and docs/cli.md show work as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from tests.server.devserver import DevServer, poll

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


def test_the_readme_main_command_serves_the_shop_and_its_tour_works_as_written(tmp_path: Path) -> None:
    first, _, *tour = bash_commands(ROOT / "README.md")
    words = shlex.split(first.removeprefix("scripts/install && "))
    assert words[0] == ".venv/bin/triggerfish"
    assert words[1] == "dev"
    # As written, but on a free port and a scratch data directory, so a test never collides with a running shop.
    server = DevServer(*words[2:], "--port", "0", "--data-dir", str(tmp_path / "data"), "--no-reload", cwd=ROOT)
    server.start()
    try:
        port = server.url.rsplit(":", 1)[1]
        outputs = []
        for command in tour:
            command = command.replace("localhost:8080", f"127.0.0.1:{port}")
            env = {**os.environ, "TRIGGERFISH_SERVER": server.url}
            if command.startswith(".venv/bin/triggerfish "):
                command = shlex.join([sys.executable, "-m", "triggerfish"]) + command.removeprefix(
                    ".venv/bin/triggerfish"
                )
            done = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
        order = json.loads(outputs[0])
        assert order["status"] == "placed"
        assert order["order_id"]
        assert len(outputs[1].split()) == 1  # the event's id
        assert isinstance(json.loads(outputs[2])["available"], int)
        functions = {record["function"] for record in json.loads(outputs[3])["invocations"]}
        assert "place_order" in functions
        shipped = poll(
            lambda: httpx.get(f"{server.url}/orders/{order['order_id']}", timeout=5).json()["status"] == "shipped"
        )
        assert shipped
    finally:
        server.stop()


def test_the_cli_page_pattern_example_matches() -> None:
    (example,) = [c for c in bash_commands(ROOT / "docs" / "cli.md") if "test-pattern" in c]
    done = run_triggerfish(example)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "match"
