"""The benchmarks' launcher for the platform's process: the event loop it runs on, and memory snapshots.

    python -m benchmarks.launch [--loop asyncio|uvloop] [--tracemalloc FRAMES --snapshots DIR] triggerfish ARGS...
    python -m benchmarks.launch [--loop ...] platform APP --port PORT --data-dir DIR [--store URL] [--no-metrics]
        [--keep-inputs]

`triggerfish ARGS...` runs the `triggerfish` command as it ships (`dev`,
`serve`), after choosing the event loop: `--loop uvloop` installs uvloop's
event loop policy first, so the `asyncio.run` inside the command runs on
uvloop (`pip install 'triggerfish[fast]'`). This is the benchmarks' switch
only; the platform itself does not choose a loop.

`platform APP ...` is what `triggerfish dev --no-reload` composes (the
`Platform` behind its ASGI app on uvicorn) with a store URL of its choice,
which `dev` does not take: the benchmarks run it on PostgreSQL this way.
`--no-metrics` leaves the invocation records uncounted (GET /-/metrics then
answers zeros): the other side of the metrics benchmark. `--keep-inputs`
keeps every invocation's input beside its record, as `triggerfish dev` does
(the inputs benchmark's "on" side).

`--tracemalloc FRAMES` starts tracemalloc (keeping FRAMES frames per
allocation); each SIGUSR1 then writes a snapshot to DIR/snapshot-N.bin
(after a garbage collection), and DIR/snapshot-N.done once it is complete,
holding the traced memory then and at its peak so far (JSON, bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

from triggerfish.cli.serving import LOOP_VARIABLE, run_platform


def use_loop(name: str) -> None:
    """Make the platform's process (and `asyncio.run`) use `name`'s event loop: "asyncio" or "uvloop"."""
    os.environ[LOOP_VARIABLE] = name  # what `triggerfish dev` and `serve` read (cli/serving.py)
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise SystemExit("--loop uvloop needs uvloop: pip install 'triggerfish[fast]'") from None
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif name != "asyncio":
        raise SystemExit(f"--loop takes asyncio or uvloop, not {name!r}")


def snapshots_on_signal(directory: Path, frames: int) -> None:
    """Start tracemalloc; every SIGUSR1 dumps a snapshot into `directory`, numbered from 1."""
    directory.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(frames)
    taken = [0]

    def dump(signum: int, frame: FrameType | None) -> None:
        taken[0] += 1
        gc.collect()
        path = directory / f"snapshot-{taken[0]}.bin"
        tracemalloc.take_snapshot().dump(str(path))
        current, peak = tracemalloc.get_traced_memory()
        # The reader waits for this file: the dump itself is not atomic.
        path.with_suffix(".done").write_text(json.dumps({"current": current, "peak": peak}))

    signal.signal(signal.SIGUSR1, dump)


async def _platform(
    app: str, port: int, data_dir: Path, store_url: str | None, metrics: bool = True, keep_inputs: bool = False
) -> None:
    from triggerfish.cli.serving import serve_until_stopped, stop_on_signals
    from triggerfish.gateway import GatewayServer
    from triggerfish.observe.metrics import Metrics
    from triggerfish.server.http import platform_asgi
    from triggerfish.server.platform import Platform

    stop = stop_on_signals()
    platform = Platform(app, data_dir=data_dir, store_url=store_url)
    platform.keep_inputs = keep_inputs
    counted = Metrics()
    if metrics:
        counted.watch(platform)  # as `triggerfish dev` does
    await platform.start()
    server = GatewayServer(platform_asgi(platform, metrics=counted), "127.0.0.1", port, handle_signals=False)
    await server.start()
    print(f"serving on {server.url} (store {platform.store_url})", flush=True)
    await serve_until_stopped(server, stop, lambda: platform.stop(drain=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.launch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES")
    parser.add_argument("--snapshots", type=Path, default=None, metavar="DIR")
    parser.add_argument("what", choices=("triggerfish", "platform"))
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    use_loop(args.loop)
    if args.tracemalloc:
        if args.snapshots is None:
            parser.error("--tracemalloc needs --snapshots DIR")
        snapshots_on_signal(args.snapshots, args.tracemalloc)
    if args.what == "triggerfish":
        from triggerfish.cli.main import cli

        cli.main(args=args.arguments, prog_name="triggerfish")
        return
    platform = argparse.ArgumentParser(prog="python -m benchmarks.launch platform")
    platform.add_argument("app")
    platform.add_argument("--port", type=int, required=True)
    platform.add_argument("--data-dir", type=Path, required=True)
    platform.add_argument("--store", default=None)
    platform.add_argument("--no-metrics", action="store_true")
    platform.add_argument("--keep-inputs", action="store_true")
    options = platform.parse_args(args.arguments)
    run_platform(
        _platform(
            options.app, options.port, options.data_dir, options.store, not options.no_metrics, options.keep_inputs
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
