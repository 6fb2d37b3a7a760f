"""The parent's view of one worker process: send it a request, relay its platform calls, enforce its timeout.

The timeout is a timer on the event loop (no `wait_for` per call): when it
fires, the worker's whole process group gets SIGKILL, its socket closes,
and the invocation is reported as `Runtime.Timeout`. One timer per worker,
not one per invocation: an invocation that ends leaves it armed, and when it
fires for a deadline that is not the current invocation's it is armed again
for that one (the async path runs thousands of short invocations a second,
each of which would otherwise make, push and cancel a timer). A worker that dies for
any other reason is reported with the signal or exit code the zygote saw.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any, get_args

import orjson

from triggerfish.errors import InvocationError, ProtocolError
from triggerfish.isolation.pids import PidView, SamePids
from triggerfish.names import EXIT_ERROR, INVALID_EVENT_ERROR, OUT_OF_MEMORY_ERROR, PROTOCOL_ERROR, TIMEOUT_ERROR
from triggerfish.runtime import call_errors, memory
from triggerfish.runtime.channel import WorkerConnection
from triggerfish.runtime.limits import CgroupTree
from triggerfish.runtime.protocol import (
    Cancel,
    Heartbeat,
    Log,
    Message,
    PlatformAnswer,
    PlatformCallFrame,
    Ready,
    Result,
    encode,
    request_frame,
    start_marker,
)
from triggerfish.runtime.types import InvokeOutcome, InvokeRequest, PlatformCall, PlatformHandler, PlatformOp

log = logging.getLogger("triggerfish.runtime")

#: How long to wait for the zygote's exit report after a worker's socket closed.
EXIT_REPORT_WAIT = 2.0
_PLATFORM_OPS = frozenset(get_args(PlatformOp))
_READS_PER_WAKEUP = 8
_READ_SIZE = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_CANCEL = encode(Cancel(reason="stop"))
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class WorkerProcess:
    """One worker: its socket, its output pipe, its process group and its exit status.

    It may be created before the worker reported ready (`pid` None): a cold
    start sends the request right behind the spawn, and the worker's Ready
    frame arrives ahead of the result, saving a round trip.
    """

    def __init__(
        self,
        *,
        function: str,
        connection: WorkerConnection,
        output_fd: int,
        watch: Callable[[int], asyncio.Future[int]],
        output_limit: int,
        zygote_pid: int | None = None,
        cgroup_root: str | None = None,
        ready: Ready | None = None,
        pids: PidView | None = None,
        memory_tree: memory.MemoryTree | None = None,
    ) -> None:
        #: The app zygote's pid as this process names it (in a box, not the pid the zygote sees itself).
        self.zygote_pid = zygote_pid
        self._pids = pids or SamePids()
        self.cgroup_root = cgroup_root
        self._may_signal = False
        self.pid: int | None = None
        self.cgroup: str | None = None
        #: The worker's memory cgroup (None: none, RLIMIT_AS), and what it said when the worker ended.
        self._memory = memory_tree
        self.memory_cgroup: str | None = None
        self.oom_killed = False
        self.peak_bytes: int | None = None
        self.unenforced: list[str] = []
        self.exit_status: asyncio.Future[int] | None = None
        self.function = function
        self.connection = connection
        self.output_limit = output_limit
        self.alive = True
        self.timed_out = False
        self.spawned_at = time.perf_counter()
        self.ready_at: float | None = None
        self.last_used = time.monotonic()
        self.invocations = 0
        self._watch = watch
        self._output = bytearray()
        self._truncated = False
        #: Resolved when the last invocation sent to this worker (running or queued) has its outcome (None: none
        #: is): a request queued behind it waits for this before it reads the connection.
        self._tail: asyncio.Future[None] | None = None
        #: Requests queued behind the running one, in order, each with its start marker and its output so far.
        self._queued: collections.deque[_Queued] = collections.deque()
        #: How many of the queued requests' markers were read: what is read now is the last of those's output.
        self._seen = 0
        #: The start marker of the running invocation, when it started queued and its marker is still unread.
        self._marker: bytes | None = None
        #: Set by the pool when the invocation that ended handed its concurrency slot to the one queued behind it.
        self.slot_handed = False
        #: Bytes of the current invocation's event sent to the worker (usage's data in).
        self._sent_bytes = 0
        self._output_fd = output_fd
        self._loop = asyncio.get_running_loop()
        #: When (loop time) the running invocation times out; None between invocations.
        self._deadline: float | None = None
        #: The worker's one timeout timer, armed for the deadline of the invocation that armed it (or an earlier
        #: one): see the module docstring.
        self._timer: asyncio.TimerHandle | None = None
        with contextlib.suppress(OSError):  # a bigger pipe: fewer wakeups for a chatty handler
            fcntl.fcntl(output_fd, _F_SETPIPE_SZ, 1024 * 1024)
        os.set_blocking(output_fd, False)
        self._loop.add_reader(output_fd, self._drain, _READS_PER_WAKEUP)
        connection.on_close = self._disconnected
        if ready is not None:
            self.on_ready(ready)

    def on_ready(self, ready: Ready) -> None:
        """The worker reported its pid (and cgroup): from now on it can be killed and its exit watched.

        Checked before it is believed, since the pid is later given to killpg and the cgroup swept with
        SIGKILL: the pid must be a child of the app zygote and the cgroup inside the runner's own. In a
        box the reported pid is the worker's pid in the box; `pid` becomes the one the parent signals.
        Raises ProtocolError otherwise.
        """
        if self.pid is not None:
            raise ProtocolError("a second 'ready' frame from a worker that is already running")
        # None: already gone (a worker that exits at once); its pid is reported but never signalled.
        ours = self._pids.worker(self.zygote_pid, ready.pid)
        self._may_signal = ours is not None
        if ready.cgroup is not None and (
            not isinstance(ready.cgroup, str)
            or self.cgroup_root is None
            or os.path.dirname(os.path.normpath(ready.cgroup)) != self.cgroup_root
        ):
            raise ProtocolError(f"'ready' names cgroup {ready.cgroup!r}, which is not one of this runner's")
        memory_root = None if self._memory is None else self._memory.root
        if ready.memory_cgroup is not None and (
            not isinstance(ready.memory_cgroup, str)
            or memory_root is None
            or os.path.dirname(os.path.normpath(ready.memory_cgroup)) != memory_root
        ):
            raise ProtocolError(f"'ready' names memory cgroup {ready.memory_cgroup!r}, not one of this runner's")
        self.memory_cgroup = ready.memory_cgroup
        self.ready_at = time.perf_counter()
        self.pid = ours if ours is not None else ready.pid
        self.cgroup = ready.cgroup
        self.unenforced = [str(name) for name in ready.unenforced] if isinstance(ready.unenforced, list) else []
        if self.unenforced:
            log.warning("worker %d of %r could not enforce: %s", self.pid, self.function, ", ".join(self.unenforced))
        # The zygote reports exits by the pid it sees, which is the reported one.
        self.exit_status = self._watch(ready.pid)
        self.exit_status.add_done_callback(self._exited)
        if not self.alive:  # killed (timed out, pool closed) before it was ready
            self.kill()

    @property
    def init_duration_ms(self) -> float | None:
        if self.ready_at is None:
            return None
        return (self.ready_at - self.spawned_at) * 1000.0

    # --- one invocation ---------------------------------------------------------------------

    async def invoke(
        self,
        request: InvokeRequest,
        *,
        time_limit: float,
        version: str,
        platform: PlatformHandler | None,
        cold_start: bool = False,
    ) -> InvokeOutcome:
        """Run `request` on this worker and report how it went; never raises for what the handler does."""
        self.invocations += 1
        self._output.clear()
        self._truncated = False
        self._marker = None
        self._sent_bytes = 0
        sent_at = time.time()
        try:
            frame, event_bytes = _request_frame(request, deadline=sent_at + time_limit)
        except (TypeError, ValueError, ProtocolError) as exc:  # another attempt cannot help
            return self._invalid_event(request, exc, sent_at, version, cold_start)
        self._sent_bytes = event_bytes
        turn = self._tail = self._loop.create_future()
        try:
            return await self._outcome(request, time_limit, sent_at, version, cold_start, platform, frame)
        finally:
            self._end_turn(turn)

    @property
    def queued(self) -> int:
        """Requests queued behind the running invocation (`invoke_behind`)."""
        return len(self._queued)

    def can_queue(self, depth: int) -> bool:
        """Whether a request may be queued behind the ones sent (`invoke_behind`): one runs, fewer than `depth` wait.

        A cold worker too: the first request handles the worker's Ready.
        """
        return self.alive and self._tail is not None and len(self._queued) < depth

    async def invoke_behind(
        self,
        request: InvokeRequest,
        *,
        time_limit: float,
        version: str,
        platform: PlatformHandler | None,
        on_turn: Callable[[], None] = lambda: None,
    ) -> InvokeOutcome:
        """Queue `request` behind the invocations sent to this worker (check `can_queue`) and report how it went.

        Sent at once, so the worker starts it the moment the one before it ends, without waiting for a round
        trip through this process (the async path's prefetch); its timeout counts from then. `on_turn` is
        called when the one before it ended (the pool hands its slot on then). Raises NotStarted when the
        worker went (timed out, crashed, stopped) before this request's turn came: it is then to be run
        elsewhere (it may have begun if the worker died the moment the one before ended: at least once, as
        any invocation whose outcome was not recorded).
        """
        sent_at = time.time()
        try:
            frame, event_bytes = _request_frame(request, deadline=sent_at + time_limit, time_limit=time_limit)
        except (TypeError, ValueError, ProtocolError) as exc:
            return self._invalid_event(request, exc, sent_at, version, False)
        before = self._tail
        if before is None:
            raise RuntimeError("invoke_behind() needs a worker that can_queue")
        turn = self._tail = self._loop.create_future()
        entry = _Queued(start_marker(request.request_id))
        self._queued.append(entry)
        try:
            try:
                self.connection.send(frame)
            except ProtocolError:  # the connection closed: the worker is gone
                self._forget(entry)
                raise NotStarted(request.request_id) from None
            try:
                # Awaited directly, not shielded: it then resumes before anything the end of the one before
                # schedules (a shield adds a hop), and takes its turn before another request looks for a worker.
                await before
            except BaseException:
                # Cancelled while queued: the worker would run a request nobody waits for, so it goes.
                self._forget(entry)
                if before.done():
                    on_turn()
                self.kill()
                raise
            on_turn()
            if not self.alive:
                # The worker went (timed out, crashed, retired) before this request's turn: it runs elsewhere.
                self._forget(entry)
                raise NotStarted(request.request_id)
            self.invocations += 1
            # Its output so far (read after its marker while the ones before ran) becomes the current output; a
            # marker not read yet is still looked for, and what follows it is this request's too.
            head = self._queued.popleft()
            if self._seen:
                self._seen -= 1
                self._marker = None
            else:
                self._marker = head.marker
            self._output, self._truncated = head.output, head.truncated
            self._sent_bytes = event_bytes
            return await self._outcome(request, time_limit, time.time(), version, False, platform)
        finally:
            self._end_turn(turn)

    def _forget(self, entry: _Queued) -> None:
        at = self._queued.index(entry)
        del self._queued[at]
        if at < self._seen:
            self._seen -= 1

    def _end_turn(self, turn: asyncio.Future[None]) -> None:
        if self._tail is turn:
            self._tail = None
        if not turn.done():
            turn.set_result(None)

    def _invalid_event(
        self, request: InvokeRequest, exc: Exception, sent_at: float, version: str, cold_start: bool
    ) -> InvokeOutcome:
        # The in-process runner's errorType too (Lambda's name for a payload it cannot take).
        what = "is too large to send" if isinstance(exc, ProtocolError) else "is not a JSON value"
        error = {"errorType": INVALID_EVENT_ERROR, "errorMessage": f"the event of {self.function!r} {what}: {exc}"}
        return self._failed(request, error, sent_at, version, cold_start, retryable=False)

    async def _outcome(
        self,
        request: InvokeRequest,
        time_limit: float,
        sent_at: float,
        version: str,
        cold_start: bool,
        platform: PlatformHandler | None,
        frame: bytes | None = None,
    ) -> InvokeOutcome:
        """Send `frame` (unless sent already), then read the connection until `request`'s result (relaying its
        platform calls) or the worker's end; its timeout counts from now."""
        deadline = self._deadline = self._loop.time() + time_limit
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._deadline_reached)
        try:
            if frame is not None:
                self.connection.send(frame)
            while True:
                message = await self.connection.recv()
                if type(message) is Result and message.call is None:
                    _check_result(message, request.request_id)
                    break
                if message is None:
                    return await self._died(request, time_limit, sent_at, version, cold_start)
                if not isinstance(message, PlatformCallFrame | Result):
                    self._between_calls(message)
                    continue
                # From its first platform call (or a result carrying one) on, the invocation is read within one
                # timeout scope: a platform call that hangs must not outlive the timeout, and a scope per call cost
                # about 4 us each. A timeout scope, not wait_for: on Python 3.11 wait_for makes a task per call
                # (about 30 us of CPU against 8 us). An invocation that calls nothing enters none.
                try:
                    async with asyncio.timeout_at(deadline):
                        result = await self._relay(message, request, platform)
                except TimeoutError:
                    self._time_out()
                    return await self._died(request, time_limit, sent_at, version, cold_start)
                if result is None:
                    return await self._died(request, time_limit, sent_at, version, cold_start)
                message = result
                break
        except ProtocolError as exc:
            if self.timed_out:  # the timer killed the worker while we were about to write to it
                return await self._died(request, time_limit, sent_at, version, cold_start)
            self.kill()
            error = {"errorType": PROTOCOL_ERROR, "errorMessage": str(exc)}
            return self._failed(request, error, sent_at, version, cold_start)
        finally:
            self._deadline = None  # its timer stays armed: see the module docstring
        self.last_used = time.monotonic()
        if message.retire or self.timed_out:
            self.stop()
        if message.unread_output is not False:
            # The worker flushed before it answered; when it saw the pipe empty, `_drain` already
            # read everything (a read syscall per invocation is a measurable cost on the async path).
            self.drain_all()
        return InvokeOutcome(
            request_id=request.request_id,
            ok=message.ok,
            result=message.result,
            error=message.error,
            retryable=message.retryable,
            retry_delay=message.retry_delay,
            cold_start=cold_start,
            init_duration_ms=self.init_duration_ms if cold_start else None,
            duration_ms=(message.ended - message.started) * 1000.0,
            started_at=message.started,
            ended_at=message.ended,
            output=self._output.decode("utf-8", "replace") if self._output else "",
            output_truncated=self._truncated,
            worker_pid=self.pid,
            version=version,
            max_memory_used_mb=memory.megabytes(message.max_memory if isinstance(message.max_memory, int) else None),
            input_bytes=self._sent_bytes,
            output_bytes=message.result_bytes if message.ok and type(message.result_bytes) is int else 0,
        )

    async def _relay(
        self, first: PlatformCallFrame | Result, request: InvokeRequest, platform: PlatformHandler | None
    ) -> Result | None:
        """Answer platform calls, from `first` on, until `request`'s Result (None: the worker's end); a Result that
        carries a call (`Context.finish_with_platform_call`) gets that call's answer as its result."""
        message: Message | None = first
        while True:
            if type(message) is Result:
                _check_result(message, request.request_id)
                return message if message.call is None else await _finish_with(message, request, platform)
            if message is None:
                return None
            if isinstance(message, PlatformCallFrame):
                answer = await _answer(message, request, platform)
                try:
                    data = encode(answer)
                except (TypeError, ValueError) as exc:  # the platform returned something not JSON
                    data = encode(PlatformAnswer(ok=False, error=f"the platform's answer is not JSON: {exc}"))
                self.connection.send(data)
            else:
                self._between_calls(message)
            message = await self.connection.recv()

    def _between_calls(self, message: Message) -> None:
        """A frame of an invocation that is neither its result nor a platform call: Ready, a Log or a Heartbeat."""
        if isinstance(message, Ready):
            self.on_ready(message)
        elif isinstance(message, Log):
            level = _LEVELS.get(str(message.level).lower(), logging.WARNING)
            log.log(level, "worker %s of %r: %s", self.pid, self.function, message.message)
        elif not isinstance(message, Heartbeat):
            raise ProtocolError(f"unexpected {message.TYPE!r} frame during an invocation")

    async def _died(
        self, request: InvokeRequest, time_limit: float, sent_at: float, version: str, cold_start: bool
    ) -> InvokeOutcome:
        self.alive = False
        if self.timed_out:
            error = {"errorType": TIMEOUT_ERROR, "errorMessage": f"Task timed out after {time_limit:.2f} seconds"}
        else:
            status: int | None = None
            if self.exit_status is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    async with asyncio.timeout(EXIT_REPORT_WAIT):
                        status = await asyncio.shield(self.exit_status)
            message = describe_exit(status, started=self.pid is not None)
            if self.exit_status is not None and self.exit_status.cancelled():
                message = "Runtime exited during the invocation: its app zygote died and took the worker with it"
            error = {"errorType": EXIT_ERROR, "errorMessage": message}
            self._read_memory()
            if self.oom_killed:
                # Lambda's words for a runtime the OOM killer ended (the REPORT line shows the peak).
                message = f"RequestId: {request.request_id} Error: Runtime exited with error: signal: killed"
                error = {"errorType": OUT_OF_MEMORY_ERROR, "errorMessage": message}
        self.kill()
        self.drain_all()
        return self._failed(request, error, sent_at, version, cold_start)

    def _failed(
        self,
        request: InvokeRequest,
        error: dict[str, Any],
        started: float,
        version: str,
        cold_start: bool,
        *,
        retryable: bool = True,
    ) -> InvokeOutcome:
        ended = time.time()
        return InvokeOutcome(
            request_id=request.request_id,
            ok=False,
            error={**error, "stackTrace": []},
            retryable=retryable,
            cold_start=cold_start,
            init_duration_ms=self.init_duration_ms if cold_start else None,
            duration_ms=(ended - started) * 1000.0,
            started_at=started,
            ended_at=ended,
            output=self._output.decode("utf-8", "replace"),
            output_truncated=self._truncated,
            worker_pid=self.pid,
            version=version,
            max_memory_used_mb=memory.megabytes(self.peak_bytes),
            input_bytes=self._sent_bytes,
        )

    # --- output ---------------------------------------------------------------------------

    def _drain(self, max_reads: int) -> None:
        # Bounded per wakeup: a handler printing without pause must not starve the event loop.
        fd = self._output_fd
        for _ in range(max_reads):
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_output()
                return
            short = len(data) < _READ_SIZE
            self._route(data)
            if short:
                # A short read emptied the pipe: another read now would only fail with EAGAIN (a system call
                # per wakeup; the queued requests' markers make one per invocation).
                return

    def _route(self, data: bytes) -> None:
        """Output read from the pipe to the invocation it belongs to: the start markers of queued requests
        divide it."""
        while True:
            marker = self._marker
            if marker is None and self._seen < len(self._queued):
                marker = self._queued[self._seen].marker
            at = -1 if marker is None else data.find(marker)
            if marker is None or at < 0:
                self._keep(data)
                return
            self._keep(data[:at])
            data = data[at + len(marker) :]
            if self._marker is not None:
                self._marker = None
            else:
                self._seen += 1

    def _keep(self, data: bytes) -> None:
        if not data:
            return
        if self._seen:
            self._queued[self._seen - 1].keep(data, self.output_limit)
            return
        room = self.output_limit - len(self._output)
        if room > 0:
            self._output += data[:room] if len(data) > room else data
        if len(data) > room:
            self._truncated = True

    @property
    def output(self) -> str:
        """The output captured since the current invocation began."""
        return self._output.decode("utf-8", "replace")

    def drain_all(self) -> None:
        """Read what the pipe holds now (the worker flushed before it answered)."""
        if self._output_fd >= 0:
            self._drain(1 << 30)

    def _close_output(self) -> None:
        if self._output_fd >= 0:
            self._loop.remove_reader(self._output_fd)
            os.close(self._output_fd)
            self._output_fd = -1

    # --- life and death -------------------------------------------------------------------

    def _disconnected(self) -> None:
        # An idle worker that died (killed from outside, or its zygote died) must not be handed out.
        self.alive = False

    def _deadline_reached(self) -> None:
        """The timer fired: the running invocation timed out if it was the deadline the timer was armed for (or an
        earlier one); else the invocation that armed it ended, and the timer is armed for the running one's."""
        timer, self._timer = self._timer, None
        deadline = self._deadline
        if deadline is None:
            return  # between invocations: the next one arms it again
        if timer is None or deadline <= timer.when():
            self._time_out()
        else:
            self._timer = self._loop.call_at(deadline, self._deadline_reached)

    def _time_out(self) -> None:
        self.timed_out = True
        self.kill()

    def _disarm(self) -> None:
        """Cancel the timeout timer of a worker that is going: an armed timer would keep it in memory until then."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def kill(self) -> None:
        """SIGKILL the worker's process group and anything left in its cgroup."""
        self.alive = False
        self._disarm()
        if self._may_signal and self.pid is not None and self.exit_status is not None and not self.exit_status.done():
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)
        CgroupTree.kill_all(self.cgroup, spare=self.zygote_pid)
        self.connection.close()

    def stop(self) -> None:
        """Ask the worker to exit between invocations (idle, or the pool closes)."""
        self.alive = False
        if self._deadline is None:  # else the running invocation's timeout still stands
            self._disarm()
        with contextlib.suppress(ProtocolError):
            self.connection.send(_CANCEL)
        self.connection.close()

    def _read_memory(self) -> None:
        """Whether the OOM killer ended the worker, and its peak: read once, before its memory cgroup goes."""
        tree, cgroup = self._memory, self.memory_cgroup
        if tree is None or tree.controller is None or cgroup is None or self.peak_bytes is not None:
            return
        self.oom_killed = memory.oom_kills(tree.controller, cgroup) > 0
        self.peak_bytes = memory.peak_bytes(tree.controller, cgroup)

    def _exited(self, future: asyncio.Future[int]) -> None:
        self.alive = False
        self._disarm()
        self._read_memory()
        CgroupTree.kill_all(self.cgroup, spare=self.zygote_pid)
        CgroupTree.remove(self.cgroup)
        memory.MemoryTree.remove(self.memory_cgroup)
        self.drain_all()
        self._close_output()
        self.connection.close()


