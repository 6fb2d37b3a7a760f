"""Running wrk (the C load generator) and reading its figures.

    result = run_wrk("http://127.0.0.1:8080/hello?n=1", connections=32, seconds=5)
    result.rps, result.p50_ms, result.p99_ms, result.errors

A Python load generator saturates before the servers measured here do (one
measured 3,542 req/s against bare Starlette where wrk measured 8,450), so
the HTTP benchmarks use wrk. A Lua script makes wrk print its figures as
one JSON line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Prints the summary as one line of JSON.
SCRIPT = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, '
      .. '"p50_us": %.1f, "p90_us": %.1f, "p99_us": %.1f, "mean_us": %.1f, "max_us": %.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


class WrkMissing(RuntimeError):
    """wrk is not installed."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    #: Connect, read, write errors, timeouts and responses that were not 2xx or 3xx.
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def parse(output: str) -> WrkResult:
    """The figures from wrk's output (the script's JSON line); ValueError when there is none."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            errors = sum(int(data[key]) for key in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                mean_ms=data["mean_us"] / 1000,
                max_ms=data["max_us"] / 1000,
                errors=errors,
            )
    raise ValueError(f"wrk printed no figures:\n{output[-2000:]}")


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing("wrk is not installed (Debian: apt-get install wrk; scripts/bench installs it as root)")
    return found


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float = 5.0,
    threads: int = 1,
    timeout: float = 10.0,
) -> WrkResult:
    """Load `url` with `connections` keep-alive connections for `seconds` (whole seconds, at least 1).

    `threads` is wrk's threads (one keeps wrk to one core, as the servers here mostly are); a request
    not answered within `timeout` seconds counts as an error. Raises WrkMissing, and RuntimeError
    when wrk fails.
    """
    threads = max(1, min(threads, connections))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(SCRIPT)
    try:
        command = [
            wrk_path(),
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={max(1, round(seconds))}s",
            f"--timeout={timeout:g}s",
            f"--script={script.name}",
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + timeout + 60)
    finally:
        Path(script.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return parse(done.stdout)
