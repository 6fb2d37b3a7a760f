"""Each worker's own /tmp inside a box: the server makes a tmpfs per worker with the mount API, the worker attaches
it in a user and mount namespace of its own. The issue's promises hold in a box as outside one: two functions never
see each other's files, a warm worker keeps its own, a cold one starts empty, nothing is left after it, and a full
/tmp is ENOSPC at `ephemeral_storage`."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.isolation.conftest import require_bwrap, require_root
from tests.runtime.conftest import app, eventually, request, tmp_tops_of_this_interpreter
from triggerfish.isolation.box import Box
from triggerfish.isolation.pids import namespace_pid
from triggerfish.runtime.process_runner import ProcessRunner

pytestmark = pytest.mark.asyncio(loop_scope="module")
UID = 1_900_099_960


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def runner(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ProcessRunner]:
    require_bwrap()
    require_root()  # only root can make filesystems for the box's workers
    work_dir = tmp_path_factory.mktemp("worker-tmp")
    started = await ProcessRunner.start(app("scratch"), work_dir=work_dir, box=Box(uid=UID, gid=UID, tmp_mb=8))
    yield started
    await started.close()


def _name() -> str:
    return f"/tmp/x-{uuid.uuid4().hex}"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _pids_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _processes() -> set[int]:
    return {int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()}


def _holders(device: int, pids: list[int], among: set[int] | None = None) -> list[str]:
    """Where the filesystem `device` is still held: a mount in the mount table of any process (of those `among`,
    when given), or an open fd of `pids`."""
    wanted = f" {os.major(device)}:{os.minor(device)} "
    held = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (among is None or int(entry.name) in among):
            try:
                if wanted in (entry / "mountinfo").read_text():
                    held.append(f"mounted in {entry.name}")
            except OSError:
                continue
    for pid in [os.getpid(), *(p for p in pids if among is None or p in among)]:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                if os.stat(fd).st_dev == device:
                    held.append(f"fd {fd}")
            except OSError:
                continue
    return held


async def test_two_functions_in_a_box_writing_the_same_path_never_see_each_other_s_file(runner: ProcessRunner) -> None:
    path = _name()
    one = await runner.run(request("first", {"path": path, "text": "from first"}))
    two = await runner.run(request("second", {"path": path, "text": "from second"}))
    assert one.ok, one.error
    assert two.ok, two.error
    assert two.result["found"] is None
    assert runner.stats("first")["limits"]["unenforced"] == []
    # Seen from outside through each worker's root: each file in its own worker's /tmp alone.
    assert _read(f"/proc/{one.worker_pid}/root{path}") == "from first"
    assert _read(f"/proc/{two.worker_pid}/root{path}") == "from second"
    tmp = os.stat(f"/proc/{one.worker_pid}/root/tmp")
    assert (tmp.st_uid, tmp.st_mode & 0o7777) == (UID, 0o1777)  # the app's, sticky, as /tmp is


async def test_a_boxed_worker_cannot_reach_another_worker_s_tmp_through_proc(runner: ProcessRunner) -> None:
    """Same uid, same box: but each worker is in a user namespace of its own, and the kernel lets no process reach
    into the files (/proc/<pid>/root) of one in a namespace it does not own."""
    path = _name()
    written = await runner.run(request("second", {"path": path, "text": "second's own"}))
    assert written.worker_pid is not None
    inside = namespace_pid(written.worker_pid)
    peek = await runner.run(request("first", {"path": f"/proc/{inside}/root{path}", "text": "x"}))
    assert peek.error is not None
    assert peek.error["errorType"] == "PermissionError"


async def test_in_a_box_a_warm_worker_keeps_its_tmp_and_a_cold_one_starts_empty(runner: ProcessRunner) -> None:
    path = _name()
    cold = await runner.run(request("first", {"path": path, "text": "one"}))
    warm = await runner.run(request("first", {"path": path, "text": "two"}))
    assert (cold.result["found"], warm.result["found"]) == (None, "one")
    assert warm.worker_pid == cold.worker_pid
    runner.stop_idle("first")
    fresh = await runner.run(request("first", {"path": path, "text": "three"}))
    assert fresh.cold_start
    assert fresh.worker_pid != cold.worker_pid
    assert fresh.result["found"] is None


async def test_nothing_of_a_boxed_worker_s_tmp_is_left_after_it_ends(runner: ProcessRunner) -> None:
    path = _name()
    done = await runner.run(request("second", {"path": path, "text": "left behind?"}))
    pid = done.worker_pid
    assert pid is not None
    device = os.stat(f"/proc/{pid}/root/tmp").st_dev
    assert _holders(device, _pids_of(UID)) == [f"mounted in {pid}"]  # its own mount table, and nothing else
    alive = _processes()
    runner.stop_idle("second")
    await eventually(lambda: not _exists(f"/proc/{pid}"), 5.0)
    assert not _exists(f"/proc/{pid}")
    # A tmpfs's device number is an anonymous one the kernel hands out again once it is freed: a worker another
    # test starts after this one ended may mount a new tmpfs under the same number. Only the processes that
    # were there while this worker lived can hold what it left.
    assert _holders(device, _pids_of(UID), among=alive) == []  # no mount, no fd: the kernel freed the tmpfs


async def test_a_full_tmp_in_a_box_is_no_space_left_at_the_ephemeral_storage_size(runner: ProcessRunner) -> None:
    outcome = await runner.run(request("fills"))
    assert outcome.ok, outcome.error
    assert outcome.result["error"] == "OSError: [Errno 28] No space left on device"
    assert 500 * 1024 * 1024 <= outcome.result["written"] <= 512 * 1024 * 1024  # not the box's 8 MiB


UNDER_TMP = """
import os
from triggerfish.app import App