class _Queued:
    """A request queued on a worker behind the running one: its start marker, and its output read so far."""

    __slots__ = ("marker", "output", "truncated")

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.output = bytearray()
        self.truncated = False

    def keep(self, data: bytes, limit: int) -> None:
        room = limit - len(self.output)
        if room > 0:
            self.output += data[:room] if len(data) > room else data
        if len(data) > room:
            self.truncated = True


class NotStarted(Exception):
    """A request queued behind another (`WorkerProcess.invoke_behind`) did not get its turn: its worker went first."""


def _request_frame(request: InvokeRequest, *, deadline: float, time_limit: float | None = None) -> tuple[bytes, int]:
    """The Request frame of `request`, and the bytes of its event's JSON (usage's data in).

    The event is encoded on its own and spliced into the frame: its size at no extra cost. Its JSON is kept on the
    request (`event_json`), for the kept input.
    """
    event_json = request.event_json
    if event_json is None:
        event_json = request.event_json = orjson.dumps(request.event)
    frame = request_frame(
        request.request_id,
        event_json,
        deadline,
        request.attempt,
        request.traceparent,
        request.hop_count,
        time_limit,
        request.prelude,
    )
    return frame, len(event_json)


def describe_exit(status: int | None, *, started: bool = True) -> str:
    """Why a worker died, for the error message: the signal's number and name, or the exit code."""
    if not started:
        return "Runtime failed to start: the worker exited before it was ready (see the output)"
    if status is None:
        return "Runtime exited during the invocation; its exit status is unknown"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        hint = " (killed from outside: the kernel's OOM killer, or an operator)" if number == signal.SIGKILL else ""
        return f"Runtime exited with signal {number} ({name}) during the invocation{hint}"
    if os.WIFEXITED(status):
        return f"Runtime exited with exit code {os.WEXITSTATUS(status)} during the invocation"
    return f"Runtime exited during the invocation (wait status {status})"


