"""Each worker's own /tmp, as each Lambda execution environment has its own.

Functions write to `/tmp` by its literal path. Right after the fork, a
worker outside a box takes a mount namespace of its own (as root, or in a
user namespace mapping the server's uid to itself) and mounts a tmpfs of the
function's `ephemeral_storage` MB on `/tmp`: what it writes there is seen by
it and its children only, stays for its warm life, and is gone with it (the
kernel frees the tmpfs when the namespace's last process exits). A full
`/tmp` is `OSError: [Errno 28] No space left on device`, as on Lambda.

Directories the worker needs that lie under the host's `/tmp` (its working
directory, the app's code, its installed requirements) are bound back into
the new `/tmp` at the same paths before user code runs, each with the whole
top directory holding it: a project in `/tmp/scratch` runs as any other.

Mounts made in the namespace never reach the host: the whole tree is made a
slave of the host's first. Where namespaces cannot be made (user namespaces
disabled), the worker keeps the `/tmp` it has and reports "tmp" as not
enforced.

In a box (`enter_mount`) the worker cannot make a filesystem: the server
made its tmpfs (triggerfish.isolation.mount_api) and sent the mount's fd
with the spawn request. The worker makes a user and mount namespace of its
own (the one `unshare` the box's seccomp filter lets through) and moves the
mount onto /tmp. It binds nothing back itself (it cannot): what of the box
lies under /tmp (an app kept there) the server bound into the tree already,
and working directories are under /home/app.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterable

from triggerfish.isolation import mount_api
from triggerfish.runtime import limits

TMP = "/tmp"
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SLAVE = 0x80000


class PrivateTmpError(OSError):
    """The private /tmp could not be made (the step and the system's reason are in the message).

    `mounted`: the tmpfs was mounted before the failure, so /tmp is no longer the host's either.
    """

    mounted = False


def enter(size_mb: int, keep: Iterable[str] = ()) -> None:
    """Give the calling process, single-threaded and not yet running user code, a private /tmp of `size_mb` MB.

    `keep`: paths under the host's /tmp that must stay reachable at the same place (bound back in).
    Raises PrivateTmpError, leaving /tmp as it was, when the namespace or the mount cannot be made.
    """
    libc = limits.libc()
    uid, gid = os.getuid(), os.getgid()
    root = os.geteuid() == 0
    host_tmp = -1
    mounted = False
    try:
        if root:
            _call(libc.unshare(_CLONE_NEWNS), "unshare")
        else:
            _own_namespaces(uid, gid)
        _call(libc.mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None), "making / a slave mount")
        # Opened in the new namespace (a bind's source must be a mount of it), before the tmpfs covers it.
        host_tmp = os.open(TMP, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        options = f"size={int(size_mb)}m,mode=1777".encode()
        _call(libc.mount(b"tmpfs", TMP.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options), "mounting /tmp")
        mounted = True
        for path in _outermost(keep):
            inside = path[len(TMP) + 1 :]
            source = f"/proc/self/fd/{host_tmp}/{inside}"
            os.makedirs(source, exist_ok=True)
            os.makedirs(path, exist_ok=True)
            _call(libc.mount(source.encode(), path.encode(), None, _MS_BIND | _MS_REC, None), f"binding {path}")
    except OSError as exc:
        error = PrivateTmpError(exc.errno, f"no private /tmp: {exc.strerror or exc}")
        error.mounted = mounted
        raise error from None
    finally:
        if host_tmp >= 0:
            os.close(host_tmp)


def enter_mount(mount_fd: int) -> None:
    """Attach the detached tmpfs `mount_fd` (made by the server) as the calling process's /tmp, and close the fd.

    For a worker in a box, single-threaded and not yet running user code: it takes a user namespace mapping its
    own uid and gid to themselves, and a mount namespace owned by it, then moves the mount onto /tmp. Raises
    PrivateTmpError, leaving /tmp as it was (the box's), when either step fails.
    """
    try:
        _own_namespaces(os.getuid(), os.getgid())
        mount_api.attach(mount_fd, TMP)
    except OSError as exc:
        raise PrivateTmpError(exc.errno, f"no private /tmp: {exc.strerror or exc}") from None
    finally:
        os.close(mount_fd)


def _own_namespaces(uid: int, gid: int) -> None:
    """A user namespace and a mount namespace it owns, mapping `uid` and `gid` to themselves.

    The same ids inside as outside: files keep their owner, and nothing else changes. Files of ids not mapped
    (root's) show as owned by the overflow ids (65534), as in any user namespace.
    """
    _call(limits.libc().unshare(_CLONE_NEWNS | _CLONE_NEWUSER), "unshare")
    # os.open and os.write, not open(): a third of a millisecond less on every cold start (no buffered file objects).
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        fd = os.open(f"/proc/self/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def _call(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _outermost(paths: Iterable[str]) -> list[str]:
    """The top directories under /tmp that hold `paths` (`/tmp/scratch` for `/tmp/scratch/app/x.py`).

    The whole top directory, not just the paths: a project living in /tmp/scratch sees all of it (its data
    next to the app, a file its tests read), as it would anywhere else; `/tmp/x` itself stays the worker's own.
    """
    tops = set()
    for path in paths:
        absolute = os.path.normpath(os.path.abspath(path)) if path else ""
        if absolute.startswith(TMP + "/"):
            tops.add(TMP + "/" + absolute[len(TMP) + 1 :].split("/")[0])
    return sorted(tops)


def paths_to_keep(cwd: str, search_path: Iterable[str]) -> list[str]:
    """What a worker needs from the host's /tmp: its working directory, and the app's directory and the import
    path's entries (`search_path`).

    The import path's real paths are remembered: the zygote works them out once (`remember`) and every worker
    it forks inherits them, which takes about half a millisecond (a realpath per entry) off each cold start.
    """
    with contextlib.suppress(OSError):
        cwd = os.path.realpath(cwd)
    return [cwd, *remember(search_path)]


_REAL_PATHS: dict[tuple[str, ...], list[str]] = {}


def remember(search_path: Iterable[str]) -> list[str]:
    """The real paths of `search_path`'s entries, worked out once per distinct path (see paths_to_keep)."""
    entries = tuple(entry for entry in search_path if entry)
    found = _REAL_PATHS.get(entries)
    if found is None:
        if len(_REAL_PATHS) > 8:  # a zygote has one import path; more means it changed: keep the newest
            _REAL_PATHS.clear()
        found = _REAL_PATHS[entries] = [os.path.realpath(entry) for entry in entries]
    return found
