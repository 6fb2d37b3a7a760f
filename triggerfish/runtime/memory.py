"""A worker's memory limit on the memory it has in use, with the kernel's memory controller, as Lambda counts it.

Lambda limits what a function has resident, not its address space: a
library that starts ten threads reserves about 80 MB of stacks and malloc
arenas it never touches, and must not fail at 128 MB. So each worker gets
a memory cgroup of its own whose limit is the function's `memory_mb`; past
it the kernel's OOM killer ends the worker (SIGKILL), and the parent sees
the cgroup's `oom_kill` count go up and reports the invocation as Lambda
does (`Runtime.OutOfMemory`). The cgroup's peak usage is the REPORT line's
`Max Memory Used`.

Which controller: cgroup v2 (`memory.max`, `memory.peak`, `memory.events`)
where a v2 hierarchy has the memory controller available (most current
distributions: Debian 11+, Ubuntu 21.10+, Fedora 31+, RHEL 9), otherwise
cgroup v1 (`memory.limit_in_bytes`, `memory.max_usage_in_bytes`,
`memory.oom_control`) where only v1 has it (older hosts, and containers
given the v1 hierarchy). Where neither is writable, workers fall back to
`RLIMIT_AS` with ADDRESS_SPACE_MARGIN_MB of room for thread stacks and
arenas (see triggerfish.runtime.limits).

The parent owns one directory per runner (`MemoryTree`); the app zygote
makes a leaf per worker beside the pids cgroup it prepares (see
`limits.CgroupSpares`), sets the function's limit on it just before the
fork, and the worker is born in it. Pages the worker shares with its
zygote (the interpreter and the app's imports) stay charged to the zygote:
the limit counts what the worker itself touches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("triggerfish.runtime")

#: Where cgroup v2 may be mounted: alone, or beside v1 in a hybrid setup.
CGROUP2_MOUNTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
#: Where cgroup v1's memory controller is mounted.
MEMORY_V1_MOUNT = Path("/sys/fs/cgroup/memory")
#: Room added to a worker's address-space limit when no memory controller can be used: thread stacks (8 MB each)
#: and malloc arenas (64 MB each) reserve address space they rarely use, and must not fail a 128 MB function.
ADDRESS_SPACE_MARGIN_MB = 1024
_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class MemoryController:
    """One cgroup memory controller: its version and where its hierarchy is mounted."""

    version: int
    mount: Path

    @property
    def limit_file(self) -> str:
        return "memory.max" if self.version == 2 else "memory.limit_in_bytes"

    @property
    def peak_file(self) -> str:
        return "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"

    @property
    def events_file(self) -> str:
        return "memory.events" if self.version == 2 else "memory.oom_control"

    @property
    def swap_file(self) -> str:
        # v2 counts swap apart (0: none); v1 counts memory and swap together (equal to the limit: none).
        return "memory.swap.max" if self.version == 2 else "memory.memsw.limit_in_bytes"

    def describe(self) -> str:
        return f"memory cgroup v{self.version} ({self.limit_file})"


def detect(v2_mounts: tuple[Path, ...] = CGROUP2_MOUNTS, v1_mount: Path = MEMORY_V1_MOUNT) -> MemoryController | None:
    """The memory controller this process can use: v2 first, then v1; None when neither is there and writable."""
    for mount in v2_mounts:
        with contextlib.suppress(OSError):
            available = (mount / "cgroup.controllers").read_text().split()
            if "memory" in available and os.access(mount / "cgroup.subtree_control", os.W_OK):
                return MemoryController(2, mount)
    if (v1_mount / "memory.limit_in_bytes").exists() and os.access(v1_mount / "cgroup.procs", os.W_OK):
        return MemoryController(1, v1_mount)
    return None


def set_limit(controller: MemoryController, cgroup: str, limit_bytes: int) -> None:
    """Limit the memory cgroup `cgroup` to `limit_bytes`, swap included (none beyond it). Raises OSError."""
    path = Path(cgroup)
    if controller.version == 1:
        # memsw must stay at least the memory limit: lower memory first when shrinking, raise memsw first otherwise.
        swap = path / controller.swap_file
        try:
            current = int((path / controller.limit_file).read_text())
        except (OSError, ValueError):
            current = 0
        if limit_bytes < current:
            (path / controller.limit_file).write_text(str(limit_bytes))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to limit
                swap.write_text(str(limit_bytes))
        else:
            with contextlib.suppress(OSError):
                swap.write_text(str(limit_bytes))
            (path / controller.limit_file).write_text(str(limit_bytes))
        return
    (path / controller.limit_file).write_text(str(limit_bytes))
    with contextlib.suppress(OSError):
        (path / controller.swap_file).write_text("0")


def oom_kills(controller: MemoryController, cgroup: str) -> int:
    """How many processes of `cgroup` the OOM killer ended (0 when it cannot be read)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(cgroup, controller.events_file).read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    return 0