app = App("scratchpad")


@app.function()
def handler(event):
    root = os.environ["LAMBDA_TASK_ROOT"]
    with open(os.path.join(root, "data.txt")) as f:
        data = f.read()
    try:
        open(os.path.join(root, "evil.txt"), "w")
        wrote = True
    except OSError as exc:
        wrote = exc.strerror
    with open("/tmp/private.txt", "w") as f:
        f.write("mine")
    return {
        "data": data,
        "wrote": wrote,
        "hidden": os.listdir(os.path.join(root, ".triggerfish")),
        "listing": sorted(os.listdir("/tmp")),
    }
"""


async def test_a_boxed_app_under_the_host_s_tmp_is_bound_into_each_worker_s_tmp_read_only(tmp_path: Path) -> None:
    require_bwrap()
    require_root()
    assert str(tmp_path).startswith("/tmp/")
    code = tmp_path / "code"
    (code / ".triggerfish").mkdir(parents=True)
    (code / ".triggerfish" / "store.db").write_text("the data directory")
    (code / "pad.py").write_text(UNDER_TMP)
    (code / "data.txt").write_text("beside the app")
    for path in (tmp_path, code, code / ".triggerfish"):
        path.chmod(0o755)
    box = Box(uid=UID, gid=UID, tmp_mb=8, read_only=(str(code),), hide=(str(code / ".triggerfish"),))
    runner = await ProcessRunner.start(str(code / "pad.py"), work_dir=tmp_path / "work", box=box)
    try:
        outcome = await runner.run(request("handler"))
    finally:
        await runner.close()
    assert outcome.ok, outcome.error
    assert outcome.result["data"] == "beside the app"
    assert outcome.result["wrote"] == "Read-only file system"
    assert outcome.result["hidden"] == []  # hidden in the worker's /tmp as in the box
    assert outcome.result["listing"] == sorted(
        {str(tmp_path).split("/")[2], "private.txt", *tmp_tops_of_this_interpreter()}
    )
    assert not (code / "evil.txt").exists()


async def test_where_workers_share_the_box_s_tmp_stats_say_tmp_is_not_enforced(tmp_path: Path) -> None:
    """What a server that cannot make filesystems (not root) gives: the box's /tmp, shared, reported as such."""
    require_bwrap()
    require_root()
    box = Box(uid=UID, gid=UID, tmp_mb=8, worker_tmp=False)
    shared = await ProcessRunner.start(app("scratch"), work_dir=tmp_path, box=box)
    try:
        assert shared.stats("first")["limits"]["unenforced"] == ["tmp"]  # known before any worker starts
        path = _name()
        await shared.run(request("first", {"path": path, "text": "from first"}))
        seen = await shared.run(request("second", {"path": path, "text": "from second"}))
    finally:
        await shared.close()
    assert seen.result["found"] == "from first"
