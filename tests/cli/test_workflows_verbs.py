"""`triggerfish workflows ...` and the control API under it, against a real `triggerfish dev` (HTTP on a socket)."""

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

app = triggerfish.App("approvals")


def notify(token):
    return token[:8]


@app.http("POST", "/expenses")
@app.workflow
def expense(ctx, input):
    callback = ctx.callback(timeout=3600)
    ctx.step(notify, callback.token)
    return {"approved": callback.result()}


@app.workflow
def nap(ctx, input):
    ctx.sleep(3600)
    return "rested"


def fragile(flag):
    import os

    if not os.path.exists(flag):
        os._exit(1)  # the worker dies: the run has no answer, and with no retries its invocation is dead-lettered
    return "fixed"


@app.workflow(retries=0)
def brittle(ctx, input):
    return ctx.step(fragile, input["flag"])


@app.function
def plain(event, context):
    return event
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    directory = tmp_path_factory.mktemp("workflows")
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


def record(dev: Dev, workflow_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{dev.url}/-/api/v1/workflows/{workflow_id}", timeout=10).json()
    return answer


def token_of(dev: Dev, workflow_id: str) -> str:
    found = poll(lambda: [op for op in record(dev, workflow_id).get("ops", []) if op["kind"] == "callback"])
    return str(found[0]["token"])


def test_start_describe_and_answer_a_callback_from_the_cli(dev: Dev, env: dict[str, str]) -> None:
    started = run("workflows", "start", "expense", "-d", '{"amount": 120}', env=env)
    assert started.exit_code == 0, started.stderr
    workflow_id = started.stdout.strip()
    token = token_of(dev, workflow_id)
    answered = run("workflows", "callback", token, "-d", '{"by": "ann"}', env=env)
    assert (answered.exit_code, answered.stdout) == (0, "completed\n")
    done = poll(lambda: (r := record(dev, workflow_id))["status"] == "SUCCEEDED" and r)
    assert done["result"] == {"approved": {"by": "ann"}}
    assert done["input"] == {"amount": 120}
    described = run("workflows", "describe", workflow_id, env=env)
    assert described.exit_code == 0, described.stderr
    assert "SUCCEEDED" in described.stdout
    assert "callback" in described.stdout
    assert "notify" in described.stdout
    again = run("workflows", "callback", token, "-d", "1", env=env)
    assert again.exit_code == 1
    assert "is SUCCEEDED" in again.stderr


def test_a_callback_answered_with_failure_over_http(dev: Dev) -> None:
    answer = httpx.post(f"{dev.url}/-/api/v1/workflows", json={"function": "expense", "input": {}}, timeout=10)
    assert answer.status_code == 202
    workflow_id = answer.json()["workflow_id"]
    token = token_of(dev, workflow_id)
    failed = httpx.post(
        f"{dev.url}/-/api/v1/workflows/callbacks/{token}/fail",
        json={"error": "Refused", "message": "over budget"},
        timeout=10,
    )
    assert failed.status_code == 200
    done = poll(lambda: (r := record(dev, workflow_id))["status"] != "RUNNING" and r)
    assert done["status"] == "FAILED"
    assert done["error"]["errorType"] == "Refused"
    assert "over budget" in done["error"]["errorMessage"]


def test_an_http_trigger_starts_a_workflow_and_answers_its_id(dev: Dev) -> None:
    answer = httpx.post(f"{dev.url}/expenses", json={"amount": 5}, timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "RUNNING"
    assert record(dev, body["workflow_id"])["function"] == "expense"


def test_list_by_function_and_status_and_cancel(dev: Dev, env: dict[str, str]) -> None:
    first = run("workflows", "start", "nap", "--id", "nap-1", env=env)
    assert (first.exit_code, first.stdout) == (0, "nap-1\n")
    poll(lambda: record(dev, "nap-1").get("ops"))
    listed = run("workflows", "list", "--function", "nap", "--status", "running", "--json", env=env)
    assert [w["id"] for w in json.loads(listed.stdout)["workflows"]] == ["nap-1"]
    cancelled = run("workflows", "cancel", "nap-1", "--reason", "woken up", env=env)
    assert (cancelled.exit_code, cancelled.stdout) == (0, "nap-1 CANCELLED\n")
    assert record(dev, "nap-1")["error"]["errorMessage"] == "woken up"
    again = run("workflows", "cancel", "nap-1", env=env)
    assert again.exit_code == 1
    assert "has finished (CANCELLED)" in again.stderr
    table = run("workflows", "list", "--function", "nap", env=env)
    assert "nap-1" in table.stdout
    assert "CANCELLED" in table.stdout


def test_what_is_not_there_is_named(dev: Dev, env: dict[str, str]) -> None:
    unknown = run("workflows", "start", "plain", env=env)
    assert unknown.exit_code == 1
    assert "no workflow named 'plain'" in unknown.stderr
    assert "brittle, expense, nap" in unknown.stderr
    missing = run("workflows", "describe", "no-such-id", env=env)
    assert missing.exit_code == 1
    assert "no workflow 'no-such-id'" in missing.stderr
    forged = run("workflows", "callback", "forged", "-d", "{}", env=env)
    assert forged.exit_code == 1
    assert "not a callback token" in forged.stderr
    bad = httpx.post(f"{dev.url}/-/api/v1/workflows", json={"input": 1}, timeout=10)
    assert bad.status_code == 400
    assert "function" in bad.text


def test_a_dead_lettered_workflow_is_resumed_once_the_cause_is_fixed(dev: Dev, env: dict[str, str]) -> None:
    flag = dev.files / "fixed"
    started = run("workflows", "start", "brittle", "--id", "brittle-1", "-d", json.dumps({"flag": str(flag)}), env=env)
    assert started.exit_code == 0, started.stderr

    def dead_lettered() -> Any:
        queues = httpx.get(f"{dev.url}/-/api/v1/queues", timeout=10).json()["queues"]
        return [q for q in queues if q["name"] == "dlq.brittle" and q["stats"]["depth"] >= 1]

    poll(dead_lettered)
    assert record(dev, "brittle-1")["status"] == "RUNNING"  # nothing resumes it by itself
    flag.touch()
    resumed = run("workflows", "resume", "brittle-1", env=env)
    assert (resumed.exit_code, resumed.stdout) == (0, "brittle-1 resumed (RUNNING)\n"), resumed.stderr
    done = poll(lambda: (r := record(dev, "brittle-1"))["status"] != "RUNNING" and r)
    assert (done["status"], done["result"]) == ("SUCCEEDED", "fixed")
    again = httpx.post(f"{dev.url}/-/api/v1/workflows/brittle-1/resume", json={}, timeout=10)
    assert again.status_code == 409
    assert "has finished (SUCCEEDED)" in again.text
    missing = run("workflows", "resume", "no-such-id", env=env)
    assert missing.exit_code == 1
    assert "no workflow 'no-such-id'" in missing.stderr
