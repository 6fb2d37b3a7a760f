"""Events: publish-to-handler latency at a steady 1,000 events/s with 100 rules, and fan-out throughput.

    .venv/bin/python -m benchmarks.run events

Both run the real platform in this process, as `triggerfish dev` does:
`triggerfish.server.platform.Platform` on a SQLite store in a temporary
directory (WAL, `synchronous=FULL`), its EventBus consumer, the async
dispatcher and ProcessRunner workers (forked from the app's zygote).

Latency (`benchmarks/apps/events_latency_app.py`, 100 rules on the default
bus, one of which matches the stream): `Platform.publish` is called once per
event on an open-loop schedule of RATE events/s for DURATION seconds (a
publish starts when it is due, whether or not earlier ones have returned),
RUNS times after a warm-up, then once at each of CONTEXT_RATES. The latency
of an event is the time its handler read on entry (`time.time()`, which the
handler appends to a file with the event id) minus the time its publish call
started, in this process; both are the same clock. The path: a durable append to the bus's log, the
consumer reading it and matching the rules, the asynchronous invocation
queued durably, the dispatcher leasing it and a worker entering the handler.
Lost events are events acknowledged by `publish` whose handler never ran.

Fan-out (`benchmarks/apps/events_fanout_app.py`, four functions with a rule
each on `OrderPlaced`): FANOUT_EVENTS events published as fast as
FANOUT_PUBLISHERS concurrent publishers go (one event per call), timed from
the first publish until every function has a succeeded invocation record
for every event; median of RUNS runs.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.apps.events_latency_app import ENTRY_LOG, order_event_data
from triggerfish.events.cloudevent import Event
from triggerfish.names import bus_stream
from triggerfish.server.platform import Platform

RATE = float(os.environ.get("TRIGGERFISH_BENCH_EVENTS_RATE", "1000"))
DURATION = float(os.environ.get("TRIGGERFISH_BENCH_EVENTS_SECONDS", "5"))
RUNS = int(os.environ.get("TRIGGERFISH_BENCH_EVENTS_RUNS", "3"))
WARMUP = 1.0
P99_TARGET_MS = 10.0
#: Lower rates measured once each after the runs at RATE, to show where latency turns into queueing.
CONTEXT_RATES = tuple(
    float(r) for r in os.environ.get("TRIGGERFISH_BENCH_EVENTS_CONTEXT_RATES", "50,250,500").split(",") if r
)
FANOUT_EVENTS = int(os.environ.get("TRIGGERFISH_BENCH_FANOUT_EVENTS", "3000"))
FANOUT_PUBLISHERS = 16
FANOUT_FUNCTIONS = ("reserve_stock", "charge_payment", "notify_customer", "record_sale")
BUS = "default"
SETTLE_TIMEOUT = 120.0
APPS = Path(__file__).resolve().parent / "apps"
LATENCY_APP = APPS / "events_latency_app.py"
FANOUT_APP = APPS / "events_fanout_app.py"


def order_events(count: int, first: int = 0) -> list[Event]:
    """`count` OrderPlaced events from `shop`, built before a run so that building them is not timed."""
    return [Event.create("OrderPlaced", "shop", order_event_data(n)) for n in range(first, first + count)]


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0-1) of `values`, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return math.nan  # every event lost: the report says so in its own column
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def settled(platform: Platform) -> None:
    """Wait until the bus consumer is past everything published and no async invocation is left."""
    stream = bus_stream(BUS)
    async with asyncio.timeout(SETTLE_TIMEOUT):
        while True:
            # Polled: the checkpoint is a record in the store, with nothing to wait on.
            if await platform.bus.checkpoint(BUS) >= await platform.store.log.last_offset(stream):
                break
            await asyncio.sleep(0.005)
        await platform.current.invoker.drain()


# --- latency ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatencyRun:
    published: int
    rate: float
    latencies_ms: list[float]
    lost: int
    duplicates: int
    lag_p99_ms: float
    ack_p50_ms: float
    ack_p99_ms: float
    unexpected: int
    #: CPU used by this process's threads during the run, in cores: "main" (the event loop), the store's.
    cpu: dict[str, float] = field(default_factory=dict)

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


async def open_loop(platform: Platform, events: list[Event], rate: float) -> tuple[dict[str, float], LatencyRun]:
    """Publish `events` one per call, each when due at `rate` per second.

    Returns each event's publish start time by id, and the publishing figures (rate, acks, schedule lag).
    """
    sent: dict[str, float] = {}
    acks: list[float] = []
    lags: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def publish(event: Event, due: float) -> None:
        lags.append(loop.time() - due)
        started = sent[event.id] = time.time()
        await platform.publish(BUS, [event])
        acks.append(time.time() - started)

    began = loop.time()
    for number, event in enumerate(events):
        due = began + number / rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        task = asyncio.create_task(publish(event, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    starts = sorted(sent.values())
    achieved = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else 0.0
    run = LatencyRun(
        published=len(events),
        rate=achieved,
        latencies_ms=[],
        lost=0,
        duplicates=0,
        lag_p99_ms=percentile(lags, 0.99) * 1000,
        ack_p50_ms=percentile(acks, 0.5) * 1000,
        ack_p99_ms=percentile(acks, 0.99) * 1000,
        unexpected=0,
    )
    return sent, run


def handler_entries(path: Path) -> list[tuple[str, float]]:
    """(event id, entry time) for every run of `entry` so far, from the file its handler appends to."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        event_id, _, entered = line.partition(" ")
        entries.append((event_id, float(entered)))
    return entries


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by this process's main thread and the store's threads (Linux; else empty)."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for thread in threading.enumerate():
        role = "main" if thread is threading.main_thread() else thread.name.split(":", 1)[0]
        try:
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        used[role] = used.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


