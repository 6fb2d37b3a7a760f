"""HTTP: the same small JSON handler behind Triggerfish's gateway, bare Starlette and Google's functions-framework.

    .venv/bin/python -m benchmarks.run http

The handler returns `{"ok": true, "n": <query parameter n>}`. Servers, each
in its own process, all on loopback:
- Triggerfish, production path: what `triggerfish dev` serves, the
  Platform (bus, queues, topics and schedules running) behind its ASGI app
  on uvicorn, invocation records written to its SQLite store, the handler
  in worker processes (ProcessRunner);
- Triggerfish with the InProcessRunner (handlers in threads of the server);
- the gateway alone: its `invoke` calls the handler directly (no runner,
  no invocation records), to show what the gateway itself costs;
- a bare Starlette app on the same uvicorn settings (the floor);
- functions-framework as its CLI serves it (gunicorn, gthread workers).

The load generator is another process: asyncio over raw keep-alive
sockets, so that its own cost is small and the same for every server.
Throughput: CONCURRENCY connections for REQUESTS requests (rps, p50, p99).
Latency: one connection, one request at a time (p50, p99), which is where
"within 1 ms of bare Starlette" is meaningful: under load, p50 is mostly
queueing and follows throughput. Each figure is the median of ROUNDS runs,
the servers measured in turn in every round.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROUNDS = 3
REQUESTS = 3000
CONCURRENCY = 32
LATENCY_REQUESTS = 600
WARMUP = 300
THROUGHPUT_RATIO_TARGET = 3.0
P50_GAP_TARGET_MS = 1.0
SERVERS = ("triggerfish", "triggerfish-inprocess", "gateway-only", "starlette", "functions-framework")

TRIGGERFISH_APP = """
from triggerfish import App

app = App("bench")


@app.http("GET", "/hello", concurrency=16)
def hello(event, context):
    n = int((event.get("queryStringParameters") or {}).get("n", "0"))
    return {"ok": True, "n": n}
"""

FUNCTIONS_FRAMEWORK_APP = """
def hello(request):
    return {"ok": True, "n": int(request.args.get("n", "0"))}
