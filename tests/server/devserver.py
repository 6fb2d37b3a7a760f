"""Running `triggerfish dev` as a user does, in a subprocess, and talking to it over real HTTP."""

from __future__ import annotations

import os
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.patience import eventually, scaled

T = TypeVar("T")

_SERVING = re.compile(r"serving on (http://\S+)")


class DevServer:
    """A `triggerfish dev` (or, with `verb="serve"`, `serve`) process; `url` once it serves, its output
    collected line by line."""

    def __init__(
        self,
        *args: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        verb: str = "dev",
        open_files: tuple[int, int] | None = None,
    ) -> None:
        self.args = ["-m", "triggerfish", verb, *args]
        #: (soft, hard) RLIMIT_NOFILE for the process, as `ulimit -n` would set it.
        self.open_files = open_files
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self, timeout: float = 30.0, *, ready: str | None = None) -> DevServer:
        """Start it and wait until it serves (or, with `ready`, until a line containing that text: a
        worker-only node serves nothing)."""
        self.process = subprocess.Popen(
            [sys.executable, *self.args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=None if self.open_files is None else self._limit_open_files,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if ready is not None:
            self.wait_for_line(lambda line: ready in line, timeout)
            return self
        line = self.wait_for_line(_SERVING.search, timeout)
        self.url = _SERVING.search(line).group(1)  # type: ignore[union-attr]
        return self

    def _limit_open_files(self) -> None:
        assert self.open_files is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        # Closed here, at end of output, so that no test leaves the pipe to the garbage collector (ResourceWarning).
        self.process.stdout.close()
        self._lines.put(None)

    def wait_for_line(self, test: Callable[[str], object], timeout: float = 30.0) -> str:
        """The first new output line passing `test`; AssertionError with the output so far on timeout or exit."""
        limit = scaled(timeout)
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                so_far = "\n".join(self.lines)
                raise AssertionError(f"no such output within {limit:.0f} s; so far:\n{so_far}") from None
            if line is None:
                self._lines.put(None)
                raise AssertionError("triggerfish dev exited; its output:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if test(line):
                return line

    def interrupt(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        code = self.process.wait(scaled(timeout))
        # Collect the rest of the output.
        while True:
            try:
                line = self._lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                self._lines.put(None)
                break
            self.lines.append(line)
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.interrupt()
            try:
                self.process.wait(scaled(20))
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            self._reader.join(5)

    def output(self) -> str:
        return "\n".join(self.lines)


def poll(check: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.05) -> T:
    """`check()`'s first truthy value, polling until `timeout` seconds (stretched by load); AssertionError after."""
    return eventually(check, timeout, "condition", interval=interval)
