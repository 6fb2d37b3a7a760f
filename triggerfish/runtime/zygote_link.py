"""The parent's link to the app zygote of one app version, restarted from the base zygote if it dies.

An app zygote that is killed (the OOM killer, an operator) takes its
workers with it (they die with their parent) but must not take the
function's future invocations: the next spawn asks the base zygote for a
new app zygote, which imports the app again, and carries on.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from triggerfish.errors import AppLoadError, WorkerStartError
from triggerfish.isolation.pids import PidView, SamePids
from triggerfish.runtime.channel import ZygoteChannel
from triggerfish.runtime.protocol import LoadApp, Loaded, LoadFailed

log = logging.getLogger("triggerfish.runtime")

#: Seconds the app zygote may take to import the app.
LOAD_TIMEOUT = 120.0


class AppZygoteLink:
    """The current app zygote: its channel and what it reported when it loaded the app."""

    def __init__(self, base: ZygoteChannel, load: LoadApp, pids: PidView | None = None) -> None:
        self.base = base
        self.load = load
        self.pids = pids or SamePids()
        self.channel: ZygoteChannel | None = None
        self.loaded: Loaded | None = None
        #: The app zygote's pid as this process names it (in a box, `loaded.pid` is its pid in the box).
        self.host_pid: int | None = None
        self.restarts = 0
        self._started = False
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self.host_pid

    async def start(self) -> Loaded:
        """Fork the app zygote and wait until it imported the app; AppLoadError when it cannot."""
        ours, theirs = socket.socketpair()
        try:
            self.base.send(self.load, [theirs.fileno()])
        except Exception:
            ours.close()
            raise
        finally:
            theirs.close()
        channel = ZygoteChannel(ours)
        try:
            async with asyncio.timeout(LOAD_TIMEOUT):  # not wait_for: on 3.11 it can lose a cancellation
                answer = await channel.recv()
        except TimeoutError:
            channel.close()
            raise AppLoadError(f"{self.load.target}: importing the app took longer than {LOAD_TIMEOUT:g} s") from None
        if not isinstance(answer, Loaded):
            channel.close()
            if isinstance(answer, LoadFailed):
                raise AppLoadError(answer.message, details=answer.details)
            raise AppLoadError(f"{self.load.target}: the app zygote exited while importing the app (see its stderr)")
        host_pid = self.pids.zygote(answer.pid) if isinstance(answer.pid, int) else None
        if host_pid is None:
            channel.close()
            raise AppLoadError(f"{self.load.target}: the app zygote reported pid {answer.pid!r}, which is not its own")
        self.channel, self.loaded, self.host_pid = channel, answer, host_pid
        self._started = True
        return answer

    async def current(self) -> tuple[ZygoteChannel, int]:
        """The live app zygote's channel and pid, starting a new zygote if the last one died."""
        channel, host_pid = self.channel, self.host_pid
        if channel is not None and host_pid is not None and not channel.closed:
            return channel, host_pid
        async with self._lock:
            if self._closed:
                raise WorkerStartError("the runner is closed")
            if not self._started:  # never started: a first start, not a restart
                try:
                    await self.start()
                except Exception as exc:
                    raise WorkerStartError(f"the app zygote could not be started: {exc}") from exc
            elif self.channel is None or self.channel.closed:
                log.warning("the app zygote of %s (version %s) is gone; starting a new one", *self._what())
                if self.channel is not None:
                    self.channel.close()
                try:
                    await self.start()
                except (AppLoadError, OSError, Exception) as exc:
                    raise WorkerStartError(f"the app zygote is gone and could not be restarted: {exc}") from exc
                self.restarts += 1
            assert self.channel is not None
            assert self.host_pid is not None
            return self.channel, self.host_pid

    def close(self) -> None:
        self._closed = True
        if self.channel is not None:
            self.channel.close()

    def _what(self) -> tuple[str, str]:
        return self.load.target, self.load.version
