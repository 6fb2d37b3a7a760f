"""The commands the README and docs/cli.md show work as written."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.server.devserver import DevServer, poll
from tests.services import drop_schema, require_postgres

ROOT = Path(__file__).resolve().parent.parent
#: How the tour's first terminal starts, and every other terminal of it: in a scratch directory, outside the
#: repository, with the virtual environment's `triggerfish` on the PATH.
TOUR_FIRST_TERMINAL = "source .venv/bin/activate && mkdir -p /tmp/tour && cd /tmp/tour"
TOUR_TERMINAL = "source .venv/bin/activate && cd /tmp/tour"


def bash_blocks(page: Path) -> list[list[str]]:
    """The commands of each of the page's ```bash blocks, with backslash continuations joined."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    return [[line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()] for block in blocks]


def bash_commands(page: Path) -> list[str]:
    """Each command of the page's ```bash blocks, in order."""
    return [command for block in bash_blocks(page) for command in block]


def run_shell(command: str, *, cwd: Path, server: str, hosts: dict[str, str]) -> str:
    """Run a README line as a user would (bash), with `.venv/bin/triggerfish` meaning this interpreter's
    triggerfish and the page's addresses replaced by the test's servers; its output, after it exits 0."""
    for written, actual in hosts.items():
        command = command.replace(written, actual)
    command = command.replace(".venv/bin/triggerfish", shlex.join([sys.executable, "-m", "triggerfish"]))
    if command.startswith("triggerfish "):
        command = shlex.join([sys.executable, "-m", "triggerfish"]) + command.removeprefix("triggerfish")
    env = {**os.environ, "TRIGGERFISH_SERVER": server, "TRIGGERFISH_CONFIG": os.devnull, "PYTHONPATH": str(ROOT)}
    env.pop("TRIGGERFISH_KEY", None)
    done = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def long_running(command: str, verb: str) -> list[str]:
    """The arguments after `triggerfish VERB` (or `.venv/bin/triggerfish VERB`) of a README line that starts a
    server."""
    words = shlex.split(command)
    assert words[0] in ("triggerfish", ".venv/bin/triggerfish"), command
    assert words[1] == verb, command
    return words[2:]


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
    setup, shop_tour, *_ = bash_blocks(ROOT / "README.md")
    arguments = long_running(setup[0].removeprefix("scripts/install && "), "dev")
    # As written, but on a free port and a scratch data directory, so a test never collides with a running shop.
    server = DevServer(*arguments, "--port", "0", "--data-dir", str(tmp_path / "data"), "--no-reload", cwd=ROOT)
    server.start()
    try:
        hosts = {"localhost:8080": server.url.removeprefix("http://")}
        outputs = [run_shell(command, cwd=ROOT, server=server.url, hosts=hosts) for command in shop_tour]
        order = json.loads(outputs[0])
        assert order["status"] == "placed"
        assert order["order_id"]
        assert len(outputs[1].split()) == 1  # the event's id
        assert isinstance(json.loads(outputs[2])["available"], int)
        # The newest records, newest first: the stock request just made is among them.
        records = json.loads(outputs[3])["invocations"]
        assert 1 <= len(records) <= 5
        started = [record["started_at"] for record in records]
        assert started == sorted(started, reverse=True)
        assert "get_stock" in {record["function"] for record in records}
        shipped = poll(
            lambda: httpx.get(f"{server.url}/orders/{order['order_id']}", timeout=5).json()["status"] == "shipped"
        )
        assert shipped
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_five_minute_tour_works_as_written(tmp_path: Path) -> None:
    _, _, start, calls, serving, deploying = bash_blocks(ROOT / "README.md")[:6]
    # The scratch directory the page makes and moves to is this test's own: the repository is left as it was.
    assert start[0] == TOUR_FIRST_TERMINAL
    run_shell(start[1], cwd=tmp_path, server="", hosts={})
    assert (tmp_path / "greeter" / "app.py").is_file()
    dev = DevServer(*long_running(start[2], "dev"), "--port", "0", cwd=tmp_path).start()
    try:
        hosts = {"localhost:8080": dev.url.removeprefix("http://")}
        said = [run_shell(command, cwd=tmp_path, server=dev.url, hosts=hosts) for command in calls]
    finally:
        dev.stop()
    assert json.loads(said[0]) == {"message": "Hello, ada!"}
    assert "Hello, grace!" in said[1]
    assert len(said[2].split()) == 1  # the event's id
    assert "REPORT" in said[3]

    arguments = long_running(serving[0], "serve")
    assert arguments[:2] == ["--port", "9090"]
    # On a free port instead of the page's 9090; the page's later lines are pointed at it below.
    server = DevServer(*arguments[2:], "--port", "0", cwd=tmp_path, verb="serve").start()
    try:
        address = server.url.removeprefix("http://")
        hosts = {"http://127.0.0.1:9090": server.url, "localhost:9090": address}
        shown = [run_shell(command, cwd=tmp_path, server=server.url, hosts=hosts) for command in deploying]
    finally:
        server.stop()
    greetings = [json.loads(out)["message"] for command, out in zip(deploying, shown, strict=True) if "curl" in command]
    assert greetings == ["Hello, ada!", "Howdy, ada!", "Hello, ada!"]
    # The page's edit changed the app and its test together: the project's own tests still pass.
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", ".", "test_app.py"],
        cwd=tmp_path / "greeter",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "Howdy" in (tmp_path / "greeter" / "test_app.py").read_text()
    assert "greeter" in shown[-3]  # status lists the app


