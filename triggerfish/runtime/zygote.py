"""The fork server: a base zygote, one app zygote per app version, and workers forked from those.

    python -m triggerfish.runtime.zygote FD

starts the base zygote, which imports the runtime once and then waits on
the Unix socket FD for `LoadApp` frames. For each it forks an app zygote,
which imports the user's app (and everything the app imports), applies the
project configuration and reports the functions (`Loaded`). Asked to
`Spawn`, the app zygote forks a worker that already has all of that in
memory, so a cold start costs a fork instead of an interpreter start and an
import.

Zygotes are single-threaded on purpose: fork() copies only the calling
thread, and a lock held by another thread at that moment would stay held in
the child forever. They wait with select() and learn about dead children
through a SIGCHLD wakeup fd, reap them and report each exit status
(`Exited`) to the parent, which turns signal numbers into crash messages.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from triggerfish import cores
from triggerfish.errors import AppLoadError, DeclarationError, ProtocolError
from triggerfish.isolation import mount_api
from triggerfish.loader import spec_to_dict
from triggerfish.model import FunctionSpec
from triggerfish.runtime import bundled, lambda_env, limits, memory, private_tmp, worker
from triggerfish.runtime.protocol import (
    _HEADER,
    MAX_FRAME,
    Exited,
    LoadApp,
    Loaded,
    LoadFailed,
    Message,
    Spawn,
    decode,
    send_frame,
)

#: Seconds of quiet after forking a worker before the app zygote prepares the next worker's cgroup.
PREPARE_AFTER = 0.01


def recv_with_fds(sock: socket.socket, max_fds: int) -> tuple[Message | None, list[int]]:
    """One frame from a blocking socket together with the file descriptors sent with it."""
    # The fds travel with the frame's first bytes, so they arrive with the header.
    header, fds, _flags, _addr = socket.recv_fds(sock, _HEADER, max_fds, socket.MSG_WAITALL)
    if not header:
        return None, fds
    if len(header) < _HEADER:
        header += sock.recv(_HEADER - len(header), socket.MSG_WAITALL)
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        raise StreamBroken(f"frame length {size} is over the limit of {MAX_FRAME} bytes")
    body = b""
    while len(body) < size:
        more = sock.recv(size - len(body), socket.MSG_WAITALL)
        if not more:
            raise StreamBroken("connection closed in the middle of a frame")
        body += more
    try:
        return decode(body), fds
    except ProtocolError:
        for fd in fds:
            os.close(fd)
        raise


class StreamBroken(ProtocolError):
    """The byte stream cannot be followed any more: the zygote stops rather than read garbage."""


class _Server:
    """What both zygotes share: a select loop over the parent's socket and a SIGCHLD wakeup pipe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        # A handler must be installed for the wakeup fd to see SIGCHLD (its default action is to ignore it).
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)

    def loop(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.sock.fileno(), self.wake_r], [], [], self.idle_delay())
            except InterruptedError:
                continue
            if not ready:
                self.idle_work()
                continue
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
                self.reap()
            if self.sock.fileno() in ready:
                try:
                    message, fds = recv_with_fds(self.sock, 3)
                except StreamBroken as exc:
                    sys.stderr.write(f"triggerfish zygote: stopping: {exc}\n")
                    return
                except ProtocolError as exc:
                    sys.stderr.write(f"triggerfish zygote: dropping a bad frame: {exc}\n")
                    continue
                except OSError:  # the parent is gone
                    return
                if message is None:
                    return
                self.handle(message, fds)

    def handle(self, message: Message, fds: list[int]) -> None:
        raise NotImplementedError

    def idle_delay(self) -> float | None:
        """Seconds of quiet after which `idle_work` runs; None when there is none to do."""
        return None

    def idle_work(self) -> None:
        return None

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            with contextlib.suppress(OSError):
                send_frame(self.sock, Exited(pid=pid, status=status))

    def in_child(self) -> None:
        """Drop the zygote's signal plumbing in a freshly forked child, and tie its life to the zygote's."""
        limits.die_with_parent()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self.wake_r)
        os.close(self.wake_w)

    def stop_children(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


class BaseZygote(_Server):
    """Forks one app zygote per `LoadApp`."""

    def handle(self, message: Message, fds: list[int]) -> None:
        if not isinstance(message, LoadApp) or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            sys.stderr.write(f"triggerfish zygote: unexpected {message.TYPE!r} frame\n")
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                self.in_child()
                self.sock.close()
                AppZygote(socket.socket(fileno=fds[0]), message).run()
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(fds[0])
        self.children.add(pid)


class AppZygote(_Server):
    """Holds one app version in memory and forks workers for its functions."""

    def __init__(self, sock: socket.socket, load: LoadApp) -> None:
        super().__init__(sock)
        self.load = load
        controller = None
        if load.memory_root is not None:
            # The hierarchy's mount is not needed here: the zygote only uses paths inside memory_root.
            controller = memory.MemoryController(load.memory_version, Path(load.memory_root))
        self.cgroups = limits.CgroupSpares(load.cgroup_root, load.max_processes, load.memory_root, controller)
        # The cgroups of the last worker forked, until the next ones are prepared (see idle_work).
        self._prepare_due = False
        self._previous_cgroup: str | None = None
        self._previous_memory: str | None = None
        self.specs: dict[str, FunctionSpec] = {}
        self.app_name = "app"
        #: The app's directory: LAMBDA_TASK_ROOT.
        self.task_root = ""

    def run(self) -> None:
        if not self.import_app():
            return
        # Objects imported so far never change again in most apps: keep the collector from touching
        # (and so copying) their pages in every forked worker.
        limits.libc()
        mount_api.load()
        worker.prepare_zygote(self.specs)
        gc.collect()
        gc.freeze()
        self.cgroups.prepare()
        # Only now: a spawn arriving earlier would wait for all of the above.
        functions = [spec_to_dict(spec) for spec in self.specs.values()]
        baseline = limits.address_space_bytes()
        loaded = Loaded(pid=os.getpid(), app_name=self.app_name, functions=functions, baseline_bytes=baseline)
        send_frame(self.sock, loaded)
        self.loop()
        self.stop_children()

    def import_app(self) -> bool:
        from triggerfish.config import load_config, resolve_functions
        from triggerfish.loader import load_app

        load = self.load
        try:
            _add_paths(load.extra_paths)
            # Read first: whether the runtime's boto3 is importable must be settled before the app's import.
            config = load_config(_app_dir(load.target))
            if not config.boto3:
                bundled.leave_out_sdk([*load.extra_paths, str(_app_dir(load.target))])
            # Lambda's variables that are the same for every function, as a module read at import expects
            # them; the platform's own (an AWS endpoint's region) win. A function's own zygote adds its `env`
            # and the variables naming it; in the app's shared zygote they come with each worker.
            self.task_root = str(_app_dir(load.target).resolve())
            for name, value in lambda_env.import_environment(self.task_root).items():
                os.environ.setdefault(name, value)
            os.environ.update(load.environment)
            app = load_app(load.target)
            self.specs = resolve_functions(app, config, stage=load.stage, overrides=load.overrides)
            if load.function is not None and load.function not in self.specs:
                raise DeclarationError(
                    f"imported with the environment of function {load.function!r}, the app no longer declares it"
                )
            self.app_name = app.name
            # Once here rather than in every worker: what a private /tmp keeps of the host's (private_tmp.py).
            private_tmp.remember([self.task_root, *sys.path])
        except AppLoadError as exc:
            send_frame(self.sock, LoadFailed(message=str(exc), details=exc.details))
            return False
        except (DeclarationError, ValueError, OSError) as exc:
            send_frame(self.sock, LoadFailed(message=f"{load.target}: {exc}", details=traceback.format_exc()))
            return False
        return True

    def handle(self, message: Message, fds: list[int]) -> None:
        if self._prepare_due:  # a burst of spawns: no quiet moment came, prepare now
            self.idle_work()
        spec = self.specs.get(message.function) if isinstance(message, Spawn) else None
        # The worker's socket and output pipe, and in a box the mount fd of its /tmp when the server made one.
        if not isinstance(message, Spawn) or spec is None or len(fds) not in (2, 3):
            for fd in fds:
                os.close(fd)
            sys.stderr.write(f"triggerfish zygote: cannot spawn for {message!r}\n")
            return
        sys.stdout.flush()
        sys.stderr.flush()
        cgroup = self.cgroups.take()
        memory_cgroup = self.cgroups.take_memory(message.memory_limit) if message.memory_limit > 0 else None
        try:
            pid = os.fork()
        except OSError as exc:
            sys.stderr.write(f"triggerfish zygote: fork failed: {exc}\n")
            pid = -1
        if pid == 0:
            self.in_child()
            self.sock.close()
            worker.become_worker(
                socket.socket(fileno=fds[0]),
                fds[1],
                message,
                spec,
                app_name=self.app_name,
                version=self.load.version,
                cgroup=cgroup,
                memory_cgroup=memory_cgroup,
                task_root=self.task_root,
                tmp_mount=fds[2] if len(fds) == 3 else None,
            )
        # The parent sees the worker's socket close when the fork failed: no answer needed here.
        for fd in fds:
            os.close(fd)
        if pid > 0:
            self.children.add(pid)
        self._previous_cgroup = cgroup if pid > 0 else None
        self._previous_memory = memory_cgroup if pid > 0 else None
        self._prepare_due = True

    def idle_delay(self) -> float | None:
        return PREPARE_AFTER if self._prepare_due else None

    def idle_work(self) -> None:
        # Moving into a cgroup costs CPU and an RCU grace period; done once the new worker has had
        # PREPARE_AFTER seconds to start, it does not compete with the cold start it follows.
        self._prepare_due = False
        self.cgroups.prepare(previous=self._previous_cgroup, previous_memory=self._previous_memory)
        self._previous_cgroup = None
        self._previous_memory = None


def _add_paths(paths: list[str]) -> None:
    """Put `paths` first on sys.path, and run their .pth files as site-packages would."""
    import site

    sys.path[:0] = [path for path in paths if path not in sys.path]
    for path in paths:
        # Already on sys.path, so addsitedir only reads the directory's .pth files.
        site.addsitedir(path)


def _app_dir(target: str) -> Path:
    location, colon, attr = target.rpartition(":")
    path = Path(location if colon and attr.isidentifier() else target)
    return path.parent if path.suffix == ".py" else Path.cwd()


_USAGE = "usage: python -m triggerfish.runtime.zygote FD [--max-tasks N [--cgroup DIR]] [--cpus 0,1,...]\n"


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the base zygote: serve `LoadApp` frames on the socket whose fd is the argument.

    In a box, `--max-tasks N` caps the processes of the box and `--cgroup DIR` is the runner's pids
    cgroup for it to join (see `limits.enter_box`), both before anything is forked. `--cpus 0,1` gives this zygote
    (and every worker it forks) the cores the platform was allowed before it kept its own threads on one
    (`triggerfish.cores`).
    """
    args = sys.argv[1:] if argv is None else argv
    fd, max_tasks, cgroup, cpus = _parse(args)
    if cpus is not None:
        cores.widen(cpus)
    # A platform killed outright (SIGKILL, OOM) must not leave its zygotes and their workers
    # running handlers nobody waits for; the kernel kills this zygote, and each generation below
    # it dies with its parent the same way.
    limits.die_with_parent()
    if max_tasks is not None:
        limits.enter_box(max_tasks, cgroup)
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    # Preload what every app zygote and worker needs, once, before any fork.
    import triggerfish.config
    import triggerfish.loader  # noqa: F401

    server = BaseZygote(sock)
    server.loop()
    server.stop_children()
    os._exit(0)


def _parse(args: list[str]) -> tuple[int, int | None, str | None, str | None]:
    options = dict(zip(args[1::2], args[2::2], strict=False))
    if (
        not args
        or not args[0].isdigit()
        or len(args) % 2 != 1
        or not set(options) <= {"--max-tasks", "--cgroup", "--cpus"}
        or ("--max-tasks" in options and not options["--max-tasks"].isdigit())
        or ("--cgroup" in options and "--max-tasks" not in options)
        or ("--cpus" in options and not all(cpu.isdigit() for cpu in options["--cpus"].split(",")))
    ):
        sys.stderr.write(_USAGE)
        raise SystemExit(2)
    tasks = options.get("--max-tasks")
    return int(args[0]), None if tasks is None else int(tasks), options.get("--cgroup"), options.get("--cpus")


if __name__ == "__main__":
    main()
