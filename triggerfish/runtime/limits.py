"""Per-worker limits: memory (a memory cgroup, else RLIMIT_AS), processes (the pids cgroup or RLIMIT_NPROC), and
leftover children.

Memory: where a memory controller can be used, each worker is born in a
memory cgroup of its own limited to the function's `memory_mb` (see
triggerfish.runtime.memory). Elsewhere RLIMIT_AS caps a worker's address
space at the app zygote's own size (the baseline every forked worker starts
with) plus `memory_mb` plus a wide margin for thread stacks and malloc
arenas (`memory.ADDRESS_SPACE_MARGIN_MB`); Python turns an allocation past
it into MemoryError, which the worker reports as `Runtime.OutOfMemory`.
RLIMIT_RSS is not enforced by Linux and RLIMIT_DATA misses mmap-backed
allocations, so without a cgroup address space is the limit that holds.

Processes: RLIMIT_NPROC counts every process of the user and root ignores
it, so where the pids cgroup (v1, /sys/fs/cgroup/pids) is writable each
worker gets its own cgroup with `pids.max`; otherwise RLIMIT_NPROC is used
when not root; otherwise the limit is reported as not enforced.

In a box (see triggerfish.isolation) the base zygote caps the whole box
before anything forks (`enter_box`): it joins the runner's pids cgroup,
whose `pids.max` the parent set to the box's `max_tasks`, and sets
RLIMIT_NPROC to the same number, which counts every process of the app's
own uid (of the box's user namespace when not root). Workers then keep
their per-worker cgroup where one is writable and otherwise share the box's
ceiling: a per-worker RLIMIT_NPROC would have to count the uid's processes
in other boxes, which a box cannot see.

Leftover children: each worker is a child subreaper, so everything a
handler forks stays its descendant even after the middle process exits;
after every invocation the worker kills what is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from triggerfish.runtime import memory

log = logging.getLogger("triggerfish.runtime")

PIDS_CGROUP_ROOT = Path("/sys/fs/cgroup/pids")
#: Processes (and threads: the pids controller counts both) a worker may have at once, itself included.
DEFAULT_MAX_PROCESSES = 64
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_MB = 1024 * 1024

#: In a boxed base zygote and everything it forks: the box's process ceiling (None: not in a box).
box_tasks: int | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Which limits a pool enforces and how, for `ProcessRunner.stats()` and the log."""

    memory: str
    processes: str
    timeout: str = "SIGKILL to the worker's process group"
    #: Known before any worker starts: workers will share their box's /tmp (its server cannot make theirs).
    shared_tmp: bool = False

    @property
    def unenforced(self) -> list[str]:
        names = [name for name, how in (("memory", self.memory), ("processes", self.processes)) if how == "none"]
        return [*names, "tmp"] if self.shared_tmp else names


def memory_limit_bytes(memory_mb: int, baseline_bytes: int) -> int:
    """RLIMIT_AS for a worker without a memory cgroup: what its zygote already maps, the function's memory, and
    room for the address space threads and arenas reserve without using it."""
    return baseline_bytes + (memory_mb + memory.ADDRESS_SPACE_MARGIN_MB) * _MB