@pytest.mark.slow
def test_the_many_machines_section_works_as_written(tmp_path: Path) -> None:
    require_postgres()
    first, second, calls = bash_blocks(ROOT / "README.md")[6:9]
    assert first[0] == "scripts/install postgres"  # the test's environment has the driver already
    assert first[1] == second[0] == TOUR_TERMINAL
    schema = f"readme_{uuid.uuid4().hex[:10]}"
    nodes = []
    try:
        for line in (first[2], second[1]):
            arguments = [a.replace("schema=tour", f"schema={schema}") for a in long_running(line, "serve")]
            assert arguments[0] == "--port"
            # On free ports instead of the page's 9091 and 9092; the page's later lines are pointed at them.
            nodes.append(DevServer(*arguments[2:], "--port", "0", cwd=tmp_path, verb="serve").start(timeout=60))
        run_shell("triggerfish init greeter --template http", cwd=tmp_path, server="", hosts={})
        a, b = (node.url for node in nodes)
        hosts = {
            "http://127.0.0.1:9091": a,
            "http://127.0.0.1:9092": b,
            "localhost:9092": b.removeprefix("http://"),
        }
        deployed = run_shell(calls[0], cwd=tmp_path, server=a, hosts=hosts)
        assert "greeter" in deployed

        def greeted() -> str | None:
            out = run_shell(calls[1], cwd=tmp_path, server=b, hosts=hosts)
            return out if "ada" in out else None

        greeting = poll(greeted)
        assert json.loads(greeting) == {"message": "Hello, ada!"}

        def both_nodes_up() -> str | None:
            out = run_shell(calls[2], cwd=tmp_path, server=b, hosts=hosts)
            nodes_table = out[out.index("NODE") :]
            return out if re.findall(r"\b(up|gone)\b", nodes_table) == ["up", "up"] else None

        status = poll(both_nodes_up)
        assert "greeter" in status
        assert not (tmp_path / "node-b" / "admin.key").exists()
    finally:
        for node in nodes:
            node.stop()
        asyncio.run(drop_schema(schema))


def test_the_cli_page_pattern_example_matches() -> None:
    (example,) = [c for c in bash_commands(ROOT / "docs" / "cli.md") if "test-pattern" in c]
    done = run_triggerfish(example)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "match"
