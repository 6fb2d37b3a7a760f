"""What one request costs the platform's process, counted rather than timed: system calls and instructions.

    python -m benchmarks.costs http|async|events|fanout [--requests 2000] [--tree DIR ...] [--instructions]
    python -m benchmarks.costs async --batch 50 [--requests 100]
    python -m benchmarks.costs http --connections 32 [--seconds 10] [--instructions]

Throughput on a machine shared with other engineers' test suites moves by a
quarter between runs of one and the same code; counts do not. This starts
the platform as the benchmarks do (`triggerfish dev` on SQLite, asyncio),
warms it, then drives REQUESTS requests one at a time over one keep-alive
connection while it counts, and divides by REQUESTS:

- `http`: `GET /hello` of `benchmarks/apps/http_app.py` (a handler in a
  worker process, its invocation record written);
- `async`: Lambda's Invoke with `X-Amz-Invocation-Type: Event` of the no-op
  of `benchmarks/apps/async_app.py`, counted until every invocation ran,
  was recorded and acknowledged (the done file has REQUESTS more bytes);
  with `--batch B`, each request is `POST .../invoke-batch` of B invocations
  and the counts are per invocation (REQUESTS x B of them);
- `events`: `POST /-/events` of one `OrderPlaced` in structured mode to
  `benchmarks/apps/events_latency_app.py` (100 rules), counted until the
  matching handler entered for each;
- `fanout`: the fan-out benchmark's load (`benchmarks/apps/events_fanout_app.py`:
  one `OrderPlaced` to four functions), driven as `scripts/bench events` drives
  it: the load generator's PUBLISHERS connections posting BATCH events per
  request in batch mode as fast as they are answered, REQUESTS events in all,
  counted until every function entered for each; the counts are per event
  (four invocations each).

`--connections N` (http only) drives the requests concurrently instead:
wrk over N keep-alive connections for `--seconds` (as `scripts/bench http`
loads the platform), and the counts are divided by the requests wrk saw
answered. One request at a time, work that is batched across requests (the
invocation records, the store's commits) costs its whole batch per request;
under concurrency it is shared, as it is under the benchmark's load. Under
callgrind the platform runs some fifty times slower, so fewer requests are
counted there (a few hundred in 20 s).

System calls come from `strace -f -c` attached to the platform's process
(every thread; the workers are other processes). With `--instructions` the
same requests are driven once more with the platform under valgrind's
callgrind (collection switched on for the counted requests only), for the
instructions its threads ran: slow (a minute or two), and repeatable within
a percent or so under any load. `--tree DIR` runs the platform from another
source tree (as PYTHONPATH), for a before/after in one run: every tree is
counted in turn. Prints Markdown.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from benchmarks.apps.async_app import DONE_FILE
from benchmarks.apps.events_fanout_app import FUNCTIONS as FANOUT_FUNCTIONS
from benchmarks.apps.events_latency_app import ENTRY_LOG
from benchmarks.loadgen_events import STRUCTURED, order_event
from benchmarks.processes import free_port, python_env, wait_http, wait_until
from benchmarks.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "benchmarks" / "apps"
WARMUP = 200
#: `fanout`: the fan-out benchmark's publishers (connections) and events per request.
FANOUT_PUBLISHERS = 8
FANOUT_BATCH = 10
JSON = "application/json"
#: Counted beside the system calls: the store's writer transactions (SQLite's group commits), from `/-/metrics`.
STORE_COMMITS = "store commits"
_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$")


class Driver:
    """One kind of request against a started platform: `send(n)` one request, `settled(count)` the work done."""

    def __init__(self, kind: str, port: int, marker: Path, batch: int = 1) -> None:
        self.kind = kind
        self.port = port
        self.batch = batch
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.marker = marker

    def send(self, number: int) -> None:
        if self.kind == "http":
            self.connection.request("GET", f"/hello?n={number}")
            expected = 200
        elif self.kind == "async" and self.batch > 1:
            events = [{"n": number * self.batch + i} for i in range(self.batch)]
            body = json.dumps({"events": events})
            self.connection.request("POST", "/-/api/v1/functions/noop/invoke-batch", body, {"Content-Type": JSON})
            expected = 202
        elif self.kind == "async":
            headers = {"Content-Type": JSON, "X-Amz-Invocation-Type": "Event"}
            self.connection.request("POST", "/-/api/v1/functions/noop/invoke", json.dumps({"n": number}), headers)
            expected = 202
        else:
            body = json.dumps(order_event(f"e-{number}", number))
            self.connection.request("POST", "/-/events", body, {"Content-Type": STRUCTURED})
            expected = 202  # accepted: stored durably, delivered later
        answer = self.connection.getresponse()
        body_read = answer.read()
        if answer.status != expected:
            raise RuntimeError(f"{self.kind} request {number}: {answer.status} {body_read[:300]!r}")

    def done(self) -> int:
        """How many requests' work has finished (http: each answer is the work)."""
        if self.kind == "http":
            return 0
        try:
            if self.kind == "async":
                return self.marker.stat().st_size
            entries = len(self.marker.read_bytes().splitlines())
            # fanout: an event is done when each of its functions entered (a line each).
            return entries // len(FANOUT_FUNCTIONS) if self.kind == "fanout" else entries
        except FileNotFoundError:
            return 0

    def drive_concurrently(self, connections: int, seconds: float) -> int:
        """Load `GET /hello` over `connections` connections for `seconds` with wrk; the requests answered."""
        if self.kind != "http":
            raise SystemExit("--connections drives http requests only")
        result = run_wrk(
            f"http://127.0.0.1:{self.port}/hello?n=1", connections=connections, seconds=seconds, timeout=60
        )
        if result.errors:
            # Under callgrind a request can wait past the gateway's second for a concurrency slot: a 429, which
            # costs the platform less than an answer. Counted all the same (wrk's requests include them), and said.
            print(f"{result.errors} of {result.requests} concurrent requests failed or were refused", file=sys.stderr)
        return result.requests

    def burst(self, first: int, count: int) -> None:
        """`count` events from the load generator in its own process, as the fan-out benchmark publishes them."""
        command = [sys.executable, "-m", "benchmarks.loadgen_events", "burst", f"http://127.0.0.1:{self.port}/-/events"]
        command += ["--events", str(count), "--publishers", str(FANOUT_PUBLISHERS), "--batch", str(FANOUT_BATCH)]
        command += ["--prefix", "f", "--first", str(first), "--out", str(self.marker.with_suffix(".sent.json"))]
        subprocess.run(command, check=True, capture_output=True, env=python_env())

    def drive(self, first: int, count: int) -> None:
        already = self.done()
        if self.kind == "fanout":
            self.burst(first, count)
        else:
            for number in range(first, first + count):
                self.send(number)
        if self.kind != "http":
            settled = count * self.batch
            wait_until(lambda: self.done() >= already + settled, f"{settled} {self.kind} requests settled", 300)
            # The server may have closed the idle keep-alive connection meanwhile: the next request opens another.
            self.connection.close()


