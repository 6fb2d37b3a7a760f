"""HTTP throughput of two checkouts' `triggerfish dev`, in turns in one run, beside bare Starlette: before and after.

    python -m benchmarks.side_by_side_http --baseline /path/to/main [--rounds 4] [--seconds 4] [--loop uvloop ...]
        [--functions-framework]

Starts, for each loop asked for (default uvloop and asyncio), `triggerfish dev`
serving `benchmarks/apps/http_app.py` from the baseline checkout's code and
from this one's (each as PYTHONPATH, this interpreter), and bare Starlette on
uvicorn with the parser this checkout serves with (httptools). Each round loads
every server in turn with wrk (32 connections, SECONDS s), the order of the
two checkouts alternating per round; the platform's CPU per request is taken
from its process tree. Prints Markdown: per server the median req/s with the
range and the load average, and the per-round ratios (after / before, after /
Starlette), medians with the range. The machine is shared: the turns see the
same load, so the ratios mean more than either figure alone.

`--functions-framework` serves functions-framework too (its own command, as
`bench_http` runs it) and loads it in every round after the checkouts, for
issue 9's ratio (the platform's throughput over functions-framework's) of
both checkouts in the same turns.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_http import CONNECTIONS, PARSER, PATH, STARLETTE, _functions_framework
from benchmarks.measure import load_average, spread
from benchmarks.processes import Child, serve_on_free_port, tree_cpu_seconds
from benchmarks.wrk import run_wrk

HERE = Path(__file__).resolve().parents[1]
FF = "functions-framework"


def dev_command(tree: Path, loop: str, port: int, work: Path) -> list[str]:
    """`triggerfish dev` serving the HTTP benchmark's app on `port` under `loop`, its data in `work` (the tree
    is chosen by the caller's PYTHONPATH)."""
    app = str(HERE / "benchmarks" / "apps" / "http_app.py")
    data = str(work / f"{tree.name}-{loop}-{port}")
    dev = ["triggerfish", "dev", app, "--port", str(port), "--no-reload", "--quiet", "--data-dir", data]
    return [sys.executable, "-m", "benchmarks.launch", "--loop", loop, *dev]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the checkout to compare with (e.g. main)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--loop", action="append", choices=("uvloop", "asyncio"))
    parser.add_argument("--functions-framework", action="store_true", help="load functions-framework in each round too")
    args = parser.parse_args()
    loops = args.loop or ["uvloop", "asyncio"]
    trees = {"before": args.baseline.resolve(), "after": HERE}
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    start_load = load_average()
    children: dict[str, Child] = {}
    urls: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="side-http-") as tmp:
        work = Path(tmp)
        try:
            for loop in loops:
                for name, tree in trees.items():
                    key = f"{name}-{loop}"
                    children[key], port = serve_on_free_port(
                        lambda port, tree=tree, loop=loop: dev_command(tree, loop, port, work),  # type: ignore[misc]
                        lambda port: f"http://127.0.0.1:{port}{PATH}",
                        log=work / f"{key}.log",
                        cwd=tree,
                        env={**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{HERE}"},
                    )
                    urls[key] = f"http://127.0.0.1:{port}{PATH}"
                key = f"starlette-{loop}"
                children[key], port = serve_on_free_port(
                    lambda port, loop=loop: [  # type: ignore[misc]
                        sys.executable,
                        "-m",
                        "uvicorn",
                        STARLETTE,
                        "--host=127.0.0.1",
                        f"--port={port}",
                        f"--http={PARSER}",
                        f"--loop={loop}",
                        "--workers=1",
                        "--no-access-log",
                        "--log-level=warning",
                    ],
                    lambda port: f"http://127.0.0.1:{port}{PATH}",
                    log=work / f"{key}.log",
                    cwd=HERE,
                )
                urls[key] = f"http://127.0.0.1:{port}{PATH}"
            if args.functions_framework:
                children[FF], port = serve_on_free_port(
                    lambda port: _functions_framework(port, work),
                    lambda port: f"http://127.0.0.1:{port}{PATH}",
                    log=work / f"{FF}.log",
                    cwd=HERE,
                )
                urls[FF] = f"http://127.0.0.1:{port}{PATH}"
            for url in urls.values():
                run_wrk(url, connections=CONNECTIONS, seconds=2)  # forks workers, fills caches
            runs: dict[str, list[tuple[float, float, float]]] = {key: [] for key in urls}
            for number in range(args.rounds):
                for loop in loops:
                    order = ["before", "after"] if number % 2 == 0 else ["after", "before"]
                    peers = [f"starlette-{loop}"] + ([FF] if args.functions_framework else [])
                    for key in [f"{name}-{loop}" for name in order] + peers:
                        children[key].check_alive(key)
                        load = load_average()
                        cpu = tree_cpu_seconds(children[key].pid)
                        result = run_wrk(urls[key], connections=CONNECTIONS, seconds=args.seconds)
                        used = tree_cpu_seconds(children[key].pid) - cpu
                        per_request_us = used / max(result.requests, 1) * 1e6
                        runs[key].append((result.rps, per_request_us, load))
        finally:
            for child in children.values():
                child.stop()
    print(f"Side by side, {began}; load average {start_load:.1f} at the start, {load_average():.1f} at the end;")
    print(f"before: {trees['before']}, after: {trees['after']}; wrk {CONNECTIONS} connections, {args.seconds:g} s.\n")
    print("| server | req/s (median, range) | CPU µs per request (server's tree) | load avg at each run |")
    print("|---|---:|---:|---|")
    for key, series in runs.items():
        loads = ", ".join(f"{load:.1f}" for _, _, load in series)
        cpu_us = statistics.median(cpu for _, cpu, _ in series)
        print(f"| {key} | {spread([rps for rps, _, _ in series])} | {cpu_us:.0f} | {loads} |")
    print()
    for loop in loops:
        after, before, ceiling = runs[f"after-{loop}"], runs[f"before-{loop}"], runs[f"starlette-{loop}"]
        gain = [a[0] / b[0] for a, b in zip(after, before, strict=True)]
        cpu_ratio = [a[1] / b[1] for a, b in zip(after, before, strict=True)]
        share = [a[0] / c[0] for a, c in zip(after, ceiling, strict=True)]
        share_before = [b[0] / c[0] for b, c in zip(before, ceiling, strict=True)]
        ahead = sum(g > 1 for g in gain)
        print(
            f"- {loop}: after / before {spread(gain, 2)}x (ahead in {ahead} of {len(gain)} rounds), CPU per request"
            f" {spread(cpu_ratio, 2)}x; after / Starlette {spread(share, 2)}x,"
            f" before / Starlette {spread(share_before, 2)}x."
        )
        if args.functions_framework:
            # functions-framework ran once per loop's turns in each round: the turn beside this loop's checkouts.
            peer = runs[FF][loops.index(loop) :: len(loops)]
            over_after = [a[0] / f[0] for a, f in zip(after, peer, strict=True)]
            over_before = [b[0] / f[0] for b, f in zip(before, peer, strict=True)]
            print(
                f"  after / functions-framework {spread(over_after, 2)}x, before / functions-framework"
                f" {spread(over_before, 2)}x (issue 9's target: at least 3x)."
            )


if __name__ == "__main__":
    main()
