"""The platform process's threads on one core; the processes it starts on every core it may use.

The event loop shares one interpreter with the store's writer and reader threads, so only one of them runs
Python at a time: every system call of the loop releases the GIL, the writer (with Python to run between its
statements) takes it, and the loop waits to get it back. When the two threads sit on different cores, each such
hand-off wakes a thread on the other core, and a wake-up across cores costs tens of microseconds on a virtual
machine against a few on the same core (`python -m benchmarks.wakeups`: 6 µs against 44 on the 2-core host of
2026-12-07). Two threads that cannot run at the same time lose little by sharing a core, so a served platform
keeps its threads on the core it started on. What runs there without the GIL (the writer's page writes) shares
that core too; a thread that runs almost only without it (the store's checkpointer) calls `release_thread` and
runs anywhere. With the placement of workers below, on a 2-core virtual machine against the threads anywhere
(docs/benchmarks.md, "cores"): async invocations in batches of 50 1.33x, the drain 1.43x, publish → handler p99
at 1,000 events/s 0.21x to 0.44x, fan-out 1.18x to 1.31x, HTTP 0.95x to 1.11x. With another process
keeping both cores busy (a running core is cheap to wake) the gain shrinks to little or nothing.

Workers are other processes, each with its own interpreter: the zygotes they fork from are started with every core
the platform was allowed (`zygote_arguments`, applied by the zygote first thing), so the scheduler places them
where there is room. While the platform's threads keep their core busy, though, a worker placed there waits for the
loop, and the loop, pinned, cannot move away from it: the kernel puts a task woken through a pipe or a socket on
its waker's core, expecting the waker to sleep, and a busy loop does not. So `keep_workers_placed` looks once a
second at how busy the platform's core is: above BUSY it moves every process the platform started (zygotes,
workers, boxes) off that core, below IDLE it gives them every core back. A worker loses the platform's core only
while the platform is using it.

`TRIGGERFISH_PLATFORM_CPU`: `auto` (the default: the core the process is on when it starts), `off` (the threads
run anywhere, as before), or a core's number. Nothing is pinned on a machine with one core, or where the process may
use only one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator, Set
from pathlib import Path

#: Where the platform's threads run: "auto", "off" or a CPU number.
VARIABLE = "TRIGGERFISH_PLATFORM_CPU"
#: The cores this process was allowed before `pin_platform` kept its threads on one; None when nothing is pinned.
_allowed_before: frozenset[int] | None = None
#: Where the processes the platform starts belong now: every core it was allowed, or all but its own while it is
#: busy (`keep_workers_placed`); a zygote started meanwhile (a deploy, a reload) is told so.
_processes_cpus: frozenset[int] | None = None
#: The share of its core the platform's threads use (over PLACEMENT_INTERVAL) above which workers leave that core,
#: and below which they get it back: apart, so a platform near one figure does not move them every second.
BUSY = 0.75
IDLE = 0.5
#: Seconds between two looks at how busy the platform's core is.
PLACEMENT_INTERVAL = 1.0


def pin_platform() -> int | None:
    """Keep this thread, and every thread and process it starts from now on, on one core (see the module
    docstring); the core's number, or None when nothing was pinned. Call it before the platform starts threads.

    A ValueError names the variable when `TRIGGERFISH_PLATFORM_CPU` is neither `auto`, `off` nor a core this
    process may use.
    """
    wanted = os.environ.get(VARIABLE, "auto").strip().lower()
    if wanted == "off" or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        allowed = os.sched_getaffinity(0)
    except OSError:  # a sandbox that forbids the call: run as before, unpinned
        return None
    if wanted == "auto":
        if len(allowed) < 2:
            return None
        cpu = current_cpu()
        if cpu not in allowed:
            cpu = max(allowed)
    else:
        if not wanted.isdigit() or int(wanted) not in allowed:
            raise ValueError(
                f"{VARIABLE}={wanted!r}: use auto, off or one of the cores this process may use"
                f" ({', '.join(str(c) for c in sorted(allowed))})"
            )
        cpu = int(wanted)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return None
    global _allowed_before, _processes_cpus
    _allowed_before = _processes_cpus = frozenset(allowed)
    return cpu


def release_thread() -> None:
    """Let the calling thread run on every core the platform was allowed: for a thread that spends its time outside
    the GIL (SQLite's checkpoints copying pages), which would otherwise take its core from the event loop. Does
    nothing when the platform's threads are not pinned."""
    if _allowed_before is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, _allowed_before)


