"""`triggerfish invocations show` and `rerun` against a real `triggerfish dev` (which keeps inputs)."""

from __future__ import annotations

import json

import httpx

from tests.cli.conftest import Dev, run


def _invoke(dev: Dev, function: str, event: object) -> str:
    answer = httpx.post(f"{dev.url}/-/api/v1/functions/{function}/invoke", json=event, timeout=30)
    request_id: str = answer.headers["x-triggerfish-request-id"]
    return request_id


def test_show_prints_the_attempts_and_the_input(dev: Dev) -> None:
    request_id = _invoke(dev, "quote", {"items": 3})
    shown = run("invocations", "show", request_id, "--server", dev.url)
    assert shown.exit_code == 0, shown.stderr
    assert f"invocation {request_id}:" in shown.stdout
    assert "function: quote" in shown.stdout
    assert "succeeded" in shown.stdout
    assert 'input:\n{\n  "items": 3\n}' in shown.stdout
    document = json.loads(run("invocations", "show", request_id, "--server", dev.url, "--json").stdout)
    assert document["input"]["event"] == {"items": 3}
    assert document["attempts"][0]["status"] == "succeeded"


def test_rerun_prints_the_new_invocations_result_and_fails_as_invoke_does(dev: Dev) -> None:
    request_id = _invoke(dev, "quote", {"items": 4})
    again = run("invocations", "rerun", request_id, "--server", dev.url)
    assert again.exit_code == 0, again.stderr
    first = again.stdout.splitlines()[0]
    assert first.startswith("request id ")
    assert f"(a re-run of {request_id} on version 1)" in first
    assert '"total": 40' in again.stdout
    failing = _invoke(dev, "refund", {"order": "o-1"})
    refused = run("invocations", "rerun", failing, "--server", dev.url)
    assert refused.exit_code == 1
    assert "ValueError: order o-1 was never paid" in refused.stderr


def test_an_unknown_invocation_is_refused_naming_it(dev: Dev) -> None:
    missing = run("invocations", "show", "no-such-request", "--server", dev.url)
    assert missing.exit_code == 1
    assert "InvocationNotFound" in missing.stderr
    assert "'no-such-request'" in missing.stderr
