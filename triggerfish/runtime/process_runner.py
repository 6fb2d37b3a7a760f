"""ProcessRunner: the Runner that runs every function in its own worker processes, forked from zygotes.

    runner = await ProcessRunner.start("app.py", work_dir=Path(".triggerfish"))
    outcome = await runner.run(InvokeRequest(request_id="r1", function="hello", event={}))
    await runner.close()

Starting it spawns the base zygote (one interpreter start), which forks the
app zygote that imports the app; the function descriptions come back from
there, so the parent never imports user code. Invocations then go to one
WorkerPool per function.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from triggerfish import cores
from triggerfish.errors import FunctionNotFoundError
from triggerfish.isolation import mount_api
from triggerfish.isolation.box import BOX_HOME, Box, prepare, python_path, under_tmp
from triggerfish.isolation.pids import BoxPids, PidView, SamePids, kill_box
from triggerfish.loader import spec_from_dict
from triggerfish.model import FunctionSettings, FunctionSpec
from triggerfish.runtime import lambda_env, memory
from triggerfish.runtime.channel import ZygoteChannel
from triggerfish.runtime.limits import DEFAULT_MAX_PROCESSES, CgroupTree, describe, process_limit_method
from triggerfish.runtime.pool import QUEUE_DEPTH, PoolConfig, WorkerPool
from triggerfish.runtime.protocol import LoadApp
from triggerfish.runtime.types import (
    DEFAULT_OUTPUT_LIMIT,
    InvokeOutcome,
    InvokeRequest,
    PlatformHandler,
    SecretsSource,
)
from triggerfish.runtime.worker import INHERITED_ENVIRONMENT as _INHERITED
from triggerfish.runtime.worker import PLATFORM_ENVIRONMENT
from triggerfish.runtime.zygote_link import AppZygoteLink

log = logging.getLogger("triggerfish.runtime")


class ProcessRunner:
    """Runs a loaded app's functions in worker processes; implements the Runner protocol.

    Build one with `await ProcessRunner.start(...)`. Every handler failure,
    timeout, crash and memory error comes back in the InvokeOutcome;
    `run` raises only ThrottledError (no slot within `wait`) and
    FunctionNotFoundError.
    """

    def __init__(
        self, *, target: str, work_dir: Path, version: str, idle_timeout: float, box: Box | None = None
    ) -> None:
        self.target = target
        #: The box the app runs in (None: none, as the server's user, seeing what the server sees).
        self.box = box
        # In a box, the functions' working directories are inside it, in its size-limited home (not under /tmp,
        # which each worker covers with its own).
        self.work_dir = Path(BOX_HOME) if box is not None else work_dir
        self.version = version
        self.idle_timeout = idle_timeout
        self.app_name = "app"
        self.specs: dict[str, FunctionSpec] = {}
        #: The functions as the app zygote described them (settings, triggers, a fingerprint of the code).
        self.descriptions: dict[str, dict[str, Any]] = {}
        self._pools: dict[str, WorkerPool] = {}
        self._base: subprocess.Popen[bytes] | None = None
        self._base_channel: ZygoteChannel | None = None
        self._app: AppZygoteLink | None = None
        #: The zygotes of functions that declare `env`, each importing the app with it (see _function_zygotes).
        self._function_links: dict[str, AppZygoteLink] = {}
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._cgroups = CgroupTree(name)
        self._memory = memory.MemoryTree(name, memory.detect())
        if box is not None:
            self._cgroups.delegate(box.uid, box.gid, box.max_tasks)
            self._memory.delegate(box.uid, box.gid)
        controller = self._memory.controller
        memory_method = controller.describe() if controller is not None and self._memory.enabled else "RLIMIT_AS"
        #: How each limit is enforced on this machine (see triggerfish.runtime.limits).
        self.limits = describe(process_limit_method(self._cgroups.enabled, boxed=box is not None), memory_method)
        #: In a box, what makes each worker's /tmp: the server, with the mount API (see mount_api), where it can.
        self._tmp_trees: mount_api.TmpTrees | None = None
        self._pids: PidView = SamePids()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._environment: dict[str, str] = {}

    @classmethod
    async def start(
        cls,
        target: str,
        *,
        work_dir: Path,
        version: str = "1",
        stage: str | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        platform: PlatformHandler | None = None,
        idle_timeout: float = 300.0,
        max_processes: int = DEFAULT_MAX_PROCESSES,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        extra_paths: list[str] | None = None,
        box: Box | None = None,
        secrets: SecretsSource | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> ProcessRunner:
        """Start the zygotes for the app at `target` ("app.py", "app.py:app", "pkg.module[:app]").

        `work_dir` holds each function's working directory (`functions/<name>/`).
        `platform` answers the handlers' context.publish / send / kv calls.
        Workers idle longer than `idle_timeout` seconds stop (down to each
        function's min_warm). `max_processes` caps the processes and threads
        of one worker. `extra_paths` go first on the app's sys.path before it
        is imported (where its requirements were installed). `box` runs the
        zygotes and workers in a box (see triggerfish.isolation.box): they see
        the app's directory (`box.read_only`, else the target's directory) and
        `extra_paths` read-only, work in the box's /tmp, and `work_dir` is not
        used. `secrets` reads the values of a function's declared secrets
        for each worker it starts (they go to the worker over the zygote's
        socket, into its environment and `context.secrets`). `environment`
        sets the variables named in worker.PLATFORM_ENVIRONMENT (the AWS
        endpoint and the app's credentials) for the app's import and every
        worker; any other name is a ValueError. Raises
        AppLoadError (with the traceback in `details`) when the app cannot be
        imported or its configuration is wrong, and IsolationError when the
        box cannot be made.
        """
        unknown = sorted(set(environment or {}) - set(PLATFORM_ENVIRONMENT))
        if unknown:
            raise ValueError(f"environment takes only {', '.join(PLATFORM_ENVIRONMENT)}, not {unknown[0]}")
        runner = cls(
            target=str(target), work_dir=_absolute(work_dir), version=version, idle_timeout=idle_timeout, box=box
        )
        runner._environment = dict(environment or {})
        try:
            await runner._start(stage, overrides, platform, max_processes, output_limit, extra_paths or [], secrets)
        except BaseException:
            await runner.close()
            raise
        return runner

    async def _start(
        self,
        stage: str | None,
        overrides: Mapping[str, Mapping[str, Any]] | None,
        platform: PlatformHandler | None,
        max_processes: int,
        output_limit: int,
        extra_paths: list[str],
        secrets: SecretsSource | None,
    ) -> None:
        if self.box is not None:
            self.target = _absolute_target(self.target)
            self._tmp_trees = _tmp_trees(self.box, [*_boxed_code(self.box, self.target), *extra_paths])
            if self._tmp_trees is None:
                self.limits = replace(self.limits, shared_tmp=True)
            self._base, ours = _spawn_boxed_zygote(
                self.box, self.target, extra_paths, self._cgroups.root, self._memory.root, self._environment
            )
            self._pids = BoxPids(self._base.pid)
        else:
            self._base, ours = _spawn_base_zygote(self.work_dir, self._environment)
        self._base_channel = ZygoteChannel(ours)
        load = LoadApp(
            target=self.target,
            version=self.version,
            work_dir=str(self.work_dir),
            stage=stage,
            overrides={k: dict(v) for k, v in overrides.items()} if overrides else None,
            cgroup_root=self._cgroups.root,
            max_processes=max_processes,
            extra_paths=[str(path) for path in extra_paths],
            memory_root=self._memory.root,
            memory_version=self._memory.controller.version if self._memory.controller is not None else 1,
        )
        self._app = AppZygoteLink(self._base_channel, load, self._pids)
        answer = await self._app.start()
        self.app_name = answer.app_name
        self.specs = {d["name"]: spec_from_dict(d) for d in answer.functions}
        self.descriptions = {d["name"]: dict(d) for d in answer.functions}
        config = PoolConfig(
            zygote=self._app,
            work_dir=self.work_dir,
            version=self.version,
            baseline_bytes=answer.baseline_bytes,
            max_processes=max_processes,
            cgroups=self._cgroups,
            platform=platform,
            output_limit=output_limit,
            limits=self.limits,
            tmp_mounts=None if self._tmp_trees is None else self._tmp_trees.take,
            pids=self._pids,
            secrets=secrets,
            app_name=self.app_name,
            memory=self._memory,
        )
        configs = await self._function_zygotes(load, config)
        self._pools = {name: WorkerPool(spec, configs.get(name, config)) for name, spec in self.specs.items()}
        for pool in self._pools.values():
            pool.keep_warm()
        self._reaper = asyncio.ensure_future(self._reap_idle())

    async def _function_zygotes(self, load: LoadApp, shared: PoolConfig) -> dict[str, PoolConfig]:
        """Start a zygote of its own for each function that declares `env`, whose import sees that `env` and
        Lambda's variables naming the function, as a module reading its configuration at import expects. The
        other functions share the app's zygote. Raises AppLoadError when an import with a function's
        environment fails (the version is then refused, as when the app does not import at all)."""
        assert self._base_channel is not None
        links: dict[str, AppZygoteLink] = {}
        for name, spec in self.specs.items():
            if spec.settings.env:
                environment = lambda_env.function_import_environment(
                    self.app_name, name, self.version, spec.settings.memory_mb, spec.settings.env
                )
                own = replace(load, function=name, environment=environment)
                links[name] = self._function_links[name] = AppZygoteLink(self._base_channel, own, self._pids)
        loaded = await asyncio.gather(*(link.start() for link in links.values()))
        return {
            name: replace(shared, zygote=link, baseline_bytes=answer.baseline_bytes)
            for (name, link), answer in zip(links.items(), loaded, strict=True)
        }

    # --- the Runner protocol --------------------------------------------------------------

    async def run(self, request: InvokeRequest, *, wait: float = 1.0) -> InvokeOutcome:
        """Run one invocation in a worker of its function.

        Raises ThrottledError when the function is at its concurrency limit
        for `wait` seconds and FunctionNotFoundError for an unknown function
        or version; everything else is reported in the outcome.
        """
        pool = self._pools.get(request.function)
        if pool is None or (request.version is not None and request.version != self.version):
            raise FunctionNotFoundError(self._not_found(request))
        return await pool.run(request, wait)

    #: Requests `run_behind` queues on a worker behind the one it runs, at most.
    queue_depth = QUEUE_DEPTH

    def run_behind(self, request: InvokeRequest, *, wait: float = 1.0) -> Awaitable[InvokeOutcome]:
        """`run`, for the dispatcher's prefetch: when every slot is taken, queued behind an invocation running now
        on its worker (which starts it as soon as that one ends) rather than waiting for a slot.

        The pool's coroutine itself, not one of its own around it: each await level is a frame every resume of the
        invocation passes through. FunctionNotFoundError is raised at the call."""
        pool = self._pools.get(request.function)
        if pool is None or (request.version is not None and request.version != self.version):
            raise FunctionNotFoundError(self._not_found(request))
        return pool.run(request, wait, behind=True)

    def settings(self, function: str) -> FunctionSettings:
        """The resolved settings of `function` (decorator < config file < stage < overrides)."""
        spec = self.specs.get(function)
        if spec is None:
            raise FunctionNotFoundError(f"no function named {function!r}; the app declares: {self._known()}")
        return spec.settings

    def functions(self) -> list[str]:
        """The app's function names, in declaration order."""
        return list(self.specs)

    def stats(self, function: str) -> dict[str, Any]:
        """Counters and limits of one function's pool: workers, idle, busy, invocations, cold_starts, ..."""
        pool = self._pools.get(function)
        if pool is None:
            raise FunctionNotFoundError(f"no function named {function!r}; the app declares: {self._known()}")
        return pool.stats()

    def stop_idle(self, function: str | None = None) -> int:
        """Stop idle workers now (of one function, or all), ignoring min_warm; the number stopped.

        The next invocation starts cold. Useful to free memory, and in tests and benchmarks.
        """
        pools = [self._pools[function]] if function is not None else list(self._pools.values())
        return sum(pool.stop_idle(-1.0, keep=0) for pool in pools)

    def renew_secrets(self) -> None:
        """The app's secrets changed: the workers of functions that declare secrets stop (idle ones now, busy ones
        when they finish), so every invocation from now on runs in a worker started with the new values."""
        for pool in self._pools.values():
            if pool.spec.settings.secrets:
                pool.renew()

    async def close(self) -> None:
        """Stop every worker and both zygotes, and remove the runner's cgroups. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for pool in self._pools.values():
            await pool.close()
        if self._app is not None:
            self._app.close()
        for link in self._function_links.values():
            link.close()
        if self._base_channel is not None:
            self._base_channel.close()
        if self._base is not None:
            try:
                await asyncio.to_thread(self._base.wait, 5.0)
            except subprocess.TimeoutExpired:
                if self.box is not None:
                    kill_box(self._base.pid)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        await asyncio.to_thread(self._base.wait, 5.0)
                self._base.kill()
                await asyncio.to_thread(self._base.wait)
        if self._tmp_trees is not None:
            self._tmp_trees.close()
        # Give the zygotes a moment to kill their children, then clear what is left.
        self._cgroups.close()
        self._memory.close()

    async def __aenter__(self) -> ProcessRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- internals ------------------------------------------------------------------------

    async def _reap_idle(self) -> None:
        period = max(0.05, min(self.idle_timeout / 4, 5.0))
        while True:
            await asyncio.sleep(period)
            for pool in self._pools.values():
                pool.stop_idle(self.idle_timeout)
                pool.keep_warm()

    def _known(self) -> str:
        return ", ".join(self.specs) or "none"

    def _not_found(self, request: InvokeRequest) -> str:
        if request.function in self.specs:
            return (
                f"version {request.version!r} of {request.function!r} is not loaded; this runner runs version "
                f"{self.version!r}"
            )
        return f"no function named {request.function!r}; the app declares: {self._known()}"


def _absolute(path: Path | str) -> Path:
    return Path(path).resolve()


def zygote_environment(python_path: list[str]) -> dict[str, str]:
    """The base zygote's environment, which the app's import sees: never the server's own.

    A database password or cloud credentials in the server's environment must not reach an app's
    code, so only the variables a worker also gets from it (PATH, LANG, TZ) pass, with PYTHONPATH.
    Output is unbuffered, so a handler's prints and log lines reach its output in the order written,
    and a crash loses none of them. No bytecode is written: a deployed version's files are read-only
    and checked against their hash when they load again, so an import must not add `__pycache__` to
    them (an app's modules compile once per zygote, which imports them once).
    """
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _spawn_base_zygote(work_dir: Path, environment: Mapping[str, str]) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start the base zygote (the one interpreter start of a runner); our end of its socket."""
    work_dir.mkdir(parents=True, exist_ok=True)
    ours, theirs = socket.socketpair()
    # The zygote imports the app the way this process would: same interpreter, same sys.path.
    env = {**zygote_environment([p for p in sys.path if p]), **environment}
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "triggerfish.runtime.zygote", str(theirs.fileno()), *cores.zygote_arguments()],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


def _spawn_boxed_zygote(
    box: Box,
    target: str,
    extra_paths: list[str],
    cgroup: str | None,
    memory_root: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start the base zygote in `box`: the app's directory and `extra_paths` read-only, the runner's
    pids cgroup (delegated to the box) writable; our end of its socket."""
    code = _boxed_code(box, target)
    path = python_path()
    if not target.partition(":")[0].endswith(".py"):  # a module: found on the path, as from the project's directory
        path.append(code[0])
    env = {**zygote_environment(path), "HOME": BOX_HOME, "PYTHONDONTWRITEBYTECODE": "1", **(environment or {})}
    ours, theirs = socket.socketpair()
    command = [sys.executable, "-s", "-m", "triggerfish.runtime.zygote", str(theirs.fileno())]
    command += cores.zygote_arguments()
    command += ["--max-tasks", str(box.max_tasks)]
    if cgroup is not None:
        command += ["--cgroup", cgroup]
    try:
        launch = prepare(
            box,
            command,
            read_only=[*code, *extra_paths],
            writable=[path for path in (cgroup, memory_root) if path is not None],
            keep_fds=[theirs.fileno()],
            env=env,
            chdir=code[0],
        )
        try:
            process = subprocess.Popen(launch.argv, pass_fds=launch.pass_fds, env=launch.env, **launch.popen)
        finally:
            launch.started()
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


def _boxed_code(box: Box, target: str) -> list[str]:
    """The directories of the app's code a box binds read-only: the box's own list, else the target's directory."""
    return list(box.read_only) or [str(_app_dir(target))]


def _tmp_trees(box: Box, read_only: list[str]) -> mount_api.TmpTrees | None:
    """What makes a boxed worker's /tmp of so many MiB: a tmpfs owned by the box's user, holding what of the box
    lies under /tmp (`read_only` as the box binds it). None where this server cannot make one (not root, or a
    kernel without the mount API, or before 6.15 when something must be bound into it): workers then share the
    box's /tmp."""
    if not box.worker_tmp:
        return None
    binds, hide = under_tmp(box, read_only)
    plan = mount_api.TmpPlan(size_mb=1, uid=box.uid, gid=box.gid, binds=tuple(binds), hide=tuple(hide))
    why = mount_api.unavailable(plan)
    if why is not None:
        log.warning("the workers of a box share its /tmp: this server cannot make one per worker (%s)", why)
        return None
    return mount_api.TmpTrees(plan)


def _app_dir(target: str) -> Path:
    """The directory an app's code is in: the file's, or (for a module) the current directory."""
    location = target.partition(":")[0]
    return Path(location).resolve().parent if location.endswith(".py") else Path.cwd()


def _absolute_target(target: str) -> str:
    """A file target made absolute (a boxed zygote starts elsewhere); a module target as it is."""
    location, colon, attr = target.partition(":")
    if not location.endswith(".py"):
        return target
    return f"{Path(location).resolve()}{colon}{attr}"
