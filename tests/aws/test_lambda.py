"""Lambda's API through `/-/aws` with boto3: Invoke (RequestResponse, Event, DryRun, the log tail), listings."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import blocking, client
from tests.server.conftest import Served, serve_app

APP = """
import triggerfish

app = triggerfish.App("tools")


@app.function(memory_mb=256, timeout=10)
def greet(event, context):
    print("greeting", event["name"])
    return {"hello": event["name"]}


@app.function()
def fail(event, context):
    raise ValueError("no such order")


@app.function()
def later(event, context):
    context.send("later-ran", event["n"])


@app.function(memory_mb=128)
def hog(event, context):
    kept = []
    for _ in range(32):  # up to 2 GB, 64 MB at a time, each byte written
        kept.append(b"x" * (64 * 1024 * 1024))
    return len(kept)
"""


@pytest.fixture
async def tools(tmp_path: Path) -> AsyncIterator[Served]:
    async for served in serve_app(tmp_path, APP):
        yield served


async def test_invoke_answers_the_result_and_the_log_tail(tools: Served) -> None:
    lam = client(tools.url, "lambda")
    answer = await blocking(lam.invoke, FunctionName="tools-greet", Payload=json.dumps({"name": "ada"}), LogType="Tail")
    assert answer["StatusCode"] == 200
    assert json.loads(answer["Payload"].read()) == {"hello": "ada"}
    assert "FunctionError" not in answer
    log = base64.b64decode(answer["LogResult"]).decode()
    lines = log.splitlines()
    assert lines[0].startswith("START RequestId: ")
    assert any("greeting ada" in line for line in lines)
    assert lines[-2].startswith("END RequestId: ")
    assert lines[-1].startswith("REPORT RequestId: ")


async def test_a_handler_error_is_a_function_error(tools: Served) -> None:
    lam = client(tools.url, "lambda")
    answer = await blocking(lam.invoke, FunctionName="arn:aws:lambda:local:000000000000:function:tools-fail")
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "no such order")


async def test_event_and_dry_run_invocations(tools: Served) -> None:
    lam = client(tools.url, "lambda")
    queued = await blocking(lam.invoke, FunctionName="later", InvocationType="Event", Payload=b'{"n": "7"}')
    assert queued["StatusCode"] == 202
    (message,) = await tools.platform.store.queues.receive("later-ran", wait=20)
    assert message.body == b"7"
    checked = await blocking(lam.invoke, FunctionName="greet", InvocationType="DryRun")
    assert checked["StatusCode"] == 204


async def test_functions_are_listed_and_described(tools: Served) -> None:
    lam = client(tools.url, "lambda")
    functions = {f["FunctionName"]: f for f in (await blocking(lam.list_functions))["Functions"]}
    assert sorted(functions) == ["tools-fail", "tools-greet", "tools-hog", "tools-later"]
    greet = (await blocking(lam.get_function, FunctionName="tools-greet"))["Configuration"]
    assert greet["FunctionArn"] == "arn:aws:lambda:local:000000000000:function:tools-greet"
    assert (greet["MemorySize"], greet["Timeout"]) == (256, 10)
    configuration = await blocking(lam.get_function_configuration, FunctionName="greet")
    assert configuration["Handler"] == greet["Handler"]


@pytest.mark.parametrize(
    ("name", "payload", "code", "status"),
    [
        ("tools-nothing", b"{}", "ResourceNotFoundException", 404),
        ("greet", b"{not json", "InvalidRequestContentException", 400),
    ],
)
async def test_bad_invocations_get_lambda_errors(
    tools: Served, name: str, payload: bytes, code: str, status: int
) -> None:
    lam = client(tools.url, "lambda")
    with pytest.raises(ClientError) as caught:
        await blocking(lam.invoke, FunctionName=name, Payload=payload)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


async def test_qualifiers_name_the_serving_version(tools: Served) -> None:
    lam = client(tools.url, "lambda")
    number = str(tools.platform.current.number)
    for options in ({"FunctionName": f"tools-greet:{number}"}, {"FunctionName": "greet", "Qualifier": number}):
        answer = await blocking(lam.invoke, Payload=b'{"name": "ada"}', **options)
        assert answer["ExecutedVersion"] == number
        assert json.loads(answer["Payload"].read()) == {"hello": "ada"}
    latest = await blocking(lam.invoke, FunctionName="greet", Qualifier="$LATEST", Payload=b'{"name": "bo"}')
    assert latest["ExecutedVersion"] == "$LATEST"
    described = (await blocking(lam.get_function, FunctionName="greet", Qualifier=number))["Configuration"]
    assert described["Version"] == number
    assert described["FunctionArn"] == f"arn:aws:lambda:local:000000000000:function:tools-greet:{number}"
    assert (await blocking(lam.get_function, FunctionName="greet"))["Configuration"]["Version"] == "$LATEST"
    versions = (await blocking(lam.list_versions_by_function, FunctionName="greet"))["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", number]
    [live] = (await blocking(lam.list_aliases, FunctionName="greet"))["Aliases"]
    assert (live["Name"], live["FunctionVersion"]) == ("live", number)
    assert (await blocking(lam.get_alias, FunctionName="greet", Name="live"))["AliasArn"].endswith(":tools-greet:live")


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"FunctionName": "greet", "Qualifier": "99"}, "ResourceNotFoundException"),
        ({"FunctionName": "greet", "Qualifier": "beta"}, "ResourceNotFoundException"),
        ({"FunctionName": "greet:1", "Qualifier": "2"}, "InvalidParameterValueException"),
    ],
)
async def test_a_qualifier_that_names_nothing_serving_is_refused(
    tools: Served, options: dict[str, str], code: str
) -> None:
    lam = client(tools.url, "lambda")
    with pytest.raises(ClientError) as caught:
        await blocking(lam.invoke, Payload=b"{}", **options)
    assert caught.value.response["Error"]["Code"] == code


async def test_running_out_of_memory_is_reported_as_lambda_reports_it(tools: Served) -> None:
    lam = client(tools.url, "lambda")
    answer = await blocking(lam.invoke, FunctionName="hog", LogType="Tail")
    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read())["errorType"] == "Runtime.OutOfMemory"
    report = base64.b64decode(answer["LogResult"]).decode().splitlines()[-1].split("\t")
    assert report[0].startswith("REPORT RequestId: ")
    assert "Memory Size: 128 MB" in report
    assert report[-2:] == ["Status: error", "Error Type: Runtime.OutOfMemory"]
