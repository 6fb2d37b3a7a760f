"""The process runtime in a box: workers forked from a boxed zygote run as the app's uid in their own pid
namespace, see only their code, the runtime and a bounded /tmp, and keep every limit; the parent names and
kills them by the pids it sees; the environment of the server never reaches them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.isolation.conftest import require_bwrap
from tests.runtime.conftest import app, eventually, request
from triggerfish.isolation.box import Box
from triggerfish.isolation.pids import namespace_pid
from triggerfish.runtime import lambda_env
from triggerfish.runtime.process_runner import ProcessRunner

pytestmark = pytest.mark.asyncio(loop_scope="module")
UID = 1_900_099_980
SECRET = "a-database-password-of-the-server"
TMP_MB = 8


def _box(**settings: object) -> Box:
    ids = {"uid": UID, "gid": UID} if os.geteuid() == 0 else {}
    return Box(**{**ids, "tmp_mb": TMP_MB, "max_tasks": 200, **settings})  # type: ignore[arg-type]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runner(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProcessRunner]:
    require_bwrap()
    work_dir = tmp_path_factory.mktemp("boxed")
    (work_dir / "admin.key").write_text("tfk_the_admin_key")
    os.environ["TRIGGERFISH_TEST_SECRET"] = SECRET  # in the server's environment when the zygotes start
    try:
        runner = await ProcessRunner.start(app("boxed"), work_dir=work_dir / "work", box=_box())
    finally:
        del os.environ["TRIGGERFISH_TEST_SECRET"]
    yield runner
    await runner.close()


async def test_a_boxed_worker_runs_as_the_app_s_uid_in_its_own_pid_namespace(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("look", {"read": "/etc/hostname", "write": "/tmp/ok"}))
    assert outcome.ok, outcome.error
    seen = outcome.result
    if os.geteuid() == 0:
        assert (seen["uid"], seen["gid"]) == (UID, UID)
        assert seen["groups"] in ([], [UID])
    else:
        assert seen["uid"] == os.getuid()
    # The pid it sees is its pid in the box; the outcome names the one the parent signals.
    assert seen["pid"] < 100
    assert outcome.worker_pid is not None
    assert outcome.worker_pid != seen["pid"]
    assert namespace_pid(outcome.worker_pid) == seen["pid"]
    assert max(seen["proc"]) < 100  # nothing but its own box in /proc
    assert seen["cwd"] == "/home/app/functions/look"


async def test_the_server_s_environment_reaches_neither_the_import_nor_the_handler(runner: ProcessRunner) -> None:
    seen = (await runner.run(request("look", {"read": "/nonexistent", "write": "/tmp/ok"}))).result
    for env in (seen["env"], seen["import_env"]):
        assert "TRIGGERFISH_TEST_SECRET" not in env
        assert SECRET not in repr(env)
    assert seen["env"]["GREETING"] == "hello"
    assert seen["env"]["HOME"] == "/home/app/functions/look"
    assert seen["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "boxed-look"
    assert set(seen["import_env"]) <= {
        "PATH",
        "LANG",
        "TZ",
        "PYTHONPATH",
        "PYTHONUNBUFFERED",
        "HOME",
        *_PYTHON,
        *_LAMBDA,
    }


_PYTHON = ("PYTHONDONTWRITEBYTECODE", "LC_CTYPE", "PWD")  # PWD: bubblewrap's --chdir; LC_CTYPE: Python's
#: Lambda's variables there while the app is imported: the app-wide ones, and (`look` declares `env`, so it has a
#: zygote of its own) those naming the function and its `env`.
_LAMBDA = (
    *lambda_env.import_environment("/code"),
    *lambda_env.function_import_environment("boxed", "look", "1", 128, {"GREETING": "hello"}),
)


async def test_only_the_code_and_tmp_are_there_and_only_tmp_is_writable(runner: ProcessRunner, tmp_path: Path) -> None:
    code = Path(app("boxed"))
    secret = runner_work_dir_secret(tmp_path)
    reads = await runner.run(request("look", {"read": str(code), "write": str(code.parent / "evil.py")}))
    assert reads.result["read"].startswith('"""An app that reports')
    assert reads.result["wrote"] == "OSError"  # read-only file system
    hidden = await runner.run(request("look", {"read": str(secret), "write": "/usr/evil"}))
    assert hidden.result["read"] == "FileNotFoundError"
    assert hidden.result["wrote"] in ("OSError", "PermissionError")
    assert not (code.parent / "evil.py").exists()


