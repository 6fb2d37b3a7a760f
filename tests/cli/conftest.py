"""Running the CLI in-process (click's runner) against a real `triggerfish dev` or the fake `serve` endpoints.

Every test gets an environment with no TRIGGERFISH_* variables and a config file path of its own, so
neither the developer's login nor the variables of the shell running the tests leak in.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.cli.fake_server import FakeServer, served
from tests.server.devserver import DevServer
from triggerfish.cli.main import cli

#: A small app for the per-app verbs: a function that returns, one that raises, a rule, queues.
DEV_APP = """
import triggerfish

app = triggerfish.App("cli")


@app.function()
def quote(event, context):
    print("quoting", event.get("items"), "items")
    return {"total": 10 * event.get("items", 0)}


@app.function(retries=0)
def refund(event, context):
    raise ValueError("order o-1 was never paid")


@app.on_event({"source": ["tests"]})
def audit(event, context):
    context.send("audit", event["id"])
"""
DEV_CONFIG = """
[queues.audit]

[queues.emails]
dead_letter = "emails.failed"
"""

_VARIABLES = ("TRIGGERFISH_SERVER", "TRIGGERFISH_KEY", "TRIGGERFISH_APP", "TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR")


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The config file path this test's CLI uses (it does not exist yet)."""
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config" / "config.toml"
    monkeypatch.setenv("TRIGGERFISH_CONFIG", str(config))
    return config


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """`triggerfish ARGS...` in this process; stdout and stderr apart."""
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


@dataclass
class Dev:
    url: str
    files: Path


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """A real `triggerfish dev` process serving DEV_APP."""
    directory = tmp_path_factory.mktemp("dev")
    (directory / "app.py").write_text(textwrap.dedent(DEV_APP), encoding="utf-8")
    (directory / "triggerfish.toml").write_text(DEV_CONFIG, encoding="utf-8")
    server = DevServer("app.py", "--port", "0", "--data-dir", str(directory / "data"), "--no-reload", cwd=directory)
    server.start()
    try:
        yield Dev(server.url, directory)
    finally:
        server.stop()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """The fake `triggerfish serve` (apps shop and blog; an admin key and a viewer key of shop)."""
    with served(FakeServer()) as server:
        yield server