def _app(kind: str, work: Path) -> tuple[Path, Path]:
    """The app's file in a directory of its own (with the marker file set in its triggerfish.toml), and the marker."""
    directory = work / "app"
    directory.mkdir()
    source = {
        "http": "http_app.py",
        "async": "async_app.py",
        "events": "events_latency_app.py",
        "fanout": "events_fanout_app.py",
    }[kind]
    shutil.copy(APPS / source, directory / "app.py")
    marker = work / "marker"
    setting = {"http": None, "async": DONE_FILE, "events": ENTRY_LOG, "fanout": ENTRY_LOG}[kind]
    if setting is not None:
        (directory / "triggerfish.toml").write_text(f'[functions."*"]\nenv = {{ {setting} = "{marker}" }}\n')
    return directory / "app.py", marker


def _start(tree: Path, app: Path, port: int, work: Path, prefix: list[str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "benchmarks.launch", "--loop", "asyncio", "triggerfish", "dev", str(app)]
    command += ["--port", str(port), "--no-reload", "--quiet", "--data-dir", str(work / "data")]
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}"}
    log = (work / "platform.log").open("ab")
    return subprocess.Popen(
        [*prefix, *command], cwd=app.parent, env=env, stdout=log, stderr=log, start_new_session=True
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def syscalls(
    kind: str, tree: Path, requests: int, batch: int = 1, concurrent: tuple[int, float] | None = None
) -> tuple[Counter[str], int]:
    """System calls of the platform's process (all its threads) by name, and the invocations they were counted over
    (`concurrent`: wrk's connections and seconds instead of `requests` one at a time)."""
    strace = shutil.which("strace")
    if strace is None:
        raise SystemExit("strace is not installed (Debian: apt-get install strace)")
    with tempfile.TemporaryDirectory(prefix="bench-costs-") as tmp:
        work = Path(tmp)
        app, marker = _app(kind, work)
        port = free_port()
        platform = _start(tree, app, port, work, [])
        try:
            wait_http(f"http://127.0.0.1:{port}/-/health", timeout=120)
            driver = Driver(kind, port, marker, batch)
            driver.drive(0, max(1, WARMUP // batch))
            out = work / "strace.txt"
            tracer = subprocess.Popen([strace, "-f", "-c", "-o", str(out), "-p", str(platform.pid)])
            time.sleep(1.0)  # attached to every thread
            commits = _store_commits(port)
            counted = _drive(driver, requests * batch, concurrent)
            commits = _store_commits(port) - commits
            tracer.send_signal(signal.SIGINT)
            tracer.wait(60)
        finally:
            _stop(platform)
        counts: Counter[str] = Counter()
        counts[STORE_COMMITS] = round(commits)
        for line in out.read_text().splitlines():
            found = _STRACE_ROW.match(line)
            if found and found.group(2) != "total":
                counts[found.group(2)] = int(found.group(1))
        return counts, counted


def _store_commits(port: int) -> float:
    """The transactions the platform's store has committed so far (its `/-/metrics`)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/metrics", timeout=60) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("triggerfish_store_commits_total"):
                return float(line.split()[-1])
    return 0.0


def _drive(driver: Driver, invocations: int, concurrent: tuple[int, float] | None) -> int:
    """Drive the counted requests (one at a time, or with wrk when `concurrent`); the invocations they made."""
    if concurrent is not None:
        return driver.drive_concurrently(*concurrent)
    driver.drive(WARMUP, invocations // driver.batch)
    return invocations


def instructions(
    kind: str, tree: Path, requests: int, concurrent: tuple[int, float] | None = None, keep: Path | None = None
) -> tuple[dict[str, int], int]:
    """Instructions the platform's process ran under callgrind, by thread (`"01"` is the main thread, the event
    loop's), and the requests they were counted over (`requests` one at a time, or what wrk got answered with
    `concurrent`). With `keep`, callgrind's files (one per thread) are copied there for `callgrind_annotate`."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="bench-costs-") as tmp:
        work = Path(tmp)
        app, marker = _app(kind, work)
        port = free_port()
        out = work / "callgrind.out"
        prefix = [valgrind, "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes"]
        platform = _start(tree, app, port, work, [*prefix, f"--callgrind-out-file={out}"])
        try:
            wait_http(f"http://127.0.0.1:{port}/-/health", timeout=600)
            driver = Driver(kind, port, marker)
            driver.drive(0, WARMUP)
            control = [shutil.which("callgrind_control") or "callgrind_control"]
            subprocess.run([*control, "-i", "on", str(platform.pid)], check=True, capture_output=True)
            counted = _drive(driver, requests, concurrent)
            subprocess.run([*control, "-i", "off", str(platform.pid)], check=True, capture_output=True)
        finally:
            _stop(platform)
        # One file per thread (`callgrind.out-01`, ...), numbered in the order the threads started.
        files = sorted(work.glob("callgrind.out-*"))
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for path in files:
                shutil.copy(path, keep / path.name)
        return {path.name.rsplit("-", 1)[-1]: _total_instructions(path) for path in files}, counted


def _total_instructions(out: Path) -> int:
    for line in reversed(out.read_text().splitlines()):
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    return 0  # a thread that ran nothing while collection was on


def main(argv: list[str] | None = None) -> None:
    # A SIGTERM (`timeout`, a killed shell) ends the run through its `finally` blocks, which stop the platform's
    # process group: by default it ended Python at once, and a platform under callgrind ran on for an hour.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser(prog="python -m benchmarks.costs", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("http", "async", "events", "fanout"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--tree", action="append", type=Path, help="a source tree to run the platform from")
    parser.add_argument("--instructions", action="store_true", help="also count instructions under callgrind")
    parser.add_argument("--batch", type=int, default=1, help="async: invocations per request (invoke-batch)")
    parser.add_argument("--connections", type=int, default=0, help="http: drive with wrk over this many connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="with --connections: how long wrk drives")
    parser.add_argument("--keep", type=Path, help="with --instructions: keep callgrind's files here, a folder a tree")
    args = parser.parse_args(argv)
    concurrent = (args.connections, args.seconds) if args.connections > 0 else None
    trees: list[Path] = [tree.resolve() for tree in args.tree] if args.tree else [ROOT]
    # Per tree: the system calls and the invocations they were counted over; the instructions and theirs.
    rows: list[tuple[Path, Counter[str], int, dict[str, int] | None, int]] = []
    started = f"{os.getloadavg()[0]:.1f}"
    for number, tree in enumerate(trees):
        counted, per = syscalls(args.kind, tree, args.requests, max(1, args.batch), concurrent)
        keep = args.keep / f"{number}-{tree.name}" if args.keep else None
        ran, ran_over = (
            instructions(args.kind, tree, args.requests, concurrent, keep) if args.instructions else (None, 1)
        )
        rows.append((tree, counted, per, ran, ran_over))
    print(f"### Costs per request: {args.kind}\n")
    batched = f" of {args.batch} invocations each, counted per invocation" if args.batch > 1 else ""
    if concurrent is not None:
        counted_over = "; ".join(
            f"{per} requests under strace" + (f", {ran_over} under callgrind" if ran is not None else "")
            for _, _, per, ran, ran_over in rows
        )
        how = f"wrk over {args.connections} connections for {args.seconds:g} s ({counted_over})"
    else:
        how = f"{args.requests} requests{batched}, one at a time"
    if args.kind == "fanout":
        how = f"{args.requests} events, {FANOUT_PUBLISHERS} connections posting {FANOUT_BATCH} per request"
    print(f"{how}, after {WARMUP} to warm up; load average {started} at the start.\n")
    commits = [c.pop(STORE_COMMITS, 0) for _, c, *_ in rows]
    names = sorted({name for _, c, *_ in rows for name in c}, key=lambda n: -max(c[n] for _, c, *_ in rows))
    unit = "event" if args.kind == "fanout" else "invocation" if args.batch > 1 else "request"
    print(f"| per {unit} | " + " | ".join(f"`{tree}`" for tree, *_ in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    per_request = [n / per for n, (_, _, per, *_) in zip(commits, rows, strict=True)]
    print("| store commits | " + " | ".join(f"{n:.2f}" for n in per_request) + " |")
    print("| system calls | " + " | ".join(f"{sum(c.values()) / per:.1f}" for _, c, per, *_ in rows) + " |")
    for name in names[:12]:
        print(f"| `{name}` | " + " | ".join(f"{c[name] / per:.2f}" for _, c, per, *_ in rows) + " |")
    if args.instructions:
        _print_instructions([(ran or {}, ran_over) for *_, ran, ran_over in rows])


def _print_instructions(rows: list[tuple[dict[str, int], int]]) -> None:
    """The instructions per request, in thousands: every thread's, the event loop's (the main thread), and the
    other threads by rank, busiest first (callgrind numbers threads as they start, which differs between runs;
    the busiest is the store's writer)."""

    def row(name: str, figures: list[float]) -> None:
        print(f"| {name} | " + " | ".join(f"{figure / 1000:,.1f}" for figure in figures) + " |")

    per = [{thread: count / max(over, 1) for thread, count in ran.items()} for ran, over in rows]
    row("instructions (thousands)", [sum(threads.values()) for threads in per])
    row("… the event loop's thread", [threads.get("01", 0.0) for threads in per])
    ranked = [sorted((count for thread, count in threads.items() if thread != "01"), reverse=True) for threads in per]
    for rank, name in enumerate(("the busiest other thread", "the next")):
        row(f"… {name}", [counts[rank] if rank < len(counts) else 0.0 for counts in ranked])
    row("… the other threads", [sum(counts[2:]) for counts in ranked])


if __name__ == "__main__":
    main()
