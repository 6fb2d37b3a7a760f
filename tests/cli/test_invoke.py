"""`triggerfish invoke` against a real `triggerfish dev`: the event from -d, a file or stdin; sync and async."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Dev, run
from tests.server.devserver import poll


@pytest.fixture
def env(dev: Dev) -> dict[str, str]:
    return {"TRIGGERFISH_SERVER": dev.url}


def test_the_result_is_printed_as_json(env: dict[str, str]) -> None:
    done = run("invoke", "quote", "-d", '{"items": 3}', env=env)
    assert (done.exit_code, done.stdout) == (0, '{"total": 30}\n')


def test_the_event_from_a_file_or_standard_input_and_none_is_an_empty_object(
    env: dict[str, str], tmp_path: Path
) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"items": 4}', encoding="utf-8")
    assert run("invoke", "quote", "--path", str(event), env=env).stdout == '{"total": 40}\n'
    assert run("invoke", "quote", env=env, input='{"items": 5}').stdout == '{"total": 50}\n'
    assert run("invoke", "quote", env=env).stdout == '{"total": 0}\n'


def test_json_mode_adds_the_request_id_whose_record_has_the_output(dev: Dev, env: dict[str, str]) -> None:
    done = run("invoke", "quote", "-d", '{"items": 2}', "--json", env=env)
    document = json.loads(done.stdout)
    assert (document["status"], document["result"]) == ("succeeded", {"total": 20})
    record = httpx.get(f"{dev.url}/-/api/v1/invocations/{document['request_id']}", timeout=10).json()
    assert "quoting 2 items" in record["attempts"][0]["output"]


def test_logs_prints_the_captured_output_on_stderr(env: dict[str, str]) -> None:
    done = run("invoke", "quote", "-d", '{"items": 7}', "--logs", env=env)
    assert done.stdout == '{"total": 70}\n'
    assert "quoting 7 items" in done.stderr


def test_a_failing_function_exits_1_with_its_error_and_stack(env: dict[str, str]) -> None:
    done = run("invoke", "refund", env=env)
    assert done.exit_code == 1
    assert done.stdout == ""
    assert "error: the function failed: ValueError: order o-1 was never paid" in done.stderr
    assert 'raise ValueError("order o-1 was never paid")' in done.stderr
    assert "triggerfish logs --request-id " in done.stderr
    as_json = run("invoke", "refund", "--json", env=env)
    document = json.loads(as_json.stdout)
    assert (as_json.exit_code, document["status"], document["error"]["errorType"]) == (1, "failed", "ValueError")


def test_async_prints_the_request_id_and_the_invocation_runs(dev: Dev, env: dict[str, str]) -> None:
    done = run("invoke", "quote", "--async", "-d", '{"items": 1}', env=env)
    assert done.exit_code == 0
    request_id = done.stdout.strip()
    record = poll(
        lambda: (
            (r := httpx.get(f"{dev.url}/-/api/v1/invocations/{request_id}", timeout=10)).status_code == 200 and r.json()
        )
    )
    assert record["attempts"][0]["trigger"] == "async"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", '{"items": 3,}'], "invalid JSON in --data at line 1 column 12: trailing comma is not allowed"),
        (["-d", '{\n  "items": }'], "invalid JSON in --data at line 2 column 12"),
        (["-d", "{}", "--path", "event.json"], "give the payload once: --data or --path, not both"),
        (["--path", "/no/such/event.json"], "cannot read --path '/no/such/event.json'"),
    ],
)
def test_bad_input_exits_2_naming_the_fault(env: dict[str, str], args: list[str], message: str) -> None:
    done = run("invoke", "quote", *args, env=env)
    assert done.exit_code == 2
    assert message in done.stderr


def test_invalid_json_on_standard_input_names_it(env: dict[str, str]) -> None:
    done = run("invoke", "quote", env=env, input="[1, 2")
    assert done.exit_code == 2
    assert "invalid JSON in standard input at line 1 column 6" in done.stderr


def test_an_unknown_function_exits_1_with_the_servers_code_and_the_functions_there_are(env: dict[str, str]) -> None:
    done = run("invoke", "qoute", env=env)
    assert done.exit_code == 1
    assert "the server refused (404 FunctionNotFound): no function named 'qoute'; the app declares:" in done.stderr


def test_naming_an_app_on_the_dev_server_says_to_drop_it(env: dict[str, str]) -> None:
    done = run("invoke", "quote", "--app", "cli", env=env)
    assert done.exit_code == 1
    assert "drop --app and $TRIGGERFISH_APP" in done.stderr


def test_the_console_script_pipes_stdin_to_the_function(dev: Dev) -> None:
    script = Path(sys.executable).parent / "triggerfish"
    done = subprocess.run(
        [str(script), "invoke", "quote", "--server", dev.url],
        input='{"items": 9}',
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (0, '{"total": 90}\n')
