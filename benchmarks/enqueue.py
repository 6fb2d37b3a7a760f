"""The async enqueue alone, in the platform's own process: what `POST .../invoke-batch` (or, with `--batch 1`,
Lambda's Invoke of type Event) costs per invocation, from the ASGI call to the 202 once durably queued.

    python -m benchmarks.enqueue [--requests 300] [--batch 50] [--rounds 3] [--tree DIR ...] [--instructions]

No HTTP server, no producers and no drain: each run starts a `Platform` on a fresh SQLite store (as
`triggerfish dev` makes it) with the no-op of `benchmarks/apps/async_app.py`, stops its dispatcher, and
calls the platform's ASGI app (`server.http.platform_asgi`, as `dev` serves it) with REQUESTS invoke-batch
requests of BATCH events, one at a time, after 20 to warm up. Prints the process's CPU per invocation (every
thread: the event loop and the store's writer), and with `--instructions` the instructions per invocation
under callgrind (collection switched on around the counted requests only; repeatable within a few percent
under any load, where the CPU is not), for every thread and for the event loop's thread alone. The async
benchmark's end-to-end figure is this and the drain (`benchmarks.drain`) sharing one event loop and one writer.
`--tree` runs each round in a child process with another source tree first on PYTHONPATH, the trees taking
turns, for a before/after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from benchmarks.processes import run_in_tree

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 20


async def enqueue_once(requests: int, batch: int, work: Path, *, count_instructions: bool) -> dict[str, float]:
    """CPU seconds (and, under callgrind, nothing more: the caller reads its totals) of `requests` invoke-batch
    requests of `batch` events each, on a fresh platform in `work` with its dispatcher stopped."""
    from triggerfish.server.http import platform_asgi
    from triggerfish.server.platform import Platform

    app_dir = work / "app"
    app_dir.mkdir()
    shutil.copy(ROOT / "benchmarks" / "apps" / "async_app.py", app_dir / "app.py")
    platform = Platform(str(app_dir / "app.py"), data_dir=work / "data")
    await platform.start()
    try:
        await platform.current.invoker.dispatcher.stop()
        app = platform_asgi(platform)
        # As the benchmark's producers send them (benchmarks/producers.py): one event is Lambda's Invoke.
        if batch == 1:
            body, path = json.dumps({"n": 1}).encode(), "/-/api/v1/functions/noop/invoke"
        else:
            body = json.dumps({"events": [{"n": n} for n in range(batch)]}).encode()
            path = "/-/api/v1/functions/noop/invoke-batch"
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/json"),
                (b"x-amz-invocation-type", b"Event"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        for _ in range(WARMUP):
            await app(dict(scope), receive, send)
        _collect(count_instructions, "on")
        before = os.times()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        after = os.times()
        _collect(count_instructions, "off")
    finally:
        await platform.stop(drain=False)
    if statuses != [202] * (WARMUP + requests):
        raise RuntimeError(f"not every request was answered 202: {sorted(set(statuses))}")
    return {"user": after.user - before.user, "system": after.system - before.system}


def _collect(count_instructions: bool, state: str) -> None:
    """Switch callgrind's collection in this process on or off (when it runs under callgrind)."""
    if count_instructions:
        control = shutil.which("callgrind_control") or "callgrind_control"
        subprocess.run([control, "-i", state, str(os.getpid())], check=True, capture_output=True)


def _child(requests: int, batch: int, count_instructions: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-enqueue-") as tmp:
        result = asyncio.run(enqueue_once(requests, batch, Path(tmp), count_instructions=count_instructions))
    import triggerfish

    print(json.dumps({**result, "tree": str(Path(triggerfish.__file__).parent.parent)}))


def _run_tree(tree: Path, requests: int, batch: int, count_instructions: bool) -> dict[str, float]:
    """One round from `tree`: CPU per invocation in µs, and instructions per invocation when counted."""
    # This file by its path (`-P`: its directory not on sys.path), so a tree from before it was written runs it too.
    command = [sys.executable, "-P", str(Path(__file__).resolve()), "--child", "--requests", str(requests)]
    command += ["--batch", str(batch)]
    invocations = requests * batch
    if not count_instructions:
        result = run_in_tree(command, tree, "the enqueue")
        return {"cpu_us": (result["user"] + result["system"]) / invocations * 1e6}
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="bench-enqueue-cg-") as tmp:
        out = Path(tmp) / "callgrind.out"
        prefix = [valgrind, "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes"]
        run_in_tree([*prefix, f"--callgrind-out-file={out}", *command, "--instructions"], tree, "the enqueue")
        # One file per thread (`callgrind.out-01`, ...); thread 1 is the main thread, the platform's event loop.
        by_thread = {path.name.rsplit("-", 1)[-1]: _total(path) for path in Path(tmp).glob("callgrind.out-*")}
        return {"instructions": sum(by_thread.values()) / invocations, "loop": by_thread["01"] / invocations}


def _total(path: Path) -> int:
    """The instructions a callgrind output file counted."""
    totals = [line for line in path.read_text().splitlines() if line.startswith(("totals:", "summary:"))]
    return int(totals[-1].split()[1]) if totals else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.enqueue", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to run the platform from")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.requests, args.batch, args.instructions)
        return
    trees = [tree.resolve() for tree in args.tree or [ROOT]]
    what = "instructions" if args.instructions else "cpu_us"
    figures: dict[Path, list[float]] = {tree: [] for tree in trees}
    loop: dict[Path, list[float]] = {tree: [] for tree in trees}
    for _ in range(args.rounds):
        for tree in trees:
            result = _run_tree(tree, args.requests, args.batch, args.instructions)
            figures[tree].append(result[what])
            if "loop" in result:
                loop[tree].append(result["loop"])
    unit = "instructions" if args.instructions else "CPU µs (every thread)"
    sent = "Invoke of type Event" if args.batch == 1 else f"invoke-batch of {args.batch}"
    print(f"### Enqueue per invocation: {unit}, {sent}, {args.requests} requests a round")
    print(f"\nLoad average (1 min) at the end: {os.getloadavg()[0]:.1f}.\n")
    if args.instructions:
        print("| tree | every thread, by round | median | the event loop's thread, by round | median |")
        print("|---|---|---:|---|---:|")
        for tree, values in figures.items():
            shown, on_loop = (", ".join(f"{value:,.0f}" for value in row) for row in (values, loop[tree]))
            medians = statistics.median(values), statistics.median(loop[tree])
            print(f"| `{tree}` | {shown} | {medians[0]:,.0f} | {on_loop} | {medians[1]:,.0f} |")
        return
    print("| tree | by round | median |")
    print("|---|---|---:|")
    for tree, values in figures.items():
        shown = ", ".join(f"{value:.1f}" for value in values)
        print(f"| `{tree}` | {shown} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()