def runner_work_dir_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "admin.key"
    secret.write_text("tfk_not_for_apps")
    return secret


async def test_a_timeout_kills_the_boxed_worker_by_its_outside_pid(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("loops", "forever"))
    assert outcome.error is not None
    assert outcome.error["errorType"] == "Runtime.Timeout"
    worker = outcome.worker_pid
    assert worker is not None
    await eventually(lambda: namespace_pid(worker) is None, 2.0)
    assert namespace_pid(worker) is None
    assert os.getpid() > 1  # the number the worker saw for itself was never signalled out here
    quick = await runner.run(request("loops", "quick"))
    assert quick.ok


async def test_memory_processes_and_disk_are_bounded_in_the_box(runner: ProcessRunner) -> None:
    hoarded = await runner.run(request("hoards"))
    assert hoarded.error is not None
    assert hoarded.error["errorType"] == "Runtime.OutOfMemory"
    forked = (await runner.run(request("forks"))).result
    assert forked["error"] == "BlockingIOError"
    assert 0 < forked["forked"] < 200
    filled = (await runner.run(request("fills", "big"))).result  # the working directory, in the box's home
    assert filled["error"] == "No space left on device"
    assert filled["written"] <= TMP_MB * 1024 * 1024
    # The worker's own /tmp is memory, counted toward its memory_mb (128): that limit ends it first.
    in_tmp = await runner.run(request("fills", "/tmp/big"))
    assert in_tmp.error is not None
    assert in_tmp.error["errorType"] == "Runtime.OutOfMemory"
    assert runner.stats("forks")["limits"]["unenforced"] == []


async def test_an_app_zygote_killed_from_outside_is_restarted_in_its_box(runner: ProcessRunner) -> None:
    assert runner._app is not None
    zygote = runner._app.pid
    assert zygote is not None
    os.kill(zygote, signal.SIGKILL)
    await eventually(
        lambda: runner._app is not None and runner._app.channel is not None and runner._app.channel.closed, 5
    )
    again = await runner.run(request("loops", "quick"))  # a function of the app's shared zygote (it declares no env)
    assert again.ok, again.error
    assert runner._app.pid not in (None, zygote)
    assert runner._app.restarts == 1


async def test_network_is_the_host_s_unless_the_box_denies_it(runner: ProcessRunner, tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        allowed = await runner.run(request("connects", port))
        assert allowed.result == "connected"
        denied_runner = await ProcessRunner.start(app("boxed"), work_dir=tmp_path, box=_box(network=False))
        try:
            denied = await denied_runner.run(request("connects", port))
        finally:
            await denied_runner.close()
        assert denied.result == "ConnectionRefusedError"  # only its own loopback, where nothing listens
    finally:
        listener.close()


async def test_closing_the_runner_leaves_no_process_of_the_box(tmp_path: Path) -> None:
    require_bwrap()
    if os.geteuid() != 0:
        pytest.skip("needs root: the box's processes are told apart by their uid")
    uid = UID + 1
    runner = await ProcessRunner.start(app("boxed"), work_dir=tmp_path, box=Box(uid=uid, gid=uid))
    outcome = await runner.run(request("loops", "quick"))
    assert outcome.ok
    assert _processes_of(uid)
    await runner.close()
    await eventually(lambda: not _processes_of(uid), 5.0)
    assert _processes_of(uid) == []


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                alive = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
                if alive and entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


async def test_without_a_box_the_import_does_not_see_the_server_s_environment_either(tmp_path: Path) -> None:
    os.environ["TRIGGERFISH_TEST_SECRET"] = SECRET
    try:
        runner = await ProcessRunner.start(app("boxed"), work_dir=tmp_path)
    finally:
        del os.environ["TRIGGERFISH_TEST_SECRET"]
    try:
        seen = (await runner.run(request("look", {"read": "/nonexistent", "write": str(tmp_path / "x")}))).result
    finally:
        await runner.close()
    assert "TRIGGERFISH_TEST_SECRET" not in seen["import_env"]
    assert "TRIGGERFISH_TEST_SECRET" not in seen["env"]
    await asyncio.sleep(0)
