"""When a verb's app does not fit the server (dev or serve), the error names the fix, against real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.devserver import DevServer

APP = """\
import triggerfish

app = triggerfish.App("greeter")


@app.function
def hello(event, context):
    return "hi"
"""


def triggerfish(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGERFISH_")}
    env["TRIGGERFISH_CONFIG"] = os.devnull
    return subprocess.run(
        [sys.executable, "-m", "triggerfish", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, DevServer, str]]:
    """A `dev` of the greeter, and a `serve` with the greeter deployed; the serve's admin key."""
    project = tmp_path_factory.mktemp("hints")
    (project / "greeter").mkdir()
    (project / "greeter" / "app.py").write_text(APP)
    dev = DevServer("greeter", "--port", "0", "--no-reload", cwd=project).start()
    serve = DevServer(
        "--port", "0", "--no-isolation", "--data-dir", "server", cwd=project, verb="serve"
    ).start(60)  # fmt: skip
    try:
        key = (project / "server" / "admin.key").read_text().strip()
        deployed = triggerfish("deploy", str(project / "greeter"), "--server", serve.url, "--key", key)
        assert deployed.returncode == 0, deployed.stderr
        yield dev, serve, key
    finally:
        dev.stop()
        serve.stop()


@pytest.mark.parametrize(
    ("verb", "naming", "named"),
    [
        (["invoke", "hello"], "--app APP", ["--app", "greeter"]),
        (["events", "put", "--type", "Greeted", "--source", "tour"], "--app APP", ["--app", "greeter"]),
        (["logs"], "`triggerfish logs APP`", ["greeter"]),
    ],
    ids=["invoke", "events put", "logs"],
)
def test_a_per_app_verb_against_serve_without_an_app_says_how_to_name_it(
    servers: tuple[DevServer, DevServer, str], verb: list[str], naming: str, named: list[str]
) -> None:
    _, serve, key = servers
    done = triggerfish(*verb, "--server", serve.url, "--key", key)
    assert done.returncode == 1
    assert done.stderr.startswith("error: the server refused (404 NotFound): no endpoint ")
    assert done.stderr.rstrip().endswith(
        f"`triggerfish serve` keeps each app's endpoints apart: name the app with {naming} (or $TRIGGERFISH_APP);"
        " `triggerfish list` shows the apps"
    )
    again = triggerfish(*verb, *named, "--server", serve.url, "--key", key)
    assert again.returncode == 0, again.stderr


def test_an_app_named_against_dev_is_told_to_drop_it(servers: tuple[DevServer, DevServer, str]) -> None:
    dev, _, _ = servers
    done = triggerfish("invoke", "hello", "--server", dev.url, "--app", "greeter")
    assert done.returncode == 1
    assert done.stderr.rstrip().endswith(
        "`triggerfish dev` serves one app, with no --app: drop --app and $TRIGGERFISH_APP"
    )


def test_a_server_verb_against_dev_is_told_to_give_the_servers_address(
    servers: tuple[DevServer, DevServer, str],
) -> None:
    dev, _, _ = servers
    done = triggerfish("keys", "list", "--server", dev.url)
    assert done.returncode == 1
    assert done.stderr.rstrip().endswith(
        "`triggerfish dev` serves one app, with no apps, versions or keys endpoints: those need `triggerfish serve`;"
        " give its address with --server URL"
    )


def test_no_server_says_where_the_address_came_from_and_how_to_give_another(tmp_path: Path) -> None:
    done = triggerfish("invoke", "hello", "--server", "http://127.0.0.1:9")
    assert done.returncode == 3
    assert done.stderr == (
        "error: server unreachable at http://127.0.0.1:9 (from --server): is `triggerfish dev` or `triggerfish serve`"
        " running there? Give another with --server URL (or $TRIGGERFISH_SERVER)\n"
    )
