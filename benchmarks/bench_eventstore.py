"""The event store: appends per second with 16 writers, and a projection's lag at that rate, on SQLite and
PostgreSQL.

    .venv/bin/python -m benchmarks.run eventstore

The platform runs as `triggerfish dev` runs it (the projection in a worker process forked from the app's zygote,
the store in the platform's process). Sixteen writers, each on a stream of its own, append one event at a time
with its expected version for SECONDS seconds, through `EventStoreService.append`: what a handler's
`context.events.append` costs once it reaches the platform (the head's compare-and-set, the stream's log, the
global log and the bus's copy, one transaction), without the worker's round trip. Meanwhile a projection of every
stream (batches of 100, one `view.get` and one `view.put` per event) runs as it would live; the lag (the newest
position minus the projection's checkpoint) is sampled every 50 ms, and after the writers stop the time it needs
to catch up is measured. EventStoreDB and Marten are not runnable here (no server, no .NET), so nothing is compared
side by side. The same writers also run on `EventStore` over the bare store (no bus copy, no projection, no
platform), which shows what the store alone allows. The systems take turns, round by round (the machine is shared
and noisy).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks import postgres
from benchmarks.measure import interleave, load_average, loads, percentile, spread
from triggerfish.eventstore import EventStore
from triggerfish.server.platform import Platform
from triggerfish.store import open_store

WRITERS = 16
SECONDS = 4.0
ROUNDS = 3

APP = """
import triggerfish

app = triggerfish.App("bench")


@app.projection("*", batch_size=100)
def counts(event, view):
    view.put(event.stream, view.get(event.stream, 0) + 1)
"""


async def _caught_up(platform: Platform, interval: float) -> None:
    """Once the projection's checkpoint is the newest position (polled: the lag is what is measured)."""
    while True:
        if (await platform.projections.status())[0]["lag"] == 0:
            return
        await asyncio.sleep(interval)


async def _measure(store_url: str, directory: Path) -> dict[str, float]:
    app_file = directory / "app.py"
    app_file.write_text(APP)
    platform = Platform(str(app_file), data_dir=directory / "data", store_url=store_url)
    await platform.start()
    service = platform.eventstore
    try:
        # Warm up: the projection's worker forked, the streams made.
        for number in range(WRITERS):
            await service.append(f"bench-{number}", [{"type": "Warmed"}], expected_version=0)
        await _caught_up(platform, 0.05)
        appended = 0
        stop = time.monotonic() + SECONDS

        async def writer(number: int) -> None:
            nonlocal appended
            version = 1
            while time.monotonic() < stop:
                await service.append(
                    f"bench-{number}", [{"type": "Moved", "data": {"n": version}}], expected_version=version
                )
                version += 1
                appended += 1

        lags: list[int] = []

        async def sampler() -> None:
            while time.monotonic() < stop:
                lags.append((await platform.projections.status())[0]["lag"])
                await asyncio.sleep(0.05)

        began = time.monotonic()
        await asyncio.gather(*(writer(n) for n in range(WRITERS)), sampler())
        wrote = time.monotonic() - began
        ended = time.monotonic()
        await _caught_up(platform, 0.01)
        return {
            "appends": appended / wrote,
            "lag_p50": percentile(lags, 0.5),
            "lag_max": max(lags) if lags else 0.0,
            "catch_up": time.monotonic() - ended,
        }
    finally:
        await platform.stop()


async def _store_only(store_url: str, directory: Path) -> dict[str, float]:
    """The same writers on `EventStore` over the store alone: no bus copy, no projection, no platform."""
    store = await open_store(store_url or f"sqlite:///{directory / 'store.db'}")
    events = EventStore(store)
    try:
        appended = 0
        stop = time.monotonic() + SECONDS

        async def writer(number: int) -> None:
            nonlocal appended
            version = 0
            while time.monotonic() < stop:
                await events.append(f"bench-{number}", [{"type": "Moved"}], expected_version=version)
                version += 1
                appended += 1

        began = time.monotonic()
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        return {"appends": appended / (time.monotonic() - began)}
    finally:
        await store.close()


def _system(
    url: Callable[[ExitStack], str], measure: Callable[[str, Path], Coroutine[Any, Any, dict[str, float]]] = _measure
) -> Callable[[], dict[str, float]]:
    def run() -> dict[str, float]:
        with ExitStack() as stack, tempfile.TemporaryDirectory() as directory:
            return asyncio.run(measure(url(stack), Path(directory)))

    return run


def main() -> str:
    started = time.monotonic()
    systems: dict[str, Callable[[], dict[str, float]]] = {
        "SQLite": _system(lambda stack: ""),
        "SQLite, store only": _system(lambda stack: "", _store_only),
    }
    reason = postgres.unavailable()
    if reason is None:
        fresh = postgres.fresh_schema
        systems["PostgreSQL"] = _system(lambda stack: stack.enter_context(fresh()))
        systems["PostgreSQL, store only"] = _system(lambda stack: stack.enter_context(fresh()), _store_only)
    measured = interleave(systems, ROUNDS)
    lines = [
        "## Event store",
        "",
        f"{WRITERS} writers appending one event at a time (with its expected version) for {SECONDS:g} s, {ROUNDS}"
        " rounds (median, lowest to highest); a projection of every stream running meanwhile in a worker process."
        " Lag is the newest position minus the projection's checkpoint, sampled every 50 ms; catch-up is the time"
        " from the last append to the projection's checkpoint reaching it. The store-only rows run the same writers"
        " on `EventStore` over the store alone (no bus copy, no projection, no platform): the store's own ceiling."
        " EventStoreDB and Marten cannot run here.",
        "",
        "| store | appends/s | lag p50 (events) | lag max (events) | catch-up s | load averages |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in measured.items():
        if runs.error:
            lines.append(f"| {name} | could not run: {runs.error} | | | | |")
            continue
        if name.endswith("store only"):
            lines.append(f"| {name} | {spread(runs.values(lambda r: r['appends']))} | | | | {loads(runs)} |")
            continue
        lines.append(
            f"| {name} | {spread(runs.values(lambda r: r['appends']))}"
            f" | {spread(runs.values(lambda r: r['lag_p50']))}"
            f" | {spread(runs.values(lambda r: r['lag_max']))}"
            f" | {spread(runs.values(lambda r: r['catch_up']), 2)} | {loads(runs)} |"
        )
    if reason is not None:
        lines.append(f"| PostgreSQL | not run: {reason} | | | | |")
    lines += ["", f"_{time.monotonic() - started:.0f} s, load average {load_average():.1f} at the end._", ""]
    return "\n".join(lines)