async def _answer(
    message: PlatformCallFrame, request: InvokeRequest, platform: PlatformHandler | None
) -> PlatformAnswer:
    if platform is None:
        return PlatformAnswer(ok=False, error="no platform is configured: start the ProcessRunner with platform=...")
    if message.op not in _PLATFORM_OPS:
        known = ", ".join(sorted(_PLATFORM_OPS))
        return PlatformAnswer(ok=False, error=f"unknown platform operation {message.op!r}; use one of {known}")
    call = PlatformCall(
        op=message.op,  # type: ignore[arg-type]
        args=message.args,
        function=request.function,
        request_id=request.request_id,
        traceparent=request.traceparent,
        hop_count=request.hop_count,
    )
    try:
        value = await platform(call)
    except Exception as exc:
        error_type, error, details = call_errors.describe(exc)
        return PlatformAnswer(ok=False, error=error, error_type=error_type, details=details)
    return PlatformAnswer(ok=True, value=value)


async def _finish_with(result: Result, request: InvokeRequest, platform: PlatformHandler | None) -> Result:
    """`result` with its call's answer as the result (checked by `_check_result`: `call` is an op and its args), or
    failed with the error the handler would have raised had it made the call itself."""
    assert result.call is not None
    op, args = result.call["op"], result.call["args"]
    answer = await _answer(PlatformCallFrame(op=op, args=args), request, platform)
    if answer.ok:
        try:
            size = len(orjson.dumps(answer.value))
        except TypeError as exc:
            answer = PlatformAnswer(ok=False, error=f"the platform's answer is not JSON: {exc}")
        else:
            # In place, not `dataclasses.replace` (a copy field by field, once per workflow): the Result was decoded
            # from the worker's frame for this call alone, and nothing else holds it.
            result.result, result.result_bytes, result.call = answer.value, size, None
            return result
    if answer.error_type is None:  # refused before it reached the platform (an unknown operation, ...)
        failure: Exception = InvocationError(f"context.call_platform({op!r}) failed: {answer.error}")
    else:
        failure = call_errors.rebuild(op, answer.error_type, answer.error or "", answer.details or {})
    error = {"errorType": type(failure).__name__, "errorMessage": str(failure), "stackTrace": []}
    result.ok, result.result, result.error, result.call = False, None, error, None
    return result


def _check_result(result: Result, request_id: str) -> None:
    """A Result's fields have the types the outcome promises; user code could write frames of its own."""
    numbers = (int, float)
    if (
        result.id != request_id
        or not isinstance(result.ok, bool)
        or not isinstance(result.error, dict | None)
        or not isinstance(result.retryable, bool)
        or not isinstance(result.retry_delay, int | float | None)
        or not isinstance(result.started, numbers)
        or not isinstance(result.ended, numbers)
        or not isinstance(result.retire, bool)
        or (not result.ok and result.error is None)
        or not (
            result.call is None
            or (
                result.ok
                and isinstance(result.call, dict)
                and isinstance(result.call.get("op"), str)
                and isinstance(result.call.get("args"), dict)
            )
        )
    ):
        raise ProtocolError(f"malformed 'result' frame for request {request_id!r}")
