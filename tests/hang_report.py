"""What a hung async test was doing, kept where the end of the run shows it.

An async test past its timeout ends its process (conftest.py says why: the thread method). Under xdist the
run then says only "worker 'gw2' crashed while running ..."; pytest-timeout's stack dump went to that worker's
stderr, amid thousands of lines of progress, and the asyncio tasks, where an async hang actually waits, are not
in it (the event loop's thread shows only its selector). So before the process ends, every thread's stack and
every task of every running event loop are written to a file in a directory the whole run shares, and the
controlling process prints those files at the end of its report, where CI's tail shows them.
"""

from __future__ import annotations

import asyncio
import gc
import io
import os
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest

#: The environment variable naming the run's directory of reports (set by the controlling process, inherited
#: by xdist's workers).
DIRECTORY_VARIABLE = "TRIGGERFISH_TEST_HANG_REPORTS"

#: The most of one report printed at the end of the run (a report of thousands of tasks is cut, not dropped).
MOST_PRINTED = 60_000


def directory() -> Path | None:
    named = os.environ.get(DIRECTORY_VARIABLE)
    return Path(named) if named else None


def start_run() -> None:
    """In the controlling process, before workers start: a fresh directory for this run's reports."""
    if DIRECTORY_VARIABLE not in os.environ:
        os.environ[DIRECTORY_VARIABLE] = tempfile.mkdtemp(prefix="triggerfish-test-hangs-")


def describe(nodeid: str, timeout: float) -> str:
    """Every thread's stack, and every pending task of every running event loop, as text."""
    out = io.StringIO()
    out.write(f"{nodeid} was still running after its timeout of {timeout:.0f} s (process {os.getpid()}).\n")
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        out.write(f"\n--- thread {names.get(ident, ident)}\n")
        traceback.print_stack(frame, file=out)
    for loop in _running_loops():
        tasks = asyncio.all_tasks(loop)
        out.write(f"\n=== {len(tasks)} tasks of {loop!r}\n")
        for task in sorted(tasks, key=lambda task: task.get_name()):
            out.write(f"\n--- {task!r}\n")
            out.write("".join(traceback.format_list(awaiting(task.get_coro()))))
    return out.getvalue()


def awaiting(awaitable: object) -> traceback.StackSummary:
    """The frames of a coroutine and of what it awaits, down to the innermost (a task's own `get_stack` stops at
    its outermost coroutine)."""
    frames = []
    for _ in range(1000):  # a chain of awaits is finite; the bound keeps a strange object from looping
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        frame = frame or getattr(awaitable, "ag_frame", None)
        if frame is None:
            break
        frames.append((frame, frame.f_lineno))
        inner = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
        awaitable = inner or getattr(awaitable, "ag_await", None)
    return traceback.StackSummary.extract(frames)


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    # The loop runs in another thread than this timer's, so get_running_loop cannot name it; the collector's
    # list of objects can (a one-off cost, in a process about to end).
    return [obj for obj in gc.get_objects() if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running()]


def write(nodeid: str, timeout: float) -> None:
    """Write this process's report (called from the timer's thread, just before the process ends)."""
    folder = directory()
    if folder is None:
        return
    try:
        text = describe(nodeid, timeout)
    except Exception as exc:  # a report that fails must not keep the process from ending
        text = f"{nodeid} timed out; describing its threads and tasks failed: {exc!r}\n"
    (folder / f"{os.getpid()}.txt").write_text(text)


def print_reports(reporter: Any) -> None:
    """At the end of the run, in the controlling process: every report written during it."""
    folder = directory()
    if folder is None or not folder.is_dir():
        return
    for report in sorted(folder.glob("*.txt")):
        text = report.read_text(errors="replace")
        reporter.write_sep("=", f"hung test (report {report.name})")
        if len(text) > MOST_PRINTED:
            text = text[:MOST_PRINTED] + f"\n... cut: {len(text) - MOST_PRINTED} more characters in {report}\n"
        reporter.write(text)


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")
