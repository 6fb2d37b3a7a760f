"""What routing one published event costs the platform's event loop, counted: instructions per event.

    python -m benchmarks.route_costs [--events 2000] [--tree DIR ...]

A publish on SQLite matches its events on the bus's rules and builds their
invocations before its write (`EventBus._route_published`, the publisher's
`router`; see `atomic.Route`). This counts that step alone, in process and
without the HTTP server, the store's writer or the workers around it, so the
count does not move with the machine's load as a whole platform's does: the
events benchmark's app (`benchmarks/apps/events_latency_app.py`, 100 rules,
one matching), EVENTS distinct `OrderPlaced` events as its load generator
makes them, each read as the publish route reads it (`from_http`) and
encoded as the publisher encodes it, then routed one by one with callgrind's
instrumentation on for the routing only. `--tree DIR` runs it on another
source tree (as PYTHONPATH), for a before/after in one run. Prints Markdown.
Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 200


def _instrument(state: str) -> None:
    control = shutil.which("callgrind_control") or "callgrind_control"
    subprocess.run([control, "-i", state, str(os.getpid())], check=True, capture_output=True)


async def _route_events(count: int) -> None:
    """The child's work, run from the tree under test (see the module)."""
    from benchmarks.apps.events_latency_app import app
    from benchmarks.loadgen_events import order_event
    from triggerfish.bus.bus import EventBus
    from triggerfish.bus.rules import Rules
    from triggerfish.events.http_binding import from_http
    from triggerfish.runtime.inprocess import InProcessRunner
    from triggerfish.runtime.invoke import Invoker
    from triggerfish.store import open_store

    with tempfile.TemporaryDirectory(prefix="bench-route-") as tmp:
        store = await open_store(f"sqlite:///{tmp}/store.db")
        try:
            rules = Rules(store, app.functions)
            await rules.load()
            bus = EventBus(store, rules, invoker=Invoker(InProcessRunner(app.functions), store))
            headers = (("content-type", "application/cloudevents+json"),)
            total = WARMUP + count
            events = [from_http(headers, json.dumps(order_event(f"e-{n}", n)).encode())[0] for n in range(total)]
            bodies = [bus.publisher.encode([event]) for event in events]
            # Trees before events14 route records alone; later ones take the events too.
            with_events = len(inspect.signature(bus._route_published).parameters) == 3
            route = bus._route_published
            for n in range(total):
                if n == WARMUP:
                    _instrument("on")
                if with_events:
                    routed = route("default", bodies[n], [events[n]])
                else:
                    routed = route("default", bodies[n])  # type: ignore[call-arg]
                assert routed is not None
            _instrument("off")
        finally:
            await store.close()


def _count(tree: Path, events: int) -> float:
    """Instructions per routed event from `tree`."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="bench-route-cg-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [valgrind, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        # This file by its path (`-P`: its directory not on sys.path), so the tree under test is the one imported.
        command += [sys.executable, "-P", str(Path(__file__).resolve()), "--child", "--events", str(events)]
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}"}
        subprocess.run(command, check=True, env=env, capture_output=True)
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
        return int(totals[-1].split()[1]) / events


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.route_costs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to route with")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_route_events(args.events))
        return
    trees = [tree.resolve() for tree in args.tree or [ROOT]]
    print(f"### Routing a published event: instructions per event ({args.events} events, 100 rules)\n")
    print("| tree | instructions (thousands) |")
    print("|---|---:|")
    for tree in trees:
        print(f"| `{tree}` | {_count(tree, args.events) / 1000:,.1f} |")


if __name__ == "__main__":
    main()