async def latency_run(platform: Platform, events: list[Event], rate: float, log: Path) -> LatencyRun:
    since = time.time()
    cpu_before, clock_before = thread_cpu(), time.monotonic()
    sent, run = await open_loop(platform, events, rate)
    await settled(platform)
    cpu_after, seconds = thread_cpu(), time.monotonic() - clock_before
    entered: dict[str, float] = {}
    duplicates = 0
    for event_id, at in handler_entries(log):
        if event_id in sent:
            duplicates += event_id in entered
            entered.setdefault(event_id, at)
    records = platform.current.invoker.records
    unexpected = 0
    for name in platform.specs:
        if name != "entry":
            unexpected += len(await records.query(function=name, since=since))
    return replace(
        run,
        latencies_ms=[(at - sent[event_id]) * 1000 for event_id, at in entered.items()],
        lost=len(sent) - len(entered),
        duplicates=duplicates,
        unexpected=unexpected,
        cpu={role: (cpu_after[role] - cpu_before.get(role, 0.0)) / seconds for role in cpu_after},
    )


async def measure_latency(data_dir: Path) -> dict[float, list[LatencyRun]]:
    """RUNS runs at RATE, then one at each of CONTEXT_RATES, on one platform after a warm-up."""
    count = round(RATE * DURATION)
    log = data_dir / "entries.log"
    platform = Platform(str(LATENCY_APP), data_dir=data_dir, overrides={"entry": {"env": {ENTRY_LOG: str(log)}}})
    await platform.start()
    runs: dict[float, list[LatencyRun]] = {}
    first = 0
    try:
        plan = [(RATE, round(RATE * WARMUP))] + [(RATE, count)] * RUNS
        plan += [(rate, round(rate * DURATION)) for rate in CONTEXT_RATES]
        for number, (rate, size) in enumerate(plan):
            events = order_events(size, first=first)
            first += size
            run = await latency_run(platform, events, rate, log)
            if number:  # the first is the warm-up: it forks the workers and fills the caches
                runs.setdefault(rate, []).append(run)
        return runs
    finally:
        await platform.stop()


# --- fan-out ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FanoutRun:
    events: int
    seconds: float
    publish_seconds: float
    succeeded: dict[str, int]
    cpu: dict[str, float]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def invocations_per_second(self) -> float:
        return sum(self.succeeded.values()) / self.seconds


