"""`triggerfish eventstore ...` and the control API under it, against a real `triggerfish dev` (HTTP on a socket)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Dev, run
from tests.server.devserver import DevServer, poll

APP = """
import triggerfish

app = triggerfish.App("ledger")


@app.projection("account", batch_size=10)
def totals(event, view):
    view.put(event.stream, view.get(event.stream, 0) + event.data.get("amount", 0))


@app.projection("account", order="stream")
def careful(event, view):
    if event.data.get("poison"):
        raise ValueError("poisoned event")
    view.put(event.stream, event.version)
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    directory = tmp_path_factory.mktemp("eventstore")
    (directory / "app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    server = DevServer("app.py", "--port", "0", "--data-dir", str(directory / "data"), "--no-reload", cwd=directory)
    server.start()
    try:
        yield Dev(server.url, directory)
    finally:
        server.stop()


@pytest.fixture
def env(dev: Dev) -> dict[str, str]:
    return {"TRIGGERFISH_SERVER": dev.url}


def test_append_read_and_list_from_the_cli(env: dict[str, str]) -> None:
    first = run(
        "eventstore", "append", "account-ada", "Deposited", "-d", '{"amount": 5}', "--expected-version", "0", env=env
    )
    assert (first.exit_code, first.stdout) == (0, "account-ada version 1 (position 1)\n"), first.stderr
    again = run(
        "eventstore", "append", "account-ada", "Deposited", "-d", '{"amount": 5}', "--expected-version", "0", env=env
    )
    assert again.exit_code == 1
    assert "at version 1, not the expected 0" in again.stderr
    run("eventstore", "append", "account-ada", "Withdrawn", "-d", '{"amount": -2}', env=env)
    run("eventstore", "append", "loan-1", "Granted", "-d", '{"amount": 100}', env=env)

    read = run("eventstore", "read", "account-ada", "--backwards", "--json", env=env)
    assert [(e["version"], e["type"]) for e in json.loads(read.stdout)["events"]] == [
        (2, "Withdrawn"),
        (1, "Deposited"),
    ]
    streams = run("eventstore", "streams", "--category", "account", "--json", env=env)
    assert json.loads(streams.stdout)["streams"] == [{"stream": "account-ada", "version": 2}]
    everything = run("eventstore", "events", "--after", "1", "--json", env=env)
    assert [e["position"] for e in json.loads(everything.stdout)["events"]] == [2, 3]
    table = run("eventstore", "events", env=env)
    assert "Granted" in table.stdout


def test_the_verbs_also_answer_to_streams_as_the_issue_names_them(env: dict[str, str]) -> None:
    appended = run("streams", "append", "order-77", "Placed", "-d", '{"total": 9}', "--expected-version", "0", env=env)
    assert appended.exit_code == 0, appended.stderr
    assert appended.stdout.startswith("order-77 version 1 (position ")
    read = run("streams", "read", "order-77", "--json", env=env)
    assert [(e["version"], e["type"], e["data"]) for e in json.loads(read.stdout)["events"]] == [
        (1, "Placed", {"total": 9})
    ]
    assert "Streams, events and projections" in run("streams", "--help").stdout


def test_projections_show_their_lag_and_rebuild(dev: Dev, env: dict[str, str]) -> None:
    # An event of its own: xdist may run this test on another worker (another server) than the appends above.
    appended = run("eventstore", "append", "account-lag", "Deposited", "-d", '{"amount": 1}', env=env)
    assert appended.exit_code == 0, appended.stderr

    def status() -> dict[str, object] | None:
        found = json.loads(run("eventstore", "projections", "--json", env=env).stdout)["projections"]
        mine = [p for p in found if p["name"] == "totals"]
        return mine[0] if mine and mine[0]["lag"] == 0 and mine[0]["position"] > 0 else None

    caught_up = poll(status, timeout=30)
    assert (caught_up["name"], caught_up["category"], caught_up["error"]) == ("totals", "account", None)
    rebuilt = run("eventstore", "rebuild", "totals", env=env)
    assert (rebuilt.exit_code, rebuilt.stdout) == (0, "totals: rebuilding from position 0\n"), rebuilt.stderr
    assert poll(status, timeout=30)["rebuilding"] is False
    unknown = run("eventstore", "rebuild", "nope", env=env)
    assert unknown.exit_code == 1
    assert "no projection named 'nope'" in unknown.stderr


def test_the_api_refuses_bad_appends_precisely(dev: Dev) -> None:
    url = f"{dev.url}/-/api/v1/eventstore/streams/account-bob"
    missing = httpx.post(url, json={"events": [{"data": 1}]}, timeout=10)
    assert missing.status_code == 400
    assert "type" in missing.text
    conflict = httpx.post(url, json={"events": [{"type": "Opened"}], "expected_version": 4}, timeout=10)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["current_version"] == 0


def test_a_per_stream_projection_shows_the_streams_its_errors_hold_up(env: dict[str, str]) -> None:
    poisoned = run("eventstore", "append", "account-poison", "Deposited", "-d", '{"poison": true}', env=env)
    assert poisoned.exit_code == 0, poisoned.stderr

    def held() -> dict[str, Any] | None:
        found = json.loads(run("eventstore", "projections", "--json", env=env).stdout)["projections"]
        [careful] = [p for p in found if p["name"] == "careful"]
        return careful if "account-poison" in careful["behind"] else None

    careful = poll(held, timeout=30)
    assert careful["order"] == "stream"
    assert careful["behind"]["account-poison"] == {"version": 0, "failed": 1, "error": "poisoned event"}
    table = run("eventstore", "projections", env=env).stdout
    [row] = [line for line in table.splitlines() if line.startswith("careful")]
    assert "behind" in row
    assert "poisoned event" in row
