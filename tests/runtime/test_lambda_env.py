"""The execution environment as Lambda's Python runtime sets it: standard variables (the app's while its module is
imported, the function's in its worker), `_X_AMZN_TRACE_ID` per invocation, a context that agrees with itself, and
boto3 importable unless the app leaves it out."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path

import pytest

from tests.runtime.conftest import APPS, app, request
from triggerfish.errors import AppLoadError
from triggerfish.runtime import lambda_env
from triggerfish.runtime.process_runner import ProcessRunner

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[ProcessRunner]:
    started = await ProcessRunner.start(app("lambda_env"), work_dir=tmp_path, version="4")
    try:
        yield started
    finally:
        await started.close()


async def test_the_module_is_imported_with_lambda_s_app_wide_variables_and_builds_its_client(
    runner: ProcessRunner,
) -> None:
    outcome = await runner.run(request("ported"))
    assert outcome.ok, outcome.error
    assert outcome.result["at_import"] == {
        "AWS_REGION": "local",
        "AWS_DEFAULT_REGION": "local",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "LAMBDA_TASK_ROOT": str(APPS.resolve()),
        "LAMBDA_RUNTIME_DIR": lambda_env.RUNTIME_DIR,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    }
    assert outcome.result["client_region"] == "local"
    assert outcome.result["boto3"] == metadata.version("boto3")


async def test_the_worker_has_the_function_s_variables_and_the_context_agrees_with_them(runner: ProcessRunner) -> None:
    first = await runner.run(request("ported", traceparent=TRACEPARENT))
    env, context = first.result["env"], first.result["context"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == context["function_name"] == "ported-ported"
    assert context["function"] == "ported"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "4"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == context["memory_limit_in_mb"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == context["log_group_name"] == "/aws/lambda/ported-ported"
    assert context["arn"] == "arn:aws:lambda:local:000000000000:function:ported-ported:4"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == context["log_stream_name"]
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[4\][0-9a-f]{32}", context["log_stream_name"])
    assert (context["identity"], context["client_context"], context["tenant_id"]) == ([None, None], None, None)
    # The X-Ray header of this invocation's own trace.
    assert env["_X_AMZN_TRACE_ID"] == "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
    second = await runner.run(request("ported"))
    assert second.result["env"]["AWS_LAMBDA_LOG_STREAM_NAME"] == env["AWS_LAMBDA_LOG_STREAM_NAME"]  # same worker
    trace = second.result["context"]["traceparent"].split("-")[1]
    assert second.result["env"]["_X_AMZN_TRACE_ID"].startswith(f"Root=1-{trace[:8]}-{trace[8:]};")


async def test_a_function_declaring_env_is_imported_with_it_and_its_own_name_in_a_zygote_of_its_own(
    runner: ProcessRunner,
) -> None:
    own = await runner.run(request("configured"))
    shared = await runner.run(request("shared"))
    assert own.ok, own.error
    assert own.result["own_at_import"] == {
        "TABLE": "orders",
        "AWS_LAMBDA_FUNCTION_NAME": "ported-configured",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    }
    # Functions without `env` share the app's zygote, imported with the app-wide variables only.
    assert shared.result["own_at_import"] == dict.fromkeys(own.result["own_at_import"])
    assert own.result["zygote"] != shared.result["zygote"]
    assert runner._app is not None
    assert runner._app.loaded is not None
    assert shared.result["zygote"] == runner._app.loaded.pid


BREAKS = """
import os
from triggerfish.app import App

app = App("fragile")
if os.environ.get("MODE") == "broken":
    raise RuntimeError("MODE=broken cannot be imported")


@app.function(env={"MODE": "broken"})
def handler(event):
    return None
"""


async def test_an_import_that_fails_only_with_a_function_s_env_refuses_the_version(tmp_path: Path) -> None:
    (tmp_path / "fragile.py").write_text(BREAKS)
    with pytest.raises(AppLoadError, match="MODE=broken cannot be imported"):
        await ProcessRunner.start(str(tmp_path / "fragile.py"), work_dir=tmp_path / "work")


def test_the_x_ray_header_carries_the_trace_the_span_and_the_sampling_flag() -> None:
    unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    assert lambda_env.x_amzn_trace_id(unsampled) == (
        "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=0"
    )


LEAVES_OUT = """
from typing import Any

from triggerfish.app import App

app = App("lean")
try:
    import boto3  # type: ignore[import-untyped]
    FOUND: Any = boto3.__version__
except ModuleNotFoundError as exc:
    FOUND = str(exc)


@app.function()
def handler(event: Any) -> Any:
    return FOUND
"""


async def test_boto3_false_leaves_the_runtime_s_sdk_out_and_finds_the_app_s_own(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "lean.py").write_text(LEAVES_OUT)
    (code / "triggerfish.toml").write_text("boto3 = false\n")
    runner = await ProcessRunner.start(str(code / "lean.py"), work_dir=tmp_path / "work")
    try:
        refused = (await runner.run(request("handler"))).result
    finally:
        await runner.close()
    assert refused.startswith("No module named 'boto3': this app leaves the runtime's AWS SDK out (boto3 = false")
    own = tmp_path / "requirements"
    (own / "boto3").mkdir(parents=True)
    (own / "boto3" / "__init__.py").write_text("__version__ = 'the app s own'\n")
    runner = await ProcessRunner.start(str(code / "lean.py"), work_dir=tmp_path / "work", extra_paths=[str(own)])
    try:
        assert (await runner.run(request("handler"))).result == "the app s own"
    finally:
        await runner.close()


async def test_a_boto3_setting_that_is_not_a_boolean_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "lean.py").write_text(LEAVES_OUT)
    (tmp_path / "triggerfish.toml").write_text('boto3 = "no"\n')
    with pytest.raises(AppLoadError, match=r"triggerfish.toml: boto3 must be true .* or false \(left out\), not 'no'"):
        await ProcessRunner.start(str(tmp_path / "lean.py"), work_dir=tmp_path / "work")
