"""HTTP: one small JSON handler behind Triggerfish's whole platform, bare Starlette and functions-framework, under wrk.

    scripts/bench http

Each server runs as it ships for production, in its own process, with one
server process (workers = 1) each:
- Triggerfish: `triggerfish dev` (the whole platform: bus, queues, topics and
  schedules running, each request's invocation record written to SQLite,
  the handler in a worker process forked from the app's zygote), on uvicorn
  as the platform configures it (httptools behind the connection guard),
  on uvloop (its default) and on asyncio's event loop
  (`python -m benchmarks.launch --loop asyncio`); for the record, on uvloop
  with h11 (`TRIGGERFISH_HTTP=h11`), the parser it served with before;
- bare Starlette on uvicorn with the same settings (httptools; uvloop, then
  asyncio): the ceiling, since the platform serves through uvicorn too;
- bare Starlette with its handler's work one process hop away
  (`benchmarks/apps/http_process_hop.py`, uvloop): the floor under any design
  that runs a function outside the server's process, as Triggerfish does;
- for the record, Triggerfish's gateway alone on those settings, its
  handler called directly (`benchmarks/apps/http_gateway_only.py`): the
  gateway's own cost, apart from the invocation path behind it;
- functions-framework's own command: gunicorn with its gthread worker, one
  worker of 4 threads per core (8 here), as Google ships it (its CLI's
  production server: `WORKERS` 1 and `THREADS` 4 per core by default).

wrk (one thread) loads each for DURATION s over CONNECTIONS keep-alive
connections (throughput), then LATENCY_DURATION s over one connection, one
request at a time (latency, where "within 1 ms of bare Starlette" means
something: under load, latency is queueing and follows throughput). The
servers take turns, ROUNDS rounds; figures are medians with the range.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import Runs, interleave, loads, spread
from benchmarks.processes import Child, launcher, serve_on_free_port, tree_cpu_seconds
from benchmarks.wrk import WrkMissing, WrkResult, run_wrk, wrk_path

ROUNDS = int(os.environ.get("TRIGGERFISH_BENCH_HTTP_ROUNDS", "3"))
DURATION = float(os.environ.get("TRIGGERFISH_BENCH_HTTP_SECONDS", "5"))
LATENCY_DURATION = 3.0
WARMUP = 2.0
CONNECTIONS = 32
PEER_RATIO_TARGET = 3.0
CEILING_RATIO_TARGET = 0.7
P50_GAP_TARGET_MS = 1.0
APPS = Path(__file__).resolve().parent / "apps"
PATH = "/hello?n=7"
STARLETTE = "benchmarks.apps.http_starlette:app"
#: Bare Starlette with the handler's work in worker processes: the floor under any out-of-process function.
STARLETTE_HOP = "benchmarks.apps.http_process_hop:app"
#: The parser the platform serves with (triggerfish.gateway.server.http_parser), and so its peers on uvicorn.
PARSER = "httptools"


@dataclass(frozen=True, slots=True)
class Server:
    label: str
    command: Callable[[int, Path], list[str]]


def _triggerfish(loop: str, parser: str = PARSER) -> Callable[[int, Path], list[str]]:
    def command(port: int, work: Path) -> list[str]:
        app = str(APPS / "http_app.py")
        data = str(work / f"triggerfish-{loop}-{parser}")
        # --quiet: the per-invocation lines dev prints are for a person at a terminal, not part of what is measured.
        arguments = ["dev", app, "--port", str(port), "--no-reload", "--quiet", "--data-dir", data]
        # The variable `triggerfish dev` reads for its parser (triggerfish/gateway/server.py).
        return ["env", f"TRIGGERFISH_HTTP={parser}", *launcher(loop, "triggerfish", *arguments)]

    return command


def _uvicorn(app: str, loop: str) -> Callable[[int, Path], list[str]]:
    def command(port: int, work: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host=127.0.0.1",
            f"--port={port}",
            f"--http={PARSER}",
            f"--loop={loop}",
            "--workers=1",
            "--no-access-log",
            "--log-level=warning",
        ]

    return command


def _functions_framework(port: int, work: Path) -> list[str]:
    executable = shutil.which("functions-framework", path=str(Path(sys.executable).parent)) or "functions-framework"
    source = APPS / "http_functions_framework.py"
    return [executable, "--target=hello", f"--source={source}", "--host=127.0.0.1", f"--port={port}"]


SERVERS = {
    "triggerfish": Server("Triggerfish (`triggerfish dev`), asyncio", _triggerfish("asyncio")),
    "triggerfish-uvloop": Server("Triggerfish (`triggerfish dev`), uvloop (its default)", _triggerfish("uvloop")),
    "triggerfish-uvloop-h11": Server(
        "Triggerfish (`triggerfish dev`), uvloop, h11 (`TRIGGERFISH_HTTP=h11`)", _triggerfish("uvloop", "h11")
    ),
    "gateway-only": Server(
        f"Triggerfish's gateway alone (handler called directly) on uvicorn ({PARSER}), asyncio",
        _uvicorn("benchmarks.apps.http_gateway_only:app", "asyncio"),
    ),
    "starlette": Server(f"bare Starlette on uvicorn ({PARSER}), asyncio", _uvicorn(STARLETTE, "asyncio")),
    "starlette-uvloop": Server(f"bare Starlette on uvicorn ({PARSER}), uvloop", _uvicorn(STARLETTE, "uvloop")),
    "starlette-hop-uvloop": Server(
        f"bare Starlette, its handler one process hop away, on uvicorn ({PARSER}), uvloop",
        _uvicorn(STARLETTE_HOP, "uvloop"),
    ),
    "functions-framework": Server("functions-framework (gunicorn gthread, 1 worker x 8 threads)", _functions_framework),
}


@dataclass(frozen=True, slots=True)
class Round:
    loaded: WrkResult
    single: WrkResult
    #: Cores the server's processes (its process and everything it started) used during the loaded run.
    cores: float


def measure(work: Path) -> dict[str, Runs[Round]]:
    children: dict[str, Child] = {}
    urls: dict[str, str] = {}
    try:
        for name, server in SERVERS.items():
            children[name], port = serve_on_free_port(
                lambda port, server=server: server.command(port, work),  # type: ignore[misc]
                lambda port: f"http://127.0.0.1:{port}{PATH}",
                log=work / f"{name}.log",
            )
            urls[name] = f"http://127.0.0.1:{port}{PATH}"
        for url in urls.values():
            run_wrk(url, connections=CONNECTIONS, seconds=WARMUP)  # forks workers, fills caches

        def measured(name: str) -> Callable[[], Round]:
            def run() -> Round:
                child = children[name]
                child.check_alive(SERVERS[name].label)
                cpu, began = tree_cpu_seconds(child.pid), time.monotonic()
                loaded = run_wrk(urls[name], connections=CONNECTIONS, seconds=DURATION)
                cores = (tree_cpu_seconds(child.pid) - cpu) / (time.monotonic() - began)
                return Round(loaded, run_wrk(urls[name], connections=1, seconds=LATENCY_DURATION), cores)

            return run

        return interleave({name: measured(name) for name in SERVERS}, ROUNDS)
    finally:
        for child in children.values():
            child.stop()


def _ratios(runs: dict[str, Runs[Round]], ours: str, other: str, pick: Callable[[Round], float]) -> list[float]:
    """Per round: ours / other (the servers ran back to back in each round, so the ratio cancels the drift)."""
    return [pick(a.result) / pick(b.result) for a, b in zip(runs[ours].runs, runs[other].runs, strict=False)]


def _gaps(runs: dict[str, Runs[Round]], ours: str, other: str) -> list[float]:
    return [
        a.result.single.p50_ms - b.result.single.p50_ms for a, b in zip(runs[ours].runs, runs[other].runs, strict=False)
    ]


def _verdict(value: float, target: float, *, at_most: bool = False) -> str:
    met = value <= target if at_most else value >= target
    return "met" if met else "**NOT met**"


def report(runs: dict[str, Runs[Round]]) -> str:
    rows = [
        f"| server | req/s, {CONNECTIONS} conns | p50 / p99 ms, {CONNECTIONS} conns | p50 / p99 ms, 1 conn"
        " | server CPU, cores | errors | load avg at each run |",
        "|---|---:|---|---|---:|---:|---|",
    ]
    for name, server in SERVERS.items():
        series = runs[name]
        if series.error is not None or not series.runs:
            rows.append(f"| {server.label} | could not run: {series.error} | | | | | |")
            continue
        loaded = [r.result.loaded for r in series.runs]
        single = [r.result.single for r in series.runs]
        rows.append(
            f"| {server.label} | {spread([r.rps for r in loaded])}"
            f" | {statistics.median(r.p50_ms for r in loaded):.2f} / {statistics.median(r.p99_ms for r in loaded):.2f}"
            f" | {statistics.median(r.p50_ms for r in single):.2f} / {statistics.median(r.p99_ms for r in single):.2f}"
            f" | {statistics.median(r.result.cores for r in series.runs):.2f}"
            f" | {sum(r.errors for r in loaded + single)} | {loads(series)} |"
        )
    lines = [
        "## HTTP",
        "",
        f"One small JSON handler behind each server, one server process each; wrk (1 thread) for {DURATION:g} s over"
        f" {CONNECTIONS} keep-alive connections (throughput), then {LATENCY_DURATION:g} s over one connection"
        f" (latency). {ROUNDS} rounds, the servers taking turns; medians, with the lowest and highest run."
        " Triggerfish is `triggerfish dev` as it ships (the whole platform, the handler in a worker process, an"
        f" invocation record per request in SQLite); bare Starlette runs on uvicorn with the same settings ({PARSER});"
        " functions-framework is its own command (gunicorn gthread). Server CPU: what the server's processes"
        " (with the workers they started) used during the loaded run, in cores; 1.0 is one core kept busy.",
        "",
        *rows,
        "",
    ]
    usable = {name for name, series in runs.items() if series.runs and series.error is None}
    for ours, ceiling, loop in (
        ("triggerfish", "starlette", "asyncio"),
        ("triggerfish-uvloop", "starlette-uvloop", "uvloop"),
    ):
        if ours not in usable:
            continue
        facts = []
        if "functions-framework" in usable:
            ratio = _ratios(runs, ours, "functions-framework", lambda r: r.loaded.rps)
            facts.append(
                f"{spread(ratio, 2)}x functions-framework's throughput (target ≥ {PEER_RATIO_TARGET:g}x:"
                f" {_verdict(statistics.median(ratio), PEER_RATIO_TARGET)})"
            )
        if ceiling in usable:
            ratio = _ratios(runs, ours, ceiling, lambda r: r.loaded.rps)
            gap = _gaps(runs, ours, ceiling)
            facts.append(
                f"{spread(ratio, 2)}x bare Starlette's on the same loop (target ≥ {CEILING_RATIO_TARGET:g}x:"
                f" {_verdict(statistics.median(ratio), CEILING_RATIO_TARGET)})"
            )
            met = _verdict(statistics.median(gap), P50_GAP_TARGET_MS, at_most=True)
            facts.append(
                f"p50 at one connection {spread(gap, 2)} ms against bare Starlette"
                f" (target ≤ +{P50_GAP_TARGET_MS:g} ms: {met})"
            )
        lines.append(f"- Triggerfish on {loop}: " + "; ".join(facts) + ".")
    if "gateway-only" in usable and "starlette" in usable:
        ratio = _ratios(runs, "gateway-only", "starlette", lambda r: r.loaded.rps)
        gap = _gaps(runs, "gateway-only", "starlette")
        lines.append(
            f"- The gateway alone (asyncio): {spread(ratio, 2)}x bare Starlette's throughput, p50 at one connection"
            f" {spread(gap, 2)} ms against it; the rest of Triggerfish's cost is the invocation path (the runner,"
            " the worker round trip, the invocation record) and the platform's other work in the process."
        )
    if "starlette-hop-uvloop" in usable and "starlette-uvloop" in usable:
        hop = _ratios(runs, "starlette-hop-uvloop", "starlette-uvloop", lambda r: r.loaded.rps)
        facts = [
            f"- One process hop alone (uvloop; `benchmarks/apps/http_process_hop.py`: bare Starlette with its"
            f" handler's work in two worker processes, frames pipelined, nothing else added): {spread(hop, 2)}x"
            " bare Starlette's throughput, the most any design that runs functions outside the server's process"
            " can reach on this server"
        ]
        if "triggerfish-uvloop" in usable:
            share = _ratios(runs, "triggerfish-uvloop", "starlette-hop-uvloop", lambda r: r.loaded.rps)
            facts.append(f"Triggerfish (uvloop) makes {spread(share, 2)}x of that floor")
        lines.append("; ".join(facts) + ".")
    if "triggerfish" in usable and "triggerfish-uvloop" in usable:
        ratio = _ratios(runs, "triggerfish-uvloop", "triggerfish", lambda r: r.loaded.rps)
        lines.append(f"- uvloop / asyncio for Triggerfish's throughput: {spread(ratio, 2)}x.")
    if "triggerfish-uvloop" in usable and "triggerfish-uvloop-h11" in usable:
        ratio = _ratios(runs, "triggerfish-uvloop", "triggerfish-uvloop-h11", lambda r: r.loaded.rps)
        lines.append(f"- {PARSER} / h11 for Triggerfish's throughput (uvloop): {spread(ratio, 2)}x.")
    lines.append("- Ratios are per round (the servers ran back to back), then the median with the range.")
    return "\n".join(lines)


def main() -> str:
    try:
        wrk_path()
    except WrkMissing as exc:
        return f"## HTTP\n\nNot measured: {exc}."
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        return report(measure(Path(tmp)))


if __name__ == "__main__":
    print(main())
