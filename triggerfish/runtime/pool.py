"""A pool of workers for one function: concurrency, warm workers, scale to zero, replacement after faults.

At most `concurrency` invocations run at once, each on its own worker; a
caller that finds every slot taken waits up to `wait` seconds and then gets
ThrottledError. An idle worker is reused (warm start); otherwise one is
forked from the app zygote (cold start, timed as `init_duration_ms`).
Workers idle longer than the idle timeout stop, down to `min_warm`. A worker
that timed out, crashed or ran out of memory is replaced in the background
so the next invocation starts warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triggerfish.errors import ProtocolError, SecretNotSetError, SecretsError, ThrottledError, WorkerStartError
from triggerfish.isolation.pids import PidView, SamePids
from triggerfish.model import FunctionSpec
from triggerfish.names import SECRET_NOT_SET_ERROR, SECRET_UNREADABLE_ERROR, START_ERROR
from triggerfish.runtime.channel import WorkerConnection
from triggerfish.runtime.limits import CgroupTree, Limits, memory_limit_bytes
from triggerfish.runtime.memory import MemoryTree
from triggerfish.runtime.protocol import Ready, Spawn
from triggerfish.runtime.slots import Slots
from triggerfish.runtime.types import InvokeOutcome, InvokeRequest, PlatformHandler, SecretsSource
from triggerfish.runtime.worker_process import NotStarted, WorkerProcess
from triggerfish.runtime.zygote_link import AppZygoteLink

#: Seconds a new worker has to report ready before it counts as failed.
START_TIMEOUT = 10.0
#: Requests `run(behind=True)` queues on a worker behind the one it runs, at most: enough that a worker
#: finishing short invocations faster than the dispatcher hands them out still finds the next one waiting.
QUEUE_DEPTH = 3


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """What every pool of one runner shares."""

    zygote: AppZygoteLink
    work_dir: Path
    version: str
    baseline_bytes: int
    max_processes: int
    cgroups: CgroupTree
    platform: PlatformHandler | None
    output_limit: int
    limits: Limits
    #: How the parent names the workers' pids (in a box they differ from the pids the workers see).
    pids: PidView = field(default_factory=SamePids)
    #: Reads the values of a function's declared secrets for each new worker (None: no secrets here), and the
    #: app's name as its code declares it.
    secrets: SecretsSource | None = None
    app_name: str = "app"
    #: The runner's memory cgroups (None, or not enabled: workers are limited by RLIMIT_AS).
    memory: MemoryTree | None = None
    #: In a box: makes a detached tmpfs of so many MiB for a new worker's /tmp and returns its mount fd
    #: (triggerfish.isolation.mount_api). None: workers make their own /tmp, or keep the box's.
    tmp_mounts: Callable[[int], int] | None = None


class SecretStartError(WorkerStartError):
    """A worker was not started because a secret its function declares could not be read; `error_type` says why."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class WorkerPool:
    """The workers of one function."""

    def __init__(self, spec: FunctionSpec, config: PoolConfig) -> None:
        self.spec = spec
        self.name = spec.name
        self.config = config
        settings = spec.settings
        self.timeout = settings.timeout
        self.min_warm = settings.min_warm
        self._slots = Slots(settings.concurrency)
        self._idle: list[WorkerProcess] = []
        #: Workers running an invocation (a request may be queued behind it: `run(behind=True)`).
        self._busy: set[WorkerProcess] = set()
        #: Callers of `run()` waiting for a slot: while there are any, nothing more queues behind (it would
        #: keep the slots handed on from one queued invocation to the next).
        self._callers_waiting = 0
        #: Requests of `run(behind=True)` waiting for a worker to queue behind or a free slot.
        self._room_waiters: list[asyncio.Future[None]] = []
        self._workers: set[WorkerProcess] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        # Bumped when the app's secrets change; workers started with older values are in `_stale` and stop
        # instead of going back to idle.
        self._generation = 0
        self._stale: set[WorkerProcess] = set()
        # The worker creates it (in a box it is inside the box, where only the worker can write).
        self.cwd = config.work_dir / "functions" / _safe(spec.name)
        self.counts = {"invocations": 0, "cold_starts": 0, "timeouts": 0, "crashes": 0, "start_failures": 0}

    # --- invoking -------------------------------------------------------------------------

    async def run(self, request: InvokeRequest, wait: float, *, behind: bool = False) -> InvokeOutcome:
        """One invocation on one worker; ThrottledError when no slot frees up within `wait` seconds.

        With `behind` (the async path's prefetch), when every slot is taken the request is queued behind
        an invocation running now, on its worker, instead of waiting for a slot: the worker starts it the
        moment the other one ends, which hands it its slot (so `concurrency` still bounds what runs at once).
        """
        slots = self._slots
        worker: WorkerProcess | None = None
        if behind and slots.locked():
            # The common case first, without a coroutine: a worker with room behind its running invocation.
            leader = None if self._callers_waiting else self._queueable()
            if leader is None:
                leader = await self._room_behind(wait)
            if leader is not None:
                outcome, owned = await self._run_behind(leader, request)
                if outcome is not None:
                    return outcome
                # Its worker went first; it holds the slot the invocation before it handed on, or needs one.
                if not owned and not await slots.take(wait):
                    raise ThrottledError(self.name, wait)
        elif slots.locked():
            self._callers_waiting += 1
            try:
                if not await slots.take(wait):
                    raise ThrottledError(self.name, wait)
            finally:
                self._callers_waiting -= 1
        else:
            await slots.take(0)  # free: returns without yielding
        try:
            self.counts["invocations"] += 1
            worker = self._take_idle()
            cold = worker is None
            if worker is None:
                self.counts["cold_starts"] += 1
                try:
                    # Not waiting for Ready: the request follows the spawn and the worker reads it once set up.
                    worker = await self.spawn(wait_ready=False)
                except WorkerStartError as exc:
                    self.counts["start_failures"] += 1
                    return _start_failed(request, exc, self.config.version)
            self._busy.add(worker)
            self._room_changed()  # a request waiting to queue may queue behind this one
            try:
                outcome = await worker.invoke(
                    request,
                    time_limit=self.timeout,
                    version=self.config.version,
                    platform=self.config.platform,
                    cold_start=cold,
                )
            except BaseException:
                # The caller was cancelled mid-invocation: the worker is busy with a request nobody
                # waits for and its answer would confuse the next one, so it goes.
                worker.kill()
                self._workers.discard(worker)
                self._busy.discard(worker)
                raise
            self._after(worker)
            return outcome
        finally:
            self._release(worker)

    def _after(self, worker: WorkerProcess) -> None:
        """An invocation on `worker` ended: it goes back to idle, unless a request queued behind runs on it now."""
        if worker.queued and worker.alive:
            return  # the request queued behind runs on it now, and the last one returns it
        self._busy.discard(worker)
        if not worker.alive:
            self._lost(worker)
        elif worker in self._stale:
            self._retire(worker)
        else:
            self._idle.append(worker)

    def _release(self, worker: WorkerProcess | None) -> None:
        """Free the slot of an invocation that ended on `worker`, or hand it to the request queued behind it."""
        if worker is not None and worker.queued:
            worker.slot_handed = True
        else:
            self._slots.release()
        # Either way a request waiting to queue may go now: behind the follower once it runs, or in the slot.
        self._room_changed()

    async def _room_behind(self, wait: float) -> WorkerProcess | None:
        """For `run(behind=True)` with every slot taken: a worker to queue behind, or None once a slot is taken;
        ThrottledError when neither comes within `wait` seconds.

        Not a wait on the slots alone: a request waiting there would take the next worker that frees and
        leave it idle for a round trip, and every request after it would find the same gap.
        """
        slots = self._slots
        # The loop is asked for only when this must wait: on Python 3.11 asking is a getpid system call, and on
        # the async path nearly every call returns a worker to queue behind (or a free slot) without waiting.
        loop: asyncio.AbstractEventLoop | None = None
        deadline = 0.0
        while True:
            if not slots.locked():  # free, and no caller waits for it before us
                await slots.take(0)  # free: taken without yielding
                return None
            # A caller waiting for a slot (a sync call) goes first: queueing more would keep every slot handed from
            # one queued invocation to the next and starve it.
            worker = None if self._callers_waiting else self._queueable()
            if worker is not None:
                return worker
            if loop is None:  # the first pass, which awaited nothing: the deadline counts from the call
                loop = asyncio.get_running_loop()
                deadline = loop.time() + wait
            if self._callers_waiting:  # wait behind it
                if not await slots.take(max(0.0, deadline - loop.time())):
                    raise ThrottledError(self.name, wait)
                return None
            waiter = loop.create_future()
            self._room_waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise ThrottledError(self.name, wait) from None
            finally:
                if waiter in self._room_waiters:
                    self._room_waiters.remove(waiter)

    def _room_changed(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _queueable(self) -> WorkerProcess | None:
        """A worker running an invocation with nothing queued behind it yet."""
        found, fewest = None, QUEUE_DEPTH
        for worker in self._busy:
            # The least queued, the first of equals (not on a worker started with old secrets). A worker queued no
            # less than the best so far is passed over before its other checks: a scan of every busy worker runs
            # for each request queued behind one, and most of them are queued alike.
            queued = worker.queued
            if queued < fewest and worker.can_queue(QUEUE_DEPTH) and worker not in self._stale:
                if not queued:
                    return worker
                found, fewest = worker, queued
        return found

    async def _run_behind(self, worker: WorkerProcess, request: InvokeRequest) -> tuple[InvokeOutcome | None, bool]:
        """`request` queued behind the invocations sent to `worker`: its outcome, or None when it did not get its
        turn there; and whether it holds a slot (the one the invocation before it handed on)."""
        owned = turned = False

        def took_turn() -> None:
            nonlocal owned, turned
            turned = True
            owned, worker.slot_handed = worker.slot_handed, False

        try:
            outcome = await worker.invoke_behind(
                request,
                time_limit=self.timeout,
                version=self.config.version,
                platform=self.config.platform,
                on_turn=took_turn,
            )
        except NotStarted:
            self._busy.discard(worker)
            return None, owned
        except BaseException:
            # Cancelled: the worker went (invoke_behind killed it); a slot it was handed is free again.
            self._busy.discard(worker)
            self._workers.discard(worker)
            if owned:
                self._slots.release()
                self._room_changed()
            raise
        if not turned:
            return outcome, False  # refused before it was queued (an event that cannot be sent): no turn, no slot
        self.counts["invocations"] += 1
        self._after(worker)
        if owned:
            self._release(worker)
        return outcome, owned

    def _take_idle(self) -> WorkerProcess | None:
        idle = self._idle
        while idle:
            worker = idle.pop()  # the most recently used: the likeliest to be hot in the caches
            if worker in self._stale:  # started with secrets that have changed since
                self._retire(worker)
            elif worker.alive:
                return worker
            self._workers.discard(worker)
        return None

    def renew(self) -> int:
        """The function's secrets changed: stop the idle workers now and the busy ones when they finish (they were
        started with the old values), then start `min_warm` again; how many were stopped now."""
        self._generation += 1
        self._stale.update(self._workers)
        stopped = 0
        while self._idle:
            self._retire(self._idle.pop())
            stopped += 1
        self.keep_warm()
        return stopped

    def _retire(self, worker: WorkerProcess) -> None:
        self._stale.discard(worker)
        self._workers.discard(worker)
        if worker.alive:
            worker.stop()

    def _lost(self, worker: WorkerProcess) -> None:
        self._workers.discard(worker)
        self._stale.discard(worker)
        if worker.timed_out:
            self.counts["timeouts"] += 1
        else:  # crashed, or retired after running out of memory
            self.counts["crashes"] += 1
        if not self._closed:
            self._in_background(self._replace())

    async def _replace(self) -> None:
        # A fresh worker takes the dead one's place, so the next invocation starts warm.
        if len(self._workers) < max(self.min_warm, 1):
            with contextlib.suppress(WorkerStartError):
                self._idle.append(await self.spawn())

    # --- spawning -------------------------------------------------------------------------

    async def spawn(self, *, wait_ready: bool = True) -> WorkerProcess:
        """Fork a worker from the app zygote; with `wait_ready`, wait until it reports ready."""
        config = self.config
        generation = self._generation
        secrets = await self._secret_values()
        ours, theirs = socket.socketpair()
        read_fd, write_fd = os.pipe()
        spawn = Spawn(
            function=self.name,
            cwd=str(self.cwd),
            memory_bytes=memory_limit_bytes(self.spec.settings.memory_mb, config.baseline_bytes),
            max_processes=config.max_processes,
            secrets=secrets,
            memory_limit=self.spec.settings.memory_mb * 1024 * 1024,
        )
        fds = [theirs.fileno(), write_fd]
        try:
            if config.tmp_mounts is not None:
                try:
                    fds.append(config.tmp_mounts(self.spec.settings.ephemeral_storage))
                except OSError as exc:
                    raise WorkerStartError(f"cannot make the /tmp of a worker for {self.name!r}: {exc}") from exc
            zygote, zygote_pid = await config.zygote.current()
            zygote.send(spawn, fds)
        except WorkerStartError:
            ours.close()
            os.close(read_fd)
            raise
        except Exception as exc:
            ours.close()
            os.close(read_fd)
            raise WorkerStartError(f"cannot ask the zygote for a worker for {self.name!r}: {exc}") from exc
        finally:
            theirs.close()
            for fd in fds[1:]:  # the output pipe's write end, and the tmpfs: the worker holds them now
                os.close(fd)
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_unix_connection(WorkerConnection, sock=ours)
        worker = WorkerProcess(
            function=self.name,
            connection=connection,
            output_fd=read_fd,
            watch=zygote.watch,
            output_limit=config.output_limit,
            zygote_pid=zygote_pid,
            cgroup_root=config.cgroups.root,
            pids=config.pids,
            memory_tree=config.memory,
        )
        self._workers.add(worker)
        if generation != self._generation:  # the secrets changed while it started: its values are old
            self._stale.add(worker)
        if wait_ready:
            await self._wait_ready(worker)
        if self._closed:
            worker.kill()
        return worker

    async def _secret_values(self) -> dict[str, str]:
        names = self.spec.settings.secrets
        if not names:
            return {}
        source = self.config.secrets
        if source is None:
            raise SecretStartError(
                f"function {self.name!r} declares secrets ({', '.join(names)}), and this platform has none to give",
                SECRET_NOT_SET_ERROR,
            )
        try:
            return dict(await source(self.config.app_name, names))
        except SecretNotSetError as exc:
            raise SecretStartError(f"function {self.name!r}: {exc}", SECRET_NOT_SET_ERROR) from None
        except SecretsError as exc:
            raise SecretStartError(f"function {self.name!r}: {exc}", SECRET_UNREADABLE_ERROR) from None

    async def _wait_ready(self, worker: WorkerProcess) -> None:
        try:
            async with asyncio.timeout(START_TIMEOUT):  # not wait_for: on 3.11 it can lose a cancellation
                ready = await worker.connection.recv()
        except (TimeoutError, Exception) as exc:
            ready = None
            reason = f"{type(exc).__name__}: {exc}"
        else:
            reason = "it exited before it was ready"
        if isinstance(ready, Ready):
            try:
                worker.on_ready(ready)
                return
            except ProtocolError as exc:
                reason = str(exc)
        worker.kill()
        worker.drain_all()
        self._workers.discard(worker)
        raise WorkerStartError(f"the worker for {self.name!r} did not start: {reason}\n{worker.output}".rstrip())

    # --- warm workers and scale to zero ---------------------------------------------------

    def keep_warm(self) -> None:
        """Start workers in the background until `min_warm` are alive."""
        missing = self.min_warm - len(self._workers)
        for _ in range(max(0, missing)):
            self._in_background(self._add_idle())

    async def _add_idle(self) -> None:
        with contextlib.suppress(WorkerStartError):
            self._idle.append(await self.spawn())

    def stop_idle(self, idle_timeout: float, keep: int | None = None) -> int:
        """Stop workers idle for longer than `idle_timeout` seconds, keeping `keep` (default min_warm) alive."""
        now = time.monotonic()
        keep = self.min_warm if keep is None else keep
        stopped = 0
        # _idle is oldest-first: stop from the front while more than `keep` workers are alive.
        while self._idle and len(self._workers) > keep and now - self._idle[0].last_used > idle_timeout:
            worker = self._idle.pop(0)
            self._workers.discard(worker)
            self._stale.discard(worker)
            worker.stop()
            stopped += 1
        return stopped

    def stats(self) -> dict[str, Any]:
        idle = sum(1 for w in self._idle if w.alive)
        return {
            **self.counts,
            "workers": len(self._workers),
            "idle": idle,
            "busy": len(self._workers) - idle,
            "pids": sorted(w.pid for w in self._workers if w.pid is not None),
            "limits": {
                "memory_mb": self.spec.settings.memory_mb,
                "ephemeral_storage_mb": self.spec.settings.ephemeral_storage,
                "timeout": self.timeout,
                "max_processes": self.config.max_processes,
                "memory": self.config.limits.memory,
                "processes": self.config.limits.processes,
                "unenforced": sorted(
                    {*self.config.limits.unenforced, *(name for w in self._workers for name in w.unenforced)}
                ),
            },
        }

    async def close(self) -> None:
        self._closed = True
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for worker in list(self._workers):
            worker.kill()
        self._workers.clear()
        self._idle.clear()
        self._stale.clear()

    def _in_background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _start_failed(request: InvokeRequest, exc: WorkerStartError, version: str) -> InvokeOutcome:
    now = time.time()
    error_type = exc.error_type if isinstance(exc, SecretStartError) else START_ERROR
    return InvokeOutcome(
        request_id=request.request_id,
        ok=False,
        error={"errorType": error_type, "errorMessage": str(exc), "stackTrace": []},
        cold_start=True,
        started_at=now,
        ended_at=now,
        version=version,
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "_"
