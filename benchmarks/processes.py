"""The processes a benchmark starts: servers, workers, load generators, each in a session of its own.

    with Child([sys.executable, "-m", "uvicorn", ...], log=work / "uvicorn.log") as server:
        wait_http(f"http://127.0.0.1:{port}/hello")
        ...                                   # stopped (its whole session) on the way out

A child's output goes to a log file, whose tail is in the error when it dies
or does not answer, so a failed run says why.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment, with the repository importable (for `python -m benchmarks....`) and `extra` added."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **(extra or {})}


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Child:
    """A process in its own session (so stopping it stops what it started), its output in `log`."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.command = list(command)
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command,
                stdin=stdin,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else python_env(),
                cwd=cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self, what: str) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{what} exited with {self.process.returncode}:\n{tail(self.log)}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the session (a graceful stop), SIGKILL after `timeout` seconds."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        # What the child started may outlive it (a worker the leader did not reap): end the session.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait()

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def wait_http(url: str, child: Child | None = None, *, timeout: float = 60.0, status: int = 200) -> None:
    """Wait until a GET of `url` answers `status`; RuntimeError (with the child's log) when it does not in time."""
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if child is not None:
            child.check_alive(f"the server for {url}")
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=5)
        try:
            connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
            answer = connection.getresponse()
            answer.read()
            if answer.status == status:
                return
            last = f"status {answer.status}"
        except OSError as exc:
            last = str(exc)
        finally:
            connection.close()
        time.sleep(0.05)  # polled: a server being started has nothing to wait on
    log = f"\n{tail(child.log)}" if child is not None else ""
    raise RuntimeError(f"{url} did not answer {status} within {timeout:g} s ({last}){log}")


def serve_on_free_port(
    command: Callable[[int], Sequence[str]],
    ready: Callable[[int], str],
    *,
    log: Path,
    attempts: int = 3,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Child, int]:
    """Start a server on a free port and wait until GET `ready(port)` answers 200; (the server, its port).

    A port free a moment ago can be taken meanwhile (by any outgoing connection on this machine): a
    server that exits before it answers is started again on another port, `attempts` times at most.
    """
    for attempt in range(1, attempts + 1):
        port = free_port()
        child = Child(command(port), log=log, cwd=cwd, env=env)
        try:
            wait_http(ready(port), child)
            return child, port
        except RuntimeError:
            exited = child.process.poll() is not None
            child.stop()
            if not exited or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def wait_until(condition: Callable[[], bool], what: str, timeout: float, interval: float = 0.005) -> None:
    """Poll `condition()` until it is true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


def rss_mb(pid: int) -> float:
    """Resident set size of one process, in MiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by `pid` and every live process descended from it (Linux)."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick

    def descends(candidate: int) -> bool:
        while candidate > 1:
            if candidate == pid:
                return True
            candidate = parents.get(candidate, 0)
        return False

    return sum(seconds for process, seconds in used.items() if descends(process))


def launcher(loop: str, *arguments: str) -> list[str]:
    """The command that runs `triggerfish ARGUMENTS` (or `platform ...`) with the event loop `loop`."""
    return [sys.executable, "-m", "benchmarks.launch", "--loop", loop, *arguments]


def run_in_tree(command: list[str], tree: Path, what: str) -> dict[str, float]:
    """Run `command` with `tree` first on PYTHONPATH and as its working directory (`-m` puts that first on
    sys.path, ahead of PYTHONPATH), and return the figures of its last line (JSON, with `tree`: where it imported
    Triggerfish from); an error if that is another tree."""
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}"}
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=tree).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if Path(result.pop("tree")) != tree:
        raise RuntimeError(f"{what} ran another tree than {tree}")
    return {name: float(value) for name, value in result.items()}