async def fanout_run(platform: Platform, events: list[Event]) -> FanoutRun:
    pending: Iterator[Event] = iter(events)

    async def publisher() -> None:
        for event in pending:
            await platform.publish(BUS, [event])

    since = time.time()
    cpu_before = thread_cpu()
    began = time.perf_counter()
    await asyncio.gather(*(publisher() for _ in range(FANOUT_PUBLISHERS)))
    published = time.perf_counter()
    await settled(platform)
    finished = time.perf_counter()
    cpu_after = thread_cpu()
    records = platform.current.invoker.records
    succeeded = {
        # Records start after `since`; the previous run's had all finished before it.
        name: len(await records.query(function=name, status="succeeded", since=since, limit=4 * len(events)))
        for name in FANOUT_FUNCTIONS
    }
    cpu = {role: (cpu_after[role] - cpu_before.get(role, 0.0)) / (finished - began) for role in cpu_after}
    return FanoutRun(len(events), finished - began, published - began, succeeded, cpu)


async def measure_fanout(data_dir: Path) -> list[FanoutRun]:
    warmup = 200
    batches = [order_events(FANOUT_EVENTS, first=warmup + n * FANOUT_EVENTS) for n in range(RUNS)]
    platform = Platform(str(FANOUT_APP), data_dir=data_dir)
    await platform.start()
    try:
        await fanout_run(platform, order_events(warmup))
        return [await fanout_run(platform, events) for events in batches]
    finally:
        await platform.stop()


# --- the report ------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _cpu(runs: list[dict[str, float]]) -> str:
    """The median share of a core each of this process's threads used: what the event loop and the store cost."""
    names = {
        "main": "event loop",
        "triggerfish-store-writer": "store writer",
        "triggerfish-store-reader": "store reader",
    }
    shares = [
        f"{label} {_median([run.get(role, 0.0) for run in runs]) * 100:.0f}%"
        for role, label in names.items()
        if any(role in run for run in runs)
    ]
    return ", ".join(shares) or "not measured (no /proc)"


