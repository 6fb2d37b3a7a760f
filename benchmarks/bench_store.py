"""The store: durable appends with concurrent producers, and queue send -> receive -> ack throughput.

Targets (from the issue, on a 2-core machine): at least 20,000 durable
appends per second from 16 concurrent producers with `synchronous=FULL`, and
at least 10,000 queue messages per second sent, received and acknowledged.
The memory store runs the same workloads as a reference for the cost of
durability.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from triggerfish.store import Store, open_store
from triggerfish.store.sqlite import SqliteStore

PRODUCERS = 16
APPENDS_PER_PRODUCER = 1500
RECORD = b"x" * 256
QUEUE_MESSAGES = 16_000
CONSUMERS = 4
RECEIVE_BATCH = 100
RUNS = 3
APPEND_TARGET = 20_000.0
QUEUE_TARGET = 10_000.0


@dataclass
class Run:
    rate: float
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_batch: float = 0.0
    largest_batch: int = 0


async def appends(store: Store, producers: int = PRODUCERS) -> Run:
    latencies: list[float] = []

    async def producer(n: int) -> None:
        for _ in range(APPENDS_PER_PRODUCER * PRODUCERS // producers):
            started = time.perf_counter()
            await store.log.append(f"bench-{n % 4}", RECORD)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(producer(n) for n in range(producers)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return Run(
        rate=len(latencies) / elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000,
    )


async def queue_flow(store: Store) -> Run:
    per_producer = QUEUE_MESSAGES // PRODUCERS
    acked = 0
    done = asyncio.Event()

    async def producer() -> None:
        for _ in range(per_producer):
            await store.queues.send("bench", RECORD)

    async def consumer() -> None:
        nonlocal acked
        while not done.is_set():
            messages = await store.queues.receive("bench", max_messages=RECEIVE_BATCH, wait=0.05)
            if messages:
                results = await store.queues.ack_many("bench", [m.receipt for m in messages])
                acked += sum(results)
                if acked >= per_producer * PRODUCERS:
                    done.set()

    began = time.perf_counter()
    consumers = [asyncio.ensure_future(consumer()) for _ in range(CONSUMERS)]
    await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - began
    await asyncio.gather(*consumers)
    return Run(rate=acked / elapsed)


async def appends_64(store: Store) -> Run:
    return await appends(store, 64)


async def reads_while_writing(store: Store) -> Run:
    """Record gets per second from 16 readers while 16 producers append (rate = gets, p50 = append rate)."""
    for i in range(100):
        await store.kv.put("bench", f"key-{i}", RECORD)
    stop = time.perf_counter() + 2.0
    gets = writes = 0

    async def reader() -> None:
        nonlocal gets
        while time.perf_counter() < stop:
            assert await store.kv.get("bench", f"key-{gets % 100}") is not None
            gets += 1

    async def writer() -> None:
        nonlocal writes
        while time.perf_counter() < stop:
            await store.log.append("bench", RECORD)
            writes += 1

    await asyncio.gather(*(reader() for _ in range(16)), *(writer() for _ in range(16)))
    return Run(rate=gets / 2.0, p50_ms=writes / 2.0)


async def reads_through_writer(store: Store) -> Run:
    """The same, with reads sent through the writer thread instead of the reader connection."""
    assert isinstance(store, SqliteStore)
    engine = store._engine
    reader, engine.reader = engine.reader, engine.writer  # a measurement-only rewiring
    try:
        return await reads_while_writing(store)
    finally:
        engine.reader = reader


async def measure(url: Callable[[Path], str], workload: Callable[[Store], Awaitable[Run]]) -> list[Run]:
    """Run `workload` RUNS times, each on a fresh store, noting group-commit batch sizes for SQLite."""
    runs = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as directory:
            store = await open_store(url(Path(directory)))
            try:
                run = await workload(store)
                if isinstance(store, SqliteStore):
                    # An append workload's commits each carry one merged flush; count the appends in it.
                    stats = store.append_stats if workload in (appends, appends_64) else store.write_stats
                    run.mean_batch = stats.mean
                    run.largest_batch = stats.largest
            finally:
                await store.close()
        runs.append(run)
    return runs


def median(runs: list[Run], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in runs))


async def main() -> str:
    sqlite = lambda d: f"sqlite:///{d / 'bench.db'}"  # noqa: E731
    memory = lambda d: "memory://"  # noqa: E731
    sqlite_appends = await measure(sqlite, appends)
    memory_appends = await measure(memory, appends)
    sqlite_appends_64 = await measure(sqlite, appends_64)
    sqlite_queue = await measure(sqlite, queue_flow)
    memory_queue = await measure(memory, queue_flow)
    on_reader = await measure(sqlite, reads_while_writing)
    on_writer = await measure(sqlite, reads_through_writer)

    def verdict(rate: float, target: float) -> str:
        """How a measured rate compares with its target."""
        return f"{rate / target:.2f}x target: {'met' if rate >= target else 'NOT met'}"

    a_rate, q_rate = median(sqlite_appends, "rate"), median(sqlite_queue, "rate")
    lines = [
        "## Store",
        "",
        f"Durable appends: {PRODUCERS} concurrent producers (asyncio tasks), {APPENDS_PER_PRODUCER} appends of"
        f" {len(RECORD)} bytes each, one record per call, across 4 streams, on a temp file with WAL and"
        f" `synchronous=FULL`. Queue: {PRODUCERS} producers send {QUEUE_MESSAGES} messages one per call while"
        f" {CONSUMERS} consumers receive batches of up to {RECEIVE_BATCH} and acknowledge them with `ack_many`;"
        f" the rate counts messages sent, received and acknowledged, end to end. Medians of {RUNS} runs each.",
        "",
        "| workload | backend | rate (per s) | p50 latency | p99 latency | per commit: mean / largest |",
        "|---|---|---:|---:|---:|---:|",
        f"| append | sqlite | {a_rate:,.0f} | {median(sqlite_appends, 'p50_ms'):.2f} ms"
        f" | {median(sqlite_appends, 'p99_ms'):.2f} ms | {median(sqlite_appends, 'mean_batch'):.1f} /"
        f" {max(r.largest_batch for r in sqlite_appends)} appends |",
        f"| append, 64 producers | sqlite | {median(sqlite_appends_64, 'rate'):,.0f}"
        f" | {median(sqlite_appends_64, 'p50_ms'):.2f} ms | {median(sqlite_appends_64, 'p99_ms'):.2f} ms"
        f" | {median(sqlite_appends_64, 'mean_batch'):.1f} /"
        f" {max(r.largest_batch for r in sqlite_appends_64)} appends |",
        f"| append | memory | {median(memory_appends, 'rate'):,.0f} | {median(memory_appends, 'p50_ms'):.3f} ms"
        f" | {median(memory_appends, 'p99_ms'):.3f} ms | n/a |",
        f"| send -> receive -> ack | sqlite | {q_rate:,.0f} | | | {median(sqlite_queue, 'mean_batch'):.1f} /"
        f" {max(r.largest_batch for r in sqlite_queue)} ops |",
        f"| send -> receive -> ack | memory | {median(memory_queue, 'rate'):,.0f} | | | n/a |",
        "",
        f"- Durable appends: {a_rate:,.0f}/s against a target of {APPEND_TARGET:,.0f}/s"
        f" ({verdict(a_rate, APPEND_TARGET)}); the memory store does {median(memory_appends, 'rate') / a_rate:.1f}x"
        " more, the price of a commit to disk.",
        f"- Each of the {PRODUCERS} producers waits for its append before the next, so a commit carries at most"
        f" {PRODUCERS} appends and the rate is {PRODUCERS} per commit cycle: here one cycle took"
        f" {PRODUCERS / a_rate * 1e6:,.0f} µs (fsync of the WAL, the writer's statements, and the event loop's turn)."
        f" With 64 producers the batches grow and the rate follows: {median(sqlite_appends_64, 'rate'):,.0f}/s.",
        f"- Queue flow: {q_rate:,.0f} messages/s against a target of {QUEUE_TARGET:,.0f}/s"
        f" ({verdict(q_rate, QUEUE_TARGET)}); memory does {median(memory_queue, 'rate') / q_rate:.1f}x more.",
        f"- Reads: 16 tasks calling `kv.get` while 16 producers append, for 2 s. On the reader connection:"
        f" {median(on_reader, 'rate'):,.0f} gets/s beside {median(on_reader, 'p50_ms'):,.0f} appends/s;"
        f" through the writer thread: {median(on_writer, 'rate'):,.0f} gets/s beside"
        f" {median(on_writer, 'p50_ms'):,.0f} appends/s. Reads therefore use the reader connection.",
        "- Per commit: for appends, the append calls merged into one transaction (one fsync); for the queue,"
        " the operations (a send, a receive or an `ack_many`) the writer ran in one transaction.",
    ]
    return "\n".join(lines)