"""


# --- the servers (each runs in its own process: `python -m benchmarks.bench_http serve KIND PORT DIR`) -------


async def _serve_triggerfish(port: int, work: Path) -> None:
    """What `triggerfish dev` serves: the Platform (every trigger running) behind its ASGI app."""
    from triggerfish.gateway import GatewayServer
    from triggerfish.server.http import platform_asgi
    from triggerfish.server.platform import Platform

    async with (
        Platform(str(work / "bench_app.py"), data_dir=work / "platform") as platform,
        GatewayServer(platform_asgi(platform), port=port) as server,
    ):
        await server.wait()


async def _serve_triggerfish_in_process(port: int, work: Path) -> None:
    from triggerfish.gateway import Gateway, GatewayServer, RouteTable
    from triggerfish.loader import load_app
    from triggerfish.runtime.inprocess import InProcessRunner
    from triggerfish.runtime.invoke import Invoker
    from triggerfish.store import open_store

    store = await open_store(f"sqlite:///{work}/inprocess.db")
    specs = load_app(work / "bench_app.py").functions
    invoker = Invoker(InProcessRunner(specs), store)
    gateway = Gateway(RouteTable.from_specs(specs), invoker.invoke, invoke_wait=10.0)
    async with GatewayServer(gateway, port=port) as server:
        await server.wait()


async def _serve_gateway_only(port: int) -> None:
    from triggerfish.gateway import Gateway, GatewayServer, Route, RouteTable

    async def invoke(function: str, event: Any = None, **_: Any) -> Any:
        n = int((event.get("queryStringParameters") or {}).get("n", "0"))
        return {"ok": True, "n": n}

    gateway = Gateway(RouteTable([Route("GET", "/hello", "hello")]), invoke)
    async with GatewayServer(gateway, port=port) as server:
        await server.wait()


async def _serve_starlette(port: int) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from triggerfish.gateway import GatewayServer

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "n": int(request.query_params.get("n", "0"))})

    async with GatewayServer(Starlette(routes=[Route("/hello", hello)]), port=port) as server:
        await server.wait()


def serve(kind: str, port: int, work: Path) -> None:
    if kind == "starlette":
        asyncio.run(_serve_starlette(port))
    elif kind == "gateway-only":
        asyncio.run(_serve_gateway_only(port))
    elif kind == "triggerfish-inprocess":
        asyncio.run(_serve_triggerfish_in_process(port, work))
    else:
        asyncio.run(_serve_triggerfish(port, work))


# --- the load generator (its own process: `python -m benchmarks.bench_http load PORT REQUESTS CONCURRENCY`) ----


async def _connection(port: int, count: int, latencies: list[float], failures: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(count):
            request = f"GET /hello?n={i} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200") or b'"ok":true' not in body.replace(b" ", b""):
                failures.append(1)
    finally:
        writer.close()


async def _load(port: int, requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    failures: list[int] = []
    share, extra = divmod(requests, concurrency)
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(port, share + (1 if i < extra else 0), latencies, failures) for i in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "failures": len(failures),
    }


def load(port: int, requests: int, concurrency: int) -> dict[str, float]:
    """Run the load generator in a fresh process and return its figures."""
    command = [sys.executable, "-m", "benchmarks.bench_http", "load", str(port), str(requests), str(concurrency)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout
    figures: dict[str, float] = json.loads(output)
    return figures


# --- the run -----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(kind: str, port: int, work: Path) -> subprocess.Popen[bytes]:
    if kind == "functions-framework":
        executable = shutil.which("functions-framework", path=str(Path(sys.executable).parent)) or "functions-framework"
        command = [
            executable,
            "--target=hello",
            f"--source={work / 'ff_main.py'}",
            "--host=127.0.0.1",
            f"--port={port}",
        ]
    else:
        command = [sys.executable, "-m", "benchmarks.bench_http", "serve", kind, str(port), str(work)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_ready(port: int, process: subprocess.Popen[bytes], kind: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {kind} server exited with {process.returncode} before it served")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /hello?n=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the {kind} server did not answer within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)  # its own session: the workers and gunicorn's children go too
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def measure() -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        work = Path(tmp)
        (work / "bench_app.py").write_text(TRIGGERFISH_APP)
        (work / "ff_main.py").write_text(FUNCTIONS_FRAMEWORK_APP)
        ports = {kind: _free_port() for kind in SERVERS}
        processes: dict[str, subprocess.Popen[bytes]] = {}
        runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in SERVERS}
        try:
            for kind in SERVERS:
                processes[kind] = _start(kind, ports[kind], work)
            for kind in SERVERS:
                _wait_ready(ports[kind], processes[kind], kind)
                load(ports[kind], WARMUP, CONCURRENCY)  # warm workers, caches and connections' first costs
            for _ in range(ROUNDS):
                for kind in SERVERS:
                    throughput = load(ports[kind], REQUESTS, CONCURRENCY)
                    latency = load(ports[kind], LATENCY_REQUESTS, 1)
                    runs[kind].append(
                        {
                            "rps": throughput["rps"],
                            "loaded_p50_ms": throughput["p50_ms"],
                            "loaded_p99_ms": throughput["p99_ms"],
                            "p50_ms": latency["p50_ms"],
                            "p99_ms": latency["p99_ms"],
                            "failures": throughput["failures"] + latency["failures"],
                        }
                    )
        finally:
            for process in processes.values():
                _stop(process)
    return {
        kind: {key: statistics.median(run[key] for run in kinds) for key in kinds[0]} for kind, kinds in runs.items()
    }


def main() -> str:
    figures = measure()
    ours, inproc = figures["triggerfish"], figures["triggerfish-inprocess"]
    floor, peer, alone = figures["starlette"], figures["functions-framework"], figures["gateway-only"]
    ratio = ours["rps"] / peer["rps"]
    gap = ours["p50_ms"] - floor["p50_ms"]
    rows = [
        "| server | req/s (32 conns) | p50 / p99 ms (32 conns) | p50 / p99 ms (1 conn) | failed |",
        "|---|---|---|---|---|",
    ]
    names = {
        "triggerfish": "Triggerfish platform (`triggerfish dev`), ProcessRunner",
        "triggerfish-inprocess": "Triggerfish gateway, InProcessRunner",
        "gateway-only": "Triggerfish gateway alone (handler called directly)",
        "starlette": "bare Starlette on uvicorn",
        "functions-framework": "functions-framework (gunicorn gthread)",
    }
    for kind in SERVERS:
        f = figures[kind]
        rows.append(
            f"| {names[kind]} | {f['rps']:,.0f} | {f['loaded_p50_ms']:.2f} / {f['loaded_p99_ms']:.2f}"
            f" | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} | {f['failures']:.0f} |"
        )
    met_ratio = "met" if ratio >= THROUGHPUT_RATIO_TARGET else "NOT met"
    met_gap = "met" if gap <= P50_GAP_TARGET_MS else "NOT met"
    return "\n".join(
        [
            "## HTTP gateway",
            "",
            f"The same JSON handler behind each server; {REQUESTS} requests over {CONCURRENCY} keep-alive connections"
            f" (throughput), then {LATENCY_REQUESTS} one at a time (latency); medians of {ROUNDS} rounds. The load"
            " generator is a separate Python process on loopback (asyncio, raw sockets). Triggerfish's production"
            " path writes an invocation record per request to SQLite.",
            "",
            *rows,
            "",
            f"- Throughput, Triggerfish (ProcessRunner) / functions-framework: **{ratio:.2f}x**"
            f" (target ≥ {THROUGHPUT_RATIO_TARGET:g}x): {met_ratio}."
            f" In-process runner: {inproc['rps'] / peer['rps']:.2f}x.",
            f"- p50 latency (1 connection), Triggerfish (ProcessRunner) minus bare Starlette: **{gap:+.2f} ms**"
            f" (target ≤ {P50_GAP_TARGET_MS:g} ms): {met_gap}."
            f" In-process runner: {inproc['p50_ms'] - floor['p50_ms']:+.2f} ms.",
            f"- The gateway alone: {alone['rps'] / floor['rps']:.2f}x bare Starlette's throughput,"
            f" p50 {alone['p50_ms'] - floor['p50_ms']:+.2f} ms; the rest of Triggerfish's cost is the invocation"
            " path (runner, worker round trip, invocation record).",
        ]
    )


def _cli(argv: list[str]) -> None:
    if argv[0] == "serve":
        serve(argv[1], int(argv[2]), Path(argv[3]))
    elif argv[0] == "load":
        print(json.dumps(asyncio.run(_load(int(argv[1]), int(argv[2]), int(argv[3])))))
    else:
        raise SystemExit(
            f"usage: python -m benchmarks.bench_http serve KIND PORT DIR | load PORT REQUESTS CONNS; not {argv}"
        )


if __name__ == "__main__":
    _cli(sys.argv[1:])
