"""The box an app's code runs in: Linux namespaces through bubblewrap, as a user of the app's own.

    box = Box(uid=1_900_000_001, gid=1_900_000_001, network=True)
    launch = prepare(box, [sys.executable, "-m", "triggerfish.runtime.zygote", "3"],
                     read_only=["/srv/bundles/ab12"], keep_fds=[3], env={...})
    process = subprocess.Popen(launch.argv, pass_fds=launch.pass_fds, env=launch.env, **launch.popen)
    launch.started()

What a boxed process sees (see docs/security.md for what this promises):

- its own pid, IPC, UTS and cgroup namespaces, and, with `network=False`,
  its own network namespace with nothing but loopback; a fresh /proc and a
  minimal /dev;
- a root that is an empty read-only tmpfs, with bound into it read-only:
  /usr, the Python running Triggerfish (its prefix, the venv, the
  triggerfish package), a few files of /etc (DNS, certificates, time
  zones), and the directories the caller names (the app's bundle, its
  installed requirements);
- `/tmp`, a tmpfs of `tmp_mb` MiB, and `/home/app`, another (the
  functions' working directories and HOME): the only places it can write.
  Each worker then covers /tmp with a tmpfs of its own that the server made
  (triggerfish.isolation.mount_api), where the server can;
- a seccomp filter (`triggerfish.isolation.seccomp`) refusing namespaces,
  mounts, BPF, io_uring, keyrings, ptrace and the like.

As root, bubblewrap runs privileged (it builds the mounts as root, so paths
under directories only root may enter, such as /root/.pyenv or a 0700
data directory, can be bound), and `setpriv` switches to the box's uid and
gid with no supplementary groups, no capabilities and no_new_privs before
anything else runs. Not as root, bubblewrap makes a user namespace and the
box runs as the server's own uid: every namespace and the filesystem view
still apply, but the uid is shared with the server's own processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from triggerfish.errors import IsolationError
from triggerfish.isolation.seccomp import filter_program

#: MiB of the box's /tmp, the one place its processes can write (Lambda's default ephemeral storage).
DEFAULT_TMP_MB = 512
#: Processes and threads all the boxes of one app may have at once.
DEFAULT_MAX_TASKS = 1024
#: Where a box's writable directories are, inside the box: its /tmp, and its user's home holding the
#: functions' working directories (not under /tmp: each worker covers /tmp with its own).
BOX_TMP = "/tmp"
BOX_HOME = "/home/app"
#: The hostname inside a box (its own UTS namespace: the server's name is not shown).
HOSTNAME = "triggerfish"
#: Files and directories of /etc a box sees: name resolution, certificates, time zones, the loader's cache.
ETC = (
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "localtime",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    "mime.types",
    "alternatives",
)
#: Top-level directories that are symlinks into /usr on a merged-/usr system (bound as they are otherwise).
TOP_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@dataclass(frozen=True, slots=True)
class Box:
    """How the processes of one app version (or one install of its requirements) are confined.

    `uid`/`gid`: run as these (only root can switch; as root they are
    required, so a box never runs as root). `network`: False gives the box a
    network namespace of its own with only loopback. `tmp_mb`: the size of
    its /tmp. `max_tasks`: processes and threads of the app at once (a pids
    cgroup for the box where one is writable, RLIMIT_NPROC otherwise).
    `read_only`: more host directories to bind read-only at the same path
    (the app's code; the runner adds its requirements). `hide`: directories
    inside those to cover with an empty read-only tmpfs (a data directory
    inside a project). `worker_tmp`: each worker gets a /tmp of its own
    (made by the server where it can; False: workers share the box's, as
    under a server that cannot make them). Raises ValueError for a value out
    of range (a uid of 0, a /tmp of nothing).

        Box(uid=1_900_000_001, gid=1_900_000_001, network=False, tmp_mb=256)
    """

    uid: int | None = None
    gid: int | None = None
    network: bool = True
    tmp_mb: int = DEFAULT_TMP_MB
    max_tasks: int = DEFAULT_MAX_TASKS
    read_only: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    seccomp: bool = True
    bwrap: str = "bwrap"
    worker_tmp: bool = True

    def __post_init__(self) -> None:
        for name in ("uid", "gid"):
            value = getattr(self, name)
            valid = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**32 - 1
            if value is not None and not valid:
                raise ValueError(f"a box's {name} is a number from 1 to 4294967294, not {value!r} (never root)")
        if (self.uid is None) != (self.gid is None):
            raise ValueError("give a box both a uid and a gid, or neither")
        for name, low in (("tmp_mb", 1), ("max_tasks", 8)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"a box's {name} is a whole number of at least {low}, not {value!r}")

    @property
    def switches_user(self) -> bool:
        """Whether the box runs as a uid of its own (only when the server is root)."""
        return self.uid is not None


@dataclass(slots=True)
class Launch:
    """A boxed command ready for Popen: `argv`, the fds to pass, the environment; call `started` after."""

    argv: list[str]
    pass_fds: list[int]
    env: dict[str, str]
    #: Our ends of the pipes bwrap reads its seccomp program and files from: closed once it started.
    _ours: list[int] = field(default_factory=list)

    @property
    def popen(self) -> dict[str, Any]:
        """Keyword arguments for Popen besides those above: bwrap is started from /, with no stdin."""
        return {"cwd": "/", "stdin": subprocess.DEVNULL}

    def started(self) -> None:
        """Close the parent's copies of the pipes the box read at its start (also after a failed start)."""
        for fd in self._ours:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._ours.clear()


def prepare(
    box: Box,
    command: Sequence[str],
    *,
    read_only: Iterable[str] = (),
    writable: Iterable[str] = (),
    keep_fds: Sequence[int] = (),
    env: Mapping[str, str],
    chdir: str = "/",
) -> Launch:
    """The bubblewrap command line that runs `command` in `box`.

    `read_only` and `writable` are host directories bound at the same path
    (besides the Python runtime, /usr and `box.read_only`); `keep_fds` stay
    open in the box (a socket to the parent). Raises IsolationError when
    bubblewrap (or, as root, setpriv) is missing, or when running as root
    without a uid for the box.
    """
    bwrap = shutil.which(box.bwrap)
    if bwrap is None:
        raise IsolationError(
            f"bubblewrap ({box.bwrap!r}) is not installed: install it (Debian: apt-get install bubblewrap), "
            "or run without isolation (`triggerfish serve --no-isolation`), which is unsafe for untrusted apps"
        )
    root = os.geteuid() == 0
    if root and not box.switches_user:
        raise IsolationError("running as root, a box needs a uid and gid of its own; it never runs apps as root")
    if not root and box.switches_user and box.uid != os.getuid():
        raise IsolationError(f"only root can run a box as uid {box.uid}; this server runs as uid {os.getuid()}")
    argv = [bwrap, *_namespaces(box, privileged=root)]
    pipes: list[int] = []
    try:
        argv += _filesystem(box, read_only, writable)
        argv += _identity_files(box, pipes)
        if box.seccomp and (program := filter_program()) is not None:
            argv += ["--seccomp", str(_pipe_with(program, pipes))]
        argv += ["--remount-ro", "/", "--chdir", chdir, "--"]
        if root:
            argv += [*_drop_to(box), "--"]
        argv += list(command)
    except BaseException:
        for fd in pipes:
            os.close(fd)
        raise
    return Launch(argv=argv, pass_fds=[*keep_fds, *pipes], env=dict(env), _ours=pipes)


def probe(box: Box) -> str | None:
    """Run `true` in `box`; None when that worked, else why not (bubblewrap's own words)."""
    try:
        launch = prepare(box, ["true"], env={"PATH": "/usr/bin:/bin"})
    except IsolationError as exc:
        return str(exc)
    try:
        done = subprocess.run(
            launch.argv, pass_fds=launch.pass_fds, env=launch.env, capture_output=True, timeout=30, **launch.popen
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not be run: {exc}"
    finally:
        launch.started()
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        return f"bubblewrap cannot make a box here: {reason}"
    return None


def runtime_paths() -> list[str]:
    """The host paths of the Python running Triggerfish: prefixes, the venv, site-packages, the package,
    and wherever the packages it needs are installed."""
    import triggerfish

    paths = [sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))]
    paths += [sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")]
    with contextlib.suppress(AttributeError):  # virtualenv's old site module lacks it
        paths += site.getsitepackages()
    paths.append(os.path.dirname(os.path.abspath(triggerfish.__file__)))
    paths += dependency_paths()
    return [path for path in paths if path and os.path.isdir(path)]


def package_parent() -> str:
    """The directory holding the triggerfish package: PYTHONPATH in a box, where only the package is bound."""
    import triggerfish

    return os.path.dirname(os.path.dirname(os.path.abspath(triggerfish.__file__)))


def python_path() -> list[str]:
    """PYTHONPATH in a box: the package's directory, then those of the packages it needs (which need not
    be site-packages: a server may find them on its own PYTHONPATH)."""
    return list(dict.fromkeys([package_parent(), *dependency_paths()]))


def dependency_paths() -> list[str]:
    """The sys.path entries holding the distributions triggerfish requires, and theirs, without extras."""
    from importlib import metadata

    found: list[str] = []
    seen: set[str] = set()
    pending = ["triggerfish"]
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(str(distribution.locate_file("")))
        for requirement in distribution.requires or []:
            if re.search(r"\bextra\s*==", requirement) is None:  # an optional extra: not needed to run
                pending.append(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
    return list(dict.fromkeys(path for path in found if os.path.isdir(path)))


def which_setpriv() -> str:
    found = shutil.which("setpriv")
    if found is None:
        raise IsolationError("setpriv (util-linux) is not installed; a box started by root needs it to change uid")
    return found


# --- the pieces of the command line -------------------------------------------------------------


def _namespaces(box: Box, *, privileged: bool) -> list[str]:
    flags = [] if privileged else ["--unshare-user"]
    flags += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if not box.network:
        flags.append("--unshare-net")
    # pid 1 of the namespace is the command itself: when it exits, the kernel kills the rest of the box.
    flags += ["--die-with-parent", "--new-session", "--as-pid-1", "--hostname", HOSTNAME]
    return flags


def _filesystem(box: Box, read_only: Iterable[str], writable: Iterable[str]) -> list[str]:
    # /tmp first: binds below it (an app under /tmp, as in tests) are then mounted on top, not hidden by it.
    args = ["--proc", "/proc", "--dev", "/dev"]
    for writable_dir in (BOX_TMP, BOX_HOME):
        args += ["--size", str(box.tmp_mb * 1024 * 1024), "--perms", "1777", "--tmpfs", writable_dir]
    for name in TOP_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    chosen = _read_only_binds(box, read_only)
    writable = [os.path.abspath(path) for path in writable]
    # bubblewrap makes the directories leading to a mount point 0700 (root's, as root): open them to the box.
    above = _ancestors_of(target for _, target in chosen) | _ancestors_of(writable)
    for directory in sorted(above):
        args += ["--perms", "0755", "--dir", directory]
    for source, target in chosen:
        args += ["--ro-bind", source, target]
    for path in writable:
        args += ["--bind", path, path]
    for path in box.hide:
        # Nothing to write to (read-only) and nothing to read (empty): a data directory inside a project.
        args += ["--size", "4096", "--tmpfs", path, "--remount-ro", path]
    return args


def _read_only_binds(box: Box, read_only: Iterable[str]) -> list[tuple[str, str]]:
    binds = ["/usr", *runtime_paths(), *(f"/etc/{name}" for name in ETC if os.path.exists(f"/etc/{name}"))]
    return _collapse([*binds, *box.read_only, *read_only])


def under_tmp(box: Box, read_only: Iterable[str] = ()) -> tuple[list[tuple[str, str]], list[str]]:
    """What of `box` (with `read_only` as for `prepare`) lies under /tmp, for a worker's own /tmp to hold too:
    the read-only binds as (host source, path relative to /tmp), and the hidden paths relative to /tmp.

    Empty for a server whose apps, requirements and Python live elsewhere (a data directory under /var/lib).
    """
    prefix = BOX_TMP + "/"
    chosen = _read_only_binds(box, read_only)
    binds = [(source, target[len(prefix) :]) for source, target in chosen if target.startswith(prefix)]
    # Only what a bind brings in needs hiding again: elsewhere the worker's /tmp is empty.
    hidden = [os.path.abspath(path) for path in box.hide]
    inside = [path for path in hidden if any(_inside(path, prefix + target) for _, target in binds)]
    return binds, [path[len(prefix) :] for path in inside]


def _collapse(paths: Iterable[str]) -> list[tuple[str, str]]:
    """(source, target) binds for `paths`: each at its own path (and at its real path when a link leads
    there), dropping any path inside another that is bound already."""
    wanted: list[tuple[str, str]] = []
    for path in paths:
        absolute = os.path.abspath(path)
        real = os.path.realpath(absolute)
        if not os.path.exists(real):
            continue
        wanted.append((real, absolute))
        if real != absolute:
            wanted.append((real, real))
    chosen: list[tuple[str, str]] = []
    for source, target in sorted(set(wanted), key=lambda pair: (len(pair[1]), pair[1])):
        covered = any(_inside(target, kept) and source == _rebase(origin, kept, target) for origin, kept in chosen)
        if not covered:
            chosen.append((source, target))
    return chosen


def _ancestors(path: str) -> set[str]:
    """The directories above `path`, without / and without /tmp and /home/app (tmpfs of their own, made above)."""
    found = set()
    parent = os.path.dirname(path)
    while parent not in ("/", "", BOX_TMP, BOX_HOME):
        found.add(parent)
        parent = os.path.dirname(parent)
    return found


def _ancestors_of(paths: Iterable[str]) -> set[str]:
    return set().union(*(_ancestors(path) for path in paths))


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _rebase(source: str, target: str, path: str) -> str:
    """Where `path` (inside `target`) comes from when `source` is bound at `target`."""
    return os.path.realpath(source + path[len(target.rstrip("/")) :])


def _identity_files(box: Box, pipes: list[int]) -> list[str]:
    """A /etc/passwd and /etc/group naming only root, the box's user and nobody (tools look themselves up)."""
    uid = box.uid if box.uid is not None else os.getuid()
    gid = box.gid if box.gid is not None else os.getgid()
    passwd = (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"app:x:{uid}:{gid}:triggerfish app:{BOX_HOME}:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    group = f"root:x:0:\napp:x:{gid}:\nnogroup:x:65534:\n"
    return [
        "--perms",
        "0644",
        "--ro-bind-data",
        str(_pipe_with(passwd.encode(), pipes)),
        "/etc/passwd",
        "--perms",
        "0644",
        "--ro-bind-data",
        str(_pipe_with(group.encode(), pipes)),
        "/etc/group",
    ]


def _pipe_with(data: bytes, pipes: list[int]) -> int:
    """A pipe holding `data` and then EOF; its read end (for bwrap), recorded in `pipes` to close later."""
    if len(data) > 65536:  # a pipe's buffer: writing more would block until bwrap reads
        raise IsolationError(f"{len(data)} bytes is too much to hand bubblewrap through a pipe")
    read_end, write_end = os.pipe()
    pipes.append(read_end)
    try:
        os.write(write_end, data)
    finally:
        os.close(write_end)
    os.set_inheritable(read_end, True)
    return read_end


def _drop_to(box: Box) -> list[str]:
    assert box.uid is not None
    assert box.gid is not None
    return [
        which_setpriv(),
        f"--reuid={box.uid}",
        f"--regid={box.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
    ]


__all__ = [
    "BOX_HOME",
    "BOX_TMP",
    "DEFAULT_MAX_TASKS",
    "DEFAULT_TMP_MB",
    "Box",
    "Launch",
    "package_parent",
    "prepare",
    "probe",
    "python_path",
    "runtime_paths",
    "under_tmp",
]
