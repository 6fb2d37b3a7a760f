"""Detached tmpfs mounts made by the server with the kernel's new mount API, for a worker to attach as its /tmp.

    fd = detached_tmpfs(512, uid=1_900_000_001, gid=1_900_000_001)   # in the server (root)
    ... the fd travels to the worker with its spawn request (SCM_RIGHTS) ...
    attach(fd, "/tmp")                                               # in the worker, in its own mount namespace

A box's processes cannot make filesystems (no capabilities, and the box's
seccomp filter refuses `mount` and `fsopen`), so the server, outside the box,
makes each worker's /tmp: `fsopen("tmpfs")`, `fsconfig` (size, mode, owner),
`fsmount` gives a mount that is attached nowhere, held by a file
descriptor. The worker, after making a user and mount namespace of its own,
moves it onto /tmp with `move_mount`, the one mount call its filter lets
through. The tmpfs then lives exactly as long as the worker's mount
namespace (and any copy of the fd): when the worker exits, it is gone.

`fsopen` needs CAP_SYS_ADMIN in the server's own user namespace, so only a
server running as root can do this (`unavailable()` says why not elsewhere:
a non-root server, or a kernel before 5.2, which lacks the calls).

The system call numbers come from the seccomp filter's table (the same
numbers the filter checks); ctypes calls them through `syscall(2)`, since
older C libraries have no wrappers for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import os
from dataclasses import dataclass, replace

from triggerfish.isolation.seccomp import ARCHES, machine

# From the kernel's uapi linux/mount.h (and AT_* from linux/fcntl.h).
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = 0o2000000
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
#: The largest size a caller may ask for, in MiB (Lambda's largest ephemeral storage).
MAX_SIZE_MB = 10_240


class MountApiError(OSError):
    """A step of making or attaching a detached mount failed: the step, and the kernel's words, are in the message."""


@dataclass(frozen=True, slots=True)
class TmpPlan:
    """What a worker's /tmp holds when it starts: an empty tmpfs of `size_mb` MiB owned by `uid`/`gid`, with the
    box's read-only directories that lie under /tmp bound back at their places (`binds`: host source, path
    relative to /tmp), and `hide` (paths relative to /tmp inside those) covered by an empty read-only tmpfs."""

    size_mb: int
    uid: int | None = None
    gid: int | None = None
    binds: tuple[tuple[str, str], ...] = ()
    hide: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        tmpfs_parameters(self.size_mb, self.uid, self.gid)  # checks them
        for inside in (*(inside for _, inside in self.binds), *self.hide):
            if inside.startswith("/") or not inside or ".." in inside.split("/"):
                raise ValueError(f"{inside!r} is not a path inside /tmp (relative, without '..')")

    def sized(self, size_mb: int) -> TmpPlan:
        """The same plan for a worker whose /tmp is `size_mb` MiB (its function's ephemeral_storage)."""
        return replace(self, size_mb=size_mb)