def peak_bytes(controller: MemoryController, cgroup: str) -> int | None:
    """The most memory `cgroup` has had in use since it was made (None when it cannot be read)."""
    with contextlib.suppress(OSError, ValueError):
        return int(Path(cgroup, controller.peak_file).read_text())
    return None


class PeakReader:
    """Reads a worker's own peak memory once per invocation: one pread on a file kept open (about 2 µs)."""

    def __init__(self, path: str | None) -> None:
        self._fd: int | None = None
        if path is not None:
            with contextlib.suppress(OSError):
                self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self) -> int:
        """Peak bytes in use: the cgroup's, or this process's peak resident set where there is no cgroup."""
        if self._fd is not None:
            with contextlib.suppress(OSError, ValueError):
                return int(os.pread(self._fd, 32, 0))
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def megabytes(value: int | None) -> int | None:
    """Bytes as whole MB rounded up, as Lambda's REPORT line shows them."""
    return None if value is None else -(-value // _MB)


class MemoryTree:
    """The parent's side: one memory cgroup directory per runner, the workers' leaves inside it."""

    def __init__(self, name: str, controller: MemoryController | None) -> None:
        self.controller = controller
        self.enabled = False
        self.path: Path | None = None
        if controller is None:
            return
        self.path = controller.mount / "triggerfish" / name
        try:
            if controller.version == 2:
                # Leaves get the memory controller only when every level above hands it down.
                _enable_memory(controller.mount)
                (controller.mount / "triggerfish").mkdir(exist_ok=True)
                _enable_memory(controller.mount / "triggerfish")
                self.path.mkdir(exist_ok=True)
                _enable_memory(self.path)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
            self.enabled = True
            self.sweep_stale()
        except OSError as exc:
            log.warning("the memory cgroup %s cannot be created (%s); memory falls back to RLIMIT_AS", self.path, exc)

    @property
    def root(self) -> str | None:
        """The directory app zygotes make workers' memory cgroups in (None: no memory cgroups)."""
        return str(self.path) if self.enabled and self.path is not None else None

    def sweep_stale(self) -> int:
        """Remove the empty memory cgroups of runners whose process is gone; how many."""
        return 0 if self.path is None else sweep_stale_runners(self.path)

    def delegate(self, uid: int | None, gid: int | None) -> bool:
        """Hand the runner's directory to a box's uid (as root): its zygote makes and joins the workers' leaves."""
        if not self.enabled or self.path is None or uid is None or gid is None:
            return self.enabled
        try:
            os.chown(self.path, uid, gid)
            os.chown(self.path / "cgroup.procs", uid, gid)
        except OSError as exc:
            log.warning("the memory cgroup %s cannot be handed to the box (%s); using RLIMIT_AS", self.path, exc)
            self.enabled = False
        return self.enabled

    @staticmethod
    def remove(path: str | None) -> None:
        """Remove a worker's memory cgroup once no process is in it (its charges go to the parent)."""
        if path is not None:
            with contextlib.suppress(OSError):
                os.rmdir(path)

    def close(self) -> None:
        """Remove the workers' leaves and the runner's directory (a killed process takes a moment to leave)."""
        if not self.enabled or self.path is None or not self.path.exists():
            return
        for _ in range(100):
            for child in [child for child in self.path.iterdir() if child.is_dir()]:
                self.remove(str(child))
            with contextlib.suppress(OSError):
                os.rmdir(self.path)
            if not self.path.exists():
                return
            time.sleep(0.01)
        log.warning("could not remove %s; remove it by hand once its processes are gone", self.path)


def _enable_memory(directory: Path) -> None:
    control = directory / "cgroup.subtree_control"
    if "memory" not in control.read_text().split():
        control.write_text("+memory")


def join(cgroup: str) -> None:
    """Move the calling process into `cgroup`. Raises OSError."""
    Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))


def first_victim() -> None:
    """Make the calling worker the OOM killer's first choice: in its cgroup (where its app zygote may still be for a
    moment after the fork) and on the host (a handler, never the platform, pays for a machine out of memory)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")


def sweep_stale_runners(own: Path) -> int:
    """Remove the cgroups beside `own` of runners whose process is gone (killed before `close`); how many.

    Both controllers (pids in triggerfish.runtime.limits, memory here) name a runner's cgroup
    `<pid>-<token>`, with its workers' cgroups inside it.
    """
    removed = 0
    for runner in own.parent.iterdir():
        owner = runner.name.partition("-")[0]
        if runner == own or not runner.is_dir() or not owner.isdigit() or Path(f"/proc/{owner}").exists():
            continue
        with contextlib.suppress(OSError):
            for child in runner.iterdir():
                if child.is_dir():
                    os.rmdir(child)  # fails, and keeps the runner's cgroup, while a process is inside
            os.rmdir(runner)
            removed += 1
    return removed
