"""The fork server: the app is imported once in its zygote, workers are forked from it, the
configuration is applied there, load errors come back with their traceback, and close cleans up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.conftest import app, eventually, request
from triggerfish.errors import AppLoadError
from triggerfish.runtime import protocol
from triggerfish.runtime.process_runner import ProcessRunner


async def test_workers_are_forked_from_the_app_zygote_that_imported_the_app_once(tmp_path: Path) -> None:
    imports = _counting_copy(tmp_path)
    runner = await ProcessRunner.start(str(tmp_path / "counted.py"), work_dir=tmp_path / "work")
    try:
        outcomes = [await runner.run(request("family")) for _ in range(2)]
        outcomes.append(await runner.run(request("settings")))
        zygote_pid = int(imports.read_text().split()[0])
        # One import, in the app zygote, however many workers and functions ran.
        assert imports.read_text().split() == [str(zygote_pid)]
        first = outcomes[0].result
        assert first["ppid"] == zygote_pid
        assert first["pgid"] == first["pid"] == first["sid"]  # its own session and process group
        assert "counted" not in sys.modules  # the parent never imports user code
        assert outcomes[2].worker_pid != first["pid"]
    finally:
        await runner.close()
    assert not _alive(zygote_pid)
    assert not _alive(first["pid"])


async def test_the_functions_come_back_with_their_resolved_settings(tmp_path: Path) -> None:
    app_dir = tmp_path / "proj"
    app_dir.mkdir()
    _write_project(app_dir)
    runner = await ProcessRunner.start(
        str(app_dir / "counted.py"),
        work_dir=tmp_path / "work",
        stage="prod",
        overrides={"family": {"timeout": 7.5}},
    )
    try:
        assert runner.functions() == ["family", "settings"]
        assert runner.app_name == "counted"
        assert runner.settings("settings").memory_mb == 512
        assert runner.settings("family").timeout == 7.5
        assert runner.specs["family"].ref == "counted:family"
        outcome = await runner.run(request("settings"))
        assert outcome.result == {"memory": "512", "env": "prod"}
    finally:
        await runner.close()


async def test_an_app_that_fails_to_import_raises_app_load_error_with_its_traceback(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError) as caught:
        await ProcessRunner.start(app("broken"), work_dir=tmp_path)
    assert "the database URL is not set" in str(caught.value) + caught.value.details
    assert "RuntimeError" in caught.value.details


async def test_a_missing_app_or_a_bad_configuration_is_an_app_load_error(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match="nothing_here"):
        await ProcessRunner.start(str(tmp_path / "nothing_here.py"), work_dir=tmp_path)
    with pytest.raises(AppLoadError, match="unknown stage"):
        await ProcessRunner.start(app("counted"), work_dir=tmp_path, stage="nope")
    with pytest.raises(AppLoadError, match="memory_mb"):
        await ProcessRunner.start(app("counted"), work_dir=tmp_path, overrides={"*": {"memory_mb": 1}})


async def test_a_killed_app_zygote_takes_its_workers_and_is_replaced(tmp_path: Path) -> None:
    runner = await ProcessRunner.start(app("faults"), work_dir=tmp_path)
    try:
        first = await runner.run(request("ok", 1))
        zygote = runner._app.pid if runner._app is not None else None
        assert zygote is not None
        os.kill(zygote, signal.SIGKILL)
        await eventually(lambda: runner.stats("ok")["idle"] == 0, 2.0)
        # Its workers die with it (PR_SET_PDEATHSIG). A worker's socket closes before it is gone: its exit then
        # still tears down its mount namespace (its private /tmp).
        await eventually(lambda: not _alive(first.result["pid"]), 2.0)
        assert not _alive(first.result["pid"])
        again = await runner.run(request("ok", 2))
        assert again.ok, again.error
        assert again.result["ok"] == 2
        assert runner._app is not None
        assert runner._app.pid not in (None, zygote)
    finally:
        await runner.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _counting_copy(directory: Path) -> Path:
    """A copy of the counted app in `directory` that counts its imports (in the file returned)."""
    (directory / "counted.py").write_text(Path(app("counted")).read_text())
    imports = directory / "imports.txt"
    imports.touch()
    return imports


def _write_project(app_dir: Path) -> None:
    (app_dir / "counted.py").write_text(Path(app("counted")).read_text())
    (app_dir / "triggerfish.toml").write_text(
        "[functions.settings]\nmemory_mb = 512\n\n[stages.prod.functions.settings]\nenv = { STAGE_NAME = 'prod' }\n"
    )


def test_the_base_zygote_drops_bad_frames_and_stops_on_a_broken_stream() -> None:
    ours, theirs = socket.socketpair()
    process = subprocess.Popen(
        [sys.executable, "-m", "triggerfish.runtime.zygote", str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        stderr=subprocess.PIPE,
    )
    theirs.close()
    with ours:
        ours.sendall(protocol.frame(b'{"t": "nonsense"}'))  # dropped, the zygote carries on
        ours.sendall(protocol.encode(protocol.Heartbeat(pid=1)))  # known but not for a zygote: dropped too
        ours.sendall((protocol.MAX_FRAME + 1).to_bytes(4, "big"))  # cannot be skipped: the zygote stops
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    text = stderr.decode()
    assert "dropping a bad frame: unknown frame type 'nonsense'" in text
    assert "unexpected 'heartbeat' frame" in text
    assert "stopping: frame length" in text
