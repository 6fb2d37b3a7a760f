"""A served platform keeps its threads on one core and gives its workers every core (`triggerfish.cores`).

Real `triggerfish dev` processes: the affinity of each of the platform's threads is read from /proc, and a
function reports the cores its worker may use. Skipped where this process may use only one core (nothing is pinned
there) or where Linux's affinity calls are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.isolation.conftest import require_bwrap
from tests.patience import eventually
from tests.server.devserver import DevServer
from triggerfish import cores
from triggerfish.runtime import zygote

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and two or more cores this process may use",
)

APP = """
import os

import triggerfish

app = triggerfish.App("cores")


@app.function()
def where(event, context):
    return sorted(os.sched_getaffinity(0))
"""


def _thread_cpus(pid: int) -> dict[int, set[int]]:
    """Each thread of process `pid`: the cores it may run on (`Cpus_allowed_list` in /proc)."""
    found = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            status = Path(f"/proc/{pid}/task/{task}/status").read_text()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        line = next(line for line in status.splitlines() if line.startswith("Cpus_allowed_list:"))
        found[int(task)] = _cpu_list(line.split(":", 1)[1].strip())
    return found


def _cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def _start(directory: Path, *options: str, **env: str) -> DevServer:
    (directory / "app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    arguments = ["app.py", "--port", "0", "--data-dir", str(directory / "data"), "--no-reload", *options]
    server = DevServer(*arguments, cwd=directory)
    server.env.pop(cores.VARIABLE, None)
    server.env.update(env)
    return server.start()


def _invoke_where(server: DevServer) -> set[int]:
    response = httpx.post(f"{server.url}/-/api/v1/functions/where/invoke", json={}, timeout=30)
    assert response.status_code == 200, response.text
    return set(response.json())


def _worker_sees_every_core(server: DevServer) -> None:
    """A worker may use every core this process may: at once on an idle platform, or within a few seconds of its
    start on a loaded machine, where a busy start keeps workers off the platform's core for a second or two."""
    allowed = os.sched_getaffinity(0)
    eventually(lambda: _invoke_where(server) == allowed, 10, "a worker on every core")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[DevServer]:
    server = _start(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_the_platforms_threads_share_one_core_and_its_workers_may_use_every_core(served: DevServer) -> None:
    allowed = os.sched_getaffinity(0)
    assert served.process is not None
    threads = _thread_cpus(served.process.pid)
    main = threads[served.process.pid]
    assert len(main) == 1, f"the event loop's thread may run on {main}"
    assert main <= allowed
    # Every thread it started is on the same core, but the store's checkpointer, which runs outside the GIL.
    wide = [tid for tid, cpus in threads.items() if cpus != main]
    assert all(threads[tid] == allowed for tid in wide), threads
    assert len(wide) <= 1, f"only the checkpointer may run anywhere: {threads}"
    _worker_sees_every_core(served)


def test_a_boxed_worker_may_use_every_core_too(tmp_path: Path) -> None:
    require_bwrap()
    project = tmp_path / "project"  # the box's uid reads the project, not the test's own directory
    project.mkdir()
    (project / "app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    server = DevServer("app.py", "--port", "0", "--isolate", "--no-reload", cwd=project)
    server.env.pop(cores.VARIABLE, None)
    server.start()
    try:
        assert server.process is not None
        assert len(_thread_cpus(server.process.pid)[server.process.pid]) == 1
        _worker_sees_every_core(server)
    finally:
        server.stop()


def test_off_leaves_every_thread_free(tmp_path: Path) -> None:
    allowed = os.sched_getaffinity(0)
    server = _start(tmp_path, TRIGGERFISH_PLATFORM_CPU="off")
    try:
        assert server.process is not None
        assert set(map(frozenset, _thread_cpus(server.process.pid).values())) == {frozenset(allowed)}
        _worker_sees_every_core(server)
    finally:
        server.stop()


def test_a_core_named_by_number_is_the_one_the_threads_run_on(tmp_path: Path) -> None:
    allowed = os.sched_getaffinity(0)
    chosen = max(allowed)
    server = _start(tmp_path, TRIGGERFISH_PLATFORM_CPU=str(chosen))
    try:
        assert server.process is not None
        assert _thread_cpus(server.process.pid)[server.process.pid] == {chosen}
        _worker_sees_every_core(server)
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["fast", "-1", "4096", "0,1"])
def test_a_value_it_does_not_know_stops_the_platform_with_the_variable_named(tmp_path: Path, value: str) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "triggerfish", "dev", "app.py", "--port", "0", "--no-reload"],
        cwd=tmp_path,
        env={**os.environ, cores.VARIABLE: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"TRIGGERFISH_PLATFORM_CPU={value!r}: use auto, off or one of the cores" in result.stderr


_CHECKPOINTER = """
import os, sys, tempfile, sqlite3
from pathlib import Path
from triggerfish import cores
from triggerfish.store._sqlite_checkpoint import Checkpointer

allowed = os.sched_getaffinity(0)
cpu = cores.pin_platform()
path = Path(tempfile.mkdtemp()) / "store.db"
sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").fetchall()
checkpointer = Checkpointer(str(path), interval=0.01)
tid = checkpointer._thread.native_id
text = Path(f"/proc/self/task/{tid}/status").read_text()
line = next(line for line in text.splitlines() if line.startswith("Cpus_allowed_list:"))
print(cpu, sorted(os.sched_getaffinity(0)), line.split(":")[1].strip(), cores.zygote_arguments())
checkpointer.stop()
"""


def test_the_checkpointer_runs_anywhere_and_the_zygote_is_given_every_core() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    env = {key: value for key, value in os.environ.items() if key != cores.VARIABLE}
    result = subprocess.run(
        [sys.executable, "-c", _CHECKPOINTER], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    cpu, pinned, checkpointer, arguments = result.stdout.split(" ", 3)
    assert int(cpu) in allowed
    assert pinned == f"[{cpu}]"
    assert _cpu_list(checkpointer) == set(allowed)
    assert arguments.strip() == str(["--cpus", ",".join(map(str, allowed))])


def test_the_core_this_thread_runs_on_is_one_it_may_use() -> None:
    assert cores.current_cpu() in os.sched_getaffinity(0)


def test_the_zygote_refuses_a_cpu_list_that_is_not_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        zygote._parse(["5", "--cpus", "0,one"])
    assert stopped.value.code == 2
    assert "--cpus 0,1" in capsys.readouterr().err
    assert zygote._parse(["5", "--cpus", "0,3"]) == (5, None, None, "0,3")
    with pytest.raises(ValueError, match="comma-separated CPU numbers"):
        cores.parse_cpus("0-3")


def test_a_sandbox_that_forbids_setting_affinity_leaves_the_platform_unpinned(monkeypatch: pytest.MonkeyPatch) -> None:
    # No real sandbox is at hand that refuses the call (seccomp in some containers does, with EPERM), so the refusal
    # is the one thing stood in for; what is checked is that the platform starts anyway, unpinned.
    def refuse(pid: int, cpus: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    monkeypatch.delenv(cores.VARIABLE, raising=False)
    assert cores.pin_platform() is None
    assert cores.zygote_arguments() == []
    cores.release_thread()  # nothing to release, and nothing raised


def test_workers_leave_the_platforms_core_while_it_is_busy_and_come_back_after() -> None:
    assert not cores.workers_kept_off(0.6, False)
    assert cores.workers_kept_off(0.8, False)
    assert cores.workers_kept_off(0.6, True)  # between the two figures: as it was
    assert not cores.workers_kept_off(0.4, True)


_PLACING = """
import asyncio, json, os, subprocess, sys, threading, time
from triggerfish import cores

allowed = sorted(os.sched_getaffinity(0))
cpu = cores.pin_platform()
# A child as a zygote would be, and a grandchild as its worker: both started while the platform's threads are pinned.
child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"])
while len(list(cores.descendants())) < 2:
    time.sleep(0.01)
for pid in cores.descendants():
    os.sched_setaffinity(pid, set(allowed))  # widened, as a zygote widens itself and its workers inherit it
burning = threading.Event()

def burn():
    while True:
        burning.wait()
        sum(range(10_000))

threading.Thread(target=burn, daemon=True).start()

def seen():
    return [sorted(os.sched_getaffinity(pid)) for pid in cores.descendants()]

async def main():
    placing = asyncio.create_task(cores.keep_workers_placed(0.05, busy=0.3, idle=0.1))
    burning.set()
    deadline = time.monotonic() + 20
    while any(cpus != sorted(set(allowed) - {cpu}) for cpus in seen()):
        assert time.monotonic() < deadline, ("busy, not moved", seen())
        await asyncio.sleep(0.02)
    busy = seen() + [cores.zygote_arguments()]
    burning.clear()
    while any(cpus != allowed for cpus in seen()):
        assert time.monotonic() < deadline, ("idle, not back", seen())
        await asyncio.sleep(0.02)
    placing.cancel()
    print(json.dumps([cpu, busy, seen() + [cores.zygote_arguments()]]))

try:
    asyncio.run(main())
finally:
    for pid in list(cores.descendants()):
        os.kill(pid, 9)
"""


def test_a_busy_platform_moves_what_it_started_off_its_core_and_back_when_idle() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    env = {key: value for key, value in os.environ.items() if key != cores.VARIABLE}
    result = subprocess.run(
        [sys.executable, "-c", _PLACING], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    cpu, busy, idle = json.loads(result.stdout.strip().splitlines()[-1])
    others = [c for c in allowed if c != cpu]
    # The child and grandchild moved, and a zygote started meanwhile would be told to go where they went.
    assert busy == [others, others, ["--cpus", ",".join(map(str, others))]]
    assert idle == [allowed, allowed, ["--cpus", ",".join(map(str, allowed))]]
