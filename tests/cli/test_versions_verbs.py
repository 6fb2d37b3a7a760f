"""`triggerfish versions`, `alias` and `promote` against a real `triggerfish serve` with two versions deployed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.devserver import DevServer

APP = """\
import triggerfish

app = triggerfish.App("greeter")


@app.http("GET", "/hello")
def hello(event, context):
    return {{"version": {version}}}
"""


def triggerfish(*args: str, server: DevServer, key: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGERFISH_")}
    env.update(TRIGGERFISH_CONFIG=os.devnull, TRIGGERFISH_SERVER=server.url, TRIGGERFISH_KEY=key)
    return subprocess.run(
        [sys.executable, "-m", "triggerfish", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[DevServer, str]]:
    """A `serve` with versions 1 and 2 of the greeter deployed (2 live), and its admin key."""
    (tmp_path / "greeter").mkdir()
    serve = DevServer(
        "--port", "0", "--no-isolation", "--data-dir", "server", cwd=tmp_path, verb="serve"
    ).start(60)  # fmt: skip
    try:
        key = (tmp_path / "server" / "admin.key").read_text().strip()
        for version in (1, 2):
            (tmp_path / "greeter" / "app.py").write_text(APP.format(version=version))
            done = triggerfish("deploy", str(tmp_path / "greeter"), server=serve, key=key)
            assert done.returncode == 0, done.stderr
        yield serve, key
    finally:
        serve.stop()


def answering(serve: DevServer, times: int = 60) -> set[int]:
    return {httpx.get(f"{serve.url}/greeter/hello", timeout=10).json()["version"] for _ in range(times)}


def test_versions_lists_each_version_with_the_aliases_naming_it(deployed: tuple[DevServer, str]) -> None:
    serve, key = deployed
    done = triggerfish("versions", "greeter", server=serve, key=key)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["VERSION", "DEPLOYED", "BUNDLE", "STAGE", "FUNCTIONS", "ALIASES"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2"]
    assert lines[1].split()[-1] == "-"
    assert lines[2].split()[-1] == "live"
    document = json.loads(triggerfish("versions", "greeter", "--json", server=serve, key=key).stdout)
    assert [v["live"] for v in document["versions"]] == [False, True]
    assert document["aliases"] == [{"name": "live", "version": 2, "weights": {}}]


def test_a_canary_on_live_shares_the_traffic_and_promote_gives_it_all(deployed: tuple[DevServer, str]) -> None:
    serve, key = deployed
    done = triggerfish(
        "alias", "greeter", "live", "--version", "1", "--canary", "2", "--weight", "0.5", server=serve, key=key
    )
    assert (done.returncode, done.stdout) == (0, "app greeter: live -> version 1, canary 2 at 50%\n"), done.stderr
    assert answering(serve) == {1, 2}
    listed = triggerfish("versions", "greeter", server=serve, key=key).stdout
    assert "live (canary, 50%)" in listed
    done = triggerfish("promote", "greeter", server=serve, key=key)
    assert (done.returncode, done.stdout) == (0, "app greeter: promoted version 2; live -> version 2\n"), done.stderr
    assert answering(serve, 10) == {2}
    again = triggerfish("promote", "greeter", server=serve, key=key)
    assert again.returncode == 1
    assert "has no canary to promote; set one with `triggerfish alias greeter live --version 2" in again.stderr


def test_an_alias_other_than_live_names_a_version_without_serving_it(deployed: tuple[DevServer, str]) -> None:
    serve, key = deployed
    done = triggerfish("alias", "greeter", "stable", "--version", "1", server=serve, key=key)
    assert done.stdout == "app greeter: stable -> version 1\n", done.stderr
    assert answering(serve, 10) == {2}
    assert "stable" in triggerfish("versions", "greeter", server=serve, key=key).stdout.splitlines()[1]


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--version", "1", "--canary", "2"], "--canary and --weight go together"),
        (["--version", "1", "--weight", "0.1"], "--canary and --weight go together"),
        (["--version", "2", "--canary", "2", "--weight", "0.1"], "--canary 2 is --version itself"),
        (["--version", "1", "--canary", "2", "--weight", "1"], "Invalid value for '--weight'"),
    ],
)
def test_bad_alias_options_are_refused_before_any_call(arguments: list[str], said: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGERFISH_")}
    env.update(TRIGGERFISH_CONFIG=os.devnull, TRIGGERFISH_SERVER="http://127.0.0.1:9")
    done = subprocess.run(
        [sys.executable, "-m", "triggerfish", "alias", "greeter", "live", *arguments],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert said in done.stderr


def test_a_version_the_app_does_not_have_is_refused_by_the_server(deployed: tuple[DevServer, str]) -> None:
    serve, key = deployed
    done = triggerfish("alias", "greeter", "live", "--version", "9", server=serve, key=key)
    assert done.returncode == 1
    assert "app 'greeter' has no version 9" in done.stderr
    assert answering(serve, 10) == {2}
