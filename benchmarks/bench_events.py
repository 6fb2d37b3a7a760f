"""Events over HTTP: publish-to-handler latency at a fixed rate with 100 rules, and fan-out to four functions.

    scripts/bench events

The platform runs in its own process as `triggerfish dev` runs it (the
launcher picks asyncio's loop or uvloop; on PostgreSQL, the launcher's
`platform` command composes the same with a store URL, on a fresh schema).
A load generator in another process (`benchmarks/loadgen_events.py`) posts
to `POST /-/events`. Handlers append a line per run to a file (their
BENCH_EVENTS_ENTRY_LOG setting, from a triggerfish.toml beside a copy of the
app), which is how the benchmark sees them enter and counts what was lost.

Latency (`benchmarks/apps/events_latency_app.py`: 100 rules, one matching
the stream): one event per request in structured mode at RATE events/s on
an open-loop schedule for DURATION s; latency = the handler's `time.time()`
on entry minus the time the request was written (one clock, two
processes). Lost: accepted (202) but never entered. Then one run at
CONTEXT_RATE for context.

Fan-out (`benchmarks/apps/events_fanout_app.py`: four functions with a rule
each on `OrderPlaced`): FANOUT_EVENTS events in batch mode, PUBLISHERS
connections posting BATCH events per request as fast as answered; events/s
end to end = events / (last handler entry - first request).

Every configuration (store x event loop) has its own platform, warmed up
once; they take turns, ROUNDS rounds. TRIGGERFISH_BENCH_EVENTS_CONFIGS
picks some (comma-separated names of CONFIGS: `sqlite,postgres`), and
TRIGGERFISH_BENCH_EVENTS_BASELINE names another checkout (main's, say):
each configuration then also runs on that checkout's code (its platform
imports that tree first), in turns with this one's, for a side-by-side
ratio in one run. TRIGGERFISH_BENCH_EVENTS_PARTS=latency (or fanout) runs
one half only.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import loadgen_events, postgres
from benchmarks.apps.events_fanout_app import ENTRY_LOG, FUNCTIONS
from benchmarks.measure import Runs, fsync_latency, interleave, loads, number, percentile, spread
from benchmarks.processes import Child, launcher, python_env, serve_on_free_port, tail, wait_until

RATE = float(os.environ.get("TRIGGERFISH_BENCH_EVENTS_RATE", "1000"))
DURATION = float(os.environ.get("TRIGGERFISH_BENCH_EVENTS_SECONDS", "5"))
ROUNDS = int(os.environ.get("TRIGGERFISH_BENCH_EVENTS_ROUNDS", "3"))
CONTEXT_RATE = 100.0
WARMUP_SECONDS = 1.0
FANOUT_EVENTS = int(os.environ.get("TRIGGERFISH_BENCH_FANOUT_EVENTS", "3000"))
PUBLISHERS = 8
BATCH = 10
FANOUT_FUNCTIONS = FUNCTIONS
P99_TARGET_MS = 10.0
#: A run is settled when every accepted event has entered, or nothing new has entered for this long.
QUIET_SECONDS = 15.0
APPS = Path(__file__).resolve().parent / "apps"


BASELINE = os.environ.get("TRIGGERFISH_BENCH_EVENTS_BASELINE")
CHOSEN = os.environ.get("TRIGGERFISH_BENCH_EVENTS_CONFIGS")
#: Which halves to run: `latency`, `fanout` or both (the default).
PARTS = os.environ.get("TRIGGERFISH_BENCH_EVENTS_PARTS", "latency,fanout").split(",")


@dataclass(frozen=True, slots=True)
class Config:
    label: str
    loop: str
    postgres: bool
    #: Another checkout whose code the platform runs (None: this one's).
    tree: str | None = None


CONFIGS = {
    "sqlite": Config("SQLite, asyncio", "asyncio", False),
    "sqlite-uvloop": Config("SQLite, uvloop", "uvloop", False),
    "postgres": Config("PostgreSQL, asyncio", "asyncio", True),
    "postgres-uvloop": Config("PostgreSQL, uvloop", "uvloop", True),
}


# --- the platform and what its handlers write ------------------------------------------------


class EntryLog:
    """The lines the handlers appended so far, read incrementally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[list[str]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        # A line being written may be cut short: keep its start for the next read.
        complete, _, self._partial = (self._partial + data).rpartition(b"\n")
        return [line.split() for line in complete.decode().splitlines() if line]


@dataclass
class RunningPlatform:
    child: Child
    url: str
    log: EntryLog

    def cpu_seconds(self) -> float:
        """CPU time the platform's process has used (its threads; not the workers)."""
        fields = Path(f"/proc/{self.child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def platform(app: str, config: Config, work: Path) -> Iterator[RunningPlatform]:
    """`app` (a file in benchmarks/apps) served by its own process, with the entry log set in its triggerfish.toml."""
    side = "-base" if config.tree else ""
    directory = work / f"{Path(app).stem}-{config.loop}-{'pg' if config.postgres else 'sqlite'}{side}"
    directory.mkdir()
    shutil.copy(APPS / app, directory / "app.py")
    entries = directory / "entries.log"
    (directory / "triggerfish.toml").write_text(f'[functions."*"]\nenv = {{ {ENTRY_LOG} = "{entries}" }}\n')
    data = directory / "data"
    with ExitStack() as stack:
        store = stack.enter_context(postgres.fresh_schema()) if config.postgres else None

        def command(port: int) -> list[str]:
            if store is not None:
                arguments = ["platform", str(directory / "app.py"), "--port", str(port), "--data-dir", str(data)]
                return launcher(config.loop, *arguments, "--store", store)
            arguments = ["triggerfish", "dev", str(directory / "app.py"), "--port", str(port), "--no-reload", "--quiet"]
            return launcher(config.loop, *arguments, "--data-dir", str(data))

        # The baseline's tree first on the path: its `benchmarks.launch` and `triggerfish` are the ones imported.
        env = python_env() if config.tree is None else {**python_env(), "PYTHONPATH": config.tree}
        child, port = serve_on_free_port(
            command,
            lambda port: f"http://127.0.0.1:{port}/-/health",
            log=directory / "platform.log",
            cwd=directory,
            env=env,
        )
        stack.callback(child.stop)
        yield RunningPlatform(child, f"http://127.0.0.1:{port}/-/events", EntryLog(entries))


def publish(mode: str, url: str, out: Path, *arguments: str) -> dict[str, Any]:
    """Run the load generator in its own process; what it wrote."""
    command = [sys.executable, "-m", "benchmarks.loadgen_events", mode, url, "--out", str(out), *arguments]
    with Child(command, log=out.with_suffix(".log"), env=python_env()) as child:
        if child.process.wait(600) != 0:
            raise RuntimeError(f"the load generator failed:\n{tail(child.log)}")
    return loadgen_events.load(out)


def settle(log: EntryLog, take: Callable[[list[list[str]]], bool]) -> None:
    """Hand new entry lines to `take` until it says all are in, or nothing new arrived for QUIET_SECONDS."""
    last_news = time.monotonic()

    def done() -> bool:
        nonlocal last_news
        new = log.read_new()
        if new:
            last_news = time.monotonic()
            if take(new):
                return True
        return time.monotonic() - last_news > QUIET_SECONDS

    wait_until(done, "the handlers' entries", timeout=600, interval=0.02)


# --- latency ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyRun:
    published: int
    achieved: float
    latencies_ms: list[float]
    refused: int
    lost: int
    duplicates: int
    unexpected: int
    answer_p50_ms: float
    answer_p99_ms: float
    lag_p99_ms: float
    connections: int
    cpu: float

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def latency_run(running: RunningPlatform, rate: float, seconds: float, prefix: str, work: Path) -> LatencyRun:
    cpu, began = running.cpu_seconds(), time.monotonic()
    out = work / f"{prefix}.json"
    sent_doc = publish("rate", running.url, out, "--rate", str(rate), "--seconds", str(seconds), "--prefix", prefix)
    sent: dict[str, float] = sent_doc["sent"]
    refused: dict[str, str] = sent_doc["refused"]
    accepted = {event_id: at for event_id, at in sent.items() if event_id not in refused}
    entered: dict[str, float] = {}
    duplicates = unexpected = 0

    def take(lines: list[list[str]]) -> bool:
        nonlocal duplicates, unexpected
        for line in lines:
            if line[0] == "unexpected":
                unexpected += 1
            elif line[0] in accepted:
                duplicates += line[0] in entered
                entered.setdefault(line[0], float(line[1]))
        return len(entered) >= len(accepted)

    settle(running.log, take)
    cpu_share = (running.cpu_seconds() - cpu) / (time.monotonic() - began)
    starts = sorted(sent.values())
    answers: list[float] = sent_doc["answer_ms"]
    lags: list[float] = sent_doc["lag_ms"]
    return LatencyRun(
        published=len(sent),
        achieved=(len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else 0.0,
        latencies_ms=[(at - accepted[event_id]) * 1000 for event_id, at in entered.items()],
        refused=len(refused),
        lost=len(accepted) - len(entered),
        duplicates=duplicates,
        unexpected=unexpected,
        answer_p50_ms=percentile(answers, 0.5),
        answer_p99_ms=percentile(answers, 0.99),
        lag_p99_ms=percentile(lags, 0.99),
        connections=int(sent_doc["connections"]),
        cpu=cpu_share,
    )


# --- fan-out ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FanoutRun:
    events: int
    seconds: float
    publish_seconds: float
    entered: dict[str, int]
    refused: int
    cpu: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def invocations_per_second(self) -> float:
        return sum(self.entered.values()) / self.seconds

    @property
    def complete(self) -> bool:
        return self.refused == 0 and all(count == self.events for count in self.entered.values())


def fanout_run(running: RunningPlatform, events: int, prefix: str, work: Path) -> FanoutRun:
    cpu, began_clock = running.cpu_seconds(), time.monotonic()
    out = work / f"{prefix}.json"
    arguments = ["--events", str(events), "--publishers", str(PUBLISHERS), "--batch", str(BATCH), "--prefix", prefix]
    sent_doc = publish("burst", running.url, out, *arguments)
    ids: dict[str, set[str]] = {function: set() for function in FANOUT_FUNCTIONS}
    last = 0.0

    def take(lines: list[list[str]]) -> bool:
        nonlocal last
        for function, event_id, at in lines:
            if event_id.startswith(f"{prefix}-") and event_id not in ids[function]:
                ids[function].add(event_id)
                last = max(last, float(at))
        return all(len(found) >= events for found in ids.values())

    settle(running.log, take)
    began, ended = float(sent_doc["began"]), float(sent_doc["ended"])
    return FanoutRun(
        events=events,
        seconds=last - began,
        publish_seconds=ended - began,
        entered={function: len(found) for function, found in ids.items()},
        refused=len(sent_doc["refused"]),
        cpu=(running.cpu_seconds() - cpu) / (time.monotonic() - began_clock),
    )


# --- the runs ----------------------------------------------------------------------------------


def configs() -> tuple[dict[str, Config], str | None]:
    reason = postgres.unavailable()
    wanted = CHOSEN.split(",") if CHOSEN else list(CONFIGS)
    unknown = sorted(set(wanted) - set(CONFIGS))
    if unknown:
        raise SystemExit(
            f"TRIGGERFISH_BENCH_EVENTS_CONFIGS: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}"
        )
    chosen = {name: CONFIGS[name] for name in wanted if reason is None or not CONFIGS[name].postgres}
    if BASELINE:
        tree = str(Path(BASELINE).resolve())
        paired: dict[str, Config] = {}
        for name, c in chosen.items():  # each configuration beside its baseline: A B A B
            paired[name] = c
            paired[f"{name}@base"] = CONFIGS[f"{name}@base"] = Config(
                f"{c.label}, baseline ({Path(tree).name})", c.loop, c.postgres, tree
            )
        chosen = paired
    return chosen, reason


def measure_latency(chosen: dict[str, Config], work: Path) -> tuple[dict[str, Runs[LatencyRun]], dict[str, LatencyRun]]:
    with ExitStack() as stack:
        running = {name: stack.enter_context(platform("events_latency_app.py", c, work)) for name, c in chosen.items()}
        for name, p in running.items():
            latency_run(p, RATE, WARMUP_SECONDS, f"warm-{name}", work)  # forks the workers, fills the caches
        counter = iter(range(1_000_000))

        def run(name: str) -> Callable[[], LatencyRun]:
            return lambda: latency_run(running[name], RATE, DURATION, f"{name}-{next(counter)}", work)

        runs = interleave({name: run(name) for name in running}, ROUNDS)
        context = {name: latency_run(p, CONTEXT_RATE, DURATION, f"ctx-{name}", work) for name, p in running.items()}
    return runs, context


def measure_fanout(chosen: dict[str, Config], work: Path) -> dict[str, Runs[FanoutRun]]:
    with ExitStack() as stack:
        running = {name: stack.enter_context(platform("events_fanout_app.py", c, work)) for name, c in chosen.items()}
        for name, p in running.items():
            fanout_run(p, 200, f"fwarm-{name}", work)
        counter = iter(range(1_000_000))

        def run(name: str) -> Callable[[], FanoutRun]:
            return lambda: fanout_run(running[name], FANOUT_EVENTS, f"f{name}-{next(counter)}", work)

        return interleave({name: run(name) for name in running}, ROUNDS)


# --- the report ------------------------------------------------------------------------------


def latency_rows(runs: dict[str, Runs[LatencyRun]], context: dict[str, LatencyRun]) -> list[str]:
    rows = [
        "| store, loop | rate /s | p50 ms | p90 ms | p99 ms | max ms | lost | not accepted | dup. | answer p50 / p99 ms"
        " | connections | platform CPU | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for name, series in runs.items():
        label = CONFIGS[name].label
        if series.error is not None:
            rows.append(f"| {label} | could not run: {series.error} |" + " |" * 11)
            continue
        measured = [r.result for r in series.runs]
        rows.append(
            f"| {label} | {spread([r.achieved for r in measured])} | {spread([r.p(0.5) for r in measured], 1)}"
            f" | {spread([r.p(0.9) for r in measured], 1)} | {spread([r.p(0.99) for r in measured], 1)}"
            f" | {number(max(max(r.latencies_ms, default=0.0) for r in measured), 1)} | {sum(r.lost for r in measured)}"
            f" | {sum(r.refused for r in measured)} | {sum(r.duplicates for r in measured)}"
            f" | {statistics.median(r.answer_p50_ms for r in measured):.1f}"
            f" / {statistics.median(r.answer_p99_ms for r in measured):.1f}"
            f" | {max(r.connections for r in measured)} | {statistics.median(r.cpu for r in measured):.0%}"
            f" | {loads(series)} |"
        )
    for name, r in context.items():
        rows.append(
            f"| {CONFIGS[name].label}, once at {CONTEXT_RATE:g}/s | {r.achieved:,.0f} | {r.p(0.5):.1f} | {r.p(0.9):.1f}"
            f" | {r.p(0.99):.1f} | {number(max(r.latencies_ms, default=0.0), 1)} | {r.lost} | {r.refused}"
            f" | {r.duplicates}"
            f" | {r.answer_p50_ms:.1f} / {r.answer_p99_ms:.1f} | {r.connections} | {r.cpu:.0%} | |"
        )
    return rows


def fanout_rows(runs: dict[str, Runs[FanoutRun]]) -> list[str]:
    rows = [
        "| store, loop | events/s end to end | invocations/s | publish phase events/s | every function ran"
        " for every event | platform CPU | load avg |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for name, series in runs.items():
        label = CONFIGS[name].label
        if series.error is not None:
            rows.append(f"| {label} | could not run: {series.error} | | | | | |")
            continue
        measured = [r.result for r in series.runs]
        complete = all(r.complete for r in measured)
        counts = "; ".join(", ".join(f"{c:,}" for c in r.entered.values()) for r in measured if not r.complete)
        rows.append(
            f"| {label} | {spread([r.events_per_second for r in measured])}"
            f" | {spread([r.invocations_per_second for r in measured])}"
            f" | {spread([r.events / r.publish_seconds for r in measured])}"
            f" | {'yes' if complete else f'**NO**: {counts}'} | {statistics.median(r.cpu for r in measured):.0%}"
            f" | {loads(series)} |"
        )
    return rows


def side_by_side_latency(latency: dict[str, Runs[LatencyRun]]) -> list[str]:
    """Each configuration's median p50 and p99 against its baseline's (TRIGGERFISH_BENCH_EVENTS_BASELINE)."""
    lines = []
    for name, after in latency.items():
        before = latency.get(f"{name}@base")
        if before is None or after.error or before.error or not after.runs or not before.runs:
            continue
        cells = []
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            a = after.median(lambda r, q=q: r.p(q))  # type: ignore[misc]
            b = before.median(lambda r, q=q: r.p(q))  # type: ignore[misc]
            cells.append(f"{label} {number(a, 1)} against {number(b, 1)} ms ({a / b:.2f}x)")
        lines.append(f"- Side by side, {CONFIGS[name].label} against its baseline: {'; '.join(cells)}.")
    return lines


def side_by_side_fanout(fanout: dict[str, Runs[FanoutRun]]) -> list[str]:
    """Each configuration's median events/s against its baseline's."""
    lines = []
    for name, after in fanout.items():
        before = fanout.get(f"{name}@base")
        if before is None or after.error or before.error or not after.runs or not before.runs:
            continue
        a, b = after.median(lambda r: r.events_per_second), before.median(lambda r: r.events_per_second)
        lines.append(
            f"- Side by side, {CONFIGS[name].label} against its baseline: {a:,.0f} against {b:,.0f} events/s"
            f" ({a / b:.2f}x)."
        )
    return lines


def report(
    latency: dict[str, Runs[LatencyRun]],
    context: dict[str, LatencyRun],
    fanout: dict[str, Runs[FanoutRun]],
    skipped: str | None,
    disk: tuple[float, float] | None = None,
) -> str:
    verdicts = []
    for name, series in latency.items():
        if series.error is None and series.runs:
            p99 = series.median(lambda r: r.p(0.99))
            lost = sum(r.result.lost + r.result.refused for r in series.runs)
            met = p99 <= P99_TARGET_MS and lost == 0
            verdicts.append(
                f"{CONFIGS[name].label}: p99 {number(p99, 1)} ms, {lost:,} lost or not accepted:"
                f" {'met' if met else '**NOT met**'}"
            )
    lines = [
        "## Events over HTTP",
        "",
        f"### Publish to handler entry, {RATE:,.0f} events/s, 100 rules",
        "",
        "The platform in its own process (`triggerfish dev`, or on PostgreSQL the same composition with a store"
        " URL, on a fresh schema), serving `benchmarks/apps/events_latency_app.py`: 100 rules, one matching the"
        " stream. A load generator in another process posts one CloudEvent per request (structured mode) to"
        f" `POST /-/events` on an open-loop schedule of {RATE:,.0f}/s for {DURATION:g} s, opening keep-alive"
        " connections as needed. Latency: the handler's `time.time()` on entry minus the time the request was"
        f" written. {ROUNDS} rounds, the configurations taking turns after a {WARMUP_SECONDS:g} s warm-up each;"
        " medians with the range. Lost: answered 202, never entered. Not accepted: answered other than 202, or"
        " never sent because 512 requests were already waiting for an answer (the platform had fallen that far"
        " behind). Answer: the publish request's own latency (a durable append). Platform CPU: the platform"
        " process's share of one core during the run (the workers are other processes).",
        "",
        *latency_rows(latency, context),
        "",
        f"- Target: p99 ≤ {P99_TARGET_MS:g} ms at {RATE:,.0f}/s with nothing lost: " + "; ".join(verdicts) + ".",
    ]
    if disk is not None:
        lines.append(
            f"- The disk under the store, in the same run: one fsync takes {disk[0]:.2f} ms at p50 and {disk[1]:.2f}"
            " ms at p99. On SQLite an event crosses one durable commit before its handler runs (the publish's"
            " append with the router's invocations and checkpoint, `atomic.Route`), two when the router was behind"
            " (the append; then the router's write), each at least one fsync."
        )
    if skipped:
        lines.append(f"- PostgreSQL: not measured: {skipped}.")
    lines += side_by_side_latency(latency)
    lines += [
        "",
        "### Fan-out: one `OrderPlaced` to four functions",
        "",
        "`benchmarks/apps/events_fanout_app.py`: four functions, a rule each on `OrderPlaced`."
        f" {FANOUT_EVENTS:,} events per run in batch mode, {PUBLISHERS} connections posting {BATCH} events per"
        " request as fast as they are answered; events/s end to end = events / (the last handler entry minus the"
        f" first request). {ROUNDS} rounds after a warm-up, the configurations taking turns.",
        "",
        *fanout_rows(fanout),
    ]
    lines += side_by_side_fanout(fanout)
    return "\n".join(lines)


def main() -> str:
    chosen, skipped = configs()
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        work = Path(tmp)
        disk = fsync_latency(str(work))
        latency, context = measure_latency(chosen, work) if "latency" in PARTS else ({}, {})
        fanout = measure_fanout(chosen, work) if "fanout" in PARTS else {}
    return report(latency, context, fanout, skipped, disk)


if __name__ == "__main__":
    print(main())