def address_space_bytes() -> int:
    """This process's address-space size (VmSize), the baseline a forked worker inherits."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def process_limit_method(cgroup: bool | None = None, *, boxed: bool = False) -> str:
    """How the process limit can be enforced here: "cgroup", "box", "rlimit" or "none".

    `cgroup`: whether the runner's cgroup could be created (None: whether the pids cgroup is writable).
    `boxed`: the workers run in a box, whose RLIMIT_NPROC ceiling holds even when the server is root.
    """
    if cgroup_available() if cgroup is None else cgroup:
        return "cgroup"
    if boxed:
        return "box"
    if os.geteuid() != 0:
        return "rlimit"
    return "none"


def cgroup_available() -> bool:
    return os.access(PIDS_CGROUP_ROOT / "cgroup.procs", os.W_OK)


def apply_in_child(memory_bytes: int | None, max_processes: int, in_cgroup: bool) -> list[str]:
    """Apply the limits to the calling (freshly forked) worker; return the names of those not enforced.

    `memory_bytes`: its RLIMIT_AS (None: it was born in a memory cgroup, whose limit is in force).
    `in_cgroup`: the worker was born in its own pids cgroup (see CgroupSpares), so the process
    limit is already in force.
    """
    unenforced: list[str] = []
    if memory_bytes is None:
        memory.first_victim()
    else:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        except (ValueError, OSError):
            unenforced.append("memory")
    if not in_cgroup and box_tasks is None:  # in a box, its ceiling (inherited from the base zygote) holds
        if os.geteuid() == 0:
            unenforced.append("processes")  # root ignores RLIMIT_NPROC
        else:
            try:
                # RLIMIT_NPROC counts every task (process or thread) of the user, so allow what the user
                # runs already plus max_processes: looser than a cgroup when the user starts more
                # elsewhere, but bounded.
                limit = user_tasks(os.getuid()) + max_processes
                resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
            except (ValueError, OSError):
                unenforced.append("processes")
    with contextlib.suppress(OSError, AttributeError):
        # A subreaper keeps orphaned grandchildren as its own children, so `kill_children` finds them.
        libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    return unenforced


def user_tasks(uid: int) -> int:
    """How many tasks (processes and threads) user `uid` runs now, as RLIMIT_NPROC counts them."""
    count = 0
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
    return count


_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The C library, loaded once (zygotes load it before forking so workers do not pay for it)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


class CgroupSpares:
    """The app zygote's side of the pids cgroups: it waits inside the cgroup its next worker will have.

    Moving a process between cgroups (v1) waits for an RCU grace period,
    10-20 ms, which would dominate a cold start. So the zygote moves itself
    into a fresh cgroup right after each fork, off the cold path, and the next
    worker is born in that cgroup (a child starts in its parent's cgroup) and
    never moves. The zygote counts against `pids.max` until it leaves, so the
    limit starts one higher and is tightened when the zygote moves on.
    """

    def __init__(
        self,
        root: str | None,
        max_processes: int,
        memory_root: str | None = None,
        memory_controller: memory.MemoryController | None = None,
    ) -> None:
        self.root = Path(root) if root else None
        self.max_processes = max(1, max_processes)
        self.current: str | None = None
        #: The memory cgroups, beside the pids cgroups: the same leaf names in the memory hierarchy.
        self.memory_root = Path(memory_root) if memory_root and memory_controller is not None else None
        self.memory_controller = memory_controller
        self.current_memory: str | None = None
        self._count = 0

    def take(self) -> str | None:
        """The cgroup the worker about to be forked will be born in (None: no cgroup)."""
        current, self.current = self.current, None
        return current

    def take_memory(self, limit_bytes: int) -> str | None:
        """The memory cgroup the worker about to be forked will be born in, limited to `limit_bytes` (None: none)."""
        current, self.current_memory = self.current_memory, None
        if current is None or self.memory_controller is None:
            return None
        try:
            memory.set_limit(self.memory_controller, current, limit_bytes)
        except OSError as exc:
            sys.stderr.write(f"triggerfish zygote: cannot limit the memory cgroup {current}: {exc}\n")
            return None
        return current

    def prepare(self, previous: str | None = None, previous_memory: str | None = None) -> None:
        """Create the next worker's cgroups and move this process into them; tighten `previous`'s limit."""
        if self.memory_root is not None:
            self._count += 1
            path = self.memory_root / f"w{os.getpid()}-{self._count}"
            try:
                path.mkdir(exist_ok=True)
                memory.join(str(path))
                self.current_memory = str(path)
            except OSError:
                self.current_memory = None
                with contextlib.suppress(OSError):
                    path.rmdir()
        if previous_memory is not None:
            with contextlib.suppress(OSError):
                os.rmdir(previous_memory)  # the parent could not while this process was inside
        if self.root is not None:
            if self.memory_root is None:
                self._count += 1
            path = self.root / f"w{os.getpid()}-{self._count}"
            try:
                path.mkdir(exist_ok=True)
                (path / "pids.max").write_text(str(self.max_processes + 1))
                (path / "cgroup.procs").write_text(str(os.getpid()))
                self.current = str(path)
            except OSError:
                self.current = None
                with contextlib.suppress(OSError):
                    path.rmdir()
        if previous is not None:
            with contextlib.suppress(OSError):
                Path(previous, "pids.max").write_text(str(self.max_processes))
            # The parent could not remove it if the worker ended while this process was still inside.
            with contextlib.suppress(OSError):
                os.rmdir(previous)


def enter_box(max_tasks: int, cgroup: str | None) -> list[str]:
    """Cap a boxed base zygote and all it will fork, before it forks anything; the limits not enforced.

    `cgroup`: the runner's pids cgroup, delegated to the box's uid, to join (None: there is none).
    """
    global box_tasks
    unenforced = []
    if cgroup is not None:
        try:
            Path(cgroup, "cgroup.procs").write_text("0")  # "0": the writing process
        except OSError as exc:
            sys.stderr.write(f"triggerfish zygote: cannot join the pids cgroup {cgroup}: {exc}\n")
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (max_tasks, max_tasks))
    except (ValueError, OSError):
        unenforced.append("processes")
    box_tasks = max_tasks
    return unenforced


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when the process that forked it dies.

    For zygotes' children: a zygote killed outright must not leave workers
    running with nobody to stop them. Exits at once if the parent is already gone.
    """
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def kill_children() -> int:
    """SIGKILL and reap every descendant of this process; the number killed. Cheap when there are none."""
    me = os.getpid()
    children_file = f"/proc/{me}/task/{me}/children"
    killed = 0
    for _ in range(1000):  # each round kills one generation; orphans of the killed come back to us
        try:
            with open(children_file, "rb") as f:
                pids = f.read().split()
        except OSError:
            return killed
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
        for pid in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(int(pid), 0)
    return killed


class CgroupTree:
    """The parent's side of the pids cgroups: one directory per runner, one per worker inside it."""

    def __init__(self, name: str) -> None:
        self.path = PIDS_CGROUP_ROOT / "triggerfish" / name
        self.enabled = False
        if cgroup_available():
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                self.enabled = True
                self.sweep_stale()
            except OSError as exc:
                log.warning("the pids cgroup %s cannot be created (%s); process limits fall back", self.path, exc)

    @property
    def root(self) -> str | None:
        """The directory app zygotes create workers' cgroups in (None: no cgroups)."""
        return str(self.path) if self.enabled else None

    def sweep_stale(self) -> int:
        """Remove the empty cgroups of runners whose process is gone (killed before `close`); how many."""
        return memory.sweep_stale_runners(self.path)

    def delegate(self, uid: int | None, gid: int | None, max_tasks: int) -> bool:
        """Hand the runner's cgroup to a box: at most `max_tasks` tasks in it, and (as root, to the box's
        uid) the right to create workers' cgroups in it and to join it. False when that failed: then the
        runner does without a cgroup."""
        if not self.enabled:
            return False
        try:
            (self.path / "pids.max").write_text(str(max_tasks))
            if uid is not None and gid is not None:
                # pids.max stays root's: the box may tighten its workers' limits, never loosen its own.
                os.chown(self.path, uid, gid)
                os.chown(self.path / "cgroup.procs", uid, gid)
        except OSError as exc:
            log.warning("the pids cgroup %s cannot be handed to the box (%s); using RLIMIT_NPROC", self.path, exc)
            self.enabled = False
        return self.enabled

    @staticmethod
    def kill_all(path: str | None, spare: int | None = None) -> None:
        """SIGKILL whatever is left in a worker's cgroup (children that escaped its process group).

        `spare`: the app zygote, which stays in its newest worker's cgroup for a moment after the fork.
        """
        if path is None:
            return
        keep = str(spare)
        for _ in range(20):
            try:
                pids = [pid for pid in Path(path, "cgroup.procs").read_text().split() if pid != keep]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)

    @staticmethod
    def remove(path: str | None) -> None:
        """Remove a worker's cgroup once it is empty; a cgroup still in use is left and retried at close."""
        if path is not None:
            with contextlib.suppress(OSError):
                os.rmdir(path)

    def close(self) -> None:
        """Kill what is left in the runner's cgroups and remove them (a killed process takes a moment to go)."""
        if not self.enabled or not self.path.exists():
            return
        for _ in range(100):
            children = [child for child in self.path.iterdir() if child.is_dir()]
            for child in children:
                self.kill_all(str(child))
                self.remove(str(child))
            with contextlib.suppress(OSError):
                os.rmdir(self.path)
            if not self.path.exists():
                return
            time.sleep(0.01)
        if self.path.exists():
            log.warning("could not remove %s; remove it by hand once its processes are gone", self.path)


def describe(method: str, memory_method: str = "RLIMIT_AS") -> Limits:
    """The Limits a pool reports for the process-limit `method` ("cgroup", "box", "rlimit" or "none") and the
    memory limit's (a memory cgroup's description, or "RLIMIT_AS")."""
    processes = {
        "cgroup": "pids cgroup (pids.max)",
        "box": "RLIMIT_NPROC of the box (shared by the app's workers)",
        "rlimit": "RLIMIT_NPROC",
        "none": "none",
    }[method]
    if method == "none":
        log.warning(
            "the process limit cannot be enforced: running as root without a writable pids cgroup at %s",
            PIDS_CGROUP_ROOT,
        )
    return Limits(memory=memory_method, processes=processes)


__all__ = [
    "DEFAULT_MAX_PROCESSES",
    "CgroupSpares",
    "CgroupTree",
    "Limits",
    "address_space_bytes",
    "apply_in_child",
    "describe",
    "enter_box",
    "kill_children",
    "memory_limit_bytes",
    "process_limit_method",
]