def latency_rows(runs: dict[float, list[LatencyRun]]) -> list[str]:
    rows = [
        "| rate | run | achieved /s | p50 ms | p90 ms | p99 ms | max ms | lost | dup. | publish ack p50 / p99 ms"
        " | schedule lag p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for rate, measured in runs.items():
        for number, r in enumerate(measured, start=1):
            rows.append(
                f"| {rate:,.0f} | {number} | {r.rate:,.0f} | {r.p(0.5):.2f} | {r.p(0.9):.2f} | {r.p(0.99):.2f}"
                f" | {max(r.latencies_ms, default=0.0):.2f} | {r.lost} | {r.duplicates}"
                f" | {r.ack_p50_ms:.2f} / {r.ack_p99_ms:.2f} | {r.lag_p99_ms:.2f} |"
            )
        if len(measured) > 1:
            rows.append(
                f"| {rate:,.0f} | **median** | {_median([r.rate for r in measured]):,.0f}"
                f" | **{_median([r.p(0.5) for r in measured]):.2f}** | **{_median([r.p(0.9) for r in measured]):.2f}**"
                f" | **{_median([r.p(0.99) for r in measured]):.2f}** | | {sum(r.lost for r in measured)}"
                f" | {sum(r.duplicates for r in measured)} | | |"
            )
    return rows


def fanout_rows(fanout: list[FanoutRun]) -> list[str]:
    rows = [
        "| run | events | seconds | events/s end to end | invocations/s | publish phase events/s"
        " | succeeded per function |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for number, f in enumerate(fanout, start=1):
        complete = all(count == f.events for count in f.succeeded.values())
        counts = ", ".join(f"{count:,}" for count in f.succeeded.values())
        rows.append(
            f"| {number} | {f.events:,} | {f.seconds:.2f} | {f.events_per_second:,.0f}"
            f" | {f.invocations_per_second:,.0f} | {f.events / f.publish_seconds:,.0f}"
            f" | {counts}{'' if complete else ' (NOT every event)'} |"
        )
    return rows


def report(latency: dict[float, list[LatencyRun]], fanout: list[FanoutRun]) -> str:
    main_runs = latency[RATE]
    p50 = _median([r.p(0.50) for r in main_runs])
    p99 = _median([r.p(0.99) for r in main_runs])
    lost = sum(r.lost for runs in latency.values() for r in runs)
    unexpected = sum(r.unexpected for runs in latency.values() for r in runs)
    met = p99 <= P99_TARGET_MS and lost == 0
    complete = all(count == f.events for f in fanout for count in f.succeeded.values())
    events_rate = _median([f.events_per_second for f in fanout])
    invocations_rate = _median([f.invocations_per_second for f in fanout])
    context = ", ".join(
        f"{rate:,.0f}/s p50 {_median([r.p(0.5) for r in runs]):.2f} ms, p99 {_median([r.p(0.99) for r in runs]):.2f} ms"
        for rate, runs in latency.items()
        if rate != RATE
    )
    return "\n".join(
        [
            "## Events",
            "",
            f"### Publish to handler entry, {RATE:,.0f} events/s, 100 rules",
            "",
            "The real platform in one process (`Platform` on SQLite with `synchronous=FULL`, the bus consumer, the"
            " async dispatcher, ProcessRunner workers forked from the app's zygote) running"
            " `benchmarks/apps/events_latency_app.py`: 100 rules on the bus, one of which matches the stream (36 of"
            " the others are near misses on the same type). `Platform.publish` is called once per event on an"
            f" open-loop schedule (a publish starts when due, whatever earlier ones are doing) for {DURATION:g} s per"
            f" run: {RUNS} runs at {RATE:,.0f}/s after a {WARMUP:g} s warm-up, then one at each lower rate for"
            " context. Latency: the handler's `time.time()` on entry minus the start of its publish call (same"
            " clock). Lost: acknowledged by `publish`, never entered. Schedule lag: how late a publish started"
            " against its due time (the load generator shares the event loop with the platform); publish ack: the"
            " publish call's own duration (a durable append).",
            "",
            *latency_rows(latency),
            "",
            f"- Target: p99 ≤ {P99_TARGET_MS:g} ms at {RATE:,.0f}/s with no event lost: p99 **{p99:.2f} ms**"
            f" (p50 {p50:.2f} ms; medians of {RUNS} runs), {lost} lost: {'met' if met else '**NOT met**'}."
            f" Handlers of the 99 other rules that ran: {unexpected}.",
            f"- At lower rates: {context or 'not measured'}.",
            f"- This process's CPU during the {RATE:,.0f}/s runs, in share of one core (medians):"
            f" {_cpu([r.cpu for r in main_runs])}. The workers run in their own processes.",
            "",
            "### Fan-out: one `OrderPlaced` to four functions",
            "",
            "`benchmarks/apps/events_fanout_app.py`: four functions with a rule each on `OrderPlaced`."
            f" {FANOUT_EVENTS:,} events per run, published by {FANOUT_PUBLISHERS} concurrent publishers one event"
            " per call, timed from the first publish until each function has a succeeded invocation record for"
            f" every event; {RUNS} runs after a warm-up.",
            "",
            *fanout_rows(fanout),
            "",
            f"- Sustained fan-out: **{events_rate:,.0f} events/s** end to end, {invocations_rate:,.0f} invocations"
            f" completed per second (medians of {RUNS} runs); every function ran for every event:"
            f" {'yes' if complete else '**NO**'}.",
            f"- This process's CPU, in share of one core (medians): {_cpu([f.cpu for f in fanout])}.",
        ]
    )


async def main() -> str:
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        latency = await measure_latency(Path(tmp) / "latency")
        fanout = await measure_fanout(Path(tmp) / "fanout")
    return report(latency, fanout)


if __name__ == "__main__":
    print(asyncio.run(main()))
