"""Naming a runner's processes from outside: the pid the parent may signal for the pid a process reports.

A process in a box has its own pid namespace, so the pid it reports
(`os.getpid()` inside: `Loaded`, `Ready`) is not the pid the parent must
give `killpg`, and signalling that number on the host would hit some other
process. Outside a box both are the same number, but a report may still
lie (the app's code ran before it), so every view checks that the process
is a child of the one that should have forked it before it is believed.

- `SamePids`: no box; the reported pid must be a child of its zygote.
- `BoxPids`: a box; the pid is looked up among the zygote's children by the
  pid each has inside the namespace (the last field of `NSpid` in
  /proc/PID/status), newest child first, so a cold start reads two small
  files.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Protocol

from triggerfish.errors import ProtocolError


class PidView(Protocol):
    """How the parent turns reported pids into pids it may signal."""

    def zygote(self, reported: int) -> int | None:
        """The app zygote's pid for the parent, from the pid it reported; None when it cannot be found."""
        ...

    def worker(self, zygote: int | None, reported: object) -> int | None:
        """A new worker's pid for the parent: None when it is already gone (or cannot be told apart from
        one that is); ProtocolError when it is provably not a child of `zygote` (the parent's pid of it)."""
        ...


class SamePids:
    """No box: the parent and its zygotes share one pid namespace."""

    def zygote(self, reported: int) -> int | None:
        return reported

    def worker(self, zygote: int | None, reported: object) -> int | None:
        if not isinstance(reported, int) or isinstance(reported, bool) or reported <= 1:
            raise ProtocolError(f"'ready' names pid {reported!r}, which is not a worker of this app's zygote")
        parent = parent_of(reported)
        if parent is None:  # gone already (a worker that exits at once): reported, never signalled
            return None
        if parent != zygote:
            raise ProtocolError(f"'ready' names pid {reported!r}, which is not a worker of this app's zygote")
        return reported


class BoxPids:
    """A box whose outermost process (bwrap, started by the parent) is `outer`; the base zygote is its child."""

    def __init__(self, outer: int) -> None:
        self.outer = outer
        self._base: int | None = None

    @property
    def base(self) -> int | None:
        """The base zygote's pid for the parent (the only child of bwrap), once it exists."""
        if self._base is None:
            found = children(self.outer)
            self._base = found[0] if len(found) == 1 else None
        return self._base

    def zygote(self, reported: int) -> int | None:
        base = self.base
        return None if base is None else find_child(base, reported)

    def worker(self, zygote: int | None, reported: object) -> int | None:
        if not isinstance(reported, int) or isinstance(reported, bool) or reported <= 1:
            raise ProtocolError(f"'ready' names pid {reported!r}, which is not a worker of this app's zygote")
        # Not found: gone already, or a lie; either way it is never signalled.
        return None if zygote is None else find_child(zygote, reported)


def kill_box(outer: int) -> None:
    """SIGKILL a box whose bubblewrap has pid `outer`: its first process, whereupon the kernel kills every
    other one in its pid namespace and bubblewrap, seeing its child gone, exits (and reaps it). bubblewrap
    itself only when the box has no first process (yet): killed first, it would leave that process
    unreaped, and its own PR_SET_PDEATHSIG may not be set yet."""
    for pid in children(outer) or [outer]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def children(pid: int) -> list[int]:
    """The pids of `pid`'s children (of its main thread), oldest first; [] when it is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(child) for child in f.read().split()]
    except (OSError, ValueError):
        return []


def namespace_pid(pid: int) -> int | None:
    """The pid process `pid` has in its own (innermost) pid namespace; None when it is gone."""
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/status", "rb", buffering=0) as f:
        status = f.read(8192)  # one read: the file is about 1.5 KB, and this is on the cold-start path
        start = status.index(b"\nNSpid:")
        return int(status[start : status.index(b"\n", start + 1)].split()[-1])
    return None


def find_child(parent: int, inner: int) -> int | None:
    """The child of `parent` whose pid in its namespace is `inner`; None when there is none."""
    for child in reversed(children(parent)):  # the newest first: a worker that just reported ready
        if namespace_pid(child) == inner:
            return child
    return None


def parent_of(pid: int) -> int | None:
    """The parent pid of `pid`, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
