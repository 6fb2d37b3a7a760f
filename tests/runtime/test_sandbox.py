"""The sandbox seam: a hook set in the app zygote runs in every new worker before user code,
and a hook that refuses fails only that function's invocation, saying why."""

from __future__ import annotations

import os
from pathlib import Path

from tests.runtime.conftest import app, request
from triggerfish.runtime.process_runner import ProcessRunner


async def test_the_sandbox_hook_runs_in_each_worker_before_its_handler(tmp_path: Path) -> None:
    runner = await ProcessRunner.start(app("sandboxed"), work_dir=tmp_path)
    try:
        outcome = await runner.run(request("inside"))
        assert outcome.ok, outcome.error
        [entered] = outcome.result["entered"]
        # Called once, in the worker itself (after setsid: its own process group), for this function.
        assert entered == {
            "function": "inside",
            "cwd": outcome.result["cwd"],
            "pid": outcome.worker_pid,
            "pgid": outcome.worker_pid,
        }
        assert Path(entered["cwd"]) == tmp_path / "functions" / "inside"
        assert entered["pid"] != os.getpid()
    finally:
        await runner.close()


async def test_a_sandbox_that_refuses_fails_the_invocation_with_its_reason(tmp_path: Path) -> None:
    runner = await ProcessRunner.start(app("sandboxed"), work_dir=tmp_path)
    try:
        refused = await runner.run(request("refused"))
        assert not refused.ok
        assert refused.error is not None
        assert refused.error["errorType"] == "Runtime.ExitError"
        assert "failed to start" in refused.error["errorMessage"]
        # The reason reaches the invocation's own output, as the error message promises.
        assert "PermissionError(\"this sandbox refuses 'refused'\")" in refused.output
        assert refused.result is None
        # Other functions of the app are unaffected.
        inside = await runner.run(request("inside"))
        assert inside.ok, inside.error
    finally:
        await runner.close()
