"""The event loop's instructions for one HTTP request through the gateway and the sync path, in process, counted.

    python -m benchmarks.gateway_costs [--tree DIR ...] [--requests 2000]

Runs the way a request takes on the platform's event loop between the server
and the worker, without either: `ForwardedHeaders` -> `Gateway` ->
`Invoker.invoke` (inputs kept, as `triggerfish dev` keeps them) -> a runner
that answers at once -> the invocation record's batch on a memory store, for
the HTTP benchmark's request (`GET /hello?n=1` with wrk's one header), 32
requests in flight on asyncio. Each tree (as PYTHONPATH; default this
checkout) runs twice under valgrind's callgrind, once with a warm-up only and
once with REQUESTS requests more; the difference divided by REQUESTS is one
request's instructions. Deterministic to a fraction of a percent on any load,
where `benchmarks.costs` (the whole platform under wrk: uvicorn, the sockets,
the worker, the store's writer) moves by several: a change to the gateway,
the event or the sync path is seen here first. Prints Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 640
IN_FLIGHT = 32
#: The benchmark's request as uvicorn hands it over: wrk sends one header.
SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8080),
    "client": ("127.0.0.1", 40000),
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "path": "/hello",
    "raw_path": b"/hello",
    "query_string": b"n=1",
}
HEADERS = [(b"host", b"127.0.0.1:8080")]


async def _requests(count: int) -> None:
    """Serve a warm-up, then `count` requests, `IN_FLIGHT` at a time, their records settled every 320."""
    from triggerfish import App
    from triggerfish.gateway import Gateway, RouteTable
    from triggerfish.gateway.forwarded import ForwardedHeaders
    from triggerfish.model import FunctionSettings
    from triggerfish.runtime.invoke import Invoker
    from triggerfish.runtime.types import InvokeOutcome, InvokeRequest
    from triggerfish.store import open_store

    app = App("bench-http")

    @app.http("GET", "/hello")
    def hello(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"ok": True}

    class AtOnce:
        """A runner whose handler answers at once, as the worker's frame would say."""

        app_name = "bench-http"

        def functions(self) -> list[str]:
            return list(app.functions)

        def settings(self, function: str) -> FunctionSettings:
            return app.functions[function].settings

        async def run(self, request: InvokeRequest, *, wait: float = 1.0) -> InvokeOutcome:
            await asyncio.sleep(0)  # the worker's answer comes on a later turn of the loop
            now = time.time()
            return InvokeOutcome(
                request_id=request.request_id,
                ok=True,
                result={"ok": True, "n": 1},
                duration_ms=0.3,
                started_at=now,
                ended_at=now,
                worker_pid=1,
                version="1",
                max_memory_used_mb=40,
                input_bytes=500,
                output_bytes=17,
            )

    store = await open_store("memory://")
    invoker = Invoker(AtOnce(), store, keep_inputs=True)
    gateway = ForwardedHeaders(Gateway(RouteTable.from_specs(app.functions), invoker.invoke))

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    async def one() -> None:
        await gateway({**SCOPE, "headers": list(HEADERS)}, receive, send)

    async def serve(total: int) -> None:
        for start in range(0, total, IN_FLIGHT):
            await asyncio.gather(*(one() for _ in range(min(IN_FLIGHT, total - start))))
            if start % 320 == 0:
                await invoker.records.settled()
        await invoker.records.settled()

    await serve(WARMUP)
    await serve(count)
    await store.close()


def _instructions(tree: Path, count: int, work: Path) -> int:
    """Instructions the child ran under callgrind for the warm-up and `count` requests, with `tree` first."""
    out = work / f"callgrind-{count}.out"
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-P", __file__]
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}"}
    done = subprocess.run([*command, "--child", str(count)], env=env, capture_output=True, text=True, check=True)
    imported = Path(done.stdout.strip().splitlines()[-1])
    if not imported.is_relative_to(tree):
        raise RuntimeError(f"the child imported Triggerfish from {imported}, not from {tree}")
    for line in reversed(out.read_text().splitlines()):
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway_costs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to run (default: this checkout)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        asyncio.run(_requests(args.child))
        import triggerfish

        print(Path(triggerfish.__file__).resolve().parent)
        return
    trees: list[Path] = [tree.resolve() for tree in args.tree] if args.tree else [ROOT]
    print("### The gateway and the sync path, in process: instructions per request\n")
    print(
        f"callgrind, ({WARMUP} + {args.requests} requests) - ({WARMUP} + 0), divided by {args.requests};"
        f" load average {os.getloadavg()[0]:.1f} at the start.\n"
    )
    print("| tree | instructions per request (thousands) |")
    print("|---|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        for tree in trees:
            base = _instructions(tree, 0, Path(tmp))
            loaded = _instructions(tree, args.requests, Path(tmp))
            print(f"| `{tree}` | {(loaded - base) / args.requests / 1000:,.1f} |")


if __name__ == "__main__":
    main()
