"""Prometheus metrics of a process: `triggerfish dev`'s platform, or every app of one `triggerfish serve` node.

    metrics = Metrics()
    metrics.watch(platform)                 # its invocation records feed the counters from now on
    text = await metrics.render([platform])  # the Prometheus text format, for GET /-/metrics

Two kinds of figures, and why:

- What this process did (invocations by trigger and outcome, durations,
  cold starts, init durations, billed GB-seconds, events matched by rules)
  is counted from the invocation records as they are stored, in memory:
  the hot path pays a dictionary look-up and a few additions per record,
  never a store round trip. Behind several nodes each node counts what it
  ran, as Prometheus expects of instances: sum them across `instance`.
- What the platform holds (queue depths, dead letters, events published,
  consumers' lag) is read from the store when scraped, so every node of a
  cluster answers the same figures: take `max` across instances, not `sum`.
  Workers and concurrency are the node's own processes.

Each series carries an `app` label: the app's name under `serve` (as deployed),
its declared name under `dev`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from triggerfish.names import (
    BUS_GROUP,
    EXIT_ERROR,
    PROTOCOL_ERROR,
    START_ERROR,
    TOPIC_GROUP,
    bus_stream,
    is_dead_letter_queue,
    topic_stream,
)
from triggerfish.runtime.records import InvocationRecord

if TYPE_CHECKING:
    from triggerfish.server.platform import Platform

#: The media type of the answer: the classic text format every Prometheus reads (what `generate_latest` writes;
#: prometheus-client's own CONTENT_TYPE_LATEST names a newer version in recent releases).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Duration buckets in seconds, from 1 ms to Lambda's longest timeout (900 s).
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
)

#: An invocation record's status as the `outcome` label says it.
OUTCOMES = {
    "succeeded": "success",
    "failed": "error",
    "timed_out": "timeout",
    "out_of_memory": "out_of_memory",
    "throttled": "throttled",
    "expired": "expired",
}
#: Failures that are the worker's death, not the handler's exception: the `crash` outcome.
CRASH_ERRORS = frozenset({EXIT_ERROR, PROTOCOL_ERROR, START_ERROR})


def outcome_of(record: InvocationRecord) -> str:
    """The `outcome` label of a record: success, error, timeout, throttled, crash, out_of_memory or expired."""
    if record.status == "failed" and record.error is not None and record.error.get("errorType") in CRASH_ERRORS:
        return "crash"
    return OUTCOMES.get(record.status, "error")


class Metrics:
    """The metrics of one process. `watch` a platform to count its invocations; `render` to answer a scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry
        self.invocations = Counter(
            "triggerfish_function_invocations",
            "Invocation attempts by trigger and outcome (success, error, timeout, throttled, crash, out_of_memory,"
            " expired), counted on the node that ran them",
            ["app", "function", "trigger", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "triggerfish_function_duration_seconds",
            "How long invocations ran, by trigger (attempts that never ran are not observed)",
            ["app", "function", "trigger"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.cold_starts = Counter(
            "triggerfish_function_cold_starts",
            "Invocations that started a new worker",
            ["app", "function"],
            registry=registry,
        )
        self.init_duration = Histogram(
            "triggerfish_function_init_duration_seconds",
            "How long a new worker took to be ready (cold starts only)",
            ["app", "function"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.gb_seconds = Counter(
            "triggerfish_function_billed_gb_seconds",
            "Billed duration times memory, as Lambda bills it",
            ["app", "function"],
            registry=registry,
        )
        self.http_requests = Counter(
            "triggerfish_http_requests",
            'Requests to the app\'s routes by route key and status (route "" when none matched)',
            ["app", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "triggerfish_http_request_duration_seconds",
            "How long the app's routes took to answer, from the request's head to the response's last byte sent",
            ["app", "route"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        # The children of each label set, looked up once: `labels()` costs more than the additions themselves.
        self._ran: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        self._started: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._answered: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._state: list[Metric] = []
        registry.register(_Snapshot(self))

    # --- counting ----------------------------------------------------------------------------------

    def watch(self, platform: Platform) -> None:
        """Count every invocation record `platform` stores from now on, labelled with its app's name."""

        def count(record: InvocationRecord) -> None:
            self.count(platform.secrets_name, record)

        def answered(route: str, status: int, seconds: float) -> None:
            self.answered(platform.secrets_name, route, status, seconds)

        platform.record_listeners.append(count)
        platform.request_observers.append(answered)

    def answered(self, app: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request to one of `app`'s routes."""
        key = (app, route, status)
        children = self._answered.get(key)
        if children is None:
            children = self._answered[key] = (
                self.http_requests.labels(app, route, str(status)),
                self.http_duration.labels(app, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def count(self, app: str, record: InvocationRecord) -> None:
        """Count one stored invocation record of `app`."""
        key = (app, record.function, record.trigger, outcome_of(record))
        children = self._ran.get(key)
        if children is None:
            children = self._ran[key] = (
                self.invocations.labels(*key),
                self.duration.labels(app, record.function, record.trigger),
                self.gb_seconds.labels(app, record.function),
            )
        children[0].inc()
        if record.status not in ("throttled", "expired"):  # never ran: no duration, nothing billed
            children[1].observe(record.duration_ms / 1000.0)
            children[2].inc(record.gb_seconds)
        if record.cold_start:
            self._cold_start(app, record)

    def _cold_start(self, app: str, record: InvocationRecord) -> None:
        key = (app, record.function)
        children = self._started.get(key)
        if children is None:
            children = self._started[key] = (
                self.cold_starts.labels(app, record.function),
                self.init_duration.labels(app, record.function),
            )
        children[0].inc()
        if record.init_duration_ms is not None:
            children[1].observe(record.init_duration_ms / 1000.0)

    # --- answering a scrape ------------------------------------------------------------------------

    async def render(self, platforms: Iterable[Platform], *, app: str | None = None, store: object = None) -> bytes:
        """The text format: the counters, and the state of `platforms` read now. With `app`, only its series;
        `store` is the process's store, whose group-commit figures are reported when it keeps them (SQLite)."""
        state: list[Metric] = [] if store is None else store_state(store)
        for platform in platforms:
            state.extend(await platform_state(platform))
        self._state = _merge(state)
        # No await from here on: the snapshot rendered is the one just read.
        if app is None:
            return generate_latest(self.registry)
        return generate_latest(_OnlyApp(self.registry, app))


class _Snapshot:
    """The state read for the scrape being answered (a collector of the registry)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics._state


class _OnlyApp:
    """A registry's metrics with only the samples labelled `app` (for a key of one app)."""

    def __init__(self, registry: CollectorRegistry, app: str) -> None:
        self.registry = registry
        self.app = app

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            kept = [sample for sample in metric.samples if sample.labels.get("app") == self.app]
            copy = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            copy.samples = kept
            yield copy


def store_state(store: object) -> list[Metric]:
    """The store's commits as counters: SQLite's group commit, PostgreSQL's write transactions (a merged batch of
    puts or appends counts each caller as an operation); a store that keeps no figures (memory) gives none."""
    stats = getattr(store, "write_stats", None)
    if stats is None:
        return []
    commits = CounterMetricFamily(
        "triggerfish_store_commits", "Transactions the store's writer committed (each a batch of operations)"
    )
    commits.add_metric([], stats.batches)
    operations = CounterMetricFamily(
        "triggerfish_store_committed_operations",
        "Operations those transactions carried: divided by commits, the mean batch size",
    )
    operations.add_metric([], stats.operations)
    seconds = CounterMetricFamily(
        "triggerfish_store_commit_seconds",
        "Seconds the writer spent running and committing them: divided by commits, the mean commit latency",
    )
    seconds.add_metric([], stats.seconds)
    largest = GaugeMetricFamily("triggerfish_store_largest_batch_operations", "The largest batch committed so far")
    largest.add_metric([], stats.largest)
    return [commits, operations, seconds, largest]


async def platform_state(platform: Platform) -> list[Metric]:
    """What `platform` holds now, as metric families labelled with its app: workers and concurrency (this node's),
    queues, dead letters, buses and topics (the store's, the same on every node), rules' matches (this node's)."""
    if not platform.running:  # not started yet, or stopped meanwhile
        return []
    app = platform.secrets_name
    families = _families()
    for version in platform.serving():
        for name, spec in version.specs.items():
            stats = version.runner.stats(name)
            busy = int(stats.get("busy", 0))
            families["workers"].add_metric([app, name, "busy"], busy)
            families["workers"].add_metric([app, name, "idle"], int(stats.get("idle", 0)))
            families["concurrent"].add_metric([app, name], busy)
            families["memory"].add_metric([app, name], spec.settings.memory_mb * 1024 * 1024)
            pids = stats.get("pids") or []
            if pids:
                families["resident"].add_metric([app, name], sum(resident_bytes(pid) for pid in pids))
    store = platform.store
    for queue in await store.queues.queues():
        held = await store.queues.stats(queue)
        for state, count in (("visible", held.visible), ("delayed", held.delayed), ("in_flight", held.in_flight)):
            families["queue"].add_metric([app, queue, state], count)
        families["age"].add_metric([app, queue], held.oldest_age or 0.0)
        if is_dead_letter_queue(queue):
            families["dead"].add_metric([app, queue], held.depth)
    bus = getattr(platform, "bus", None)
    if bus is not None:
        for name in await bus.buses():
            published, lag = await _progress(platform, bus_stream(name), BUS_GROUP)
            families["published"].add_metric([app, name], published)
            families["lag"].add_metric([app, name], lag)
        for (name, rule), count in sorted(bus.matches.items()):
            families["matched"].add_metric([app, name, rule], count)
        for (name, outcome), count in sorted(bus.deliverer.failures.items()):
            families["failures"].add_metric([app, "bus", name, outcome], count)
    scheduler = getattr(platform, "scheduler", None)
    if scheduler is not None:
        for name, count in sorted(scheduler.fires.items()):
            families["fires"].add_metric([app, name], count)
        for name, count in sorted(scheduler.misses.items()):
            families["misses"].add_metric([app, name], count)
    topics = getattr(platform, "topics", None)
    if topics is not None:
        for name in await topics.names():
            published, lag = await _progress(platform, topic_stream(name), TOPIC_GROUP)
            families["topic_published"].add_metric([app, name], published)
            families["topic_lag"].add_metric([app, name], lag)
        for (name, outcome), count in sorted(topics.deliverer.failures.items()):
            families["failures"].add_metric([app, "topic", name, outcome], count)
    pg_changes = getattr(platform, "pg_changes", None)
    if pg_changes is not None:
        # Measured by the node reading the slot (every few seconds): other nodes have no figure to give.
        for name, shown in pg_changes.status().items():
            if shown["lag_bytes"] is not None:
                families["slot_lag"].add_metric([app, name, shown["slot"]], shown["lag_bytes"])
            if shown.get("backlog") is not None:
                families["capture_backlog"].add_metric([app, name], shown["backlog"])
    return list(families.values())


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int) -> int:
    """The resident set of process `pid` (Linux's /proc; 0 when it is gone or cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


async def _progress(platform: Platform, stream: str, group: str) -> tuple[int, int]:
    """How many records `stream` ever had (offsets are never reused), and how many `group` has yet to commit."""
    last = await platform.store.log.last_offset(stream)
    position = await platform.store.log.position(stream, group)
    return last, max(0, last - position)


def _families() -> dict[str, Any]:
    return {
        "workers": GaugeMetricFamily(
            "triggerfish_function_workers",
            "Worker processes of the serving versions on this node, busy or idle (warm)",
            labels=["app", "function", "state"],
        ),
        "concurrent": GaugeMetricFamily(
            "triggerfish_function_concurrent_executions",
            "Invocations running now on this node",
            labels=["app", "function"],
        ),
        "memory": GaugeMetricFamily(
            "triggerfish_function_memory_limit_bytes",
            "The memory a function's workers may use (its memory_mb setting)",
            labels=["app", "function"],
        ),
        "resident": GaugeMetricFamily(
            "triggerfish_function_resident_memory_bytes",
            "Resident memory of the function's worker processes on this node, added up (pages shared with the"
            " zygote count in each)",
            labels=["app", "function"],
        ),
        "queue": GaugeMetricFamily(
            "triggerfish_queue_messages",
            "Messages in a queue: visible (waiting), delayed, or in flight (leased)",
            labels=["app", "queue", "state"],
        ),
        "age": GaugeMetricFamily(
            "triggerfish_queue_oldest_message_age_seconds",
            "Age of the oldest message still in a queue (0 when empty)",
            labels=["app", "queue"],
        ),
        "dead": GaugeMetricFamily(
            "triggerfish_dead_letter_messages",
            "Messages in a dead-letter queue (a function's, a queue's, a bus's or a topic's)",
            labels=["app", "queue"],
        ),
        "published": CounterMetricFamily(
            "triggerfish_bus_events_published",
            "Events ever appended to a bus",
            labels=["app", "bus"],
        ),
        "lag": GaugeMetricFamily(
            "triggerfish_bus_consumer_lag_events",
            "Events on a bus that its rules have not been matched against yet",
            labels=["app", "bus"],
        ),
        "matched": CounterMetricFamily(
            "triggerfish_bus_events_matched",
            "Events a rule matched on this node (each matching rule counts once per event)",
            labels=["app", "bus", "rule"],
        ),
        "failures": CounterMetricFamily(
            "triggerfish_delivery_failures",
            "Failed deliveries of a bus's or topic's events to their non-function targets (queues, topics, buses,"
            " webhooks) on this node: retried, or dead_lettered when retries ran out",
            labels=["app", "kind", "name", "outcome"],
        ),
        "fires": CounterMetricFamily(
            "triggerfish_schedule_fires",
            "Occurrences of a schedule this node fired (enqueued as invocations)",
            labels=["app", "schedule"],
        ),
        "misses": CounterMetricFamily(
            "triggerfish_schedule_misses",
            "Times this node found due times of a schedule that its missed-fire policy left out",
            labels=["app", "schedule"],
        ),
        "topic_published": CounterMetricFamily(
            "triggerfish_topic_messages_published",
            "Messages ever published to a topic",
            labels=["app", "topic"],
        ),
        "topic_lag": GaugeMetricFamily(
            "triggerfish_topic_consumer_lag_messages",
            "Messages of a topic not yet fanned out to its subscribers",
            labels=["app", "topic"],
        ),
        "slot_lag": GaugeMetricFamily(
            "triggerfish_pg_slot_lag_bytes",
            "WAL a PostgreSQL server keeps for a change capture's replication slot beyond what it handled",
            labels=["app", "function", "slot"],
        ),
        "capture_backlog": GaugeMetricFamily(
            "triggerfish_pg_capture_backlog_records",
            "Records a change capture with parallelization > 1 moved into its partitions and has not handled yet",
            labels=["app", "function"],
        ),
    }


def _merge(families: Sequence[Metric]) -> list[Metric]:
    """One family per name (each platform made its own), samples in order."""
    merged: dict[str, Metric] = {}
    for family in families:
        into = merged.get(family.name)
        if into is None:
            merged[family.name] = family
        else:
            into.samples.extend(family.samples)
    return list(merged.values())
