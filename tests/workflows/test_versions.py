"""Code that changes under running workflows: a precise error when it no longer fits, a version marker when it must."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.workflows.test_platform import finished, until
from triggerfish.server.platform import Platform

V1 = """
import triggerfish

app = triggerfish.App("versions")

def reserve():
    return "reserved"

def charge():
    return "charged"

@app.workflow
def order(ctx, input):
    ctx.step(reserve)
    approval = ctx.callback(timeout=600)
    return [ctx.step(charge), approval.result()]
"""

#: A step added before the callback, with nothing to tell old histories apart.
BREAKING = V1.replace("    ctx.step(reserve)\n", "    ctx.step(reserve)\n    ctx.step(charge, name='precharge')\n")

#: The same change behind a version marker: old histories keep their path, new workflows take the new one.
MARKED = V1.replace(
    "    ctx.step(reserve)\n",
    "    ctx.step(reserve)\n    if ctx.version('precharge', 1) >= 1:\n        ctx.step(charge, name='precharge')\n",
)


@pytest.fixture
async def app_file(tmp_path: Path) -> AsyncIterator[tuple[Platform, Path]]:
    app_file = tmp_path / "app.py"
    app_file.write_text(textwrap.dedent(V1))
    platform = Platform(str(app_file), data_dir=tmp_path / "data")
    await platform.start()
    try:
        yield platform, app_file
    finally:
        await platform.stop()


async def _waiting(platform: Platform) -> tuple[str, str]:
    workflow_id = await platform.workflows.start_workflow("order", None)
    record = await until(platform, workflow_id, lambda r: len(r["ops"]) == 3)
    return workflow_id, record["ops"][1]["token"]


async def test_code_that_no_longer_matches_the_history_fails_the_workflow_naming_the_operation(
    app_file: tuple[Platform, Path],
) -> None:
    platform, path = app_file
    workflow_id, token = await _waiting(platform)
    path.write_text(textwrap.dedent(BREAKING))
    assert (await platform.reload()).ok
    await platform.workflows.complete_callback(token, result="yes")
    record = await finished(platform, workflow_id)
    assert record["status"] == "FAILED"
    assert record["error"]["errorType"] == "NonDeterminismError"
    message = record["error"]["errorMessage"]
    assert "operation #2 is callback 'callback' in the history" in message
    assert "asks for step 'precharge'" in message


async def test_a_version_marker_keeps_running_workflows_on_their_path(app_file: tuple[Platform, Path]) -> None:
    platform, path = app_file
    old_id, old_token = await _waiting(platform)
    path.write_text(textwrap.dedent(MARKED))
    assert (await platform.reload()).ok
    new_id = await platform.workflows.start_workflow("order", None)
    new = await until(platform, new_id, lambda r: len(r["ops"]) == 4)
    await platform.workflows.complete_callback(old_token, result="old")
    await platform.workflows.complete_callback(new["ops"][2]["token"], result="new")
    old_record, new_record = await finished(platform, old_id), await finished(platform, new_id)
    assert (old_record["status"], old_record["result"]) == ("SUCCEEDED", ["charged", "old"])
    assert [op["name"] for op in old_record["ops"]] == ["reserve", "callback", "charge"]
    assert old_record["markers"] == {"precharge": 0}
    assert (new_record["status"], new_record["result"]) == ("SUCCEEDED", ["charged", "new"])
    assert [op["name"] for op in new_record["ops"]] == ["reserve", "precharge", "callback", "charge"]
    assert new_record["markers"] == {"precharge": 1}