def tmpfs_parameters(size_mb: int, uid: int | None = None, gid: int | None = None) -> list[tuple[str, str]]:
    """The fsconfig string parameters of a worker's /tmp: its size, sticky and writable by all, and its owner.

    Pure. `tmpfs_parameters(512, 1_900_000_001, 1_900_000_001)` is
    `[("size", "512m"), ("mode", "1777"), ("uid", "1900000001"), ("gid", "1900000001")]`.
    Raises ValueError for a size outside 1 to MAX_SIZE_MB or an owner that is not a uid/gid.
    """
    if isinstance(size_mb, bool) or not isinstance(size_mb, int) or not 1 <= size_mb <= MAX_SIZE_MB:
        raise ValueError(f"a worker's /tmp is a whole number of MiB from 1 to {MAX_SIZE_MB}, not {size_mb!r}")
    parameters = [("size", f"{size_mb}m"), ("mode", "1777")]
    for name, value in (("uid", uid), ("gid", gid)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32 - 1:
            raise ValueError(f"a tmpfs's {name} is a number from 0 to 4294967294, not {value!r}")
        parameters.append((name, str(value)))
    return parameters


def call_numbers(arch: str | None = None) -> dict[str, int] | None:
    """The numbers of fsopen, fsconfig, fsmount, move_mount, open_tree and mount_setattr on `arch` (this
    machine's by default); None when the machine is not one the seccomp filter knows."""
    known = ARCHES.get(machine() if arch is None else arch)
    if known is None:
        return None
    names = ("fsopen", "fsconfig", "fsmount", "move_mount", "open_tree", "mount_setattr")
    return {name: known.numbers[name] for name in names}


# --- the system calls ----------------------------------------------------------------------------


@functools.cache
def _syscall() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    function = ctypes.CDLL(None, use_errno=True).syscall
    function.restype = ctypes.c_long
    return function


def load() -> None:
    """Look up `syscall(2)` and this machine's numbers now: a zygote does it once, so its workers need not."""
    _syscall()
    _numbers()


@functools.cache
def _numbers() -> dict[str, int]:
    numbers = call_numbers()
    if numbers is None:
        raise MountApiError(errno.ENOSYS, f"the mount API's system call numbers on {machine()} are not known")
    return numbers


def _call(step: str, number: int, *args: object, context_fd: int = -1) -> int:
    result = int(_syscall()(ctypes.c_long(number), *args))
    if result < 0:
        code = ctypes.get_errno()
        said = _kernel_message(context_fd)
        raise MountApiError(code, f"{step}: {os.strerror(code)}{f' ({said})' if said else ''}")
    return result


def _kernel_message(context_fd: int) -> str:
    """What the kernel logged in a filesystem context about the last failure ("e tmpfs: Bad value for 'size'")."""
    if context_fd < 0:
        return ""
    with contextlib.suppress(OSError):
        os.set_blocking(context_fd, False)
        return os.read(context_fd, 4096).decode("utf-8", "replace").strip()
    return ""


def detached_tmpfs(size_mb: int, *, uid: int | None = None, gid: int | None = None) -> int:
    """A tmpfs of `size_mb` MiB (mode 1777, owned by `uid`/`gid`, nosuid and nodev) attached nowhere: its mount fd.

    The fd is close-on-exec; whoever holds it may attach the tmpfs once (`attach`). Raises ValueError for bad
    arguments and MountApiError naming the step that failed (EPERM from fsopen: not root; ENOSYS: an old kernel).
    """
    parameters = tmpfs_parameters(size_mb, uid, gid)
    numbers = _numbers()
    long = ctypes.c_long
    context = _call("fsopen(tmpfs)", numbers["fsopen"], b"tmpfs", long(FSOPEN_CLOEXEC))
    try:
        for key, value in parameters:
            step = f"fsconfig({key}={value})"
            config = numbers["fsconfig"]
            _call(step, config, long(context), long(FSCONFIG_SET_STRING), key.encode(), value.encode(), long(0))
        create = (long(context), long(FSCONFIG_CMD_CREATE), None, None, long(0))
        _call("fsconfig(create)", numbers["fsconfig"], *create, context_fd=context)
        attributes = long(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
        return _call("fsmount", numbers["fsmount"], long(context), long(FSMOUNT_CLOEXEC), attributes)
    finally:
        os.close(context)


def make_tmp(plan: TmpPlan) -> int:
    """The detached mount tree of a worker's /tmp as `plan` says: its fd (see detached_tmpfs for the errors).

    Binding onto a detached tree needs Linux 6.15 or later (MountApiError from move_mount before that).
    """
    root = detached_tmpfs(plan.size_mb, uid=plan.uid, gid=plan.gid)
    try:
        for source, inside in plan.binds:
            _bind_read_only(root, source, inside)
        for inside in plan.hide:
            cover = detached_tmpfs(1)
            try:
                _set_read_only(cover)
                _move_into(cover, root, inside)
            finally:
                os.close(cover)
    except BaseException:
        os.close(root)
        raise
    return root


def _bind_read_only(root: int, source: str, inside: str) -> None:
    """A read-only copy of the host's `source` (with the mounts below it) at `inside` in the tree held by `root`."""
    # Directories leading to it: the server's (root's), 0755, so the worker can neither remove nor rename them.
    os.makedirs(f"/proc/self/fd/{root}/{inside}", mode=0o755, exist_ok=True)
    flags = ctypes.c_long(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
    tree = _call(f"open_tree({source})", _numbers()["open_tree"], ctypes.c_long(AT_FDCWD), os.fsencode(source), flags)
    try:
        _set_read_only(tree)
        _move_into(tree, root, inside)
    finally:
        os.close(tree)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _set_read_only(tree: int) -> None:
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    flags = ctypes.c_long(AT_EMPTY_PATH | AT_RECURSIVE)
    size = ctypes.c_long(ctypes.sizeof(attr))
    _call(
        "mount_setattr(read-only)",
        _numbers()["mount_setattr"],
        ctypes.c_long(tree),
        b"",
        flags,
        ctypes.byref(attr),
        size,
    )


def _move_into(tree: int, root: int, inside: str) -> None:
    target = os.fsencode(inside)
    flags = ctypes.c_long(MOVE_MOUNT_F_EMPTY_PATH)
    _call(
        f"move_mount onto {inside}",
        _numbers()["move_mount"],
        ctypes.c_long(tree),
        b"",
        ctypes.c_long(root),
        target,
        flags,
    )


def attach(mount_fd: int, path: str) -> None:
    """Move the detached mount held by `mount_fd` onto `path` in the caller's mount namespace.

    The caller needs CAP_SYS_ADMIN over its mount namespace (root, or a user namespace of its own that owns it).
    Raises MountApiError (EPERM: no such capability; EINVAL: the fd is not a detached mount, or was attached).
    """
    flags = ctypes.c_long(MOVE_MOUNT_F_EMPTY_PATH)
    target = os.fsencode(path)
    _call(
        f"move_mount onto {path}",
        _numbers()["move_mount"],
        ctypes.c_long(mount_fd),
        b"",
        ctypes.c_long(AT_FDCWD),
        target,
        flags,
    )


#: Seconds after a tree is taken before the next one of its size is made (see TmpTrees.take).
REFILL_AFTER = 0.02


class TmpTrees:
    """Makes workers' /tmp trees as `plan` says, one ahead per size: the tree a cold start takes was made after
    the previous cold start, so this one does not wait for fsopen and fsmount.

        trees = TmpTrees(plan)
        fd = trees.take(512)     # a spare if there is one, else made now; the next is made soon after
        trees.close()            # the spares go (a tree nobody attached is freed with its fd)
    """

    def __init__(self, plan: TmpPlan) -> None:
        self.plan = plan
        self._spares: dict[int, int] = {}
        self._closed = False

    def take(self, size_mb: int) -> int:
        """A tree of `size_mb` MiB for one worker: its fd, the caller's to send and close. MountApiError if none
        can be made."""
        fd = self._spares.pop(size_mb, None)
        if fd is None:
            fd = make_tmp(self.plan.sized(size_mb))
        with contextlib.suppress(RuntimeError):  # no running event loop: no spare, the next take makes one
            # Not at once: the worker this fd is for is starting now, and on a busy machine the server's CPU
            # would compete with it (as the zygote prepares its next cgroup only after a quiet moment).
            asyncio.get_running_loop().call_later(REFILL_AFTER, self._refill, size_mb)
        return fd

    def _refill(self, size_mb: int) -> None:
        if self._closed or size_mb in self._spares:
            return
        with contextlib.suppress(OSError):  # the next take tries again, and reports why
            self._spares[size_mb] = make_tmp(self.plan.sized(size_mb))

    def close(self) -> None:
        self._closed = True
        for fd in self._spares.values():
            os.close(fd)
        self._spares.clear()


def unavailable(plan: TmpPlan) -> str | None:
    """None when this process can make /tmp trees as `plan` says; otherwise why not (found by making one)."""
    try:
        os.close(make_tmp(plan.sized(1)))
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError as exc:
        return str(exc)
    return None


__all__ = [
    "MountApiError",
    "TmpPlan",
    "TmpTrees",
    "attach",
    "call_numbers",
    "detached_tmpfs",
    "load",
    "make_tmp",
    "tmpfs_parameters",
    "unavailable",
]
