"""Each worker's own /tmp: private to it, kept while it is warm, gone with it, limited by `ephemeral_storage`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.runtime.conftest import app, eventually, request, tmp_tops_of_this_interpreter
from triggerfish.app import App
from triggerfish.errors import DeclarationError
from triggerfish.runtime import private_tmp
from triggerfish.runtime.process_runner import ProcessRunner


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[ProcessRunner]:
    started = await ProcessRunner.start(app("scratch"), work_dir=tmp_path)
    try:
        if "tmp" in started.stats("first")["limits"]["unenforced"]:
            pytest.skip("this host lets a worker make no mount namespace (user namespaces disabled)")
        yield started
    finally:
        await started.close()


def scratch_path() -> str:
    return f"/tmp/x-{uuid.uuid4().hex}"  # a name no other test on the host uses


def exists(path: str) -> bool:
    return os.path.exists(path)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


async def test_two_functions_writing_the_same_path_never_see_each_other_s_file(runner: ProcessRunner) -> None:
    path = scratch_path()
    one = await runner.run(request("first", {"path": path, "text": "from first"}))
    two = await runner.run(request("second", {"path": path, "text": "from second"}))
    assert one.ok, one.error
    assert two.ok, two.error
    assert two.result["found"] is None
    again = await runner.run(request("first", {"path": path, "text": "from first, again"}))
    assert again.result["found"] == "from first"
    assert not exists(path)  # and the host's /tmp never saw either
    if runner.stats("first")["limits"]["unenforced"] == []:
        # Seen from outside through the worker's own root: its file is in its /tmp alone.
        assert read(f"/proc/{again.worker_pid}/root{path}") == "from first, again"


async def test_a_warm_worker_keeps_its_tmp_and_a_cold_one_starts_empty(runner: ProcessRunner) -> None:
    path = scratch_path()
    cold = await runner.run(request("first", {"path": path, "text": "one"}))
    warm = await runner.run(request("first", {"path": path, "text": "two"}))
    assert (cold.result["found"], warm.result["found"]) == (None, "one")
    assert warm.result["pid"] == cold.result["pid"]
    assert runner.stop_idle("first") == 1
    fresh = await runner.run(request("first", {"path": path, "text": "three"}))
    assert fresh.cold_start
    assert fresh.result["pid"] != cold.result["pid"]
    assert fresh.result["found"] is None


async def test_nothing_is_left_on_the_host_after_the_worker_ends(runner: ProcessRunner) -> None:
    path = scratch_path()
    done = await runner.run(request("first", {"path": path, "text": "left behind?"}))
    pid = done.worker_pid
    assert pid is not None
    runner.stop_idle()
    await eventually(lambda: not exists(f"/proc/{pid}"), 5.0)
    assert not exists(f"/proc/{pid}")
    assert not exists(path)
    assert not [name for name in os.listdir("/tmp") if name == os.path.basename(path)]


async def test_a_full_tmp_is_no_space_left_at_the_ephemeral_storage_size(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("fills"))
    assert outcome.ok, outcome.error
    assert outcome.result["error"] == "OSError: [Errno 28] No space left on device"
    assert 500 * 1024 * 1024 <= outcome.result["written"] <= 512 * 1024 * 1024
    assert runner.stats("fills")["limits"]["ephemeral_storage_mb"] == 512


@pytest.mark.parametrize("size", [100, 511, 10241, "1GB", True])
def test_ephemeral_storage_out_of_lambda_s_range_is_refused(size: object) -> None:
    app = App("bad")
    with pytest.raises(
        DeclarationError, match=r"ephemeral_storage is the MB of /tmp, a whole number from 512 to 10240"
    ):

        @app.function(ephemeral_storage=size)
        def handler(event: object) -> None:
            return None


NOBODY = """
import json, os
from triggerfish.runtime import limits, private_tmp  # imported first: the interpreter may be where nobody can read
limits.libc()
os.setgid(65534)
os.setuid(65534)
limits.libc().prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, which setuid cleared: a server started as nobody has it
try:
    private_tmp.enter(16, [])
except private_tmp.PrivateTmpError as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)
with open("/tmp/nobody-probe-" + str(os.getpid()), "w") as f:
    f.write("x")
print(json.dumps({"uid": os.getuid(), "listing": os.listdir("/tmp"), "pid": os.getpid()}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become an unprivileged user")
def test_an_unprivileged_worker_gets_its_tmp_in_a_user_namespace_keeping_its_uid() -> None:
    done = subprocess.run([sys.executable, "-c", NOBODY], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    if "error" in seen:
        pytest.skip(f"user namespaces are not available to unprivileged users here: {seen['error']}")
    assert seen["uid"] == 65534
    assert seen["listing"] == [f"nobody-probe-{seen['pid']}"]
    assert not os.path.exists(f"/tmp/nobody-probe-{seen['pid']}")


UNDER_TMP = """
import os
from triggerfish.app import App

app = App("scratchpad")


@app.function()
def handler(event):
    with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "data.txt")) as f:
        data = f.read()
    with open("out.txt", "w") as f:  # the working directory, on the host
        f.write(data.upper())
    with open("/tmp/private.txt", "w") as f:
        f.write("mine")
    return {"data": data, "listing": sorted(os.listdir("/tmp"))}
"""


async def test_a_project_under_the_host_s_tmp_still_reaches_its_files_and_its_working_directory(
    tmp_path: Path,
) -> None:
    assert str(tmp_path).startswith("/tmp/")  # as a scratch project in /tmp, and these tests' own directories
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "pad.py").write_text(UNDER_TMP)
    (tmp_path / "code" / "data.txt").write_text("beside the app")
    runner = await ProcessRunner.start(str(tmp_path / "code" / "pad.py"), work_dir=tmp_path / "work")
    try:
        outcome = await runner.run(request("handler"))
    finally:
        await runner.close()
    assert outcome.ok, outcome.error
    assert outcome.result["data"] == "beside the app"
    top = str(tmp_path).split("/")[2]
    # The bound-back path (and this interpreter's, when it lives in /tmp too), and its own file.
    assert outcome.result["listing"] == sorted({top, "private.txt", *tmp_tops_of_this_interpreter()})
    assert read(str(tmp_path / "work" / "functions" / "handler" / "out.txt")) == "BESIDE THE APP"
    assert not exists("/tmp/private.txt") or read("/tmp/private.txt") != "mine"


def test_the_import_paths_real_paths_are_worked_out_once(tmp_path: Path) -> None:
    """The zygote remembers them before it forks, so a worker does not stat every entry of sys.path again."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    search_path = [str(tmp_path / "link"), ""]
    assert private_tmp.remember(search_path) == [str(real)]
    (tmp_path / "link").unlink()  # what a worker would find now does not matter: the zygote's answer is kept
    assert private_tmp.paths_to_keep(str(tmp_path), search_path) == [str(tmp_path), str(real)]