def zygote_arguments() -> list[str]:
    """The zygote's command-line option that gives it the cores its processes belong on now (`--cpus 0,1`: every
    core the platform was allowed, or all but the platform's own while it is busy), or nothing when the platform's
    threads are not pinned."""
    if _processes_cpus is None:
        return []
    return ["--cpus", ",".join(str(cpu) for cpu in sorted(_processes_cpus))]


def widen(text: str) -> None:
    """In a zygote: run on the cores `text` lists (comma-separated numbers, from `zygote_arguments`), so the workers
    it forks may use them all. Cores this process may not use are left out by the kernel; where it may use none of
    them (a narrower cpuset, in a box or a container) it stays where it is."""
    cpus = parse_cpus(text)
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)


def current_cpu() -> int | None:
    """The core this thread last ran on (`/proc/thread-self/stat`, field 39), or None where it cannot be read."""
    try:
        stat = Path("/proc/thread-self/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    try:
        return int(fields[36])
    except (IndexError, ValueError):
        return None


def parse_cpus(text: str) -> Set[int]:
    """The CPU numbers of `text` ("0,1,3"); a ValueError for anything else."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"--cpus {text!r}: comma-separated CPU numbers, like 0,1")
    return {int(part) for part in parts}


def workers_kept_off(share: float, kept_off: bool, *, busy: float = BUSY, idle: float = IDLE) -> bool:
    """Whether workers should stay off the platform's core, given the share of it the platform used last and
    whether they are off it now (`busy` and `idle` apart, so the answer does not flap)."""
    if kept_off:
        return share > idle
    return share > busy


def descendants(pid: int | None = None) -> Iterator[int]:
    """Every process below `pid` (default: this one), from /proc's children lists, parents before children. A process
    that ends meanwhile is skipped."""
    stack = [os.getpid() if pid is None else pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in children:
                yield int(child)
                stack.append(int(child))


def place_descendants(cpus: Set[int]) -> int:
    """Set every thread of every process below this one to run on `cpus`; how many threads were set. A process
    this one may not set (another user's, without the privilege) or that ended meanwhile is skipped."""
    placed = 0
    for pid in descendants():
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task), cpus)
                placed += 1
    return placed


async def keep_workers_placed(interval: float = PLACEMENT_INTERVAL, *, busy: float = BUSY, idle: float = IDLE) -> None:
    """Until cancelled: every `interval` seconds, keep the platform's workers off its core while its threads use
    more than `busy` of it, and give them every core again once they use less than `idle` (the module docstring
    says why). Returns at once when the platform's threads are not pinned, or when no other core is left."""
    global _processes_cpus
    pinned = _allowed_before
    if pinned is None:
        return
    own = os.sched_getaffinity(0)
    elsewhere = pinned - own
    if not elsewhere:
        return
    kept_off = False
    wall, cpu = time.monotonic(), time.process_time()
    while True:
        await asyncio.sleep(interval)
        now, used = time.monotonic(), time.process_time()
        share = (used - cpu) / max(now - wall, 1e-6)
        wall, cpu = now, used
        wanted = workers_kept_off(share, kept_off, busy=busy, idle=idle)
        if wanted != kept_off:
            _processes_cpus = elsewhere if wanted else pinned
            place_descendants(_processes_cpus)
            kept_off = wanted
