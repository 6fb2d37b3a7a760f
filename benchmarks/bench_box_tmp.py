"""What a /tmp per worker costs a boxed cold start: the server makes a tmpfs per worker, the worker attaches it.

    .venv/bin/python -m benchmarks.run box_tmp

Side by side, taking turns cold start by cold start: three boxed runners of
the same module (the runtime benchmark's, importing ~25 standard-library
packages): workers sharing the box's /tmp (as before, and as under a server
that is not root), a /tmp per worker for an app outside /tmp (as a server's
data directory is), and a /tmp per worker for an app under the host's /tmp
(its directory bound back into each worker's /tmp: one more open_tree,
mount_setattr and move_mount per cold start). Cold start: the parent's
`run()` call to the handler's first line.

Then the two halves alone: the server making one tree (fsopen, fsconfig,
fsmount), and a forked unprivileged child attaching one
(unshare, the id maps, move_mount) against a child doing nothing. Needs root
and bubblewrap; otherwise the section says so.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.bench_runtime import HEAVY_APP, _cold_start, _pct
from benchmarks.measure import load_average
from triggerfish.isolation import mount_api
from triggerfish.isolation.box import Box
from triggerfish.runtime import limits, private_tmp
from triggerfish.runtime.process_runner import ProcessRunner

COLD_RUNS = 61
SAMPLES = 200
UID = 1_900_099_901
COLD_TARGET_MS = 5.0


def _timed(work: Callable[[], None]) -> tuple[float, float]:
    """Milliseconds `work` takes: on the clock, and of this process's CPU (user and system), which the load of a
    shared machine inflates far less than the clock (it waits for a core without spending any)."""
    began, cpu = time.perf_counter(), time.process_time()
    work()
    return (time.perf_counter() - began) * 1000.0, (time.process_time() - cpu) * 1000.0


def _in_child(work: Callable[[], None]) -> tuple[float, float]:
    """What `work` takes (see _timed) in a freshly forked child running as the box's uid, as a worker does."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.setgroups([])
            os.setresgid(UID, UID, UID)
            os.setresuid(UID, UID, UID)
            limits.libc().prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, as after the zygote's exec
            os.write(write, repr(_timed(work)).encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    if not answer:
        raise OSError("the child could not attach its /tmp")
    wall, cpu = answer.decode().strip("()").split(",")
    return float(wall), float(cpu)


def _halves() -> dict[str, list[tuple[float, float]]]:
    plan = mount_api.TmpPlan(size_mb=512, uid=UID, gid=UID)
    names = ("server: make the tree", "worker: nothing", "worker: attach")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    limits.libc()
    mount_api.load()  # as the zygote does before it forks
    for _ in range(SAMPLES):  # in turns, so load on the shared machine falls on all alike
        began, cpu = time.perf_counter(), time.process_time()
        made = mount_api.make_tmp(plan)
        times["server: make the tree"].append(
            ((time.perf_counter() - began) * 1000, (time.process_time() - cpu) * 1000)
        )
        os.close(made)  # not timed: in a runner the worker holds the tree by then, and its exit frees it
        times["worker: nothing"].append(_in_child(lambda: None))
        fd = mount_api.make_tmp(plan)
        try:
            times["worker: attach"].append(_in_child(functools.partial(private_tmp.enter_mount, fd)))
        finally:
            os.close(fd)
    return times


async def _cold(runners: dict[str, ProcessRunner]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(COLD_RUNS):
        for name, runner in runners.items():
            times[name].append(await _cold_start(runner, i))
    return times


async def _boxed_cold_starts() -> dict[str, list[float]]:
    outside = Path(tempfile.mkdtemp(dir="/var/tmp"))  # not under /tmp, as a server's data directory
    inside = Path(tempfile.mkdtemp(dir="/tmp"))
    runners: dict[str, ProcessRunner] = {}
    try:
        for directory in (outside, inside):
            directory.chmod(0o755)
            (directory / "heavyapp.py").write_text(HEAVY_APP)
        for name, directory, worker_tmp in (
            ("shared box /tmp (before)", outside, False),
            ("/tmp per worker", outside, True),
            ("/tmp per worker, app under /tmp", inside, True),
        ):
            box = Box(uid=UID, gid=UID, worker_tmp=worker_tmp)
            target = str(directory / "heavyapp.py")
            runners[name] = await ProcessRunner.start(target, work_dir=directory / "work", box=box)
        return await _cold(runners)
    finally:
        for runner in runners.values():
            await runner.close()
        shutil.rmtree(outside, ignore_errors=True)
        shutil.rmtree(inside, ignore_errors=True)


def _half_row(name: str, found: list[tuple[float, float]]) -> str:
    wall, cpu = [w for w, _ in found], [c for _, c in found]
    return f"| {name} | {statistics.median(wall):.3f} ms | {_pct(wall, 0.9):.3f} ms | {statistics.median(cpu):.3f} ms |"


def _row(name: str, found: list[float], base: float | None = None) -> str:
    p50 = statistics.median(found)
    versus = "" if base is None else f" ({p50 - base:+.2f} ms)"
    return f"| {name} | {p50:.3f} ms{versus} | {_pct(found, 0.9):.3f} ms |"


async def main() -> str:
    if os.geteuid() != 0 or shutil.which("bwrap") is None or mount_api.unavailable(mount_api.TmpPlan(1)):
        return "## A /tmp per boxed worker\n\nNot measured: needs root, bubblewrap and the mount API.\n"
    load = load_average()
    cold = await _boxed_cold_starts()
    halves = _halves()
    base = statistics.median(cold["shared box /tmp (before)"])
    per_worker = statistics.median(cold["/tmp per worker"])
    return "\n".join(
        [
            "## A /tmp per boxed worker: what it costs a cold start",
            "",
            f"{COLD_RUNS} cold starts of each boxed runner, in turns; then {SAMPLES} samples of each half, in turns.",
            f"Load average at the start: {load:.2f}; at the end: {load_average():.2f}.",
            "",
            "| boxed cold start | p50 | p90 |",
            "|---|---|---|",
            _row("shared box /tmp (before)", cold["shared box /tmp (before)"]),
            *(_row(name, cold[name], base) for name in cold if name != "shared box /tmp (before)"),
            "",
            f"Target: boxed cold start p50 ≤ {COLD_TARGET_MS:g} ms with a /tmp per worker: "
            f"{'met' if per_worker <= COLD_TARGET_MS else '**not met**'} ({per_worker:.2f} ms).",
            "",
            "| one half alone | p50 | p90 | CPU time p50 |",
            "|---|---|---|---|",
            _half_row("server: make a tree (fsopen, fsconfig, fsmount; made ahead)", halves["server: make the tree"]),
            _half_row("worker: nothing (a forked child)", halves["worker: nothing"]),
            _half_row("worker: attach (unshare, id maps, move_mount)", halves["worker: attach"]),
            "",
        ]
    )


if __name__ == "__main__":
    print(asyncio.run(main()))
