"""Holding ground: `/-/health` on a new connection while one client holds 1,100 idle connections.

    .venv/bin/python -m benchmarks.run connections

`triggerfish dev` runs as a user runs it, in its own process, with the
common open-file limit (soft 1024, hard higher). The client opens IDLE
connections and sends nothing on them, more than the soft limit allows and
more than the default cap of 1024 connections, then asks `/-/health` on a
new connection, one request at a time, as a load balancer's health check
would. Before the connection limits, every request timed out here. The
figure is the median and the worst of ROUNDS rounds of CHECKS requests.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IDLE = 1100
CHECKS = 50
ROUNDS = 3
TARGET_MS = 100.0

APP = """
import triggerfish

app = triggerfish.App("steady")


@app.http("GET", "/hello")
def hello(event, context):
    return {"hello": "world"}
"""


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


async def _health(host: str, port: int) -> float:
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET /-/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
    finally:
        writer.close()
    if not answer.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"health answered {answer[:100]!r}")
    return time.perf_counter() - began


async def _round(host: str, port: int, idle: int) -> list[float]:
    writers = []
    try:
        for _ in range(idle):
            _, writer = await asyncio.open_connection(host, port)
            writers.append(writer)
        return [await _health(host, port) for _ in range(CHECKS)]
    finally:
        for writer in writers:
            writer.close()


async def _measure(host: str, port: int) -> tuple[list[float], list[float]]:
    quiet: list[float] = []
    loaded: list[float] = []
    for _ in range(ROUNDS):
        quiet += await _round(host, port, 0)
        loaded += await _round(host, port, IDLE)
    return quiet, loaded


def main() -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * IDLE), hard))
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "app.py").write_text(APP)
        process = subprocess.Popen(
            [sys.executable, "-m", "triggerfish", "dev", "app.py", "--port", "0", "--no-reload", "--quiet"],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_limit,
        )
        try:
            assert process.stdout is not None
            url = ""
            for line in process.stdout:
                if line.startswith("serving on "):
                    url = line.split()[2]
                    break
            host, port = url.removeprefix("http://").rsplit(":", 1)
            quiet, loaded = asyncio.run(_measure(host, int(port)))
        finally:
            process.terminate()
            process.wait(30)
            if process.stdout is not None:
                process.stdout.close()
    rows = [("none", quiet), (f"{IDLE:,}", loaded)]
    table = "\n".join(
        f"| {idle} | {statistics.median(found) * 1000:.1f} | {max(found) * 1000:.1f} |" for idle, found in rows
    )
    verdict = "met" if max(loaded) * 1000 < TARGET_MS else "NOT met"
    return (
        "## Holding ground: health under 1,100 idle connections\n\n"
        f"`triggerfish dev` with a soft open-file limit of 1024; `/-/health` on a new connection, {CHECKS} times"
        f" per round, {ROUNDS} rounds.\n\n"
        "| idle connections held | p50 ms | max ms |\n|---|---|---|\n"
        f"{table}\n\nTarget: every answer within {TARGET_MS:g} ms with {IDLE:,} idle connections ({verdict}).\n"
    )


if __name__ == "__main__":
    print(main())
